/**
 * Quick start: one endpoint answers int, enum and object requests, another
 * calls them, then shows one of each failure.
 *
 *   deno task demo                                  # in memory, no server
 *   deno task demo --nats ws://127.0.0.1:8080       # against NATS (or set NATS_URL)
 *
 * @module
 */

import * as v from "valibot";
import { connect } from "nats.ws";
import { wsFactory } from "../deno.ts";
import {
  defineRequest,
  Endpoint,
  enumOf,
  int,
  memoryTransport,
  natsTransport,
  object,
  ReplyError,
  type Transport,
} from "../mod.ts";

// Contracts: both sides import these.
const CheckStock = defineRequest({
  subject: "demo.stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});
const Approve = defineRequest({
  subject: "demo.orders.approve",
  request: v.object({ orderId: v.string(), total: v.number() }),
  response: enumOf(["Approved", "Rejected"]),
});
const PlaceOrder = defineRequest({
  subject: "demo.orders.place",
  request: v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});
const Slow = defineRequest({ subject: "demo.slow", request: v.null(), response: int() });
const Nobody = defineRequest({ subject: "demo.nobody", request: v.null(), response: int() });
// The same subject as an older responder that answers with an object: a contract mismatch.
const Version = defineRequest({ subject: "demo.version", request: v.null(), response: int() });
const VersionV1 = defineRequest({
  subject: "demo.version",
  request: v.null(),
  response: object(v.object({ major: v.number() })),
});

const url = flag("--nats") ?? Deno.env.get("NATS_URL");
// wsFactory: Deno's own WebSocket stalls 40 ms per batch of NATS traffic (docs/deno.md).
const connectOptions = { servers: url ?? "", wsFactory };
const nc = url ? await open(url) : undefined;
const transport: Transport = nc ? natsTransport(nc) : memoryTransport();
console.log(`transport: ${url ? `NATS at ${url}` : "in memory (pass --nats ws://… for NATS)"}\n`);

try {
  await using responder = new Endpoint(transport);
  await using caller = new Endpoint(transport, { timeout: 5_000 });

  const registrations = [];
  registrations.push(responder.handle(CheckStock, ({ sku }) => {
    if (sku === "Z-9") throw new ReplyError(404, `unknown sku ${sku}`, { data: { sku } });
    return sku === "A-1" ? 5 : 0;
  }));
  registrations.push(
    responder.handle(Approve, ({ total }) => total <= 1_000 ? "Approved" : "Rejected"),
  );
  registrations.push(
    responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}-${qty}-001`, eta: 2 })),
  );
  registrations.push(
    responder.handle(Slow, (_body, { signal }) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => resolve(1), 60_000);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        }, { once: true });
      })),
  );
  registrations.push(responder.handle(VersionV1, () => ({ major: 1 })));
  // Live once the server has the subscriptions: a caller started now never meets "no responders".
  await Promise.all(registrations.map((r) => r.ready));

  const left: number = await caller.request(CheckStock, { sku: "A-1" });
  console.log("int     stock.check A-1        ->", left);
  const decision: "Approved" | "Rejected" = await caller.request(Approve, {
    orderId: "o-1",
    total: 250,
  });
  console.log("enum    orders.approve 250     ->", decision);
  const order = await caller.request(PlaceOrder, { sku: "A-1", qty: 2 });
  console.log("object  orders.place A-1 x2    ->", order);
  console.log();

  await show("timeout", caller.request(Slow, null, { timeout: 200 }));
  const cancel = new AbortController();
  setTimeout(() => cancel.abort(new Error("the user pressed cancel")), 100);
  await show("abort", caller.request(Slow, null, { signal: cancel.signal }));
  await show("no responders", caller.request(Nobody, null));
  await show("invalid reply", caller.request(Version, null));
  await show("remote error", caller.request(CheckStock, { sku: "Z-9" }));
  // @ts-expect-error: qty must be a positive integer; checked before anything is sent
  await show("invalid request", caller.request(PlaceOrder, { sku: "A-1", qty: "2" }));
  console.log(`\npending callbacks: ${caller.pending}`);
} finally {
  await nc?.close();
}

async function show(what: string, promise: Promise<unknown>): Promise<void> {
  try {
    console.log(`${what.padEnd(16)}-> unexpected success:`, await promise);
  } catch (error) {
    const e = error as Error;
    console.log(`${what.padEnd(16)}-> ${e.name}: ${e.message}`);
  }
}

/** Connects, or says what to check and exits. */
async function open(servers: string) {
  try {
    return await connect({ ...connectOptions, servers });
  } catch (error) {
    console.error(
      `could not connect to NATS at ${servers} (${(error as Error).message}).\n` +
        `Is nats-server running with websocket enabled on that port? Its config needs\n` +
        `  websocket { port: 8080, no_tls: true }\n` +
        `and the URL is the websocket port (ws://127.0.0.1:8080), not the client port (4222).`,
    );
    Deno.exit(1);
  }
}

function flag(name: string): string | undefined {
  const index = Deno.args.indexOf(name);
  return index === -1 ? undefined : Deno.args[index + 1];
}
