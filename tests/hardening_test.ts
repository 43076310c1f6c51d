/**
 * Faults a hostile peer or a careless user can cause: none may wedge a
 * connection, break a promise or pass silently. Each test names the class of
 * fault it proves closed, and ends by showing the same connection still works.
 */

import * as v from "valibot";
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
  ClosedError,
  defineRequest,
  DisconnectedError,
  Endpoint,
  type EndpointErrorEvent,
  enumOf,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  int,
  InvalidReplyError,
  InvalidRequestError,
  memoryTransport,
  type NatsConnectionLike,
  natsTransport,
  NoReplyError,
  NoRespondersError,
  object,
  PendingLimitError,
  RemoteError,
  ReplyError,
  type SettleEvent,
  TimeoutError,
  type Transport,
  type TransportMessage,
} from "../mod.ts";
import { TransitClock } from "../src/transit.ts";
import { connectWs } from "./helpers/connect.ts";
import { natsFixture } from "./helpers/fixture.ts";
import { startNatsServer } from "./helpers/nats_server.ts";

const Decide = defineRequest({
  subject: "hard.decide",
  request: v.number(),
  response: enumOf(["Approved", "Rejected"]),
});
const Count = defineRequest({ subject: "hard.count", request: v.number(), response: int() });
const Measure = defineRequest({
  subject: "hard.measure",
  request: v.number(),
  response: object(v.object({ n: v.number() })),
});
const Stamp = defineRequest({
  subject: "hard.stamp",
  request: v.number(),
  response: object(v.object({ at: v.date() })),
});

const encode = (text: string) => new TextEncoder().encode(text);

/** Answers every request on `subject` with `body` and `headers`, as a plain NATS responder. */
function answer(
  transport: Transport,
  subject: string,
  body: Uint8Array | string,
  headers: Record<string, string> = {},
) {
  const sub = transport.subscribe(subject, (message) => {
    transport.publish(message.reply, typeof body === "string" ? encode(body) : body, { headers });
  });
  return { [Symbol.dispose]: () => sub.unsubscribe() };
}

/** Errors are reported, not logged, in these tests. */
function quiet(endpoint: Endpoint): EndpointErrorEvent[] {
  const seen: EndpointErrorEvent[] = [];
  endpoint.addEventListener("error", (event) => seen.push(event));
  return seen;
}

Deno.test("hardening - a reply whose description throws settles as InvalidReplyError and the connection keeps reading", async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller, { timeout: 5_000 });
  await using responder = new Endpoint(fx.responder);
  responder.handle(Count, (n) => n + 1);
  for (const body of ['{"toString":1}', '{"valueOf":{},"toString":{}}', "[[[[{}]]]]"]) {
    using _raw = answer(fx.responder, Decide.subject, body);
    await fx.ready();
    const settles: SettleEvent[] = [];
    const onSettle = (event: SettleEvent) => settles.push(event);
    caller.addEventListener("settle", onSettle);
    const error = await caller.request(Decide, 1).catch((e) => e);
    caller.removeEventListener("settle", onSettle);
    assertInstanceOf(error, InvalidReplyError, body);
    assertEquals(settles.map((s) => s.outcome), ["invalid-reply"]);
    // The same connection still carries requests and replies both ways.
    assertEquals(await caller.request(Count, 41), 42);
  }
  assertStrictEquals(caller.pending, 0);
});

Deno.test("hardening - over memoryTransport a hostile reply is an InvalidReplyError, not a crash", async () => {
  const bus = memoryTransport();
  await using caller = new Endpoint(bus);
  using _raw = answer(bus, Decide.subject, '{"toString":1}');
  await assertRejects(() => caller.request(Decide, 1), InvalidReplyError);
  // A message whose reading throws (a header getter, as a lazily decoding client may).
  const sub = bus.subscribe(Count.subject, (message) => {
    const hostile: TransportMessage = {
      subject: message.reply,
      reply: "",
      data: encode("1"),
      status: 0,
      header() {
        throw new TypeError("bad header block");
      },
    };
    // Delivered straight to the inbox, as the transport would.
    inboxes.get(message.reply.slice(0, message.reply.lastIndexOf(".")))?.(hostile);
  });
  const inboxes = new Map<string, (m: TransportMessage) => void>();
  const peeking: Transport = {
    ...bus,
    maxPayload: bus.maxPayload,
    publish: (s, d, o) => bus.publish(s, d, o),
    subscribe(subject, onMessage, options) {
      inboxes.set(subject.slice(0, -2), onMessage);
      return bus.subscribe(subject, onMessage, options);
    },
  };
  await using peeked = new Endpoint(peeking);
  const error = await peeked.request(Count, 1).catch((e) => e);
  sub.unsubscribe();
  assertInstanceOf(error, InvalidReplyError);
  assertMatch(error.message, /cannot be read \(TypeError: bad header block\)/);
  assertInstanceOf(error.cause, TypeError);
  assertStrictEquals(peeked.pending, 0);
});

Deno.test("hardening - subjects, queues, prefixes and headers nats-server cannot take are refused before anything is sent", async () => {
  await using fx = await natsFixture();
  await using endpoint = new Endpoint(fx.caller);
  quiet(endpoint);
  endpoint.handle(Count, (n) => n);
  await fx.ready();
  const long = `a.${"b".repeat(5_000)}`;
  assertThrows(
    () => defineRequest({ subject: long, request: v.number(), response: int() }),
    RangeError,
  );
  const copied = { ...Count, subject: long };
  await assertRejects(() => endpoint.request(copied, 1), RangeError, "bytes");
  assertThrows(() => endpoint.handle(copied, (n) => n), RangeError);
  for (const subject of ["a b", "a\rb", "a..b", "a.*", ".a", "a\u0000b"]) {
    await assertRejects(() => endpoint.request({ ...Count, subject }, 1), TypeError);
  }
  for (const queue of ["a b", "", "q\n", "q\u0000", "x".repeat(4_500)]) {
    assertThrows(
      () => endpoint.handle(Measure, () => ({ n: 1 }), { queue }),
      Error,
      "handle(hard.measure)",
    );
  }
  assertThrows(() => new Endpoint(fx.caller, { inboxPrefix: "x".repeat(2_000) }), RangeError);
  assertThrows(() => new Endpoint(fx.caller, { inboxPrefix: "a b" }), TypeError);
  // A subject and a prefix each within bounds, together over one protocol line.
  await using prefixed = new Endpoint(fx.caller, { inboxPrefix: `_INBOX.${"p".repeat(1_000)}` });
  const wide = { ...Count, subject: `w.${"s".repeat(3_100)}` };
  await assertRejects(() => prefixed.request(wide, 1), InvalidRequestError, "protocol line");
  for (
    const headers of [{ "X-A": "a\r\nb" }, { "": "v" }, { "a b": "v" }, { "a:b": "v" }, {
      "É": "v",
    }, { "X-A": "\u0000" }]
  ) {
    await assertRejects(() => endpoint.request(Count, 1, { headers }), InvalidRequestError);
  }
  // What nats-server takes is taken: wildcard characters inside a token, non-ASCII, a
  // no-break space, and a queue named with wildcard characters.
  for (const subject of ["p*2", "a>b.c", "a\u00a0b", "日本.x"]) {
    const contract = defineRequest({ subject, request: v.number(), response: int() });
    endpoint.handle(contract, (n) => n + 1, { queue: "*" });
    await fx.ready();
    assertEquals(await endpoint.request(contract, 2), 3, subject);
  }
  // Nothing of that reached the server: the connection still answers.
  assertEquals(await endpoint.request(Count, 7), 7);
  assertEquals(await prefixed.request(Count, 8), 8);
});

Deno.test("hardening - a request held while disconnected gets the same checks, at once", async () => {
  const bus = memoryTransport();
  await using endpoint = new Endpoint(bus);
  endpoint.handle(Count, (n) => n);
  bus.disconnect();
  await assertRejects(
    () => endpoint.request(Count, 1, { headers: { "X-A": "a\nb" } }),
    InvalidRequestError,
    "header X-A",
  );
  assertStrictEquals(endpoint.pending, 0);
  const held = endpoint.request(Count, 2);
  bus.reconnect();
  assertEquals(await held, 2);
});

Deno.test("hardening - memoryTransport refuses exactly what NATS refuses", () => {
  const bus = memoryTransport();
  const data = new Uint8Array();
  for (const subject of ["a b", "", "a..b", "a\nb", "a.", `a.${"b".repeat(4_100)}`]) {
    assertThrows(() => bus.publish(subject, data), Error);
  }
  assertThrows(() => bus.publish("a", data, { reply: "r s" }), TypeError);
  assertThrows(() => bus.publish("a", data, { headers: { "X-A": "1\r\n2" } }), TypeError);
  assertThrows(() => bus.publish("a", data, { headers: { "": "1" } }), TypeError);
  for (const subject of ["a b", "a..b", "a.>.b", ""]) {
    assertThrows(() => bus.subscribe(subject, () => {}), TypeError);
  }
  assertThrows(() => bus.subscribe("a", () => {}, { queue: "a b" }), TypeError);
  bus.subscribe("a.*", () => {}).unsubscribe();
  bus.subscribe("a.>", () => {}, { queue: "q" }).unsubscribe();
  bus.close();
  assertThrows(() => bus.publish("a", data), DisconnectedError);
});

Deno.test("hardening - a reply that cannot be sent answers RemoteError 500 at once and reports why", async (t) => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller, { timeout: 10_000 });
  await using responder = new Endpoint(fx.responder);
  const errors = quiet(responder);
  const cases: [string, () => Promise<unknown>, (reg: Endpoint) => unknown][] = [
    [
      "a ReplyError with a 2 MB description",
      () => caller.request(Count, 1),
      (r) =>
        r.handle(Count, () => {
          throw new ReplyError(409, "x".repeat(2_000_000));
        }),
    ],
    [
      "Infinity for v.number()",
      () => caller.request(Measure, 1),
      (r) => r.handle(Measure, () => ({ n: Infinity })),
    ],
    [
      "NaN for v.number()",
      () => caller.request(Measure, 2),
      (r) => r.handle(Measure, () => ({ n: NaN })),
    ],
    [
      "a Date for v.date()",
      () => caller.request(Stamp, 1),
      (r) => r.handle(Stamp, () => ({ at: new Date(0) })),
    ],
    ["a toJSON that throws", () => caller.request(Measure, 3), (r) =>
      r.handle(Measure, () => ({
        n: 1,
        toJSON() {
          throw new Error("toJSON");
        },
      }))],
    [
      "a thrown value whose inspection throws",
      () => caller.request(Count, 2),
      (r) =>
        r.handle(Count, () => {
          throw new Proxy({}, {
            getPrototypeOf() {
              throw new Error("inspected");
            },
          });
        }),
    ],
    [
      "a ReplyError subclass whose code is not a code",
      () => caller.request(Count, 3),
      (r) =>
        r.handle(Count, () => {
          const error = new ReplyError(400, "bad");
          Object.defineProperty(error, "code", { value: 1e9 });
          throw error;
        }),
    ],
    [
      "a reply over max_payload",
      () => caller.request(Measure, 4),
      (r) => r.handle(Measure, () => ({ n: 1, pad: "x".repeat(2_000_000) })),
    ],
  ];
  for (const [name, call, register] of cases) {
    await t.step(name, async () => {
      const registration = register(responder) as { stop(): void };
      await fx.ready();
      const before = errors.length;
      const started = performance.now();
      const error = await call().catch((e) => e);
      registration.stop();
      assertInstanceOf(error, RemoteError, name);
      assertEquals(error.code, 500, name);
      // "At once": long before the 10 s timeout.
      assert(performance.now() - started < 9_000, name);
      assert(errors.length > before, `${name}: an error event names the cause`);
    });
  }
  assertStrictEquals(caller.pending, 0);
});

Deno.test("hardening - strict values: int text, UTF-8, error codes, timeouts", async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  const invalid: [string, Uint8Array | string, Record<string, string>][] = [
    [" 5", " 5", {}],
    ["5 with a newline", "5\n", {}],
    ["a BOM", "\uFEFF5", {}],
    ["a no-break space", "\u00A05", {}],
    ["invalid UTF-8", new Uint8Array([0x35, 0xff]), {}],
    ["error code 1e3", "", { [ERROR_CODE_HEADER]: "1e3" }],
    ["error code 0x10", "", { [ERROR_CODE_HEADER]: "0x10" }],
    ["error code -1", "", { [ERROR_CODE_HEADER]: "-1" }],
    ["error code 99", "", { [ERROR_CODE_HEADER]: "99" }],
    ["error code 1000", "", { [ERROR_CODE_HEADER]: "1000" }],
    ["an empty error code", "", { [ERROR_CODE_HEADER]: "" }],
    ["an error body that is not UTF-8", new Uint8Array([0xc3]), { [ERROR_CODE_HEADER]: "404" }],
  ];
  for (const [name, body, headers] of invalid) {
    using _raw = answer(fx.responder, Count.subject, body, headers);
    await fx.ready();
    const error = await caller.request(Count, 1).catch((e) => e);
    assertInstanceOf(error, InvalidReplyError, name);
  }
  {
    using _raw = answer(fx.responder, Count.subject, "-0");
    await fx.ready();
    assert(Object.is(await caller.request(Count, 1), 0), "-0 is 0");
  }
  {
    using _raw = answer(fx.responder, Count.subject, "", {
      [ERROR_CODE_HEADER]: "404",
      [ERROR_HEADER]: "gone",
    });
    await fx.ready();
    const error = await assertRejects(() => caller.request(Count, 1), RemoteError);
    assertEquals([error.code, error.description], [404, "gone"]);
  }
  for (const timeout of [0.5, 1e-9, 0, -1, NaN]) {
    await assertRejects(() => caller.request(Count, 1, { timeout }), RangeError, "from 1");
  }
  assertThrows(() => new Endpoint(fx.caller, { timeout: 0.5 }), RangeError);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("hardening - a responder answers 400 to a body that is not UTF-8", async () => {
  await using fx = await natsFixture();
  await using responder = new Endpoint(fx.responder);
  let ran = 0;
  responder.handle(Count, (n) => (ran++, n));
  await fx.ready();
  const inbox = "_INBOX.raw.utf8";
  const reply = new Promise<TransportMessage>((resolve) => {
    const sub = fx.caller.subscribe(inbox, (message) => {
      sub.unsubscribe();
      resolve(message);
    });
  });
  await fx.ready();
  fx.caller.publish(Count.subject, new Uint8Array([0x31, 0xff]), { reply: inbox });
  const message = await reply;
  assertEquals(message.header(ERROR_CODE_HEADER), "400");
  assertMatch(message.header(ERROR_HEADER)!, /not UTF-8/);
  assertEquals(ran, 0);
});

Deno.test("hardening - a 400 names the problem in a bounded description, not the whole value", async () => {
  const bus = memoryTransport();
  await using responder = new Endpoint(bus);
  const Named = defineRequest({
    subject: "hard.named",
    request: v.object({ name: v.picklist(["a", "b"]) }),
    response: int(),
  });
  responder.handle(Named, () => 1);
  const reply = new Promise<TransportMessage>((resolve) => {
    const sub = bus.subscribe("_INBOX.raw.big", (message) => {
      sub.unsubscribe();
      resolve(message);
    });
  });
  bus.publish(Named.subject, encode(JSON.stringify({ name: "x".repeat(900_000) })), {
    reply: "_INBOX.raw.big",
  });
  const message = await reply;
  assertEquals(message.header(ERROR_CODE_HEADER), "400");
  const description = message.header(ERROR_HEADER)!;
  assert(description.length <= 330, `${description.length} characters`);
  assertMatch(description, /^invalid request: name: /);
});

Deno.test("hardening - memoryTransport delivers header values trimmed, as the NATS clients send them", async () => {
  const bus = memoryTransport();
  await using endpoint = new Endpoint(bus);
  endpoint.handle(Count, (_n, ctx) => Number(ctx.header("X-N") === "7"));
  assertEquals(await endpoint.request(Count, 1, { headers: { "X-N": " 7\t" } }), 1);
});

Deno.test("hardening - a draining connection is a DisconnectedError, not the client's error", async () => {
  await using fx = await natsFixture();
  await using caller = new Endpoint(fx.caller);
  await using responder = new Endpoint(fx.responder);
  responder.handle(Count, (n) => n);
  await fx.ready();
  assertEquals(await caller.request(Count, 1), 1);
  const draining = fx.callerNc.drain();
  const error = await caller.request(Count, 2).catch((e) => e);
  await draining;
  assertInstanceOf(error, DisconnectedError);
  assertInstanceOf(await caller.request(Count, 3).catch((e) => e), DisconnectedError);
  assertStrictEquals(caller.pending, 0);
});

Deno.test("hardening - held bytes are bounded: beyond maxHeldBytes a request rejects at once", async () => {
  const bus = memoryTransport();
  await using endpoint = new Endpoint(bus, { maxHeldBytes: 1_000 });
  endpoint.handle(Count, (n) => n);
  const Big = defineRequest({ subject: "hard.big", request: v.string(), response: int() });
  endpoint.handle(Big, (s) => s.length);
  bus.disconnect();
  const first = endpoint.request(Big, "x".repeat(600));
  const error = await endpoint.request(Big, "y".repeat(600)).catch((e) => e);
  assertInstanceOf(error, PendingLimitError);
  assertMatch(error.message, /maxHeldBytes 1000/);
  assertEquals(endpoint.pending, 1);
  // A small one still fits beside the first.
  const small = endpoint.request(Count, 3);
  bus.reconnect();
  assertEquals([await first, await small], [600, 3]);
  // Sent: the held bytes are free again.
  bus.disconnect();
  const again = endpoint.request(Big, "z".repeat(600));
  bus.reconnect();
  assertEquals(await again, 600);
  assertThrows(() => new Endpoint(bus, { maxHeldBytes: 0 }), RangeError);
});

Deno.test("hardening - endpoints made and closed on one connection leave nothing behind on it", async () => {
  await using fx = await natsFixture();
  const nc = fx.callerNc as unknown as NatsConnectionLike & {
    protocol: { listeners: unknown[] };
  };
  const transport = natsTransport(nc);
  assertStrictEquals(natsTransport(nc), transport);
  await (new Endpoint(transport)).close();
  const listeners = nc.protocol.listeners.length;
  for (let i = 0; i < 1_000; i++) await new Endpoint(natsTransport(nc)).close();
  assertEquals(nc.protocol.listeners.length, listeners);
});

Deno.test("hardening - with no error listener a handler's bug is logged; a listener or logErrors: false silences it", async () => {
  const logged: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    const bus = memoryTransport();
    await using caller = new Endpoint(bus);
    await using loud = new Endpoint(bus);
    loud.handle(Count, () => {
      throw new Error("bug");
    });
    await assertRejects(() => caller.request(Count, 1), RemoteError, "500");
    assertEquals(logged.length, 1);
    assertMatch(String(logged[0]![0]), /hard\.count/);
    assertEquals((logged[0]![1] as Error).message, "bug");
    const listener = () => {};
    loud.addEventListener("error", listener);
    await assertRejects(() => caller.request(Count, 1), RemoteError);
    assertEquals(logged.length, 1);
    loud.removeEventListener("error", listener);
    await assertRejects(() => caller.request(Count, 1), RemoteError);
    assertEquals(logged.length, 2);
    await using silent = new Endpoint(bus, { logErrors: false });
    silent.handle(Measure, () => ({ n: "not a number" as unknown as number }));
    await assertRejects(() => caller.request(Measure, 1), RemoteError);
    assertEquals(logged.length, 2);
  } finally {
    console.error = original;
  }
});

Deno.test("hardening - a second handler for one subject on one endpoint is an error", async () => {
  await using endpoint = new Endpoint(memoryTransport());
  const first = endpoint.handle(Count, (n) => n);
  assertThrows(() => endpoint.handle(Count, (n) => n + 1), TypeError, "already handles");
  const copy = defineRequest({ subject: Count.subject, request: v.number(), response: int() });
  assertThrows(() => endpoint.handle(copy, (n) => n), TypeError, "already handles");
  assertThrows(
    () => endpoint.handle(Count, (n) => n, { queue: false }),
    TypeError,
    "already handles",
  );
  first.stop();
  endpoint.handle(Count, (n) => n * 2);
  assertEquals(await endpoint.request(Count, 4), 8);
});

Deno.test("hardening - the library's errors share one base class; no-reply errors carry subject and timeout", async () => {
  const bus = memoryTransport();
  await using endpoint = new Endpoint(bus, { timeout: 50 });
  const noResponders = await endpoint.request(Count, 1, { timeout: 1_000 }).catch((e) => e);
  assertInstanceOf(noResponders, NoRespondersError);
  assertEquals([noResponders.subject, noResponders.timeout], ["hard.count", 1_000]);
  endpoint.handle(Count, () => new Promise<number>(() => {}));
  const timeout = await endpoint.request(Count, 1).catch((e) => e);
  assertInstanceOf(timeout, TimeoutError);
  assertInstanceOf(timeout, NoReplyError);
  assertEquals([timeout.subject, timeout.timeout], ["hard.count", 50]);
  // AbortSignal.timeout() rejects with the platform's DOMException, also named TimeoutError:
  // instanceof tells them apart, the name does not.
  const aborted = await endpoint.request(Count, 1, { signal: AbortSignal.timeout(1) }).catch((
    e,
  ) => e);
  assertInstanceOf(aborted, DOMException);
  assertEquals(aborted.name, "TimeoutError");
  assert(!(aborted instanceof TimeoutError) && !(aborted instanceof CallbackError));
  for (
    const error of [
      timeout,
      noResponders,
      new ClosedError("x"),
      new InvalidReplyError("x"),
      new InvalidRequestError("x"),
      new RemoteError("x", { code: 500, description: "" }),
      new PendingLimitError("x"),
      new DisconnectedError("x"),
      new ReplyError(400, "x"),
    ]
  ) {
    assertInstanceOf(error, CallbackError);
    assert(error.name !== "CallbackError" && error.name !== "Error", error.name);
  }
  bus.disconnect();
  const held = await endpoint.request(Count, 1).catch((e) => e);
  assertInstanceOf(held, DisconnectedError);
  assertEquals([held.subject, held.timeout], ["hard.count", 50]);
});

Deno.test("hardening - the reply inbox is 128 random bits, not a UUID's 122", async () => {
  const subscribed: string[] = [];
  const bus = memoryTransport();
  const transport: Transport = {
    ...bus,
    maxPayload: bus.maxPayload,
    publish: (s, d, o) => bus.publish(s, d, o),
    subscribe: (s, m, o) => (subscribed.push(s), bus.subscribe(s, m, o)),
  };
  await using responder = new Endpoint(bus);
  responder.handle(Count, (n) => n);
  for (let i = 0; i < 40; i++) {
    await using endpoint = new Endpoint(transport);
    await endpoint.request(Count, 1);
  }
  assertEquals(subscribed.length, 40);
  for (const inbox of subscribed) assertMatch(inbox, /^_INBOX\.[0-9a-f]{32}\.\*$/);
  // A UUID's 13th hex digit is always 4 (its version); random bits vary there.
  assert(new Set(subscribed.map((inbox) => inbox[7 + 12])).size > 1, "the version digit varies");
});

Deno.test("hardening - TransitClock never overstates a request's time on the way, whatever the clocks' offset", () => {
  let now = 1_000_000;
  const clock = new TransitClock(() => now, 60_000, 5);
  // Trips of 2, 1, 9, 1 and 300 ms, the sender's clock `offset` away from ours.
  const trips = [2, 1, 9, 1, 300];
  const expected: Record<number, number[]> = {
    // Sender ahead: the request alone proves nothing; its history alone would.
    [-3_600_000]: [0, 0, 0, 0, 0],
    [-5]: [0, 0, 0, 0, 290],
    // Clocks within the bound: the smaller of trip-less-bound and trip-less-fastest.
    0: [0, 0, 4, 0, 295],
    7: [0, 0, 8, 0, 299],
    // Sender a day behind: the request alone would say a day; its history says the truth.
    86_400_000: [0, 0, 8, 0, 299],
  };
  for (const [offset, ages] of Object.entries(expected)) {
    const sender = `inbox.${offset}`;
    const seen = trips.map((trip) => {
      const sent = now - Number(offset);
      now += trip;
      const age = clock.age(sender, sent);
      now += 10;
      return age;
    });
    assertEquals(seen, ages, `offset ${offset}`);
    seen.forEach((age, i) => assert(age <= trips[i]!, `offset ${offset}: ${age}`));
  }
  // A forged stamp from the future falsifies a sender's history, but a timely request of the
  // real sender (clocks within the bound) still arrives with no age.
  clock.age("inbox.0", now + 1e15);
  assertEquals(clock.age("inbox.0", now - 3), 0);
  // After two windows an old fastest trip is forgotten, so drift cannot build up.
  now += 130_000;
  assertEquals(clock.age("inbox.7", now - 7 - 50), 0);
});

Deno.test("hardening - after a broker stall, a responder skips requests whose callers gave up; a forged stamp cannot make it skip", async () => {
  // The wall clock both sides stamp and read, moved by hand: no sleeping through the stall.
  const realNow = Date.now;
  let skew = 0;
  Date.now = () => realNow() + skew;
  try {
    const bus = memoryTransport();
    // Requests to the responder pass through a valve that can stall, as a broker can.
    let stalled: (() => void)[] | undefined;
    const inboxes: string[] = [];
    const valve: Transport = {
      maxPayload: bus.maxPayload,
      publish: (s, d, o) => bus.publish(s, d, o),
      subscribe: (subject, onMessage, options) =>
        bus.subscribe(subject, (message) => {
          if (stalled) stalled.push(() => onMessage(message));
          else onMessage(message);
        }, options),
    };
    const watched: Transport = {
      ...valve,
      subscribe: (s, m, o) => (inboxes.push(s.slice(0, -2)), bus.subscribe(s, m, o)),
    };
    await using caller = new Endpoint(watched);
    await using responder = new Endpoint(valve);
    let ran = 0;
    let signalled = 0;
    responder.handle(Count, (n, ctx) => {
      ran++;
      if (ctx.signal.aborted) signalled++;
      return n;
    });
    // A first request teaches the responder how fast this caller's requests arrive.
    assertEquals(await caller.request(Count, 1), 1);
    assertEquals(ran, 1);
    stalled = [];
    const gaveUp = Array.from({ length: 20 }, (_, i) => caller.request(Count, i, { timeout: 50 }));
    const outcomes = await Promise.allSettled(gaveUp);
    assert(outcomes.every((o) => o.status === "rejected" && o.reason instanceof TimeoutError));
    // The stall ends 1.2 s after they were sent: longer than any clock bound, and their budget.
    skew += 1_200;
    const release = stalled;
    stalled = undefined;
    for (const deliver of release) deliver();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assertEquals(ran, 1, "no handler ran for a caller that had given up");
    // Someone who knows the caller's inbox forges a request stamped far in the future.
    bus.publish(Count.subject, encode("9"), {
      reply: `${inboxes[0]}.forged`,
      headers: { "Callback-Sent": String(Date.now() + 1e9), "Callback-Timeout": "1000" },
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    // Timely requests are served as before.
    assertEquals(await caller.request(Count, 5, { timeout: 1_000 }), 5);
    assertEquals(await caller.request(Count, 6, { timeout: 1_000 }), 6);
    assertEquals([ran, signalled], [4, 0]);
  } finally {
    Date.now = realNow;
  }
});

Deno.test("hardening - ready waits out a drop, rejects on a closed connection or a refused subscription", async () => {
  await using server = await startNatsServer({
    config: `authorization { users: [ { user: "u", password: "p", permissions: {
      subscribe: { deny: ["secret.>"] } } } ] }`,
  });
  const options = { user: "u", pass: "p", reconnectTimeWait: 50, maxReconnectAttempts: -1 };
  const nc = await connectWs(server, options);
  try {
    await using endpoint = new Endpoint(natsTransport(nc as unknown as NatsConnectionLike));
    quiet(endpoint);
    // Refused by the server: ready rejects with its error.
    const Secret = defineRequest({ subject: "secret.count", request: v.number(), response: int() });
    const refused = await endpoint.handle(Secret, (n) => n).ready.catch((e) => e);
    assertMatch(String(refused?.message), /permissions/i);
    // Made while the server is down: ready resolves once it is back and has the subscription.
    await server.kill();
    const registration = endpoint.handle(Count, (n) => n + 1);
    await server.restart();
    await registration.ready;
    assertEquals(await endpoint.request(Count, 1), 2);
    // The connection closes right after the SUB: ready settles (the client may still flush it
    // out, or it rejects with DisconnectedError), never hangs.
    const late = endpoint.handle(Measure, () => ({ n: 1 })).ready.catch((e) => e);
    await nc.close();
    const settled = await late;
    assert(settled === undefined || settled instanceof DisconnectedError, String(settled));
    // Once closed, handle() itself refuses.
    assertThrows(() => endpoint.handle(Stamp, () => ({ at: new Date() })), DisconnectedError);
  } finally {
    await nc.close();
  }
});

Deno.test("hardening - a subscription too long for a protocol line is a RangeError on every transport; the connection stays up", async () => {
  await using fx = await natsFixture();
  const long = `a.${"b".repeat(4_100)}`;
  for (const transport of [fx.caller, memoryTransport()]) {
    assertThrows(() => transport.subscribe(long, () => {}), RangeError, "protocol line");
    assertThrows(
      () => transport.subscribe("a.b", () => {}, { queue: "q".repeat(4_100) }),
      RangeError,
      "protocol line",
    );
  }
  // Nothing reached the server: the connection still serves.
  await using responder = new Endpoint(fx.responder);
  await using caller = new Endpoint(fx.caller);
  await responder.handle(Count, (n) => n + 1).ready;
  assertEquals(await caller.request(Count, 1), 2);
});
