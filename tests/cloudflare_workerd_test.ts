/**
 * The Cloudflare edge in workerd: a Worker (tests/helpers/edge_worker.ts)
 * whose callbacks go through `CallbacksObject`, a Durable Object with
 * in-memory storage, against a real nats-server whose `/connz` shows the
 * connections; the responders run here, in Deno.
 */

import { assert, assertEquals, assertMatch } from "@std/assert";
import type { EdgeStats } from "../cloudflare.ts";
import { bundle } from "./helpers/bundle.ts";
import { startResponders } from "./helpers/edge.ts";
import { type Connection, connz, monitorUrl, totalConnections } from "./helpers/monitor.ts";
import { waitUntil } from "./helpers/wait.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { startWorkerd, type Workerd, type WorkerdOptions } from "./helpers/workerd.ts";

const script = await bundle(new URL("./helpers/edge_worker.ts", import.meta.url), {
  platform: "browser",
});

/** What the object names its connection. */
const OBJECT_NAME = "@seed/callbacks cloudflare";

/** What the test Worker answers for one call. */
interface Outcome {
  ok: boolean;
  value?: unknown;
  name?: string;
  message?: string;
  reason?: string;
  code?: number;
  data?: unknown;
  subject?: string;
  timeout?: number;
  classes?: string[];
  elapsed?: number;
  pending: number;
}

interface Call {
  contract: "stock" | "approve" | "order" | "nobody";
  body: unknown;
  timeout?: number;
  abortAfter?: number;
  shard?: string;
}

async function call(worker: Workerd, input: Call): Promise<Outcome> {
  const res = await fetch(`${worker.url}/call`, { method: "POST", body: JSON.stringify(input) });
  const text = await res.text();
  assertEquals(res.status, 200, `${text}\n${worker.log}`);
  return JSON.parse(text) as Outcome;
}

async function stats(
  worker: Workerd,
  shard?: string,
): Promise<EdgeStats> {
  const res = await fetch(`${worker.url}/stats${shard ? `?shard=${shard}` : ""}`);
  const text = await res.text();
  assertEquals(res.status, 200, `${text}\n${worker.log}`);
  return JSON.parse(text);
}

interface Fixture extends AsyncDisposable {
  server: NatsServer;
  monitor: string;
  responders: Awaited<ReturnType<typeof startResponders>>;
  worker: Workerd;
  /** Kills nats-server and starts it again on the same ports (a new monitoring port). */
  restartServer(): Promise<void>;
  /** Starts workerd again (the object evicted: in-memory storage, a new instance). */
  restartWorker(): Promise<void>;
  /** The object's open connections on the server. */
  objectConnections(): Promise<Connection[]>;
}

async function fixture(options: Partial<WorkerdOptions> = {}): Promise<Fixture> {
  const stack = new AsyncDisposableStack();
  try {
    const server = await startNatsServer({ config: 'http: "127.0.0.1:-1"' });
    stack.defer(() => server.stop());
    let monitor = await monitorUrl(server);
    const responders = stack.use(await startResponders(server));
    const start = () =>
      startWorkerd({
        script,
        bindings: { NATS_SERVERS: server.wsUrl },
        durableObjects: { CALLBACKS: "CallbacksObject" },
        ...options,
      });
    let worker = await start();
    stack.defer(() => worker.stop());
    const owned = stack.move();
    return {
      server,
      get monitor() {
        return monitor;
      },
      responders,
      async restartServer() {
        await server.restart();
        monitor = await monitorUrl(server);
      },
      get worker() {
        return worker;
      },
      async restartWorker() {
        await worker.stop();
        worker = await start();
      },
      objectConnections: async () =>
        (await connz(monitor, "open")).connections.filter((c) => c.name === OBJECT_NAME),
      [Symbol.asyncDispose]: () => owned.disposeAsync(),
    };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}

Deno.test("cloudflare workerd - int, enum and object replies come through the object, typed in the Worker", async () => {
  await using f = await fixture();
  assertEquals(await f.objectConnections(), [], "nothing connects before the first request");
  assertEquals(await call(f.worker, { contract: "stock", body: { sku: "A-1" } }), {
    ok: true,
    value: 5,
    pending: 0,
  });
  assertEquals(
    (await call(f.worker, { contract: "approve", body: { orderId: "o-1" } })).value,
    "Approved",
  );
  assertEquals(
    (await call(f.worker, { contract: "approve", body: { orderId: "x" } })).value,
    "Rejected",
  );
  // eta * 1000: the contract's transform ran in the Worker
  assertEquals((await call(f.worker, { contract: "order", body: { sku: "B", qty: 2 } })).value, {
    orderId: "Bx2",
    eta: 2_000,
  });
  assertEquals((await f.objectConnections()).length, 1);
  assertEquals(await stats(f.worker), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
});

Deno.test("cloudflare workerd - each failure is the endpoint's error class, in the Worker", async () => {
  await using f = await fixture();
  const remote = await call(f.worker, { contract: "stock", body: { sku: "Z-9" } });
  assertEquals([remote.name, remote.code, remote.data], ["RemoteError", 404, { sku: "Z-9" }]);
  assertEquals(remote.classes, ["CallbackError", "RemoteError"]);

  const nobody = await call(f.worker, { contract: "nobody", body: {}, timeout: 10_000 });
  assertEquals([nobody.name, nobody.subject, nobody.timeout], [
    "NoRespondersError",
    "edge.nobody",
    10_000,
  ]);
  assertEquals(nobody.classes, ["CallbackError", "NoReplyError", "NoRespondersError"]);
  assert(nobody.elapsed! < 5_000, "at once, not at the timeout");

  const slowAbort = f.responders.nextSlowAbort();
  const timeout = await call(f.worker, { contract: "stock", body: { sku: "slow" }, timeout: 200 });
  assertEquals([timeout.name, timeout.timeout], ["TimeoutError", 200]);
  assertEquals(timeout.classes, ["CallbackError", "NoReplyError", "TimeoutError"]);
  assertMatch(timeout.message!, /no reply to edge\.stock within 200 ms/);
  await slowAbort; // the time budget travelled through the object to the responder

  const invalid = await call(f.worker, { contract: "order", body: { sku: "B", qty: 0 } });
  assertEquals(invalid.classes, ["CallbackError", "InvalidReplyError"]);
  assertMatch(invalid.message!, /invalid reply to edge\.order: orderId/);

  const refused = await call(f.worker, { contract: "order", body: { sku: "B", qty: "2" } });
  assertEquals(refused.classes, ["CallbackError", "InvalidRequestError"]);
  assertEquals(f.responders.received, ["Z-9", "slow"], "nothing else reached the stock responder");
  assertEquals(await stats(f.worker), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
});

Deno.test("cloudflare workerd - an abort rejects at once with its reason and the object stops waiting", async () => {
  await using f = await fixture();
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const outcome = call(f.worker, {
    contract: "stock",
    body: { sku: "slow" },
    timeout: 5_000,
    abortAfter: 300,
  });
  await reached;
  const result = await outcome;
  const answered = performance.now();
  assertEquals([result.ok, result.name, result.message], [false, "Error", "aborted by the Worker"]);
  assert(result.elapsed! < 2_000, `aborted after ${result.elapsed} ms`);
  assertEquals(result.pending, 0);
  // The cancel reaches the object after the response (waitUntil), long before the deadline.
  await waitUntil(
    "the object stopped waiting",
    async () => (await stats(f.worker)).pending === 0,
    2_000,
  );
  assert(performance.now() - answered < 2_000);
  await aborted; // the responder's own budget ends: nothing left running
});

Deno.test("cloudflare workerd - 50 concurrent Worker requests are served over one NATS connection", async () => {
  await using f = await fixture();
  assertEquals((await call(f.worker, { contract: "stock", body: { sku: "A-1" } })).value, 5);
  const [object] = await f.objectConnections();
  const accepted = await totalConnections(f.monitor);
  const outcomes = await Promise.all(
    Array.from(
      { length: 50 },
      (_, i) => call(f.worker, { contract: "stock", body: { sku: i % 2 ? "A-1" : "B" } }),
    ),
  );
  assertEquals(outcomes.map((o) => o.value), Array.from({ length: 50 }, (_, i) => i % 2 ? 5 : 0));
  const open = await connz(f.monitor, "open");
  assertEquals(open.num_connections, 2, "the responders' and the object's");
  assertEquals((await f.objectConnections()).map((c) => c.cid), [object!.cid], "the same one");
  const closed = (await connz(f.monitor, "closed")).connections;
  assertEquals(closed.filter((c) => c.name === OBJECT_NAME), [], "none opened and closed");
  assertEquals(await totalConnections(f.monitor), accepted, "none opened at all");
  assertEquals(await stats(f.worker), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
});

Deno.test("cloudflare workerd - each shard is one object and one connection", async () => {
  await using f = await fixture();
  for (const shard of ["a", "b", "a", "b", "c"]) {
    assertEquals(
      (await call(f.worker, { contract: "stock", body: { sku: "A-1" }, shard })).value,
      5,
    );
  }
  assertEquals((await f.objectConnections()).length, 3);
  assertEquals((await stats(f.worker, "b")).connections, 1);
});

Deno.test("cloudflare workerd - nats-server restarted while requests flow: answered, or DisconnectedError at the deadline", async () => {
  await using f = await fixture();
  assertEquals((await call(f.worker, { contract: "stock", body: { sku: "A-1" } })).value, 5);
  let stop = false;
  const outcomes: Outcome[] = [];
  const flow = Array.from({ length: 8 }, async () => {
    while (!stop) {
      outcomes.push(
        await call(f.worker, { contract: "stock", body: { sku: "A-1" }, timeout: 3_000 }),
      );
    }
  });
  await waitUntil("requests flow", () => Promise.resolve(outcomes.length >= 40));
  await f.server.kill();
  const atKill = outcomes.length;
  // While NATS is away the object holds what the Workers send: every flow waits in it.
  await waitUntil("the object holds a request of each flow", async () => {
    const { connected, pending } = await stats(f.worker);
    return !connected && pending === 8;
  });
  await f.restartServer();
  await waitUntil(
    "requests are answered after the restart",
    () => Promise.resolve(outcomes.slice(atKill).filter((o) => o.ok).length >= 40),
    30_000,
  );
  stop = true;
  await Promise.all(flow);
  const failed = outcomes.filter((o) => !o.ok);
  for (const o of failed) {
    assertEquals(o.name, "DisconnectedError", JSON.stringify(o));
    assert(o.elapsed! >= 3_000 - 50, `at the deadline: ${JSON.stringify(o)}`);
  }
  assert(outcomes.every((o) => !o.ok || o.value === 5));
  assertEquals(await stats(f.worker), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
  assertEquals((await f.objectConnections()).length, 1);
});

Deno.test("cloudflare workerd - an evicted object (workerd restarted) connects again on the next request", async () => {
  await using f = await fixture();
  assertEquals((await call(f.worker, { contract: "stock", body: { sku: "A-1" } })).value, 5);
  const [before] = await f.objectConnections();
  assert(before);
  await f.restartWorker();
  await waitUntil(
    "the old connection is gone",
    async () => (await f.objectConnections()).length === 0,
  );
  assertEquals(
    (await call(f.worker, { contract: "approve", body: { orderId: "o-9" } })).value,
    "Approved",
  );
  const after = await f.objectConnections();
  assertEquals(after.length, 1);
  assert(after[0]!.cid !== before.cid, "a new connection");
  assertEquals(await stats(f.worker), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
});

Deno.test("cloudflare workerd - before Durable Object RPC (compatibility date 2024-03-01) Worker and object speak over fetch", async () => {
  await using f = await fixture({ compatibilityDate: "2024-03-01" });
  assertEquals((await call(f.worker, { contract: "stock", body: { sku: "A-1" } })).value, 5);
  assertEquals((await call(f.worker, { contract: "order", body: { sku: "B", qty: 1 } })).value, {
    orderId: "Bx1",
    eta: 2_000,
  });
  const remote = await call(f.worker, { contract: "stock", body: { sku: "Z-9" } });
  assertEquals([remote.name, remote.code], ["RemoteError", 404]);
  assertEquals(await stats(f.worker), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
});

Deno.test("cloudflare workerd - a message of another protocol version gets an EdgeError, and the object serves on", async () => {
  await using f = await fixture();
  const res = await fetch(`${f.worker.url}/raw`, {
    method: "POST",
    body: JSON.stringify({ v: 2, id: "x", subject: "edge.stock", body: "{}", timeout: 1_000 }),
  });
  const answer = await res.json();
  assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "protocol"]);
  assertMatch(answer.error.message, /same version of @seed\/callbacks/);
  assertEquals((await call(f.worker, { contract: "stock", body: { sku: "A-1" } })).value, 5);
});
