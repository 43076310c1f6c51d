/**
 * The Cloudflare Worker example (examples/worker/worker.ts), bundled with esbuild and run in
 * workerd, against a real nats-server: HTTP in, a callback request over WebSocket NATS, the
 * typed reply (or the failure's status) out. The responders run here, in Deno.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import type { NatsConnection } from "nats.ws";
import { Endpoint, natsTransport, ReplyError } from "../mod.ts";
import { Approve, CheckStock, PlaceOrder } from "../examples/worker/worker.ts";
import { connectWs } from "./helpers/connect.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { bundle } from "./helpers/bundle.ts";
import { startWorkerd, type Workerd } from "./helpers/workerd.ts";

const script = await bundle(new URL("../examples/worker/worker.ts", import.meta.url), {
  platform: "browser",
});

interface Fixture extends AsyncDisposable {
  server: NatsServer;
  nc: NatsConnection;
  /** answers CheckStock and PlaceOrder; nothing answers Approve */
  responder: Endpoint;
  worker: Workerd;
  /** aborted once the slow handler's ctx.signal fired */
  slowAborted: Promise<void>;
}

async function fixture(timeoutMs = 5_000): Promise<Fixture> {
  const server = await startNatsServer();
  const stack = new AsyncDisposableStack();
  stack.defer(() => server.stop());
  try {
    const nc = await connectWs(server);
    stack.defer(() => nc.close());
    const responder = new Endpoint(natsTransport(nc));
    stack.defer(() => responder.close());
    let onSlowAbort!: () => void;
    const slowAborted = new Promise<void>((resolve) => onSlowAbort = resolve);
    responder.handle(CheckStock, async ({ sku }, ctx) => {
      if (sku === "slow") {
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        onSlowAbort();
        return 0;
      }
      if (sku === "Z-9") throw new ReplyError(404, "unknown sku");
      return sku === "A-1" ? 5 : 0;
    });
    responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
    await nc.flush();
    const worker = await startWorkerd({
      script,
      bindings: { NATS_URL: server.wsUrl, TIMEOUT_MS: String(timeoutMs) },
    });
    stack.defer(() => worker.stop());
    const owned = stack.move();
    return {
      server,
      nc,
      responder,
      worker,
      slowAborted,
      [Symbol.asyncDispose]: () => owned.disposeAsync(),
    };
  } catch (err) {
    await stack.disposeAsync();
    throw err;
  }
}

/** Fetches from the worker and returns the status, content type and parsed JSON body. */
async function call(
  worker: Workerd,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; type: string | null; body: unknown }> {
  const res = await fetch(`${worker.url}${path}`, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${path}: ${res.status} with a body that is not JSON: ${text}\n${worker.log}`);
  }
  return { status: res.status, type: res.headers.get("content-type"), body };
}

function post(body: string): RequestInit {
  return { method: "POST", headers: { "content-type": "application/json" }, body };
}

/** The `error` object of a failure body. */
function errorOf(body: unknown): { name: string; message: string; [key: string]: unknown } {
  const error = (body as { error?: { name: string; message: string } }).error;
  assert(error, `no error in ${JSON.stringify(body)}`);
  return error;
}

Deno.test("worker - GET /stock/:sku answers the int reply with 200", async () => {
  await using f = await fixture();
  const ok = await call(f.worker, "/stock/A-1");
  assertEquals(ok, { status: 200, type: "application/json; charset=utf-8", body: { result: 5 } });
  assertEquals((await call(f.worker, "/stock/B-2")).body, { result: 0 });
});

Deno.test("worker - POST /orders answers the object reply with 200", async () => {
  await using f = await fixture();
  const res = await call(f.worker, "/orders", post(JSON.stringify({ sku: "A-1", qty: 3 })));
  assertEquals(res.status, 200);
  assertEquals(res.body, { result: { orderId: "A-1x3", eta: 2 } });
});

Deno.test("worker - a subject with no responder is 503 at once", async () => {
  await using f = await fixture();
  const started = Date.now();
  const res = await call(f.worker, "/orders/o-1/approve", { method: "POST" });
  assertEquals(res.status, 503);
  const error = errorOf(res.body);
  assertEquals(error.name, "NoRespondersError");
  assertMatch(error.message, new RegExp(Approve.subject.replace(".", "\\.")));
  assert(Date.now() - started < 4_000, "503 came at the timeout, not at once");
});

Deno.test("worker - a slow handler past TIMEOUT_MS is 504 and its ctx.signal aborts", async () => {
  await using f = await fixture(200);
  const started = Date.now();
  const res = await call(f.worker, "/stock/slow");
  assertEquals(res.status, 504);
  const error = errorOf(res.body);
  assertEquals(error.name, "TimeoutError");
  assertMatch(error.message, /stock\.check within 200 ms/);
  assert(Date.now() - started >= 200);
  await f.slowAborted; // the time budget travelled: the responder stopped waiting too

  // ?timeout= overrides the binding: the same handler, a longer budget, still 504
  const again = await call(f.worker, "/stock/slow?timeout=300");
  assertEquals(again.status, 504);
  assertMatch(errorOf(again.body).message, /within 300 ms/);
});

Deno.test("worker - an invalid body is 400 and nothing is sent", async () => {
  await using f = await fixture();
  const wrong = await call(f.worker, "/orders", post(JSON.stringify({ sku: 1, qty: "2" })));
  assertEquals(wrong.status, 400);
  const error = errorOf(wrong.body);
  assertEquals(error.name, "InvalidRequestError");
  assertMatch(error.message, /invalid orders\.place request/);
  assert(Array.isArray(error.issues) && error.issues.length === 2, JSON.stringify(error));

  const notJson = await call(f.worker, "/orders", post("{not json"));
  assertEquals(notJson.status, 400);
  assertEquals(errorOf(notJson.body).name, "BadRequest");

  const badTimeout = await call(f.worker, "/stock/A-1?timeout=-5");
  assertEquals(badTimeout.status, 400);
  assertMatch(errorOf(badTimeout.body).message, /timeout/);
});

Deno.test("worker - a ReplyError from the responder is 502 with its code", async () => {
  await using f = await fixture();
  const res = await call(f.worker, "/stock/Z-9");
  assertEquals(res.status, 502);
  const error = errorOf(res.body);
  assertEquals([error.name, error.code, error.description], ["RemoteError", 404, "unknown sku"]);
});

Deno.test("worker - unknown routes are 404, wrong methods 405", async () => {
  await using f = await fixture();
  assertEquals((await call(f.worker, "/nope")).status, 404);
  const wrongMethod = await call(f.worker, "/orders");
  assertEquals(wrongMethod.status, 405);
  assertEquals(errorOf(wrongMethod.body).name, "MethodNotAllowed");
});

Deno.test("worker - an unreachable NATS server is 502", async () => {
  // a port that was free a moment ago: nothing listens there
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  await using worker = await startWorkerd({
    script,
    bindings: { NATS_URL: `ws://127.0.0.1:${port}`, TIMEOUT_MS: "1000" },
  });
  const res = await call(worker, "/stock/A-1");
  assertEquals(res.status, 502);
  assertEquals(errorOf(res.body).name, "ConnectError");
});
