/**
 * A bounded soak: object requests over NATS (through `wsFactory`), 200 in flight, for --seconds or
 * --requests, whichever comes first; one request in 20 goes to a subscriber
 * that never answers and times out (20 ms), one in 20 is aborted right after
 * it is sent. Prints one JSON line: requests, seconds, heap before
 * (baseline), at its peak and after settling (after GC), pending, timeouts,
 * aborts and errors (any other outcome). Run with --v8-flags=--expose-gc for meaningful heap numbers.
 *
 *   deno run -A --v8-flags=--expose-gc bench/soak.ts --seconds 60
 *
 * @module
 */

import * as v from "valibot";
import { defineRequest, Endpoint, natsTransport, object, TimeoutError } from "../mod.ts";
import { wsFactory } from "../deno.ts";
import { connectTracked, TrackedFactory } from "../tests/helpers/connect.ts";
import { startNatsServer } from "../tests/helpers/nats_server.ts";

const Quote = defineRequest({
  subject: "soak.quote",
  request: v.object({ sku: v.string(), qty: v.number() }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});

function arg(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(Deno.args[i + 1]);
}

const Silent = defineRequest({ ...Quote, subject: "soak.silent" });

const seconds = arg("seconds", 60);
const limit = arg("requests", 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  gc?.();
  return Deno.memoryUsage().heapUsed;
};

await using server = await startNatsServer();
// Through wsFactory: over Deno's built-in WebSocket the Nagle stall caps 200 in flight at ~2.5k req/s.
const connect = () => connectTracked(new TrackedFactory(wsFactory), { servers: server.wsUrl });
const callerNc = await connect();
const responderNc = await connect();
let requests = 0;
let errors = 0;
let timeouts = 0;
let aborts = 0;
let peak = 0;
let baseline = 0;
let after = 0;
let pending = -1;
const started = performance.now();
try {
  await using responder = new Endpoint(natsTransport(responderNc));
  responder.handle(Quote, ({ sku, qty }) => ({ orderId: `${sku}-${qty}`, eta: 2 }));
  responderNc.subscribe(Silent.subject, { callback: () => {} }); // receives, never answers
  await responderNc.flush();
  await using caller = new Endpoint(natsTransport(callerNc), { timeout: 10_000 });
  // Warm up, then take the baseline.
  for (let i = 0; i < 2_000; i++) await caller.request(Quote, { sku: "w", qty: i });
  baseline = heap();
  const end = started + seconds * 1000;
  const worker = async () => {
    while (performance.now() < end && requests < limit) {
      const n = ++requests;
      const kind = n % 20 === 0 ? "timeout" : n % 20 === 10 ? "abort" : "reply";
      const reason = new Error("soak abort");
      try {
        if (kind === "timeout") {
          await caller.request(Silent, { sku: "A-1", qty: n }, { timeout: 20 });
        } else if (kind === "abort") {
          const controller = new AbortController();
          const reply = caller.request(Quote, { sku: "A-1", qty: n }, {
            signal: controller.signal,
          });
          controller.abort(reason);
          await reply;
        } else {
          await caller.request(Quote, { sku: "A-1", qty: n });
        }
        if (kind !== "reply") errors++; // it should have rejected
      } catch (error) {
        if (kind === "timeout" && error instanceof TimeoutError) timeouts++;
        else if (kind === "abort" && error === reason) aborts++;
        else errors++;
      }
      if (requests % 20_000 === 0) peak = Math.max(peak, Deno.memoryUsage().heapUsed);
    }
  };
  await Promise.all(Array.from({ length: 200 }, worker));
  pending = caller.pending;
  after = heap();
} finally {
  await callerNc.close();
  await responderNc.close();
}
console.log(JSON.stringify({
  requests,
  seconds: (performance.now() - started) / 1000,
  baseline,
  peak: Math.max(peak, after),
  after,
  pending,
  timeouts,
  aborts,
  errors,
}));
