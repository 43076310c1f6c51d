/**
 * The Cloudflare edge in this process: a `CallbacksObject` (a plain class
 * outside workerd) behind a namespace whose stubs copy every message as
 * Durable Object RPC or `fetch` would, an `edgeEndpoint` on the Worker's
 * side, a real nats-server and responders. workerd itself runs in
 * cloudflare_workerd_test.ts.
 */

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertStrictEquals,
} from "@std/assert";
import {
  CallbackError,
  DisconnectedError,
  InvalidReplyError,
  InvalidRequestError,
  NoRespondersError,
  RemoteError,
  TimeoutError,
} from "../mod.ts";
import {
  type CallbacksNamespace,
  CallbacksObject,
  EDGE_GRACE_MS,
  type EdgeAnswer,
  edgeEndpoint,
  EdgeError,
  type EdgeRequest,
} from "../cloudflare.ts";
import { Gate, namespaceOf, startResponders } from "./helpers/edge.ts";
import { EdgeApprove, EdgeNobody, EdgeOrder, EdgeStock } from "./helpers/edge_contracts.ts";
import { type NatsServer, startNatsServer } from "./helpers/nats_server.ts";
import { waitUntil } from "./helpers/nats_cluster.ts";

interface Edge extends AsyncDisposable {
  server: NatsServer;
  object: CallbacksObject;
  responders: Awaited<ReturnType<typeof startResponders>>;
}

async function edge(env: Record<string, string> = {}): Promise<Edge> {
  const server = await startNatsServer();
  const stack = new AsyncDisposableStack();
  stack.defer(() => server.stop());
  try {
    const responders = stack.use(await startResponders(server));
    const object = stack.use(new CallbacksObject({}, { NATS_SERVERS: server.wsUrl, ...env }));
    const owned = stack.move();
    return { server, object, responders, [Symbol.asyncDispose]: () => owned.disposeAsync() };
  } catch (error) {
    await stack.disposeAsync();
    throw error;
  }
}

/** A request message as `edgeEndpoint` sends it, with `change` applied. */
function message(change: Record<string, unknown> = {}): EdgeRequest {
  return {
    v: 1,
    id: crypto.randomUUID(),
    subject: EdgeStock.subject,
    body: JSON.stringify({ sku: "A-1" }),
    timeout: 2_000,
    response: { kind: "int" },
    ...change,
  } as EdgeRequest;
}

Deno.test("cloudflare - int, enum and object replies come through the object, typed and validated in the Worker", async () => {
  await using f = await edge();
  const ns = namespaceOf(f.object);
  const endpoint = edgeEndpoint(ns);
  const left: number = await endpoint.request(EdgeStock, { sku: "A-1" });
  const decision: "Approved" | "Rejected" = await endpoint.request(EdgeApprove, {
    orderId: "o-1",
  });
  const order = await endpoint.request(EdgeOrder, { sku: "B", qty: 2 });
  assertEquals([left, decision, order], [5, "Approved", { orderId: "Bx2", eta: 2_000 }]);
  assertEquals(await endpoint.request(EdgeApprove, { orderId: "x" }), "Rejected");
  assertEquals(endpoint.pending, 0);
  assertEquals(f.object.stats(), { connected: true, pending: 0, connections: 1 });
  assertEquals(ns.sent.names, ["callbacks"]);
  edgeEndpoint(ns, { shard: "eu-2" });
  assertEquals(ns.sent.names, ["callbacks", "eu-2"]);
});

Deno.test("cloudflare - each failure rejects with the class an endpoint rejects with", async () => {
  await using f = await edge();
  const endpoint = edgeEndpoint(namespaceOf(f.object));

  const remote = await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "Z-9" }),
    RemoteError,
    "edge.stock failed remotely: 404 unknown sku",
  );
  assertEquals([remote.code, remote.description, remote.data], [404, "unknown sku", {
    sku: "Z-9",
  }]);

  const nobody = await assertRejects(
    () => endpoint.request(EdgeNobody, {}, { timeout: 10_000 }),
    NoRespondersError,
  );
  assertEquals([nobody.subject, nobody.timeout], ["edge.nobody", 10_000]);

  // The object passes the reply on as it came; the Worker's schema refuses it.
  const invalid = await assertRejects(
    () => endpoint.request(EdgeOrder, { sku: "B", qty: 0 }),
    InvalidReplyError,
    "invalid reply to edge.order: orderId",
  );
  assert(invalid.issues.length > 0);

  const slow = f.responders.nextSlowAbort();
  const started = performance.now();
  const timeout = await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "slow" }, { timeout: 200 }),
    TimeoutError,
    "no reply to edge.stock within 200 ms",
  );
  assert(performance.now() - started < 200 + EDGE_GRACE_MS, "the object's own timeout answered");
  assertEquals([timeout.subject, timeout.timeout], ["edge.stock", 200]);
  await slow; // the time budget reached the responder through the object

  for (const error of [remote, nobody, invalid, timeout]) assertInstanceOf(error, CallbackError);
  assertEquals(endpoint.pending, 0);
  assertEquals(f.object.stats().pending, 0);
});

Deno.test("cloudflare - an invalid body or header is refused in the Worker and nothing crosses", async () => {
  await using f = await edge();
  const ns = namespaceOf(f.object);
  const endpoint = edgeEndpoint(ns);
  await assertRejects(
    // @ts-expect-error: qty must be a number
    () => endpoint.request(EdgeOrder, { sku: "B", qty: "2" }),
    InvalidRequestError,
    "invalid edge.order request: qty",
  );
  await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "A-1" }, { headers: { "bad name": "x" } }),
    InvalidRequestError,
    "header name",
  );
  await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "A-1" }, { timeout: -1 }),
    RangeError,
    "timeout",
  );
  const aborted = new AbortController();
  aborted.abort(new Error("gone before"));
  await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "A-1" }, { signal: aborted.signal }),
    Error,
    "gone before",
  );
  assertEquals(ns.sent.requests, 0);
  assertEquals(f.responders.received, []);
  assertEquals(await endpoint.request(EdgeStock, { sku: "A-1" }), 5);
});

Deno.test("cloudflare - an abort rejects at once with its reason and the object stops waiting", async () => {
  await using f = await edge();
  const ns = namespaceOf(f.object);
  const endpoint = edgeEndpoint(ns);
  const controller = new AbortController();
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const pending = endpoint.request(EdgeStock, { sku: "slow" }, {
    signal: controller.signal,
    timeout: 1_500,
  });
  await reached;
  assertEquals([endpoint.pending, f.object.stats().pending], [1, 1]);
  const reason = new Error("the client went away");
  controller.abort(reason);
  assertStrictEquals(await pending.catch((error) => error), reason);
  assertEquals(endpoint.pending, 0);
  await waitUntil(
    "the object stopped waiting",
    () => Promise.resolve(f.object.stats().pending === 0),
  );
  assertEquals(ns.sent.cancels, 1);
  await aborted; // the responder's own time budget ends: nothing is left running
});

Deno.test("cloudflare - over fetch (no RPC) the answers and errors are the same", async () => {
  await using f = await edge();
  const ns = namespaceOf(f.object, { rpc: false });
  const endpoint = edgeEndpoint(ns);
  assertEquals(await endpoint.request(EdgeStock, { sku: "A-1" }), 5);
  assertEquals(await endpoint.request(EdgeApprove, { orderId: "o-2" }), "Approved");
  assertEquals(await endpoint.request(EdgeOrder, { sku: "C", qty: 1 }), {
    orderId: "Cx1",
    eta: 2_000,
  });
  const remote = await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "Z-9" }),
    RemoteError,
  );
  assertEquals(remote.data, { sku: "Z-9" });
  await assertRejects(() => endpoint.request(EdgeNobody, {}), NoRespondersError);

  const controller = new AbortController();
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const pending = endpoint.request(EdgeStock, { sku: "slow" }, {
    signal: controller.signal,
    timeout: 1_000,
  });
  await reached;
  controller.abort(new Error("stop"));
  await assertRejects(() => pending, Error, "stop");
  await waitUntil(
    "the object stopped waiting",
    () => Promise.resolve(f.object.stats().pending === 0),
  );
  assertEquals(ns.sent.cancels, 1);

  const stats = await f.object.fetch(new Request("https://x/stats"));
  assertEquals(await stats.json(), { connected: true, pending: 0, connections: 1 });
  const wrong = await f.object.fetch(new Request("https://x/other", { method: "POST" }));
  assertEquals(wrong.status, 404);
  await wrong.body?.cancel();
  await aborted;
});

Deno.test("cloudflare - messages the object cannot read get an EdgeError, and it serves the next one", async () => {
  await using f = await edge();
  const bad: [unknown, RegExp][] = [
    [null, /not a request message/],
    ["text", /not a request message/],
    [message({ v: 2 }), /version 2 .* version 1/],
    [message({ v: undefined }), /version undefined/],
    [message({ id: "" }), /id/],
    [message({ id: "x".repeat(65) }), /id/],
    [message({ id: 7 }), /id/],
    [message({ subject: "has space" }), /subject/],
    [message({ subject: "" }), /subject/],
    [message({ subject: undefined }), /subject/],
    [message({ body: "{not json" }), /cannot read/],
    [message({ body: 5 }), /JSON text/],
    [message({ timeout: 0 }), /timeout/],
    [message({ timeout: "9" }), /timeout/],
    [message({ timeout: 1e12 }), /timeout/],
    [message({ headers: "x" }), /headers/],
    [message({ response: { kind: "float" } }), /int, enum or object/],
    [message({ response: undefined }), /int, enum or object/],
    [message({ response: { kind: "enum", values: [] } }), /at least one member/],
    [message({ response: { kind: "enum", values: [{}] } }), /strings or finite numbers/],
    [message({ response: { kind: "enum" } }), /members/],
    [message({ idempotent: "yes" }), /idempotent/],
  ];
  for (const [input, pattern] of bad) {
    const answer = await f.object.request(input as EdgeRequest);
    const error = answer.error;
    assert(error, `${JSON.stringify(input)}: answered ${JSON.stringify(answer)}`);
    assertEquals([error.name, error.reason], ["EdgeError", "protocol"], JSON.stringify(input));
    assertMatch(error.message, pattern, JSON.stringify(input));
  }
  // headers the server would refuse: the object's endpoint checks them too
  const headers = await f.object.request(message({ headers: { "a b": "c" } }));
  assertEquals(headers.error?.name, "InvalidRequestError");
  // the same id twice at once
  const id = crypto.randomUUID();
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const first = f.object.request(message({ id, body: '{"sku":"slow"}', timeout: 1_000 }));
  await reached;
  assertEquals((await f.object.request(message({ id }))).error?.reason, "protocol");
  f.object.cancel(id);
  assertEquals((await first).error?.name, "AbortError");
  // cancels of nothing are ignored
  f.object.cancel("nothing");
  f.object.cancel(7 as unknown as string);
  assertEquals(f.responders.received.length, 1, "only the slow request reached NATS");
  assertEquals(await f.object.request(message()), { v: 1, value: 5 });
  assertEquals(f.object.stats(), { connected: true, pending: 0, connections: 1 });
  await aborted;
});

/** A namespace whose object answers with `answer` (or never, or fails). */
function fakeNamespace(request: (message: EdgeRequest) => Promise<unknown>): CallbacksNamespace & {
  cancels: string[];
} {
  const cancels: string[] = [];
  return {
    cancels,
    idFromName: (name) => name,
    get: () => ({
      request,
      cancel: (id: string) => cancels.push(id),
      fetch: () => Promise.reject(new Error("not used")),
    }),
  };
}

Deno.test("cloudflare - an answer the Worker cannot read is an EdgeError; a failed object is DisconnectedError", async () => {
  const answers: unknown[] = [
    null,
    "5",
    { v: 2, value: 5 },
    { value: 5 },
    { v: 1, error: { name: "EdgeError", message: "m", reason: "other" } },
    { v: 1, error: { name: "SomethingElse", message: "m" } },
    { v: 1, error: { name: "RemoteError", message: "m", code: "x" } },
  ];
  for (const answer of answers) {
    const endpoint = edgeEndpoint(fakeNamespace(() => Promise.resolve(answer)));
    const error = await assertRejects(() => endpoint.request(EdgeStock, { sku: "A-1" }), EdgeError);
    assert(["protocol", "object"].includes(error.reason), JSON.stringify(answer));
  }
  const wrongValue = edgeEndpoint(fakeNamespace(() => Promise.resolve({ v: 1, value: 1.5 })));
  await assertRejects(
    () => wrongValue.request(EdgeStock, { sku: "A-1" }),
    InvalidReplyError,
    "expected a safe integer",
  );
  const gone = fakeNamespace(() => Promise.reject(new Error("Durable Object reset")));
  const failed = await assertRejects(
    () => edgeEndpoint(gone).request(EdgeStock, { sku: "A-1" }),
    DisconnectedError,
    "Durable Object reset",
  );
  assertEquals(failed.subject, "edge.stock");
  assertEquals(gone.cancels, [], "an answered request is not cancelled");
});

Deno.test("cloudflare - an object that never answers gives TimeoutError after the grace, and is told to stop", async () => {
  let stop!: () => void;
  const never = new Promise<EdgeAnswer>((resolve) => stop = () => resolve({ v: 1, value: 0 }));
  const ns = fakeNamespace(() => never);
  const started = performance.now();
  const error = await assertRejects(
    () => edgeEndpoint(ns).request(EdgeStock, { sku: "A-1" }, { timeout: 50 }),
    TimeoutError,
    "no answer from the callbacks object for edge.stock within 50 ms",
  );
  assert(performance.now() - started >= 50 + EDGE_GRACE_MS - 5);
  assertEquals(error.timeout, 50);
  assertEquals(ns.cancels.length, 1);
  stop();
});

Deno.test("cloudflare - edgeEndpoint refuses what is not a namespace, a shard or a timeout", () => {
  for (const wrong of [undefined, null, {}, { idFromName: () => 1 }]) {
    let thrown: unknown;
    try {
      edgeEndpoint(wrong as unknown as CallbacksNamespace);
    } catch (error) {
      thrown = error;
    }
    assertInstanceOf(thrown, TypeError);
    assertMatch((thrown as Error).message, /env\.CALLBACKS/);
  }
  const ns = fakeNamespace(() => Promise.resolve({ v: 1, value: 0 }));
  let thrown: unknown;
  try {
    edgeEndpoint(ns, { shard: "" });
  } catch (error) {
    thrown = error;
  }
  assertInstanceOf(thrown, TypeError);
  try {
    edgeEndpoint(ns, { timeout: 0 });
  } catch (error) {
    thrown = error;
  }
  assertInstanceOf(thrown, RangeError);
});

Deno.test("cloudflare - settings: missing or wrong NATS_SERVERS and half credentials are config errors", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{}, /set NATS_SERVERS/],
    [{ NATS_SERVERS: " " }, /set NATS_SERVERS/],
    [{ NATS_SERVERS: "nats://127.0.0.1:4222" }, /not a ws:\/\/ or wss:\/\/ URL/],
    [{ NATS_SERVERS: "ws://a:1,not a url" }, /not a ws/],
    [{ NATS_SERVERS: "ws://a:1", NATS_USER: "u" }, /NATS_USER and NATS_PASSWORD together/],
  ];
  for (const [env, pattern] of cases) {
    await using object = new CallbacksObject({}, env);
    const answer = await object.request(message());
    assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "config"]);
    assertMatch(answer.error!.message, pattern);
    assertEquals(object.stats(), { connected: false, pending: 0, connections: 0 });
  }
});

Deno.test("cloudflare - wrong credentials are a connect error; right ones connect", async () => {
  await using server = await startNatsServer({ config: 'authorization { token: "s3cret" }' });
  {
    await using object = new CallbacksObject({}, {
      NATS_SERVERS: server.wsUrl,
      NATS_TOKEN: "wrong",
    });
    const answer = await object.request(message({ subject: EdgeNobody.subject, body: "{}" }));
    assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "connect"]);
    assertMatch(answer.error!.message, /could not connect to NATS .*credentials/);
  }
  await using object = new CallbacksObject({}, {
    NATS_SERVERS: server.wsUrl,
    NATS_TOKEN: "s3cret",
  });
  const answer = await object.request(message({ subject: EdgeNobody.subject, body: "{}" }));
  assertEquals(answer.error?.name, "NoRespondersError", JSON.stringify(answer));
});

Deno.test("cloudflare - a request while NATS is unreachable waits within its deadline: DisconnectedError if it stays so, answered once it is back", async () => {
  await using f = await edge();
  await using gate = new Gate(f.server.wsPort);
  await using object = new CallbacksObject({}, { NATS_SERVERS: `ws://127.0.0.1:${gate.port}` });
  const endpoint = edgeEndpoint(namespaceOf(object));
  const error = await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "A-1" }, { timeout: 300 }),
    DisconnectedError,
    "could not be reached within the 300 ms edge.stock could wait: nothing was sent",
  );
  assertEquals([error.subject, error.timeout], ["edge.stock", 300]);
  assertEquals(object.stats(), { connected: false, pending: 0, connections: 0 });
  // the object keeps trying: a request made now is answered once NATS can be reached
  const answered = endpoint.request(EdgeStock, { sku: "A-1" }, { timeout: 20_000 });
  await waitUntil(
    "the request waits in the object",
    () => Promise.resolve(object.stats().pending === 1),
  );
  gate.open = true;
  assertEquals(await answered, 5);
  assertEquals(object.stats(), { connected: true, pending: 0, connections: 1 });
  assertEquals(f.responders.received, ["A-1"]);
});

Deno.test("cloudflare - nats-server restarted while requests flow: held, then answered", async () => {
  await using f = await edge();
  const endpoint = edgeEndpoint(namespaceOf(f.object));
  assertEquals(await endpoint.request(EdgeStock, { sku: "A-1" }), 5);
  await f.server.kill();
  await waitUntil("the object saw the drop", () => Promise.resolve(!f.object.stats().connected));
  const during = Array.from(
    { length: 20 },
    (_, i) => endpoint.request(EdgeStock, { sku: i % 2 ? "A-1" : "B" }, { timeout: 20_000 }),
  );
  await f.server.restart();
  assertEquals(await Promise.all(during), Array.from({ length: 20 }, (_, i) => i % 2 ? 5 : 0));
  assertEquals(f.object.stats(), { connected: true, pending: 0, connections: 1 });
});

Deno.test("cloudflare - the time spent connecting counts against the request, whose errors tell the Worker's timeout", async () => {
  await using f = await edge();
  await using gate = new Gate(f.server.wsPort);
  await using object = new CallbacksObject({}, { NATS_SERVERS: `ws://127.0.0.1:${gate.port}` });
  const endpoint = edgeEndpoint(namespaceOf(object));
  const started = performance.now();
  const aborted = f.responders.nextSlowAbort();
  const pending = endpoint.request(EdgeStock, { sku: "slow" }, { timeout: 800 });
  await waitUntil(
    "the request waits in the object",
    () => Promise.resolve(object.stats().pending === 1),
  );
  await new Promise((resolve) => setTimeout(resolve, 200)); // connecting takes a while
  gate.open = true;
  const error = await assertRejects(() => pending, TimeoutError, "within 800 ms");
  const elapsed = performance.now() - started;
  assertEquals([error.subject, error.timeout], ["edge.stock", 800]);
  assert(elapsed >= 795 && elapsed < 800 + EDGE_GRACE_MS, `settled after ${elapsed} ms`);
  await aborted;
});
