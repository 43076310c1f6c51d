import * as v from "valibot";
import {
  assert,
  assertEquals,
  assertInstanceOf,
  assertRejects,
  assertStrictEquals,
} from "@std/assert";
import {
  ClosedError,
  type ConnectionEvent,
  defineRequest,
  DisconnectedError,
  Endpoint,
  int,
  memoryTransport,
  natsTransport,
  PendingLimitError,
  type RequestEvent,
  type SettleEvent,
  TIMEOUT_HEADER,
} from "../mod.ts";
import { connectWs } from "./helpers/connect.ts";
import { connectionFixture, type NatsFixture } from "./helpers/fixture.ts";
import { startNatsServer } from "./helpers/nats_server.ts";
import { raceTimeout } from "./helpers/process.ts";
import { nextConnection, nextEvent, spy } from "./helpers/spy.ts";

const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});

/** A nats-server and two connections to it (caller's, responder's) that reconnect at once. */
function restartable(): Promise<NatsFixture> {
  const options = { reconnectTimeWait: 50, maxReconnectAttempts: -1 } as const;
  return connectionFixture("nats reconnecting", (server) => connectWs(server, options));
}

function statuses(endpoint: Endpoint): string[] {
  const seen: string[] = [];
  endpoint.addEventListener("connection", (event: ConnectionEvent) => seen.push(event.status));
  return seen;
}

Deno.test("reconnect - a request made while disconnected is held, then sent with what is left of its budget", async () => {
  const bus = memoryTransport();
  const spied = spy(bus);
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(spied.transport);
  responder.handle(CheckStock, () => 7);
  const seen = statuses(caller);
  bus.disconnect();
  let requested = 0;
  caller.addEventListener("request", () => requested++);
  const promise = caller.request(CheckStock, { sku: "x" }, { timeout: 5_000 });
  await new Promise((resolve) => setTimeout(resolve, 0)); // what the bus delivers has arrived
  assertEquals([caller.pending, requested, spied.published.length], [1, 0, 0]);
  bus.reconnect();
  assertEquals(await promise, 7);
  assertEquals(seen, ["disconnect", "reconnect"]);
  assertEquals(requested, 1);
  const budget = Number(spied.published[0]!.headers![TIMEOUT_HEADER]);
  assert(budget < 5_000 && budget > 4_000, `budget ${budget}`);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - a request held for its whole timeout fails with DisconnectedError, nothing sent", async () => {
  const bus = memoryTransport();
  const spied = spy(bus);
  await using caller = new Endpoint(spied.transport);
  bus.disconnect();
  const settled = nextEvent<SettleEvent>(caller, "settle");
  await assertRejects(
    () => caller.request(CheckStock, { sku: "x" }, { timeout: 40 }),
    DisconnectedError,
    "nothing was sent",
  );
  assertEquals((await settled).outcome, "disconnected");
  bus.reconnect();
  assertEquals(spied.published, []);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - an in-flight request lost across a disconnect fails with DisconnectedError at its deadline", async () => {
  const bus = memoryTransport();
  bus.subscribe("stock.check", () => {}); // received, never answered: as if the reply was lost
  await using caller = new Endpoint(bus);
  const promise = caller.request(CheckStock, { sku: "x" }, { timeout: 60 });
  bus.disconnect();
  bus.reconnect();
  await assertRejects(() => promise, DisconnectedError, "may or may not have been processed");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - a 503 just after a reconnect is retried until the responders are back", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus, { timeout: 10_000 });
  bus.disconnect();
  const sent: RequestEvent[] = [];
  const retried = Promise.withResolvers<void>();
  caller.addEventListener("request", (event: RequestEvent) => {
    if (sent.push(event) === 2) retried.resolve();
  });
  const promise = caller.request(CheckStock, { sku: "x" });
  bus.reconnect();
  // The responder's subscription comes back later than the caller's: after a 503 was retried.
  await retried.promise;
  responder.handle(CheckStock, () => 3);
  assertEquals(await promise, 3);
  assert(sent.length >= 2, `sent ${sent.length} times`);
  assertEquals(new Set(sent.map((e) => e.id)).size, 1, "the same request, sent again");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - requests held during an outage that abort or expire are not sent when it is back", async () => {
  const bus = memoryTransport();
  const spied = spy(bus);
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(spied.transport);
  responder.handle(CheckStock, () => 1);
  bus.disconnect();
  const cancel = new AbortController();
  const aborted = caller.request(CheckStock, { sku: "a" }, { signal: cancel.signal });
  const expired = caller.request(CheckStock, { sku: "b" }, { timeout: 20 });
  const kept = caller.request(CheckStock, { sku: "c" }, { timeout: 5_000 });
  cancel.abort(new Error("user cancelled"));
  await assertRejects(() => aborted, Error, "user cancelled");
  await assertRejects(() => expired, DisconnectedError, "nothing was sent");
  assertStrictEquals(caller.pending, 1);
  bus.reconnect();
  assertEquals(await kept, 1);
  // Only the request still waiting went out after the reconnect.
  assertEquals(spied.published.map((p) => p.subject), ["stock.check"]);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - a listener that settles a held request while the others are sent breaks nothing", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus);
  responder.handle(CheckStock, ({ sku }) => sku.length);
  const seen = statuses(caller);
  bus.disconnect();
  const cancel = new AbortController();
  const first = caller.request(CheckStock, { sku: "a" });
  const second = caller.request(CheckStock, { sku: "bb" }, { signal: cancel.signal });
  const third = caller.request(CheckStock, { sku: "ccc" });
  // The first resend's request event aborts the second, still held, request.
  caller.addEventListener("request", () => cancel.abort(new Error("cancelled")), { once: true });
  bus.reconnect();
  await assertRejects(() => second, Error, "cancelled");
  assertEquals([await first, await third], [1, 3]);
  assertEquals(seen, ["disconnect", "reconnect"]);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - a listener that drops the connection again while held requests are sent holds the rest", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  await using caller = new Endpoint(bus);
  responder.handle(CheckStock, ({ sku }) => sku.length);
  const seen = statuses(caller);
  bus.disconnect();
  const first = caller.request(CheckStock, { sku: "a" }, { timeout: 300 });
  const second = caller.request(CheckStock, { sku: "bb" });
  const third = caller.request(CheckStock, { sku: "ccc" });
  // The first resend's request event drops the connection again, before the others are sent.
  caller.addEventListener("request", () => bus.disconnect(), { once: true });
  const sentAfter: number[] = [];
  bus.reconnect();
  caller.addEventListener("request", (event) => sentAfter.push(event.timeout));
  await new Promise((resolve) => setTimeout(resolve, 0)); // the first's delivery finds it down
  assertEquals([caller.pending, sentAfter.length], [3, 0]);
  bus.reconnect();
  assertEquals([await second, await third], [2, 3]);
  assertEquals(sentAfter.length, 2, "the two still held were sent at the second reconnect");
  // The first went out into the second outage: lost in flight, it fails at its deadline.
  await assertRejects(() => first, DisconnectedError, "dropped while stock.check was in flight");
  assertEquals(seen, ["disconnect", "reconnect", "disconnect", "reconnect"]);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - nats-server killed with requests in flight: a reply after the restart settles, a lost one fails at its deadline", async () => {
  await using fx = await restartable();
  const { server, callerNc, responderNc } = fx;
  await using responder = new Endpoint(natsTransport(responderNc));
  await using caller = new Endpoint(natsTransport(callerNc));
  const release = Promise.withResolvers<void>();
  const started: string[] = [];
  const bothStarted = Promise.withResolvers<void>();
  responder.handle(CheckStock, async ({ sku }) => {
    started.push(sku);
    if (started.length === 2) bothStarted.resolve();
    if (sku === "lost") return await new Promise<number>(() => {}); // never answers
    await release.promise;
    return sku.length;
  });
  await responderNc.flush();
  const answered = caller.request(CheckStock, { sku: "abcde" }, { timeout: 10_000 });
  const lost = caller.request(CheckStock, { sku: "lost" }, { timeout: 1_500 });
  await bothStarted.promise;

  const callerUp = nextConnection(caller, "reconnect");
  const responderUp = nextConnection(responder, "reconnect");
  await server.kill();
  await server.restart();
  assertEquals(await raceTimeout(Promise.all([callerUp, responderUp]), 10_000), [
    "reconnect",
    "reconnect",
  ]);
  await callerNc.flush(); // the caller's inbox subscription is back on the server
  release.resolve(); // the handler answers only now, after the restart
  assertEquals(await answered, 5);
  await assertRejects(() => lost, DisconnectedError, "may or may not have been processed");
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - nats-server killed and restarted: held requests go out, handlers keep answering", async () => {
  await using fx = await restartable();
  const { server, callerNc, responderNc } = fx;
  await using responder = new Endpoint(natsTransport(responderNc));
  await using caller = new Endpoint(natsTransport(callerNc), { timeout: 10_000 });
  responder.handle(CheckStock, ({ sku }) => sku.length);
  await responderNc.flush();
  assertEquals(await caller.request(CheckStock, { sku: "ab" }), 2);

  const seen = statuses(caller);
  const down = nextEvent<ConnectionEvent>(caller, "connection");
  await server.kill();
  assertEquals((await down).status, "disconnect");
  const held = caller.request(CheckStock, { sku: "abc" });
  const short = caller.request(CheckStock, { sku: "x" }, { timeout: 50 });
  await assertRejects(() => short, DisconnectedError, "was down");
  const up = nextEvent<ConnectionEvent>(caller, "connection");
  await server.restart();
  assertEquals((await up).status, "reconnect");
  assertEquals(await held, 3, "held while down, answered after the restart");
  assertEquals(await caller.request(CheckStock, { sku: "abcd" }), 4);
  assertEquals(seen, ["disconnect", "reconnect"]);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("reconnect - closing the connection rejects everything pending with DisconnectedError at once", async () => {
  await using server = await startNatsServer();
  const nc = await connectWs(server);
  await using caller = new Endpoint(natsTransport(nc), { timeout: 20_000 });
  const blackHole = await connectWs(server);
  try {
    blackHole.subscribe("stock.check", { callback: () => {} });
    await blackHole.flush();
    const promise = caller.request(CheckStock, { sku: "x" });
    const closed = nextEvent<ConnectionEvent>(caller, "connection");
    await nc.close();
    assertInstanceOf(await promise.catch((e) => e), DisconnectedError);
    assertEquals((await closed).status, "close");
    assertStrictEquals(caller.pending, 0);
    // Its inbox is open, but nothing can come back: a new request is refused at once
    // (with the 20 s timeout, holding it would fail this assertion's message).
    await assertRejects(
      () => caller.request(CheckStock, { sku: "y" }),
      DisconnectedError,
      "the NATS connection is closed",
    );
    assertStrictEquals(caller.pending, 0);
  } finally {
    await blackHole.close();
  }
});

Deno.test("reconnect - a request that settles while held frees its bytes; one with a retry pending leaves no timer", async () => {
  const bus = memoryTransport();
  await using caller = new Endpoint(bus, { maxHeldBytes: 400, timeout: 10_000 });
  const Big = defineRequest({ subject: "big.check", request: v.string(), response: int() });
  bus.disconnect();
  const cancel = new AbortController();
  const first = caller.request(Big, "x".repeat(250), { signal: cancel.signal }).catch((e) => e);
  assertInstanceOf(await caller.request(Big, "y".repeat(250)).catch((e) => e), PendingLimitError);
  cancel.abort(new Error("gave up"));
  assertEquals((await first).message, "gave up");
  // Its bytes are free: the same size fits again.
  const second = caller.request(Big, "z".repeat(250)).catch((e) => e);
  assertEquals(caller.pending, 1);
  // Sent at the reconnect, nobody listens: the 503 schedules a retry, which the abort and the
  // close cancel (a timer left behind fails this test under the sanitizers).
  const retrying = new AbortController();
  const sent = nextEvent(caller, "request");
  const third = caller.request(Big, "w", { signal: retrying.signal }).catch((e) => e);
  bus.reconnect();
  await sent;
  await new Promise((resolve) => setTimeout(resolve, 0)); // the 503 arrives
  assertEquals(caller.pending, 2, "both wait for a retry");
  retrying.abort(new Error("stop"));
  assertEquals((await third).message, "stop");
  await caller.close();
  assertInstanceOf(await second, ClosedError);
});
