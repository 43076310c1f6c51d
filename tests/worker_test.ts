/**
 * The Cloudflare Worker examples, bundled with esbuild and run in workerd, against a real
 * nats-server: HTTP in, a callback request over WebSocket NATS, the typed reply (or the
 * failure's status) out. Both Workers answer the same: examples/worker/worker.ts through the
 * callbacks Durable Object (one connection for every request), examples/worker/per_request.ts
 * with a connection per request. The responders run here, in Deno.
 */
import { assert, assertEquals, assertMatch } from "@std/assert";
import type { NatsConnection } from "nats.ws";
import { Endpoint, natsTransport, ReplyError } from "../mod.ts";
import { Approve, CheckStock, PlaceOrder } from "../examples/worker/routes.ts";
import { connectWs } from "./helpers/connect.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { bundle } from "./helpers/bundle.ts";
import { startWorkerd, type Workerd } from "./helpers/workerd.ts";
import { connz, monitorUrl, totalConnections } from "./helpers/monitor.ts";

/** One of the two Workers. */
interface Variant {
  /** In test names. */
  name: string;
  /** The bundled Worker. */
  script: string;
  /** Whether its callbacks go through the Durable Object (else a connection per request). */
  object: boolean;
}

const VARIANTS: Variant[] = [
  {
    name: "Durable Object",
    object: true,
    script: await bundle(new URL("../examples/worker/worker.ts", import.meta.url), {
      platform: "browser",
    }),
  },
  {
    name: "per request",
    object: false,
    script: await bundle(new URL("../examples/worker/per_request.ts", import.meta.url), {
      platform: "browser",
    }),
  },
];

/** Starts `variant`'s Worker in workerd with its bindings. */
function startWorker(
  variant: Variant,
  { natsServers, timeoutMs }: { natsServers: string; timeoutMs: number },
): Promise<Workerd> {
  return startWorkerd({
    script: variant.script,
    bindings: { NATS_SERVERS: natsServers, TIMEOUT_MS: String(timeoutMs) },
    ...(variant.object ? { durableObjects: { CALLBACKS: "CallbacksObject" } } : {}),
  });
}

interface Fixture extends AsyncDisposable {
  server: NatsServer;
  nc: NatsConnection;
  /** answers CheckStock and PlaceOrder, and Approve unless the fixture says otherwise */
  responder: Endpoint;
  worker: Workerd;
  /** aborted once the slow handler's ctx.signal fired */
  slowAborted: Promise<void>;
  /** resolves when the slow handler next receives a request */
  nextSlow(): Promise<void>;
  /** nats-server's monitoring URL (`http://127.0.0.1:<port>`) */
  monitor: string;
  /** open client connections before the worker made any (the responder's) */
  baseline: number;
  /**
   * Fetches from the worker (see {@linkcode call}), then checks the NATS connections it made.
   * Per request: `connections` of them (1 for a route that reaches NATS, 0 for one refused
   * before), each closed again (the server's open count returns to the baseline and its closed
   * count grows by `connections`, each closed by the client). Through the object: none closed,
   * and at most the object's one open.
   */
  call(path: string, init?: RequestInit, connections?: number): ReturnType<typeof call>;
}

interface FixtureOptions {
  /** the worker's TIMEOUT_MS binding */
  timeoutMs?: number;
  /** whether the responder answers Approve (false: nothing does) */
  approve?: boolean;
}

/** How long the worker's NATS connection may take to show as closed on the server. */
const CLOSE_DEADLINE_MS = 5_000;

async function fixture(
  variant: Variant,
  { timeoutMs = 5_000, approve = true }: FixtureOptions = {},
): Promise<Fixture> {
  const server = await startNatsServer({ config: 'http: "127.0.0.1:-1"' });
  const stack = new AsyncDisposableStack();
  stack.defer(() => server.stop());
  try {
    const monitor = await monitorUrl(server);
    const nc = await connectWs(server);
    stack.defer(() => nc.close());
    const responder = new Endpoint(natsTransport(nc));
    stack.defer(() => responder.close());
    let onSlowAbort!: () => void;
    const slowAborted = new Promise<void>((resolve) => onSlowAbort = resolve);
    const slowWaiters: (() => void)[] = [];
    responder.handle(CheckStock, async ({ sku }, ctx) => {
      if (sku === "slow") {
        for (const resolve of slowWaiters.splice(0)) resolve();
        await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
        onSlowAbort();
        return 0;
      }
      if (sku === "Z-9") throw new ReplyError(404, "unknown sku");
      return sku === "A-1" ? 5 : 0;
    });
    responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}x${qty}`, eta: 2 }));
    if (approve) {
      responder.handle(
        Approve,
        ({ orderId }) => orderId.startsWith("o-") ? "Approved" : "Rejected",
      );
    }
    await nc.flush();
    const baseline = (await connz(monitor, "open")).num_connections;
    assertEquals(baseline, 1, "only the responder is connected");
    const worker = await startWorker(variant, { natsServers: server.wsUrl, timeoutMs });
    stack.defer(() => worker.stop());

    const checkedCall = async (path: string, init: RequestInit = {}, connections = 1) => {
      if (variant.object) return await objectCall(path, init);
      const before = await connz(monitor, "closed");
      const closedBefore = before.total;
      const known = new Set(before.connections.map((c) => c.cid));
      const res = await call(worker, path, init);
      // The worker awaits nc.close() before it answers, but the server notices the socket's
      // close a moment later: poll, within a deadline.
      const deadline = Date.now() + CLOSE_DEADLINE_MS;
      while (true) {
        const open = (await connz(monitor, "open")).num_connections;
        const closed = await connz(monitor, "closed");
        if (open === baseline && closed.total === closedBefore + connections) {
          const reasons = closed.connections.filter((c) => !known.has(c.cid)).map((c) => c.reason);
          assertEquals(reasons, Array(connections).fill("Client Closed"), `${path}: close reasons`);
          return res;
        }
        if (Date.now() > deadline || closed.total > closedBefore + connections) {
          throw new Error(
            `${path}: expected ${baseline} open and ${closedBefore + connections} closed ` +
              `connections, got ${open} open and ${closed.total} closed`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };

    const objectCall = async (path: string, init: RequestInit) => {
      const closedBefore = (await connz(monitor, "closed")).total;
      const res = await call(worker, path, init);
      const open = await connz(monitor, "open");
      assert(
        open.num_connections <= baseline + 1,
        `${path}: ${open.num_connections} open connections: one for the object at most`,
      );
      assertEquals((await connz(monitor, "closed")).total, closedBefore, `${path}: none closed`);
      return res;
    };

    const owned = stack.move();
    return {
      server,
      nc,
      responder,
      worker,
      slowAborted,
      nextSlow: () => new Promise<void>((resolve) => slowWaiters.push(resolve)),
      monitor,
      baseline,
      call: checkedCall,
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
): Promise<{ status: number; type: string | null; location: string | null; body: unknown }> {
  const res = await fetch(`${worker.url}${path}`, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${path}: ${res.status} with a body that is not JSON: ${text}\n${worker.log}`);
  }
  return {
    status: res.status,
    type: res.headers.get("content-type"),
    location: res.headers.get("location"),
    body,
  };
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

for (const variant of VARIANTS) {
  const through = `(${variant.name})`;

  Deno.test(`worker - GET /stock/:sku answers the int reply with 200 ${through}`, async () => {
    await using f = await fixture(variant);
    const ok = await f.call("/stock/A-1");
    assertEquals(ok, {
      status: 200,
      type: "application/json; charset=utf-8",
      location: null,
      body: { result: 5 },
    });
    assertEquals((await f.call("/stock/B-2")).body, { result: 0 });
  });

  Deno.test(`worker - POST /orders answers the object reply with 201 and its location, as the gateway ${through}`, async () => {
    await using f = await fixture(variant);
    const res = await f.call("/orders", post(JSON.stringify({ sku: "A-1", qty: 3 })));
    assertEquals([res.status, res.location], [201, "/orders/A-1x3"]);
    assertEquals(res.body, { result: { orderId: "A-1x3", eta: 2 } });
  });

  Deno.test(`worker - POST /orders/:id/approve answers the enum reply with 200 ${through}`, async () => {
    await using f = await fixture(variant);
    const approved = await f.call("/orders/o-1/approve", { method: "POST" });
    assertEquals(approved, {
      status: 200,
      type: "application/json; charset=utf-8",
      location: null,
      body: { result: "Approved" },
    });
    assertEquals((await f.call("/orders/x-1/approve", { method: "POST" })).body, {
      result: "Rejected",
    });
  });

  Deno.test(`worker - a subject with no responder is 503 at once ${through}`, async () => {
    // A long TIMEOUT_MS: waiting for it would answer 504 TimeoutError, not 503 NoRespondersError.
    await using f = await fixture(variant, { timeoutMs: 30_000, approve: false });
    const res = await f.call("/orders/o-1/approve", { method: "POST" });
    assertEquals(res.status, 503);
    const error = errorOf(res.body);
    assertEquals(error.name, "NoRespondersError");
    assertMatch(error.message, new RegExp(Approve.subject.replace(".", "\\.")));
  });

  Deno.test(`worker - a slow handler past TIMEOUT_MS is 504 and its ctx.signal aborts ${through}`, async () => {
    await using f = await fixture(variant, { timeoutMs: 200 });
    const started = Date.now();
    const res = await f.call("/stock/slow");
    assertEquals(res.status, 504);
    const error = errorOf(res.body);
    assertEquals(error.name, "TimeoutError");
    assertMatch(error.message, /stock\.check within 200 ms/);
    assert(Date.now() - started >= 200);
    await f.slowAborted; // the time budget travelled: the responder stopped waiting too

    // ?timeout= overrides the binding: the same handler, a longer budget, still 504
    const again = await f.call("/stock/slow?timeout=300");
    assertEquals(again.status, 504);
    assertMatch(errorOf(again.body).message, /within 300 ms/);
  });

  Deno.test(`worker - an invalid body is 400 and nothing is sent ${through}`, async () => {
    await using f = await fixture(variant);
    const wrong = await f.call("/orders", post(JSON.stringify({ sku: 1, qty: "2" })));
    assertEquals(wrong.status, 400);
    const error = errorOf(wrong.body);
    assertEquals(error.name, "InvalidRequestError");
    assertMatch(error.message, /invalid orders\.place request/);
    assert(Array.isArray(error.issues) && error.issues.length === 2, JSON.stringify(error));

    // refused before the worker needs NATS: no NATS connection at all
    const notJson = await f.call("/orders", post("{not json"), 0);
    assertEquals(notJson.status, 400);
    assertEquals(errorOf(notJson.body).name, "BadRequest");

    const badTimeout = await f.call("/stock/A-1?timeout=-5", {}, 0);
    assertEquals(badTimeout.status, 400);
    assertMatch(errorOf(badTimeout.body).message, /timeout/);
  });

  Deno.test(`worker - a ReplyError from the responder is 502 with its code ${through}`, async () => {
    await using f = await fixture(variant);
    const res = await f.call("/stock/Z-9");
    assertEquals(res.status, 502);
    const error = errorOf(res.body);
    assertEquals([error.name, error.code, error.description], ["RemoteError", 404, "unknown sku"]);
  });

  Deno.test(`worker - unknown routes are 404, wrong methods 405 ${through}`, async () => {
    await using f = await fixture(variant);
    assertEquals((await f.call("/nope", {}, 0)).status, 404);
    const wrongMethod = await f.call("/orders", {}, 0);
    assertEquals(wrongMethod.status, 405);
    assertEquals(errorOf(wrongMethod.body).name, "MethodNotAllowed");
  });

  Deno.test(`worker - NATS going away while a request waits is DisconnectedError ${through}`, async () => {
    // Through the object the request waits for its reply until its deadline (the connection
    // may come back); with a connection per request it ends when the connection does.
    await using f = await fixture(variant, { timeoutMs: variant.object ? 1_500 : 30_000 });
    const slow = f.nextSlow();
    // not f.call: the server that would count the connections is about to go
    const pending = call(f.worker, "/stock/slow");
    await slow; // the request is in flight
    await f.server.kill();
    const res = await pending;
    assertEquals(res.type, "application/json; charset=utf-8");
    // the object's connection is long-lived: a passing outage (503, retry); one per request: 502
    assertEquals(res.status, variant.object ? 503 : 502);
    const error = errorOf(res.body);
    assertEquals(error.name, "DisconnectedError");
    assertMatch(error.message, /connection/);
  });

  Deno.test(`worker - an unreachable NATS server is ${variant.object ? 503 : 502} ${through}`, async () => {
    // a port that was free a moment ago: nothing listens there
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = listener.addr.port;
    listener.close();
    await using worker = await startWorker(variant, {
      natsServers: `ws://127.0.0.1:${port}`,
      timeoutMs: 1_000,
    });
    const res = await call(worker, "/stock/A-1");
    if (variant.object) {
      // the object keeps trying to connect within the request's deadline
      assertEquals(res.status, 503);
      assertEquals(errorOf(res.body).name, "DisconnectedError");
      assertMatch(errorOf(res.body).message, /could not be reached .* within the 1000 ms/);
    } else {
      assertEquals(res.status, 502);
      assertEquals(errorOf(res.body).name, "ConnectError");
    }
  });
}

Deno.test("worker - per request, the NATS connection is open only while its request waits", async () => {
  await using f = await fixture(VARIANTS[1]!, { timeoutMs: 300 });
  const slow = f.nextSlow();
  const pending = f.call("/stock/slow");
  await slow; // the request reached the responder: the worker's connection is open
  assertEquals((await connz(f.monitor, "open")).num_connections, f.baseline + 1);
  assertEquals((await pending).status, 504); // and f.call saw it closed afterwards
});

Deno.test("worker - through the Durable Object, every request goes over its one connection", async () => {
  await using f = await fixture(VARIANTS[0]!);
  const closed = (await connz(f.monitor, "closed")).total;
  assertEquals((await f.call("/stock/A-1")).status, 200); // the object connects
  const accepted = await totalConnections(f.monitor);
  for (let i = 0; i < 5; i++) assertEquals((await f.call("/stock/A-1")).status, 200);
  assertEquals((await connz(f.monitor, "open")).num_connections, f.baseline + 1);
  assertEquals((await connz(f.monitor, "closed")).total, closed);
  // however late the server counts a close: no connection was even opened
  assertEquals(await totalConnections(f.monitor), accepted);
});

Deno.test("worker - through the Durable Object, a missing NATS_SERVERS is 500 and says what to set", async () => {
  await using worker = await startWorker(VARIANTS[0]!, { natsServers: "", timeoutMs: 1_000 });
  const res = await call(worker, "/stock/A-1");
  assertEquals(res.status, 500);
  const error = errorOf(res.body);
  assertEquals([error.name, error.reason], ["EdgeError", "config"]);
  assertMatch(error.message, /set NATS_SERVERS/);
});
