import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import type { NatsConnection } from "nats.ws";
import { Endpoint, natsTransport, ReplyError, type SettleEvent } from "../mod.ts";
import {
  Approve,
  CheckStock,
  type Gateway,
  PlaceOrder,
  startGateway,
} from "../examples/gateway.ts";
import { connectWs } from "./helpers/connect.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";

/** A gateway on port 0 and its own connection; a responder endpoint on another connection. */
interface Fixture extends AsyncDisposable {
  server: NatsServer;
  gateway: Gateway;
  responder: Endpoint;
  responderNc: NatsConnection;
  /** The gateway's connection (the fixture's: the gateway does not close it). */
  gatewayNc: NatsConnection;
  /** Resolves the slow handler's pending replies. */
  release(): void;
  /** Resolves when the slow handler has a request. */
  slowStarted: Promise<void>;
}

async function fixture(
  { respond = true, timeout = 5_000 }: { respond?: boolean; timeout?: number } = {},
): Promise<Fixture> {
  const server = await startNatsServer();
  const gatewayNc = await connectWs(server);
  const responderNc = await connectWs(server);
  const responder = new Endpoint(natsTransport(responderNc));
  const released = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  if (respond) {
    responder.handle(CheckStock, ({ sku }) => {
      if (sku === "Z-9") throw new ReplyError(404, `unknown sku ${sku}`, { data: { sku } });
      return sku === "A-1" ? 5 : 0;
    });
    responder.handle(PlaceOrder, async ({ sku, qty }, ctx) => {
      if (sku === "slow") {
        started.resolve();
        await Promise.race([released.promise, aborted(ctx.signal)]);
      }
      return { orderId: `${sku}-${qty}-001`, eta: 2 };
    });
    responder.handle(Approve, async ({ orderId }, ctx) => {
      // "silent" never answers: the handler gives up when the caller's time budget runs out
      if (orderId === "silent") await aborted(ctx.signal);
      return orderId.startsWith("o-") ? "Approved" : "Rejected";
    });
    await responderNc.flush();
  }
  const gateway = await startGateway({ nc: gatewayNc, port: 0, timeout });
  return {
    server,
    gateway,
    responder,
    responderNc,
    gatewayNc,
    release: () => released.resolve(),
    slowStarted: started.promise,
    async [Symbol.asyncDispose]() {
      released.resolve();
      await gateway.shutdown();
      await responder.close();
      await gatewayNc.close();
      await responderNc.close();
      await server.stop();
    },
  };
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

async function call(
  gateway: Gateway,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(new URL(path, gateway.url), init);
  return { status: res.status, body: await res.json(), headers: res.headers };
}

function post(body: unknown): RequestInit {
  return {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  };
}

Deno.test("gateway - routes answer with the callbacks' int, object and enum replies", async () => {
  await using f = await fixture();
  const settled: string[] = [];
  f.gateway.endpoint.addEventListener("settle", (e) => settled.push(`${e.subject} ${e.outcome}`));

  assertEquals(await call(f.gateway, "/stock/A-1").then((r) => [r.status, r.body]), [200, {
    left: 5,
  }]);
  assertEquals(await call(f.gateway, "/stock/B%202").then((r) => [r.status, r.body]), [200, {
    left: 0,
  }]);

  const placed = await call(f.gateway, "/orders", post({ sku: "A-1", qty: 2 }));
  assertEquals(placed.status, 201);
  assertEquals(placed.body, { orderId: "A-1-2-001", eta: 2 });
  assertEquals(placed.headers.get("location"), "/orders/A-1-2-001");

  const approved = await call(f.gateway, "/orders/o-1/approve", { method: "POST" });
  assertEquals([approved.status, approved.body], [200, {
    orderId: "o-1",
    decision: "Approved",
  }]);
  const rejected = await call(f.gateway, "/orders/x-1/approve", { method: "POST" });
  assertEquals(rejected.body, { orderId: "x-1", decision: "Rejected" });

  assertEquals((await call(f.gateway, "/nowhere")).status, 404);
  const wrong = await call(f.gateway, "/stock/A-1", { method: "POST" });
  assertEquals([wrong.status, wrong.headers.get("allow")], [405, "GET"]);

  assertEquals(settled, [
    "stock.check reply",
    "stock.check reply",
    "orders.place reply",
    "orders.approve reply",
    "orders.approve reply",
  ]);
  assertEquals(f.gateway.endpoint.pending, 0);
});

Deno.test("gateway - maps callback errors to HTTP statuses", async () => {
  await using f = await fixture({ timeout: 300 });

  // InvalidRequestError (checked before anything is sent): 400
  const invalid = await call(f.gateway, "/orders", post({ sku: "A-1", qty: "2" }));
  assertEquals(invalid.status, 400);
  assertEquals(invalid.body.error, "InvalidRequestError");
  assert(Array.isArray(invalid.body.issues) && invalid.body.issues.length > 0);
  const notJson = await call(f.gateway, "/orders", post("{not json"));
  assertEquals([notJson.status, notJson.body.error], [400, "BadRequest"]);

  // RemoteError: 502 with the responder's code and description
  const remote = await call(f.gateway, "/stock/Z-9");
  assertEquals([remote.status, remote.body], [502, {
    error: "RemoteError",
    code: 404,
    description: "unknown sku Z-9",
    data: { sku: "Z-9" },
  }]);

  // TimeoutError: 504
  const timeout = await call(f.gateway, "/orders/silent/approve", { method: "POST" });
  assertEquals([timeout.status, timeout.body.error], [504, "TimeoutError"]);

  // InvalidReplyError: 502 (a plain NATS responder answers "1.5" to an int contract)
  await f.responder.close();
  const sub = f.responderNc.subscribe("stock.check", {
    callback: (_err, msg) => msg.respond(new TextEncoder().encode("1.5")),
  });
  await f.responderNc.flush();
  const badReply = await call(f.gateway, "/stock/A-1");
  assertEquals([badReply.status, badReply.body.error], [502, "InvalidReplyError"]);
  sub.unsubscribe();
  await f.responderNc.flush();

  // NoRespondersError: 503 (at once: not a 504 at the timeout)
  const none = await call(f.gateway, "/stock/A-1");
  assertEquals([none.status, none.body.error], [503, "NoRespondersError"]);
  assertEquals(f.gateway.endpoint.pending, 0);
});

Deno.test("gateway - a client that disconnects aborts its callback", async () => {
  await using f = await fixture();
  const { endpoint } = f.gateway;
  const settle = new Promise<SettleEvent>((resolve) => {
    endpoint.addEventListener("settle", resolve, { once: true });
  });

  const client = new AbortController();
  const response = fetch(new URL("/orders", f.gateway.url), {
    ...post({ sku: "slow", qty: 1 }),
    signal: client.signal,
  });
  await f.slowStarted; // the responder has the request: the gateway's callback waits
  assertEquals(endpoint.pending, 1);
  client.abort();
  await assertRejects(() => response);

  const event = await settle;
  assertEquals([event.subject, event.outcome], ["orders.place", "abort"]);
  assertEquals(endpoint.pending, 0);

  // the responder was not told; its late reply is dropped by the gateway's endpoint
  const late = new Promise<void>((resolve) => {
    endpoint.addEventListener("late-reply", () => resolve(), { once: true });
  });
  f.release();
  await late;
  assertEquals(endpoint.pending, 0);
});

Deno.test("gateway - a closed NATS connection is 503 messaging unavailable", async () => {
  await using f = await fixture();
  const errors: unknown[][] = [];
  const consoleError = console.error;
  console.error = (...args: unknown[]) => void errors.push(args);
  try {
    const outcomes: string[] = [];
    f.gateway.endpoint.addEventListener("settle", (e) => outcomes.push(e.outcome));

    // in flight when the connection goes: no reply can arrive any more
    const inFlight = fetch(new URL("/orders", f.gateway.url), post({ sku: "slow", qty: 1 }));
    await f.slowStarted;
    await f.gatewayNc.close();
    const res = await inFlight;
    assertEquals(res.status, 503);
    assertEquals(res.headers.get("retry-after"), "1");
    const body = await res.json();
    assertEquals([body.error, body.message], ["DisconnectedError", "messaging unavailable, retry"]);
    assertMatch(body.detail, /closed/);

    // sent after it went: refused at once, the same way
    const after = await call(f.gateway, "/stock/A-1");
    assertEquals([after.status, after.body.error, after.body.message], [
      503,
      "DisconnectedError",
      "messaging unavailable, retry",
    ]);
    assertEquals(outcomes, ["disconnected"]);
    assertEquals(f.gateway.endpoint.pending, 0);
  } finally {
    console.error = consoleError;
  }
  assertEquals(errors, [], "the gateway logged it as an unexpected error");
});

Deno.test("gateway - shutdown closes its endpoint; callbacks still waiting answer 503", async () => {
  await using f = await fixture();
  const response = fetch(new URL("/orders", f.gateway.url), post({ sku: "slow", qty: 1 }));
  await f.slowStarted;
  const outcome = new Promise<string>((resolve) => {
    f.gateway.endpoint.addEventListener("settle", (e) => resolve(e.outcome), { once: true });
  });
  const shutdown = f.gateway.shutdown();
  const res = await response;
  assertEquals([res.status, (await res.json()).error], [503, "ClosedError"]);
  await shutdown;
  assertEquals(await outcome, "closed");
  assert(f.gateway.endpoint.closed);
  await f.gateway.finished;
});

Deno.test("gateway - runs as a program with --nats and PORT, stops on SIGTERM", async () => {
  await using f = await fixture();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "examples/gateway.ts", "--nats", f.server.wsUrl],
    env: { PORT: "0", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) break;
      out += value;
    }
    const url = /gateway: (http:\/\/\S+) -> NATS at ws:/.exec(out)?.[1];
    assert(url, `no listening line in ${JSON.stringify(out)}`);
    const res = await fetch(`${url}/stock/A-1`);
    assertEquals([res.status, await res.json()], [200, { left: 5 }]);
    child.kill("SIGTERM");
    let rest = "";
    while (true) {
      const { value, done } = await lines.read();
      if (done) break;
      rest += value;
    }
    assertMatch(rest, /gateway: stopped/);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await lines.cancel().catch(() => {});
    const status = await child.status;
    const err = await stderr;
    assertEquals(status.code, 0, err);
  }
});
