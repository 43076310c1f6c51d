/**
 * The callbacks Durable Object on its own, in this process (a plain class
 * outside workerd): the messages it cannot read, its settings and
 * credentials, NATS out of its reach (behind a TCP gate), closing it, and the
 * relay under it reconnecting, refusing and limiting. The Worker's side is in
 * cloudflare_test.ts.
 */

import { assert, assertEquals, assertMatch, assertRejects } from "@std/assert";
import type { NatsConnection } from "nats.ws";
import { DisconnectedError, type EndpointOptions, TimeoutError } from "../mod.ts";
import { Relay, type RelayConnection } from "../src/cloudflare/relay.ts";
import { connectWs } from "./helpers/connect.ts";
import {
  CallbacksObject,
  EDGE_GRACE_MS,
  edgeEndpoint,
  EdgeError,
  type EdgeRequest,
} from "../cloudflare.ts";
import { edge, Gate, message, namespaceOf } from "./helpers/edge.ts";
import { EdgeNobody, EdgeStock } from "./helpers/edge_contracts.ts";
import { startNatsServer } from "./helpers/nats_server.ts";
import { waitUntil } from "./helpers/wait.ts";

Deno.test("cloudflare object - messages the object cannot read get an EdgeError, and it serves the next one", async () => {
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
  // a hostile message is not echoed whole
  const huge = await f.object.request(message({ subject: "a b".repeat(100_000) }));
  assertEquals(huge.error?.reason, "protocol");
  assert(huge.error!.message.length <= 300, `${huge.error!.message.length} characters`);
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
  assertEquals(f.object.stats(), {
    connected: true,
    connecting: false,
    pending: 0,
    connections: 1,
  });
  await aborted;
});

Deno.test("cloudflare object - settings: missing or wrong NATS_SERVERS and half credentials are config errors", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{}, /set NATS_SERVERS/],
    [{ NATS_SERVERS: " " }, /set NATS_SERVERS/],
    [{ NATS_SERVERS: " , ," }, /set NATS_SERVERS/],
    [{ NATS_SERVERS: "nats://127.0.0.1:4222" }, /not a ws:\/\/ or wss:\/\/ URL/],
    [{ NATS_SERVERS: "ws://a:1,not a url" }, /not a ws/],
    [{ NATS_SERVERS: "ws://a:1", NATS_USER: "u" }, /NATS_USER and NATS_PASSWORD together/],
  ];
  for (const [env, pattern] of cases) {
    await using object = new CallbacksObject({}, env);
    const answer = await object.request(message());
    assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "config"]);
    assertMatch(answer.error!.message, pattern);
    assertEquals(object.stats(), {
      connected: false,
      connecting: false,
      pending: 0,
      connections: 0,
    });
  }
  // a user and password in a URL never reach a message, "@" in the password too
  await using leaky = new CallbacksObject({}, { NATS_SERVERS: "nats://u:p@ss@host:1" });
  const refused = await leaky.request(message());
  assertMatch(refused.error!.message, /"nats:\/\/\*\*\*@host:1"/);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens there
  await using unreachable = new CallbacksObject({}, {
    NATS_SERVERS: `ws://user:s3cr@t@127.0.0.1:${port}`,
  });
  const answer = await unreachable.request(message({ timeout: 300 }));
  assertEquals(answer.error?.name, "DisconnectedError");
  assert(!answer.error!.message.includes("s3cr") && !answer.error!.message.includes("user"));
  assertMatch(answer.error!.message, new RegExp(`ws://\\*\\*\\*@127\\.0\\.0\\.1:${port}`));
});

Deno.test("cloudflare object - wrong credentials are a connect error; right ones connect", async () => {
  await using server = await startNatsServer({ config: 'authorization { token: "s3cret" }' });
  {
    await using object = new CallbacksObject({}, {
      NATS_SERVERS: server.wsUrl,
      NATS_TOKEN: "wrong",
    });
    const answer = await object.request(message({ subject: EdgeNobody.subject, body: "{}" }));
    assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "connect"]);
    assertMatch(answer.error!.message, /refused the callbacks object.s connection .*credentials/);
  }
  await using object = new CallbacksObject({}, {
    NATS_SERVERS: server.wsUrl,
    NATS_TOKEN: "s3cret",
  });
  const answer = await object.request(message({ subject: EdgeNobody.subject, body: "{}" }));
  assertEquals(answer.error?.name, "NoRespondersError", JSON.stringify(answer));
});

Deno.test("cloudflare object - a request while NATS is unreachable waits within its deadline: DisconnectedError if it stays so, answered once it is back", async () => {
  await using f = await edge();
  await using gate = new Gate(f.server.wsPort);
  await using object = new CallbacksObject({}, { NATS_SERVERS: `ws://127.0.0.1:${gate.port}` });
  const endpoint = edgeEndpoint(namespaceOf(object));
  const error = await assertRejects(
    () => endpoint.request(EdgeStock, { sku: "A-1" }, { timeout: 300 }),
    DisconnectedError,
    "connection closed before message completed) within the 300 ms edge.stock could wait: nothing was sent",
  );
  assertEquals([error.subject, error.timeout], ["edge.stock", 300]);
  // nobody waits: the object stops trying once its attempt under way fails
  await waitUntil("it to stop trying", () => Promise.resolve(!object.stats().connecting));
  assertEquals(object.stats(), { connected: false, connecting: false, pending: 0, connections: 0 });
  // a request made now tries again, and is answered once NATS can be reached
  const answered = endpoint.request(EdgeStock, { sku: "A-1" }, { timeout: 20_000 });
  await waitUntil(
    "the request waits in the object",
    () => Promise.resolve(object.stats().pending === 1),
  );
  gate.open = true;
  assertEquals(await answered, 5);
  assertEquals(object.stats(), { connected: true, connecting: false, pending: 0, connections: 1 });
  assertEquals(f.responders.received, ["A-1"]);
});

Deno.test("cloudflare object - the time spent connecting counts against the request, whose errors tell the Worker's timeout", async () => {
  await using f = await edge();
  await using gate = new Gate(f.server.wsPort);
  await using object = new CallbacksObject({}, { NATS_SERVERS: `ws://127.0.0.1:${gate.port}` });
  const endpoint = edgeEndpoint(namespaceOf(object));
  const started = performance.now();
  const aborted = f.responders.nextSlowAbort();
  const pending = endpoint.request(EdgeStock, { sku: "slow" }, { timeout: 2_000 });
  // connecting takes a while: an attempt fails first (the next is 250 to 350 ms later)
  await waitUntil("a refused attempt", () => Promise.resolve(gate.refused >= 1));
  gate.open = true;
  const error = await assertRejects(() => pending, TimeoutError, "within 2000 ms");
  const elapsed = performance.now() - started;
  assertEquals([error.subject, error.timeout], ["edge.stock", 2_000]);
  assert(elapsed >= 1_995 && elapsed < 2_000 + EDGE_GRACE_MS, `settled after ${elapsed} ms`);
  await aborted;
});

Deno.test("cloudflare object - closing it while NATS is unreachable ends at once; a request waiting for the connection gets an EdgeError", async () => {
  await using f = await edge();
  await using gate = new Gate(f.server.wsPort);
  const object = new CallbacksObject({}, { NATS_SERVERS: `ws://127.0.0.1:${gate.port}` });
  const waiting = object.request(message({ timeout: 30_000 }));
  await waitUntil("the object tries to connect", () => Promise.resolve(gate.refused >= 1));
  const started = performance.now();
  await object[Symbol.asyncDispose]();
  const answer = await waiting;
  assert(performance.now() - started < 2_000, "closed at once");
  assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "object"]);
  assertMatch(answer.error!.message, /closed while the request waited/);
  const refused = gate.refused;
  const after = await object.request(message());
  assertEquals(after.error?.reason, "object", "a closed object opens nothing");
  assertEquals(gate.refused, refused);
  assertEquals(object.stats(), { connected: false, connecting: false, pending: 0, connections: 0 });
});

/** A relay whose every attempt to connect is recorded; `fail` decides the first ones. */
function relayOf(
  server: { wsUrl: string },
  options: { fail?: (attempt: number) => Error | undefined; endpoint?: EndpointOptions } = {},
) {
  const opened: NatsConnection[] = [];
  let attempts = 0;
  const relay = new Relay({
    servers: server.wsUrl,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    open: async () => {
      const failure = options.fail?.(++attempts);
      if (failure) throw failure;
      const nc = await connectWs(server);
      opened.push(nc);
      return nc as unknown as RelayConnection;
    },
  });
  return {
    relay,
    opened,
    get attempts() {
      return attempts;
    },
    [Symbol.asyncDispose]: () => relay.close(),
  };
}

Deno.test("cloudflare object - a connection closed for good is opened again by the next request", async () => {
  await using f = await edge();
  await using r = relayOf(f.server);
  assertEquals(await r.relay.request(message()), { v: 1, value: 5 });
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const inFlight = r.relay.request(message({ body: '{"sku":"slow"}', timeout: 1_000 }));
  await reached;
  await r.opened[0]!.close(); // closed for good, not a drop
  const lost = await inFlight;
  assertEquals(lost.error?.name, "DisconnectedError");
  assertMatch(lost.error!.message, /closed while edge\.stock waited: .*send it again/);
  await waitUntil("the relay saw it close", () => Promise.resolve(!r.relay.stats().connected));
  assertEquals(await r.relay.request(message()), { v: 1, value: 5 });
  assertEquals(r.relay.stats(), { connected: true, connecting: false, pending: 0, connections: 2 });
  await aborted;
});

Deno.test("cloudflare object - NATS out of reach is tried again, and the last failure is in the error", async () => {
  await using f = await edge();
  await using r = relayOf(f.server, {
    fail: (attempt) => attempt <= 3 ? new Error(`no route (attempt ${attempt})`) : undefined,
  });
  const early = await r.relay.request(message({ timeout: 1 }));
  assertEquals(early.error?.name, "DisconnectedError");
  assertEquals(await r.relay.request(message({ timeout: 10_000 })), { v: 1, value: 5 });
  assertEquals([r.attempts, r.relay.stats().connections], [4, 1]);
  await using never = relayOf(f.server, { fail: (attempt) => new Error(`down ${attempt}`) });
  const answer = await never.relay.request(message({ timeout: 400 }));
  assertEquals(answer.error?.name, "DisconnectedError");
  assertMatch(answer.error!.message, /could not be reached \(.*down \d+.*\) within the 400 ms/);
  // nobody waits any more: it stops trying (no attempt under way, none to come)
  await waitUntil("it to stop trying", () => Promise.resolve(!never.relay.stats().connecting));
  assertEquals(never.relay.stats(), {
    connected: false,
    connecting: false,
    pending: 0,
    connections: 0,
  });
});

Deno.test("cloudflare object - credentials NATS refused answer at once for a second, then are tried again", async () => {
  await using f = await edge();
  await using r = relayOf(f.server, {
    fail: (attempt) =>
      attempt === 1
        ? new EdgeError("refused: check the credentials", { reason: "connect" })
        : undefined,
  });
  const [a, b] = await Promise.all([r.relay.request(message()), r.relay.request(message())]);
  const c = await r.relay.request(message());
  for (const answer of [a, b, c]) assertEquals(answer.error?.reason, "connect");
  assertEquals(r.attempts, 1, "one attempt for all three");
  await waitUntil(
    "the refusal expires",
    async () => (await r.relay.request(message())).value === 5,
  );
  assertEquals(r.attempts, 2);
});

Deno.test("cloudflare object - the object's endpoint limits what waits: PendingLimitError crosses", async () => {
  await using f = await edge();
  await using r = relayOf(f.server, { endpoint: { maxPending: 1 } });
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const slow = r.relay.request(message({ body: '{"sku":"slow"}', timeout: 1_000 }));
  await reached;
  const refused = await r.relay.request(message());
  assertEquals(refused.error?.name, "PendingLimitError");
  assertMatch(refused.error!.message, /maxPending 1/);
  assertEquals((await slow).error?.name, "TimeoutError");
  await aborted;
  assertEquals(r.relay.stats().pending, 0);
});

Deno.test("cloudflare object - closing it ends what waits for a reply with an EdgeError that says to send again", async () => {
  await using f = await edge();
  const reached = f.responders.nextSlow();
  const aborted = f.responders.nextSlowAbort();
  const waiting = f.object.request(message({ body: '{"sku":"slow"}', timeout: 1_000 }));
  await reached;
  await f.object[Symbol.asyncDispose]();
  const answer = await waiting;
  assertEquals([answer.error?.name, answer.error?.reason], ["EdgeError", "object"]);
  assertMatch(answer.error!.message, /closed while the request waited for a reply: send it again/);
  await aborted;
});
