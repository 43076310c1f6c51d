/**
 * Scatter-gather (`requestMany`) over a real nats-server with several
 * responders without a queue group, and in memory: every way a gather ends,
 * mixed replies, leaving early, aborts, close(), and the options' checks.
 */

import * as v from "valibot";
import { assert, assertEquals, assertRejects, assertStrictEquals } from "@std/assert";
import {
  ClosedError,
  defineRequest,
  Endpoint,
  int,
  InvalidReplyError,
  InvalidRequestError,
  NoRespondersError,
  object,
  PendingLimitError,
  RemoteError,
  ReplyError,
  type SettleEvent,
  type Transport,
} from "../mod.ts";
import { connectionFixture, type Fixture, memoryFixture, natsFixture } from "./helpers/fixture.ts";
import { connectWs } from "./helpers/connect.ts";
import { waitUntil } from "./helpers/wait.ts";
import { nextConnection } from "./helpers/spy.ts";

const GetQuote = defineRequest({
  subject: "quotes.get",
  request: v.object({ sku: v.string() }),
  response: object(v.object({ carrier: v.string(), price: v.number() })),
});
const Count = defineRequest({ subject: "gather.count", request: v.number(), response: int() });

type Quote = { carrier: string; price: number };

/** Responder endpoints on the fixture's responder side, every one answering (no queue group). */
function carriers(fx: Fixture, answers: ((sku: string) => Quote | Promise<Quote>)[]): Endpoint[] {
  return answers.map((answer) => {
    const endpoint = new Endpoint(fx.responder, { sendOnly: true });
    endpoint.handle(GetQuote, ({ sku }) => answer(sku), { queue: false });
    return endpoint;
  });
}

/** Collects a gather's results and its settle event. */
async function gather<T>(
  endpoint: Endpoint,
  run: () => AsyncIterable<PromiseSettledResult<T>>,
): Promise<{ results: PromiseSettledResult<T>[]; settle: SettleEvent }> {
  const settles: SettleEvent[] = [];
  const listener = (event: SettleEvent) => settles.push(event);
  endpoint.addEventListener("settle", listener);
  try {
    const results = await Array.fromAsync(run());
    assertEquals(settles.length, 1, "one settle event per gather");
    return { results, settle: settles[0]! };
  } finally {
    endpoint.removeEventListener("settle", listener);
  }
}

const values = <T>(results: PromiseSettledResult<T>[]) =>
  results.filter((r) => r.status === "fulfilled").map((r) =>
    (r as PromiseFulfilledResult<T>).value
  );

for (const makeFixture of [natsFixture, memoryFixture]) {
  const name = makeFixture === natsFixture ? "nats" : "memory";
  const test = (what: string, fn: (fx: Fixture) => Promise<void>) =>
    Deno.test(`gather (${name}) - ${what}`, async () => {
      await using fx = await makeFixture();
      await fn(fx);
    });

  test("max ends it after that many replies, idle after a quiet gap; values are typed", async (fx) => {
    const responders = carriers(fx, [
      () => ({ carrier: "A", price: 12 }),
      () => ({ carrier: "B", price: 9 }),
      () => ({ carrier: "C", price: 11 }),
    ]);
    try {
      await using caller = new Endpoint(fx.caller);
      await fx.ready();
      const byMax = await gather(
        caller,
        () => caller.requestMany(GetQuote, { sku: "A-1" }, { max: 2 }),
      );
      assertEquals(byMax.results.length, 2);
      assertEquals([byMax.settle.outcome, byMax.settle.end, byMax.settle.replies], [
        "reply",
        "max",
        2,
      ]);
      const byIdle = await gather(
        caller,
        () => caller.requestMany(GetQuote, { sku: "A-1" }, { idle: 300 }),
      );
      const prices: number[] = values(byIdle.results).map((quote) => quote.price);
      assertEquals(prices.sort(), [11, 12, 9]);
      assertEquals([byIdle.settle.end, byIdle.settle.replies], ["idle", 3]);
      assertStrictEquals(caller.pending, 0);
    } finally {
      for (const r of responders) await r.close();
    }
  });

  test("the timeout ends it; silent responders give an empty result, not an error", async (fx) => {
    const responders = carriers(fx, [
      () => ({ carrier: "A", price: 1 }),
      (sku) => sku === "slow" ? new Promise<Quote>(() => {}) : { carrier: "B", price: 2 },
    ]);
    try {
      await using caller = new Endpoint(fx.caller, { timeout: 300 });
      await fx.ready();
      const some = await gather(caller, () => caller.requestMany(GetQuote, { sku: "x" }));
      assertEquals(some.results.length, 2);
      assertEquals([some.settle.outcome, some.settle.end], ["reply", "timeout"]);
      for (const r of responders) {
        r.handle(Count, () => new Promise<number>(() => {}), { queue: false });
      }
      await fx.ready();
      const none = await gather(caller, () => caller.requestMany(Count, 1, { timeout: 200 }));
      assertEquals(none.results, []);
      assertEquals([none.settle.outcome, none.settle.end, none.settle.replies], [
        "reply",
        "timeout",
        0,
      ]);
      assertStrictEquals(caller.pending, 0);
    } finally {
      for (const r of responders) await r.close();
    }
  });

  test("mixed replies: valid, an error and an invalid one each give a result, in arrival order", async (fx) => {
    const responders = carriers(fx, [
      () => ({ carrier: "A", price: 5 }),
      () => {
        throw new ReplyError(409, "no capacity");
      },
    ]);
    // A plain NATS responder whose reply fails the contract.
    const raw = fx.responder.subscribe(GetQuote.subject, (message) => {
      fx.responder.publish(message.reply, new TextEncoder().encode('{"carrier":1}'));
    });
    try {
      await raw.ready;
      await using caller = new Endpoint(fx.caller);
      await fx.ready();
      const { results, settle } = await gather(
        caller,
        () => caller.requestMany(GetQuote, { sku: "A-1" }, { max: 3 }),
      );
      assertEquals(results.length, 3);
      assertEquals(values(results), [{ carrier: "A", price: 5 }]);
      const reasons = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      assertEquals(reasons.length, 2);
      const remote = reasons.find((r) => r instanceof RemoteError) as RemoteError;
      assertEquals([remote.code, remote.description], [409, "no capacity"]);
      assert(reasons.some((r) => r instanceof InvalidReplyError));
      assertEquals([settle.end, settle.replies], ["max", 3]);
    } finally {
      raw.unsubscribe();
      for (const r of responders) await r.close();
    }
  });

  test("sentinel: an empty reply ends it and is not yielded", async (fx) => {
    // A plain NATS responder streaming two replies and an end-of-stream marker.
    const stream = fx.responder.subscribe(Count.subject, (message) => {
      for (const n of ["1", "2", ""]) {
        fx.responder.publish(message.reply, new TextEncoder().encode(n));
      }
    });
    try {
      await stream.ready;
      await using caller = new Endpoint(fx.caller);
      await fx.ready();
      const { results, settle } = await gather(
        caller,
        () => caller.requestMany(Count, 0, { sentinel: true }),
      );
      assertEquals(values(results), [1, 2]);
      assertEquals([settle.end, settle.replies], ["sentinel", 2]);
    } finally {
      stream.unsubscribe();
    }
  });

  test("no responders rejects with NoRespondersError at once", async (fx) => {
    await using caller = new Endpoint(fx.caller, { timeout: 30_000 });
    await fx.ready();
    const settled: SettleEvent[] = [];
    caller.addEventListener("settle", (e) => settled.push(e));
    await assertRejects(
      () => Array.fromAsync(caller.requestMany(Count, 1, { idle: 10_000 })),
      NoRespondersError,
    );
    assertEquals([settled[0]?.outcome, settled[0]?.end, settled[0]?.replies], [
      "no-responders",
      "no-responders",
      0,
    ]);
    assertStrictEquals(caller.pending, 0);
  });

  test("leaving the loop early releases everything at once; later replies are late", async (fx) => {
    const responders = carriers(fx, [
      () => ({ carrier: "A", price: 1 }),
      () =>
        new Promise<Quote>((resolve) => setTimeout(() => resolve({ carrier: "B", price: 2 }), 50)),
    ]);
    try {
      await using caller = new Endpoint(fx.caller, { timeout: 30_000 });
      await fx.ready();
      let late = 0;
      caller.addEventListener("late-reply", () => late++);
      const ends: (string | undefined)[] = [];
      caller.addEventListener("settle", (e) => ends.push(e.end));
      for await (const r of caller.requestMany(GetQuote, { sku: "x" }, { idle: 10_000 })) {
        assertEquals(r.status, "fulfilled");
        assertStrictEquals(caller.pending, 1, "counted while it gathers");
        break;
      }
      assertStrictEquals(caller.pending, 0);
      assertEquals(ends, ["return"]);
      // The other responder still answers: a late reply, not a second result.
      await caller.request(GetQuote, { sku: "after" }).catch(() => {});
      // A throw inside the loop releases it too.
      await assertRejects(
        async () => {
          for await (const _ of caller.requestMany(GetQuote, { sku: "y" })) throw new Error("stop");
        },
        Error,
        "stop",
      );
      assertStrictEquals(caller.pending, 0);
      // The slower responder's answers to both gathers and to the request come late.
      await waitUntil("each slower reply to arrive late", () => Promise.resolve(late >= 3));
      assertEquals(late, 3, "each slower reply arrived late");
    } finally {
      for (const r of responders) await r.close();
    }
  });

  test("abort before sends nothing; abort during rejects with the signal's reason", async (fx) => {
    const arrived = Promise.withResolvers<void>();
    const responders = carriers(fx, [(sku) => {
      if (sku !== "hang") return { carrier: "A", price: 1 };
      arrived.resolve();
      return new Promise<Quote>(() => {});
    }]);
    try {
      await using caller = new Endpoint(fx.caller);
      await fx.ready();
      let sent = 0;
      caller.addEventListener("request", () => sent++);
      const before = new AbortController();
      before.abort(new Error("cancelled"));
      await assertRejects(
        () =>
          Array.fromAsync(caller.requestMany(GetQuote, { sku: "x" }, { signal: before.signal })),
        Error,
        "cancelled",
      );
      assertEquals(sent, 0);
      const during = new AbortController();
      const iterator = caller.requestMany(GetQuote, { sku: "hang" }, { signal: during.signal });
      const first = iterator.next();
      await arrived.promise; // the request is at the responder
      during.abort(new Error("user left"));
      await assertRejects(() => first, Error, "user left");
      assertEquals(await iterator.next(), { value: undefined, done: true });
      assertStrictEquals(caller.pending, 0);
    } finally {
      for (const r of responders) await r.close();
    }
  });

  test("close() during a gather rejects it with ClosedError", async (fx) => {
    const arrived = Promise.withResolvers<void>();
    const responders = carriers(fx, [() => {
      arrived.resolve();
      return new Promise<Quote>(() => {});
    }]);
    try {
      const caller = new Endpoint(fx.caller);
      await fx.ready();
      const iterator = caller.requestMany(GetQuote, { sku: "x" });
      const first = iterator.next();
      await arrived.promise; // the request is at the responder
      await caller.close();
      await assertRejects(() => first, ClosedError);
      assertStrictEquals(caller.pending, 0);
      await assertRejects(() => caller.requestMany(GetQuote, { sku: "x" }).next(), ClosedError);
    } finally {
      for (const r of responders) await r.close();
    }
  });
}

Deno.test("gather - the body and options are checked before anything is sent; maxPending counts a gather", async () => {
  await using fx = await memoryFixture();
  await using caller = new Endpoint(fx.caller, { maxPending: 1 });
  let sent = 0;
  caller.addEventListener("request", () => sent++);
  await assertRejects(
    () => caller.requestMany(Count, "one" as unknown as number).next(),
    InvalidRequestError,
  );
  await assertRejects(() => caller.requestMany(Count, 1, { max: 0 }).next(), RangeError, "max");
  await assertRejects(() => caller.requestMany(Count, 1, { max: 1.5 }).next(), RangeError, "max");
  await assertRejects(() => caller.requestMany(Count, 1, { idle: -1 }).next(), RangeError, "idle");
  await assertRejects(
    () => caller.requestMany(Count, 1, { sentinel: "yes" as unknown as boolean }).next(),
    TypeError,
    "sentinel",
  );
  await assertRejects(
    () => caller.requestMany({} as typeof Count, 1).next(),
    TypeError,
    "requestMany() needs a contract",
  );
  assertEquals(sent, 0);
  // Nothing is sent before the loop starts.
  const unused = caller.requestMany(Count, 1);
  assertEquals([sent, caller.pending], [0, 0]);
  await unused.return!();
  // A gather waiting counts against maxPending.
  await using responder = new Endpoint(fx.responder);
  responder.handle(Count, () => new Promise<number>(() => {}), { queue: false });
  const open = caller.requestMany(Count, 1, { timeout: 5_000 });
  const first = open.next();
  assertEquals(caller.pending, 1);
  await assertRejects(() => caller.request(Count, 2), PendingLimitError);
  await open.return!();
  assertEquals(await first, { value: undefined, done: true });
  assertEquals(caller.pending, 0);
});

Deno.test("gather - a gather outlives a reconnect: replies sent after it arrive", async () => {
  const options = { reconnectTimeWait: 50, maxReconnectAttempts: -1 } as const;
  await using fx = await connectionFixture("nats", (server) => connectWs(server, options));
  const release = Promise.withResolvers<void>();
  const asked = Promise.withResolvers<void>();
  let served = 0;
  const responders = [1, 2].map((add) => {
    const endpoint = new Endpoint(fx.responder, { sendOnly: true });
    endpoint.handle(Count, async (n) => {
      if (++served === 2) asked.resolve();
      await release.promise;
      return n + add;
    }, { queue: false });
    return endpoint;
  });
  try {
    await using caller = new Endpoint(fx.caller, { timeout: 30_000 });
    await fx.ready();
    const reconnected = nextConnection(caller, "reconnect");
    const results = Array.fromAsync(caller.requestMany(Count, 1, { max: 2 }));
    results.catch(() => {}); // awaited below; a failure before that is reported as itself
    // Both responders have the request; their answers go out only after the reconnect.
    await asked.promise;
    await fx.server.kill();
    await fx.server.restart();
    await reconnected;
    // Both connections are back once a round trip on each succeeds.
    await waitUntil("the reconnects", () => fx.ready().then(() => true, () => false));
    release.resolve();
    const settled = await results;
    assertEquals(settled.map((r) => r.status === "fulfilled" ? r.value : r.reason).sort(), [2, 3]);
    assertStrictEquals(caller.pending, 0);
  } finally {
    release.resolve();
    for (const r of responders) await r.close();
  }
});

Deno.test("gather - replies of plain NATS responders that validate are accepted; onReply handlers see each", async () => {
  await using fx = await memoryFixture();
  const transport: Transport = fx.responder;
  const subs = ["A", "B"].map((carrier) =>
    transport.subscribe(GetQuote.subject, (message) => {
      transport.publish(
        message.reply,
        new TextEncoder().encode(JSON.stringify({ carrier, price: 3 })),
      );
    })
  );
  try {
    await using caller = new Endpoint(fx.caller);
    const seen: string[] = [];
    caller.onReply(
      GetQuote,
      (quote, { late }) => seen.push(`${quote.carrier}${late ? " late" : ""}`),
    );
    const results = await Array.fromAsync(caller.requestMany(GetQuote, { sku: "x" }, { max: 2 }));
    assertEquals(values(results).map((q) => q.carrier).sort(), ["A", "B"]);
    await Promise.resolve();
    assertEquals(seen.sort(), ["A", "B"]);
    assertEquals(results.map((r) => r.status), ["fulfilled", "fulfilled"]);
  } finally {
    for (const sub of subs) sub.unsubscribe();
  }
});

Deno.test("gather - an abort or close() from a request listener, while it is being sent, ends it at once", async () => {
  await using fx = await memoryFixture();
  await using responder = new Endpoint(fx.responder);
  responder.handle(Count, () => new Promise<number>(() => {}), { queue: false });
  await using caller = new Endpoint(fx.caller);
  const settles: SettleEvent[] = [];
  caller.addEventListener("settle", (e) => settles.push(e));
  const controller = new AbortController();
  const abort = () => controller.abort(new Error("left"));
  caller.addEventListener("request", abort, { once: true });
  await assertRejects(
    () => caller.requestMany(Count, 1, { signal: controller.signal }).next(),
    Error,
    "left",
  );
  assertEquals([settles.length, settles[0]?.end, caller.pending], [1, "abort", 0]);
  caller.addEventListener("request", () => void caller.close(), { once: true });
  await assertRejects(() => caller.requestMany(Count, 1).next(), ClosedError);
  assertEquals([settles.length, settles[1]?.end, caller.pending], [2, "closed", 0]);
});
