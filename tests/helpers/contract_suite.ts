/**
 * The endpoint's contract tests, run on every transport: each test takes a
 * fresh fixture, asserts real outcomes (values, error classes, codes,
 * events) and that `pending` is back to 0.
 *
 * @module
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
  ClosedError,
  defineRequest,
  DisconnectedError,
  Endpoint,
  EndpointErrorEvent,
  enumOf,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  int,
  InvalidReplyError,
  InvalidRequestError,
  KIND_HEADER,
  type LateReplyEvent,
  NoRespondersError,
  object,
  PendingLimitError,
  RemoteError,
  ReplyError,
  type RequestEvent,
  type SettleEvent,
  TIMEOUT_HEADER,
  TimeoutError,
} from "../../mod.ts";
import type { Fixture } from "./fixture.ts";
import { bytes, nextEvent, spy } from "./spy.ts";

/** An int contract. */
export const CheckStock = defineRequest({
  subject: "stock.check",
  request: v.object({ sku: v.string() }),
  response: int(),
});
/** An enum contract. */
export const Approve = defineRequest({
  subject: "orders.approve",
  request: v.object({ orderId: v.string() }),
  response: enumOf(["Approved", "Rejected"]),
});
/** An object contract. */
export const PlaceOrder = defineRequest({
  subject: "orders.place",
  request: v.object({ sku: v.string(), qty: v.pipe(v.number(), v.integer(), v.minValue(1)) }),
  response: object(v.object({ orderId: v.string(), eta: v.number() })),
});

/** Registers the contract suite for one transport. */
export function contractSuite(label: string, makeFixture: () => Promise<Fixture>): void {
  const test = (name: string, fn: (fx: Fixture) => Promise<void>) =>
    Deno.test(`${label} - ${name}`, async () => {
      await using fx = await makeFixture();
      await fn(fx);
    });

  test("int, enum and object replies resolve with typed values", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(CheckStock, ({ sku }) => sku === "A-1" ? 5 : 0);
    responder.handle(Approve, ({ orderId }) => orderId === "o-1" ? "Approved" : "Rejected");
    responder.handle(PlaceOrder, ({ sku, qty }) => ({ orderId: `${sku}/${qty}`, eta: 3 }));
    await fx.ready();

    assertStrictEquals(await caller.request(CheckStock, { sku: "A-1" }), 5);
    assertStrictEquals(await caller.request(CheckStock, { sku: "B-2" }), 0);
    assertStrictEquals(await caller.request(Approve, { orderId: "o-1" }), "Approved");
    assertStrictEquals(await caller.request(Approve, { orderId: "o-2" }), "Rejected");
    assertEquals(await caller.request(PlaceOrder, { sku: "A-1", qty: 2 }), {
      orderId: "A-1/2",
      eta: 3,
    });
    assertStrictEquals(caller.pending, 0);
  });

  test("requestMany gathers a typed reply from every responder without a queue group", async (fx) => {
    const responders = [1, 2, 3].map((n) => {
      const endpoint = new Endpoint(fx.responder, { sendOnly: true });
      endpoint.handle(CheckStock, () => n, { queue: false });
      return endpoint;
    });
    try {
      await using caller = new Endpoint(fx.caller);
      await fx.ready();
      const results = await Array.fromAsync(
        caller.requestMany(CheckStock, { sku: "A-1" }, { max: 3, timeout: 5_000 }),
      );
      const values = results.map((r) => r.status === "fulfilled" ? r.value : r.reason);
      assertEquals(values.sort(), [1, 2, 3]);
      assertStrictEquals(caller.pending, 0);
    } finally {
      for (const endpoint of responders) await endpoint.close();
    }
  });

  test("TypeScript enums work as enum responses, numeric and string", async (fx) => {
    enum Level {
      Low = 1,
      High = 2,
    }
    enum Color {
      Red = "red",
      Blue = "blue",
    }
    const GetLevel = defineRequest({
      subject: "level.get",
      request: v.string(),
      response: enumOf(Level),
    });
    const GetColor = defineRequest({
      subject: "color.get",
      request: v.string(),
      response: enumOf(Color),
    });
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(GetLevel, (name) => name === "high" ? Level.High : Level.Low);
    responder.handle(GetColor, () => Color.Blue);
    await fx.ready();
    assertStrictEquals(await caller.request(GetLevel, "high"), Level.High);
    assertStrictEquals(await caller.request(GetLevel, "low"), Level.Low);
    assertStrictEquals(await caller.request(GetColor, "x"), Color.Blue);
  });

  test("requests use one wildcard inbox subscription and unguessable reply tokens", async (fx) => {
    const spied = spy(fx.caller);
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(spied.transport);
    responder.handle(CheckStock, () => 1);
    await fx.ready();
    assertEquals(spied.subscribed, [], "no inbox before the first request");
    await Promise.all(Array.from({ length: 5 }, () => caller.request(CheckStock, { sku: "x" })));
    assertEquals(spied.subscribed.length, 1);
    const inbox = spied.subscribed[0]!.subject;
    assertMatch(inbox, /^_INBOX\.[0-9a-f]{32}\.\*$/);
    const replies = spied.published.map((p) => p.reply!);
    assertEquals(new Set(replies).size, 5);
    for (const reply of replies) {
      assertMatch(reply, /^_INBOX\.[0-9a-f]{32}\.[0-9a-f-]{36}$/);
      assert(reply.startsWith(inbox.slice(0, -1)));
    }
    assert(spied.published.every((p) => p.subject === "stock.check"));
  });

  test("the time budget travels as a relative header and aborts the handler's signal", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    const aborted = Promise.withResolvers<{ reason: unknown; budget: string | undefined }>();
    responder.handle(CheckStock, (_body, ctx) => {
      assert(ctx.deadline !== undefined && ctx.deadline > Date.now() - 1000);
      return new Promise<number>((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => {
          aborted.resolve({ reason: ctx.signal.reason, budget: ctx.header(TIMEOUT_HEADER) });
          reject(ctx.signal.reason);
        }, { once: true });
      });
    });
    await fx.ready();
    await assertRejects(
      () => caller.request(CheckStock, { sku: "x" }, { timeout: 150 }),
      TimeoutError,
    );
    const { reason, budget } = await aborted.promise;
    assertInstanceOf(reason, TimeoutError);
    assertEquals(budget, "150");
    assertStrictEquals(caller.pending, 0);
  });

  test("an invalid body rejects with InvalidRequestError and nothing is published", async (fx) => {
    const spied = spy(fx.caller);
    await using caller = new Endpoint(spied.transport);
    const error = await assertRejects(
      // @ts-expect-error: qty must be a number
      () => caller.request(PlaceOrder, { sku: "A-1", qty: "two" }),
      InvalidRequestError,
      "qty",
    );
    assert(error.issues.length > 0);
    await assertRejects(
      () => caller.request(PlaceOrder, { sku: "A-1", qty: 0 }),
      InvalidRequestError,
    );
    assertEquals(spied.published, []);
    assertStrictEquals(caller.pending, 0);
  });

  test("no responders rejects at once with NoRespondersError", async (fx) => {
    await using caller = new Endpoint(fx.caller, { timeout: 20_000 });
    const settled = nextEvent<SettleEvent>(caller, "settle");
    await assertRejects(() => caller.request(CheckStock, { sku: "x" }), NoRespondersError);
    assertEquals((await settled).outcome, "no-responders");
    assertStrictEquals(caller.pending, 0);
  });

  test("a stopped responder means no responders", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller, { timeout: 20_000 });
    const registration = responder.handle(CheckStock, () => 1);
    await fx.ready();
    assertStrictEquals(await caller.request(CheckStock, { sku: "x" }), 1);
    registration.stop();
    registration.stop();
    await fx.ready();
    await assertRejects(() => caller.request(CheckStock, { sku: "x" }), NoRespondersError);
  });

  test("timeout rejects with TimeoutError, per call and by the endpoint default", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller, { timeout: 100 });
    responder.handle(CheckStock, (_b, ctx) => untilAborted(ctx.signal));
    await fx.ready();
    const settled = nextEvent<SettleEvent>(caller, "settle");
    await assertRejects(() => caller.request(CheckStock, { sku: "x" }), TimeoutError, "100 ms");
    const event = await settled;
    assertEquals(event.outcome, "timeout");
    assert(event.duration >= 99, `duration ${event.duration}`);
    await assertRejects(
      () => caller.request(CheckStock, { sku: "x" }, { timeout: 30 }),
      TimeoutError,
      "30 ms",
    );
    assertStrictEquals(caller.pending, 0);
  });

  test("abort rejects with the signal's reason; an aborted signal publishes nothing", async (fx) => {
    const spied = spy(fx.caller);
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(spied.transport);
    responder.handle(CheckStock, (_b, ctx) => untilAborted(ctx.signal));
    await fx.ready();

    const before = new AbortController();
    const reason = new Error("user went away");
    before.abort(reason);
    const early = await assertRejects(() =>
      caller.request(CheckStock, { sku: "x" }, { signal: before.signal })
    );
    assertStrictEquals(early, reason);
    assertEquals(spied.published, []);

    const during = new AbortController();
    const settled = nextEvent<SettleEvent>(caller, "settle");
    const promise = caller.request(CheckStock, { sku: "x" }, { signal: during.signal });
    assertStrictEquals(caller.pending, 1);
    during.abort();
    const error = await assertRejects(() => promise);
    assertEquals(error.name, "AbortError");
    assertEquals((await settled).outcome, "abort");
    assertStrictEquals(caller.pending, 0);
    assertEquals(spied.published.length, 1);
  });

  test("a ReplyError answers a RemoteError with code, description and data", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(CheckStock, ({ sku }) => {
      throw new ReplyError(404, `unknown sku ${sku}`, { data: { sku, hint: ["A-1"] } });
    });
    await fx.ready();
    const settled = nextEvent<SettleEvent>(caller, "settle");
    const error = await assertRejects(
      () => caller.request(CheckStock, { sku: "Z-9" }),
      RemoteError,
      "404 unknown sku Z-9",
    );
    assertEquals(error.code, 404);
    assertEquals(error.description, "unknown sku Z-9");
    assertEquals(error.data, { sku: "Z-9", hint: ["A-1"] });
    assertEquals((await settled).outcome, "remote-error");
  });

  test("any other exception answers 500 without leaking, and is reported as an error event", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(CheckStock, async ({ sku }) => {
      await Promise.resolve();
      throw new Error(`db password is hunter2 (${sku})`);
    });
    await fx.ready();
    const reported = nextEvent<EndpointErrorEvent>(responder, "error");
    const error = await assertRejects(() => caller.request(CheckStock, { sku: "x" }), RemoteError);
    assertEquals(error.code, 500);
    assertEquals(error.description, "internal error");
    assertEquals(error.data, undefined);
    assert(!error.message.includes("hunter2"));
    const event = await reported;
    assertInstanceOf(event, EndpointErrorEvent);
    assertMatch(String(event.error), /hunter2/);
    // The responder keeps serving, on the same subscription and on new ones.
    const again = await assertRejects(() => caller.request(CheckStock, { sku: "y" }), RemoteError);
    assertEquals(again.code, 500);
    responder.handle(Approve, () => "Approved");
    await fx.ready();
    assertEquals(await caller.request(Approve, { orderId: "o" }), "Approved");
    assertStrictEquals(caller.pending, 0);
  });

  test("a handler that reads ctx.signal after answering gets an aborted signal, no timer", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    let kept: { readonly signal: AbortSignal } | undefined;
    responder.handle(CheckStock, (_body, ctx) => {
      kept = ctx;
      return 1;
    });
    await fx.ready();
    assertEquals(await caller.request(CheckStock, { sku: "x" }, { timeout: 60_000 }), 1);
    // Read late: no controller joins the responder's in-flight set, no deadline timer
    // starts (the sanitizers would report one), and the signal says it is over.
    const signal = kept!.signal;
    assert(signal.aborted);
    assertInstanceOf(signal.reason, ClosedError);
    assertMatch(signal.reason.message, /was answered/);
    assertStrictEquals(kept!.signal, signal, "the same signal at every read");
  });

  test("a handler's reply that breaks the contract answers 500 and is reported", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(CheckStock, () => 1.5);
    responder.handle(Approve, () => "Maybe" as "Approved");
    await fx.ready();
    const reported = nextEvent<EndpointErrorEvent>(responder, "error");
    const error = await assertRejects(() => caller.request(CheckStock, { sku: "x" }), RemoteError);
    assertEquals(error.code, 500);
    assertInstanceOf((await reported).error, InvalidReplyError);
    assertEquals(
      (await assertRejects(() => caller.request(Approve, { orderId: "o" }), RemoteError)).code,
      500,
    );
  });

  test("an invalid request body reaching a responder is answered with 400", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    let calls = 0;
    responder.handle(PlaceOrder, () => {
      calls++;
      return { orderId: "o", eta: 1 };
    });
    await fx.ready();
    // A raw requester: not JSON, then JSON that fails the schema.
    for (const body of ["{not json", JSON.stringify({ sku: 1, qty: 1 })]) {
      const reply = rawRequest(fx, "orders.place", body);
      const message = await reply;
      assertEquals(message.header(ERROR_CODE_HEADER), "400");
      assertMatch(message.header(ERROR_HEADER)!, /^invalid request: /);
    }
    assertEquals(calls, 0);
  });

  test("wrong kind header or invalid value rejects with InvalidReplyError", async (fx) => {
    await using caller = new Endpoint(fx.caller);
    const cases: [
      typeof CheckStock | typeof Approve | typeof PlaceOrder,
      string,
      Record<string, string>,
    ][] = [
      [CheckStock, "5", { [KIND_HEADER]: "enum" }],
      [CheckStock, "1.5", {}],
      [CheckStock, "9007199254740993", {}],
      [CheckStock, "", { [KIND_HEADER]: "int" }],
      [Approve, '"approved"', {}],
      [Approve, '"Maybe"', { [KIND_HEADER]: "enum" }],
      [PlaceOrder, '{"orderId":"o"}', {}],
      [PlaceOrder, "{", {}],
      [PlaceOrder, '{"orderId":"o","eta":1}', { [KIND_HEADER]: "int" }],
    ];
    for (const [contract, body, headers] of cases) {
      using _raw = rawResponder(fx, contract.subject, body, headers);
      await fx.ready();
      const settled = nextEvent<SettleEvent>(caller, "settle");
      const error = await assertRejects(
        () => caller.request(contract, { sku: "x", orderId: "o", qty: 1 }),
        InvalidReplyError,
        `invalid reply to ${contract.subject}`,
      );
      assertEquals((await settled).outcome, "invalid-reply", `${contract.subject} ${body}`);
      assert(error.issues.length > 0, `issues for ${contract.subject} ${body}`);
      assertEquals(error.issues[0]!.message.length > 0, true);
    }
    assertStrictEquals(caller.pending, 0);
  });

  test("a plain responder without kind header satisfies the contract when valid", async (fx) => {
    await using caller = new Endpoint(fx.caller);
    const cases: [typeof CheckStock | typeof Approve | typeof PlaceOrder, string, unknown][] = [
      [CheckStock, "42", 42],
      [CheckStock, "-7", -7],
      [Approve, '"Rejected"', "Rejected"],
      [Approve, "Approved", "Approved"],
      [PlaceOrder, '{"orderId":"o","eta":1,"extra":true}', { orderId: "o", eta: 1 }],
    ];
    for (const [contract, body, expected] of cases) {
      using _raw = rawResponder(fx, contract.subject, body, {});
      await fx.ready();
      assertEquals(await caller.request(contract, { sku: "x", orderId: "o", qty: 1 }), expected);
    }
  });

  test("a schema that throws is an invalid body or reply; nothing escapes", async (fx) => {
    const boom = v.pipe(
      v.string(),
      v.transform((text: string): string => {
        if (text === "boom") throw new Error("transform boom");
        return text;
      }),
    );
    const Echo = defineRequest({ subject: "echo.text", request: boom, response: int() });
    const Bad = defineRequest({
      subject: "echo.bad",
      request: v.string(),
      response: object(v.object({ text: boom })),
    });
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(Echo, (text) => text.length);
    responder.handle(Bad, (text) => ({ text }));
    await fx.ready();
    await assertRejects(
      () => caller.request(Echo, "boom"),
      InvalidRequestError,
      "the schema threw",
    );
    const reply = await rawRequest(fx, "echo.text", JSON.stringify("boom"));
    assertEquals(reply.header(ERROR_CODE_HEADER), "400");
    await assertRejects(() => caller.request(Bad, "boom"), RemoteError, "does not match");
    assertEquals(await caller.request(Echo, "fine"), 4);
    assertStrictEquals(caller.pending, 0);
  });

  test("a ReplyError whose data cannot be sent answers without a body and is reported", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(CheckStock, () => {
      throw new ReplyError(409, "conflict", { data: { n: 1n } });
    });
    await fx.ready();
    const reported = nextEvent<EndpointErrorEvent>(responder, "error");
    const error = await assertRejects(() => caller.request(CheckStock, { sku: "x" }), RemoteError);
    assertEquals([error.code, error.data], [409, undefined]);
    assertInstanceOf((await reported).error, TypeError);
  });

  test("close() rejects everything pending with ClosedError; await using closes", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    responder.handle(CheckStock, (_b, ctx) => untilAborted(ctx.signal));
    await fx.ready();
    let outer: Endpoint;
    let promises: Promise<number>[];
    {
      await using caller = new Endpoint(fx.caller);
      outer = caller;
      promises = [1, 2, 3].map(() => caller.request(CheckStock, { sku: "x" }));
      assertStrictEquals(caller.pending, 3);
    }
    for (const promise of promises) await assertRejects(() => promise, ClosedError);
    assert(outer.closed);
    assertStrictEquals(outer.pending, 0);
    await assertRejects(() => outer.request(CheckStock, { sku: "x" }), ClosedError);
    await outer.close();
  });

  test("closing a responder aborts its handlers: giving up answers 503, a value is still sent", async (fx) => {
    const responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller, { timeout: 20_000 });
    const started = {
      giveUp: Promise.withResolvers<void>(),
      finish: Promise.withResolvers<void>(),
    };
    const finish = Promise.withResolvers<void>();
    const readLate = Promise.withResolvers<boolean>();
    responder.handle(CheckStock, (_b, ctx) => {
      started.giveUp.resolve();
      return untilAborted(ctx.signal);
    });
    responder.handle(Approve, async (_b, ctx) => {
      started.finish.resolve();
      await finish.promise;
      readLate.resolve(ctx.signal.aborted); // first read of the signal after close
      return "Approved" as const;
    });
    await fx.ready();
    const gaveUp = caller.request(CheckStock, { sku: "x" });
    const finished = caller.request(Approve, { orderId: "o" });
    await Promise.all([started.giveUp.promise, started.finish.promise]);
    await responder.close();
    finish.resolve();
    const error = await assertRejects(() => gaveUp, RemoteError, "the responder stopped");
    assertEquals(error.code, 503);
    assertEquals(await finished, "Approved");
    assertEquals(await readLate.promise, true);
    assertStrictEquals(caller.pending, 0);
  });

  test("beyond maxPending, request() rejects at once with PendingLimitError", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller, { maxPending: 2 });
    const release = Promise.withResolvers<void>();
    responder.handle(CheckStock, async () => {
      await release.promise;
      return 7;
    });
    await fx.ready();
    const first = caller.request(CheckStock, { sku: "a" });
    const second = caller.request(CheckStock, { sku: "b" });
    await assertRejects(
      () => caller.request(CheckStock, { sku: "c" }),
      PendingLimitError,
      "maxPending 2",
    );
    release.resolve();
    assertEquals(await Promise.all([first, second]), [7, 7]);
    assertEquals(await caller.request(CheckStock, { sku: "d" }), 7);
    assertStrictEquals(caller.pending, 0);
  });

  test("a sendOnly endpoint answers but rejects request() and opens no inbox", async (fx) => {
    const spied = spy(fx.caller);
    await using sendOnly = new Endpoint(spied.transport, { sendOnly: true });
    await using caller = new Endpoint(fx.responder);
    sendOnly.handle(CheckStock, () => 9);
    await assertRejects(
      () => sendOnly.request(CheckStock, { sku: "x" }),
      TypeError,
      "a sendOnly endpoint cannot wait for replies",
    );
    assertEquals(spied.published, []);
    assertEquals(spied.subscribed.map((s) => s.subject), ["stock.check"]);
    await fx.ready();
    assertEquals(await caller.request(CheckStock, { sku: "x" }), 9);
  });

  test("handlers join a queue group by default: one reply per request", async (fx) => {
    await using a = new Endpoint(fx.responder);
    await using b = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    let calls = 0;
    let late = 0;
    caller.addEventListener("late-reply", () => late++);
    a.handle(CheckStock, () => (calls++, 1));
    b.handle(CheckStock, () => (calls++, 2));
    await fx.ready();
    for (let i = 0; i < 20; i++) await caller.request(CheckStock, { sku: "x" });
    assertEquals(calls, 20);
    assertEquals(late, 0);
  });

  test("only the first reply settles; the second is a late-reply event, int dropped quietly", async (fx) => {
    await using a = new Endpoint(fx.responder);
    await using b = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    const secondAnswered = Promise.withResolvers<void>();
    let answered = 0;
    const answer = (n: number) => () => {
      if (++answered === 2) secondAnswered.resolve();
      return n;
    };
    a.handle(CheckStock, answer(1), { queue: false });
    b.handle(CheckStock, answer(1), { queue: false });
    await fx.ready();
    let settles = 0;
    caller.addEventListener("settle", () => settles++);
    const late = nextEvent<LateReplyEvent>(caller, "late-reply");
    assertEquals(await caller.request(CheckStock, { sku: "x" }), 1);
    const event = await late;
    await secondAnswered.promise;
    assertEquals(event.subject, "stock.check");
    assertEquals(settles, 1);
    assertStrictEquals(caller.pending, 0);
  });

  test("onReply sees object replies after the callback, and late ones", async (fx) => {
    await using a = new Endpoint(fx.responder);
    await using b = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    a.handle(PlaceOrder, () => ({ orderId: "from-a", eta: 1 }), { queue: false });
    b.handle(PlaceOrder, () => ({ orderId: "from-b", eta: 2 }), { queue: false });
    await fx.ready();
    const seen: { orderId: string; late: boolean; resolved: boolean }[] = [];
    let resolved = false;
    const bothSeen = Promise.withResolvers<void>();
    using _onReply = caller.onReply(PlaceOrder, (reply, { late }) => {
      seen.push({ orderId: reply.orderId, late, resolved });
      if (seen.length === 2) bothSeen.resolve();
    });
    const reply = await caller.request(PlaceOrder, { sku: "x", qty: 1 });
    resolved = true;
    await bothSeen.promise;
    // The caller's continuation ran first: onReply runs after the callback.
    assertEquals(seen[0], { orderId: reply.orderId, late: false, resolved: true });
    assertEquals(seen[1]!.late, true);
    assert(seen[1]!.orderId !== reply.orderId);
    // Int and enum contracts have reply handlers only on a transport that keeps replies.
    assertThrows(() => caller.onReply(CheckStock, () => {}), TypeError, "object replies only");
  });

  test("onReply sees the reply even if the caller closes the endpoint right after its await", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    responder.handle(PlaceOrder, () => ({ orderId: "o-1", eta: 1 }));
    await fx.ready();
    const seen: string[] = [];
    {
      await using caller = new Endpoint(fx.caller);
      caller.onReply(PlaceOrder, (reply) => void seen.push(reply.orderId));
      await caller.request(PlaceOrder, { sku: "x", qty: 1 });
    } // disposed: close() runs before the handlers' microtask
    await new Promise((resolve) => setTimeout(resolve, 0)); // every microtask has run
    assertEquals(seen, ["o-1"]);
  });

  test("a responder that hangs past the timeout: TimeoutError, then its reply is a late-reply", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    const release = Promise.withResolvers<void>();
    responder.handle(CheckStock, async () => {
      await release.promise; // ignores ctx.signal
      return 8;
    });
    await fx.ready();
    await assertRejects(
      () => caller.request(CheckStock, { sku: "x" }, { timeout: 30 }),
      TimeoutError,
    );
    const late = nextEvent<LateReplyEvent>(caller, "late-reply");
    release.resolve();
    assertEquals((await late).subject, "stock.check");
    assertEquals(await caller.request(CheckStock, { sku: "y" }), 8, "and the endpoint goes on");
    assertStrictEquals(caller.pending, 0);
  });

  test("a reply sent again to a used token is a late-reply, never delivered", async (fx) => {
    const spied = spy(fx.caller);
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(spied.transport);
    let n = 0;
    responder.handle(CheckStock, () => ++n);
    await fx.ready();
    assertEquals(await caller.request(CheckStock, { sku: "x" }), 1);
    const used = spied.published[0]!.reply!;
    const late = nextEvent<LateReplyEvent>(caller, "late-reply");
    fx.responder.publish(used, bytes("99"), { headers: { [KIND_HEADER]: "int" } });
    assertEquals((await late).subject, "stock.check");
    assertEquals(await caller.request(CheckStock, { sku: "x" }), 2);
  });

  test("a reply to a token the endpoint never had is a late-reply with no subject", async (fx) => {
    const spied = spy(fx.caller);
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(spied.transport);
    responder.handle(CheckStock, () => 1);
    await fx.ready();
    await caller.request(CheckStock, { sku: "x" });
    const reply = spied.published[0]!.reply!;
    const forged = `${reply.slice(0, reply.lastIndexOf("."))}.${crypto.randomUUID()}`;
    const late = nextEvent<LateReplyEvent>(caller, "late-reply");
    fx.responder.publish(forged, bytes("666"), { headers: { [KIND_HEADER]: "int" } });
    const event = await late;
    assertEquals(event.subject, undefined);
    assertStrictEquals(caller.pending, 0);
  });

  test("request and settle events carry subject, id, outcome and duration", async (fx) => {
    await using responder = new Endpoint(fx.responder);
    await using caller = new Endpoint(fx.caller);
    responder.handle(CheckStock, () => 3);
    await fx.ready();
    const requested = nextEvent<RequestEvent>(caller, "request");
    const settled = nextEvent<SettleEvent>(caller, "settle");
    await caller.request(CheckStock, { sku: "x" }, { timeout: 5_000 });
    const [request, settle] = [await requested, await settled];
    assertEquals([request.subject, request.timeout], ["stock.check", 5_000]);
    assertEquals([settle.subject, settle.id, settle.outcome], ["stock.check", request.id, "reply"]);
    assert(settle.duration >= 0 && settle.error === undefined);
  });

  test("bad arguments are TypeError or RangeError and nothing is published", async (fx) => {
    const spied = spy(fx.caller);
    await using caller = new Endpoint(spied.transport);
    for (const timeout of [0, -1, Number.NaN, Infinity, "5" as unknown as number]) {
      await assertRejects(() => caller.request(CheckStock, { sku: "x" }, { timeout }), RangeError);
    }
    // @ts-expect-error: not a contract
    await assertRejects(() => caller.request({}, {}), TypeError, "defineRequest");
    // A contract copied with a subject defineRequest would have refused.
    for (const subject of ["stock check", "stock.*", "stock.>", "", "a..b"]) {
      const forged = { ...CheckStock, subject };
      await assertRejects(
        () => caller.request(forged, { sku: "x" }),
        TypeError,
        "is not a NATS subject",
      );
      assertThrows(() => caller.handle(forged, () => 1), TypeError, "is not a NATS subject");
    }
    assertEquals(spied.published, []);
    assertEquals(spied.subscribed, []);
    assertStrictEquals(caller.pending, 0);
  });

  test("a closed connection is a DisconnectedError: in flight, at once after close, and after", async (fx) => {
    await using caller = new Endpoint(fx.caller);
    await using responder = new Endpoint(fx.responder);
    responder.handle(CheckStock, () => new Promise<number>(() => {}));
    await fx.ready();
    const settled = nextEvent<SettleEvent>(caller, "settle");
    const sent = nextEvent(caller, "request");
    const inFlight = caller.request(CheckStock, { sku: "x" }, { timeout: 10_000 }).catch((e) => e);
    await sent;
    const closing = fx.closeCaller();
    // Sent while the connection closes, before its status reaches the endpoint.
    const during = await caller.request(CheckStock, { sku: "y" }).catch((e) => e);
    await closing;
    const error = await inFlight;
    assertInstanceOf(error, DisconnectedError);
    assertEquals([error.subject, error.timeout], ["stock.check", 10_000]);
    assertEquals((await settled).outcome, "disconnected");
    assertInstanceOf(during, DisconnectedError);
    const after = await caller.request(CheckStock, { sku: "z" }).catch((e) => e);
    assertInstanceOf(after, DisconnectedError);
    assertMatch(after.message, /closed/);
    assertStrictEquals(caller.pending, 0);
  });

  test("handle() is ready once the server has it: a caller right after never meets no responders", async (fx) => {
    await using caller = new Endpoint(fx.caller);
    await using responder = new Endpoint(fx.responder);
    await fx.ready(); // the caller's inbox is live
    for (let i = 0; i < 20; i++) {
      const Echo = defineRequest({
        subject: `ready.echo.${i}`,
        request: v.number(),
        response: int(),
      });
      await responder.handle(Echo, (n) => n + i).ready;
      assertEquals(await caller.request(Echo, 1), 1 + i);
    }
    // Every registration has one; onReply's is live at once.
    await caller.onReply(PlaceOrder, () => {}).ready;
    assertStrictEquals(caller.pending, 0);
  });

  test("bad endpoint options are RangeError or TypeError", (fx) => {
    for (const timeout of [0, -5, Number.NaN, Infinity, 2 ** 31]) {
      assertThrows(() => new Endpoint(fx.caller, { timeout }), RangeError, "timeout");
    }
    for (const maxPending of [0, -1, Number.NaN]) {
      assertThrows(() => new Endpoint(fx.caller, { maxPending }), RangeError, "maxPending");
    }
    for (const inboxPrefix of ["", "a b", "_INBOX.*", "_INBOX.>", "a..b", ".a", "a."]) {
      assertThrows(() => new Endpoint(fx.caller, { inboxPrefix }), TypeError, "inboxPrefix");
    }
    // @ts-expect-error: not a transport
    assertThrows(() => new Endpoint({}), TypeError, "needs a transport");
    return Promise.resolve();
  });
}

/** A handler's promise that never settles but rejects with the signal's reason on abort. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

function rawRequest(fx: Fixture, subject: string, body: string) {
  const inbox = `_INBOX.raw${crypto.randomUUID().replaceAll("-", "")}`;
  return new Promise<import("../../mod.ts").TransportMessage>((resolve) => {
    const sub = fx.caller.subscribe(inbox, (message) => {
      sub.unsubscribe();
      resolve(message);
    });
    fx.caller.publish(subject, bytes(body), { reply: inbox });
  });
}

function rawResponder(
  fx: Fixture,
  subject: string,
  body: string,
  headers: Record<string, string>,
): Disposable {
  const sub = fx.responder.subscribe(subject, (message) => {
    fx.responder.publish(message.reply, bytes(body), { headers });
  });
  return { [Symbol.dispose]: () => sub.unsubscribe() };
}
