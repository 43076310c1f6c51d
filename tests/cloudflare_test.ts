/**
 * The Cloudflare edge from the Worker's side, in this process: an
 * `edgeEndpoint` and a `CallbacksObject` (a plain class outside workerd)
 * behind a namespace whose stubs copy every message as Durable Object RPC or
 * `fetch` would, a real nats-server and responders. The object on its own is
 * in cloudflare_object_test.ts; workerd runs in cloudflare_workerd_test.ts.
 */

import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertMatch,
  assertRejects,
  assertStrictEquals,
  assertThrows,
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
  EDGE_GRACE_MS,
  type EdgeAnswer,
  edgeEndpoint,
  EdgeError,
  type EdgeRequest,
} from "../cloudflare.ts";
import { edge, namespaceOf } from "./helpers/edge.ts";
import { EdgeApprove, EdgeNobody, EdgeOrder, EdgeStock } from "./helpers/edge_contracts.ts";
import { waitUntil } from "./helpers/wait.ts";

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
  assertEquals(f.object.stats(), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
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
  // null headers are no headers, as for an endpoint
  const noHeaders = { headers: null } as unknown as { headers: Record<string, string> };
  assertEquals(await endpoint.request(EdgeStock, { sku: "A-1" }, noHeaders), 5);
});

Deno.test("cloudflare - an abort rejects at once with its reason and the object stops waiting", async () => {
  await using f = await edge();
  const ns = namespaceOf(f.object);
  const kept: Promise<unknown>[] = [];
  const endpoint = edgeEndpoint(ns, { waitUntil: (p) => kept.push(p) });
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
  assertEquals(kept.length, 1, "the cancel was handed to waitUntil");
  await Promise.all(kept);
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
  assertEquals(await stats.json(), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
  const wrong = await f.object.fetch(new Request("https://x/other", { method: "POST" }));
  assertEquals(wrong.status, 404);
  await wrong.body?.cancel();
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
    { v: 1 }, // neither a value nor an error
    {
      v: 1,
      get value() {
        throw new Error("a getter that throws");
      },
    },
  ];
  for (const [i, answer] of answers.entries()) {
    const endpoint = edgeEndpoint(fakeNamespace(() => Promise.resolve(answer)));
    const error = await assertRejects(() => endpoint.request(EdgeStock, { sku: "A-1" }), EdgeError);
    assert(["protocol", "object"].includes(error.reason), `answer ${i}: ${error.reason}`);
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
  // a stub that throws, or answers with something that is no promise
  const throwing = fakeNamespace(() => {
    throw new TypeError("the stub broke");
  });
  await assertRejects(
    () => edgeEndpoint(throwing).request(EdgeStock, { sku: "A-1" }),
    DisconnectedError,
    "the stub broke",
  );
  const five = fakeNamespace(() => 5 as unknown as Promise<unknown>);
  const notAnswer = await assertRejects(
    () => edgeEndpoint(five).request(EdgeStock, { sku: "A-1" }),
    EdgeError,
  );
  assertEquals(notAnswer.reason, "protocol");
  const oddError = edgeEndpoint(fakeNamespace(() => Promise.resolve({ v: 1, error: "oops" })));
  const unread = await assertRejects(() => oddError.request(EdgeStock, { sku: "A-1" }), EdgeError);
  assertEquals(unread.reason, "protocol");
  // issues that are not issues become the message
  const odd = edgeEndpoint(
    fakeNamespace(() =>
      Promise.resolve({ v: 1, error: { name: "InvalidReplyError", message: "bad", issues: "x" } })
    ),
  );
  const invalid = await assertRejects(
    () => odd.request(EdgeStock, { sku: "A-1" }),
    InvalidReplyError,
  );
  assertEquals(invalid.issues, [{ message: "bad" }]);
});

Deno.test("cloudflare - over fetch, an answer that is not JSON is an EdgeError, an HTTP error too", async () => {
  const over = (response: () => Response): CallbacksNamespace => ({
    idFromName: (name) => name,
    get: () => ({ fetch: () => Promise.resolve(response()) }),
  });
  const notJson = edgeEndpoint(over(() => new Response("<html>")));
  const protocol = await assertRejects(() => notJson.request(EdgeStock, { sku: "A-1" }), EdgeError);
  assertEquals(protocol.reason, "protocol");
  const status = edgeEndpoint(over(() => new Response("no", { status: 500 })));
  const object = await assertRejects(() => status.request(EdgeStock, { sku: "A-1" }), EdgeError);
  assertEquals(object.reason, "object");
  assertMatch(object.message, /HTTP 500: check that CallbacksObject is the class bound/);
});

Deno.test("cloudflare - the longest timeout waits (its grace does not overflow the timer)", async () => {
  const endpoint = edgeEndpoint(fakeNamespace(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { v: 1, value: 7 };
  }));
  assertEquals(await endpoint.request(EdgeStock, { sku: "A-1" }, { timeout: 2_147_483_647 }), 7);
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
    assertThrows(
      () => edgeEndpoint(wrong as unknown as CallbacksNamespace),
      TypeError,
      "env.CALLBACKS",
    );
  }
  const ns = fakeNamespace(() => Promise.resolve({ v: 1, value: 0 }));
  assertThrows(() => edgeEndpoint(ns, { shard: "" }), TypeError, "shard");
  assertThrows(() => edgeEndpoint(ns, { timeout: 0 }), RangeError, "timeout");
  assertThrows(
    () => edgeEndpoint(ns, { waitUntil: "x" as unknown as () => void }),
    TypeError,
    "waitUntil",
  );
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
  // all of them held by the object while NATS is away
  await waitUntil("the object holds them", () => Promise.resolve(f.object.stats().pending === 20));
  assertEquals(f.responders.received.length, 1);
  await f.server.restart();
  assertEquals(await Promise.all(during), Array.from({ length: 20 }, (_, i) => i % 2 ? 5 : 0));
  assertEquals(f.object.stats(), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
});
