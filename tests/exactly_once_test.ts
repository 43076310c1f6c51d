/**
 * Exactly-once settlement, property-tested: seeded random schedules mix
 * replies, duplicate replies, replies from several responders (three raw
 * subscribers without a queue group on one subject), invalid replies (wrong
 * kind, not an int, not JSON), error replies (`Nats-Service-Error-Code`),
 * requests nobody listens to, slow replies, silence, aborts (before, during,
 * after the reply), timeouts and close(), over NATS and in memory.
 *
 * Every request's schedule says which outcomes it allows, and the set is as
 * small as the schedule makes honest: a plain request whose reply (or error,
 * or no-responders status) comes at once waits 5 s, which the test never
 * reaches, so only that exact outcome passes, never a timeout; a slow reply
 * well inside its timeout must be the reply, one well past it must be the
 * timeout, and only a delay close to the timeout allows either. A resolved
 * value must be the request's own, an error reply must carry its own code,
 * description and data.
 *
 * Whatever the schedule: every promise settles once, and `settle` fires once
 * per published request with the outcome its promise got; once the
 * responders have sent everything, every reply that reached the endpoint
 * either settled its request or is a `late-reply` event (replies sent ==
 * settled by a reply + late replies, per request; only a close() may drop
 * some); `pending` ends at 0; the sanitizers see no timer or subscription
 * left. The seed is printed on failure: SEED=<n> reruns it.
 */

import * as v from "valibot";
import { assert, assertEquals, assertStrictEquals, fail } from "@std/assert";
import {
  ClosedError,
  defineRequest,
  Endpoint,
  ERROR_CODE_HEADER,
  ERROR_HEADER,
  int,
  InvalidReplyError,
  KIND_HEADER,
  NoRespondersError,
  type Outcome,
  RemoteError,
  type RequestEvent,
  type SettleEvent,
  TimeoutError,
} from "../mod.ts";
import { type Fixture, memoryFixture, natsFixture } from "./helpers/fixture.ts";
import { assertReached, pick, prng, SEED, seeded } from "./helpers/prng.ts";
import { type Answer, RawResponders } from "./helpers/raw_responders.ts";

const body = v.object({ i: v.number(), mode: v.string(), delay: v.number() });
/** Answered by one raw responder. */
const Echo = defineRequest({ subject: "prop.echo", request: body, response: int() });
/** Answered by three raw responders, no queue group: every one replies. */
const Multi = defineRequest({ subject: "prop.multi", request: body, response: int() });
/** Nobody subscribes to it: no responders, at once. */
const Nobody = defineRequest({ subject: "prop.nobody", request: body, response: int() });

type Mode =
  | "reply"
  | "dup"
  | "multi"
  | "invalid"
  | "remote-error"
  | "no-responders"
  | "slow"
  | "never";
type Caller = "plain" | "pre-abort" | "abort" | "close";

const MODES: readonly Mode[] = [
  "reply",
  "reply",
  "dup",
  "multi",
  "invalid",
  "remote-error",
  "no-responders",
  "slow",
  "slow",
  "never",
];
/** What a request settles with when its first reply (or status) wins; "reply" means its own value. */
const ARRIVAL: Record<Mode, Outcome | undefined> = {
  reply: "reply",
  dup: "reply",
  multi: "reply",
  invalid: "invalid-reply",
  "remote-error": "remote-error",
  "no-responders": "no-responders",
  slow: "reply",
  never: undefined,
};
/** Outcomes that a message on the inbox settled. */
const BY_MESSAGE: ReadonlySet<Outcome> = new Set([
  "reply",
  "invalid-reply",
  "remote-error",
  "no-responders",
]);
/** The timeout of requests answered at once: never reached by the test. */
const LONG = 5_000;
/** How far inside its timeout a slow reply must come to be the only outcome allowed: room for a
 * stalled event loop on a busy machine; it costs no time, the reply cancels the timeout. */
const IN_TIME = 1_000;
/** How far one timer must beat another for the other's outcome to be ruled out. */
const MARGIN = 50;

/** The error code an error reply carries for request i. */
const codeOf = (i: number) => 400 + (i % 100);

/** One request of a schedule, and the outcomes it allows. */
interface Plan {
  readonly i: number;
  readonly mode: Mode;
  readonly how: Caller;
  readonly delay: number;
  readonly timeout: number;
  readonly abortAt: number;
  readonly allowed: ReadonlySet<Outcome>;
  /** Its reply token, from the `request` event; unset when it was never published. */
  id?: string;
  /** What its promise settled with. */
  got?: Outcome;
}

function plan(random: () => number, i: number, closing: boolean): Plan {
  const mode = pick(random, MODES);
  let how = pick<Caller>(random, ["plain", "plain", "pre-abort", "abort"]);
  if (closing && how === "plain") how = "close";
  let delay = Math.floor(random() * 60);
  let timeout = LONG;
  const abortAt = Math.floor(random() * 60);
  let allowed = new Set<Outcome>();
  if (mode === "never") {
    timeout = 20 + Math.floor(random() * 80);
    allowed.add("timeout");
  } else if (mode === "slow") {
    const regime = pick(random, ["in time", "close", "late"] as const);
    if (regime === "in time") {
      timeout = delay + IN_TIME + Math.floor(random() * 100);
      allowed.add("reply");
    } else if (regime === "close") {
      timeout = Math.max(1, delay - 30 + Math.floor(random() * 60));
      allowed.add("reply").add("timeout");
    } else {
      // The reply's timer starts after the request is sent and ends MARGIN after its deadline.
      delay = 60 + Math.floor(random() * 60);
      timeout = Math.max(1, delay - MARGIN - Math.floor(random() * 40));
      allowed.add("timeout");
    }
  } else {
    allowed.add(ARRIVAL[mode]!);
  }
  if (how === "pre-abort") allowed = new Set(["abort"]);
  if (how === "abort") {
    allowed.add("abort");
    // The abort timer starts before the request and ends MARGIN before the slow reply's.
    if (mode === "slow" && abortAt + MARGIN <= delay) allowed.delete("reply");
  }
  if (closing && how !== "pre-abort") allowed.add("closed");
  return { i, mode, how, delay, timeout, abortAt, allowed };
}

const contractOf = (mode: Mode) =>
  mode === "multi" ? Multi : mode === "no-responders" ? Nobody : Echo;

/** Totals over a run, for the accounting and for the summary on failure. */
interface Totals {
  requests: number;
  /** Replies the responders sent, plus no-responders statuses. */
  sent: number;
  /** Requests settled by a message: reply, invalid reply, error reply, no responders. */
  byMessage: number;
  late: number;
  /** Replies that reached no endpoint because it was closed. */
  dropped: number;
}

async function run(
  fx: Fixture,
  seed: number,
  batches: number,
  perBatch: number,
): Promise<{ seen: Map<string, number>; totals: Totals }> {
  const random = prng(seed);
  const seen = new Map<string, number>();
  const count = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
  const totals: Totals = { requests: 0, sent: 0, byMessage: 0, late: 0, dropped: 0 };
  using responders = new RawResponders(fx);
  const { sent } = responders;
  const later = (ms: number, fn: () => void) => responders.later(ms, fn);
  /** A raw responder, the k-th on its subject, that answers as the schedule says. */
  const answer = (k: number, { body, send, after }: Answer) => {
    const { i, mode, delay } = body;
    const reply = () => send(String(i), { [KIND_HEADER]: "int" });
    if (mode === "reply") reply();
    else if (mode === "dup") {
      reply();
      reply();
      if (i % 2 === 0) reply();
    } else if (mode === "multi") {
      // Two answer at once, the third after the delay: the first settles, the others are late.
      if (k === 3) after(delay, reply);
      else reply();
    } else if (mode === "invalid") {
      if (i % 3 === 0) send(String(i), { [KIND_HEADER]: "enum" });
      else if (i % 3 === 1) send(`${i}.5`, { [KIND_HEADER]: "int" });
      else send(`not ${i}`, {});
      // A valid reply after an invalid one is late: the first reply settles.
      if (i % 2 === 0) reply();
    } else if (mode === "remote-error") {
      send(JSON.stringify({ i }), {
        [ERROR_CODE_HEADER]: String(codeOf(i)),
        [ERROR_HEADER]: `failed ${i}`,
      });
      if (i % 2 === 0) reply();
    } else if (mode === "slow") after(delay, reply);
  };
  responders.add(Echo.subject, 1, answer);
  for (const k of [1, 2, 3]) responders.add(Multi.subject, k, answer);

  let expectedReceipts = 0;
  await fx.ready();
  for (let batch = 0; batch < batches; batch++) {
    await using caller = new Endpoint(fx.caller, { maxPending: perBatch + 1 });
    const published = new Map<string, string>(); // id -> subject
    const settles = new Map<string, Outcome[]>();
    const late = new Map<string, number>();
    let lastId: string | undefined;
    caller.addEventListener("request", (event: RequestEvent) => {
      lastId = event.id;
      published.set(event.id, event.subject);
      expectedReceipts += event.subject === Multi.subject
        ? 3
        : event.subject === Echo.subject
        ? 1
        : 0;
    });
    caller.addEventListener("settle", (event: SettleEvent) => {
      settles.set(event.id, [...settles.get(event.id) ?? [], event.outcome]);
      count(event.outcome);
    });
    caller.addEventListener("late-reply", (event) => {
      late.set(event.id, (late.get(event.id) ?? 0) + 1);
      count("late-reply");
    });
    // Every third batch is closed while its requests wait.
    const closing = batch % 3 === 1;
    const closeAt = closing ? 10 + Math.floor(random() * 50) : -1;
    const plans: Plan[] = [];
    const runs: Promise<void>[] = [];
    for (let n = 0; n < perBatch; n++) {
      const p = plan(random, batch * perBatch + n, closing);
      plans.push(p);
      const { i, mode, how, delay, timeout, abortAt, allowed } = p;
      const what =
        `request ${i} (${mode}/${how}, delay ${delay}, timeout ${timeout}, abort ${abortAt})`;
      const controller = new AbortController();
      const reason = new Error(`abort ${i}`);
      if (how === "pre-abort") controller.abort(reason);
      if (how === "abort") later(abortAt, () => controller.abort(reason));
      lastId = undefined;
      const promise = caller.request(contractOf(mode), { i, mode, delay }, {
        timeout,
        signal: controller.signal,
      });
      if (lastId !== undefined) p.id = lastId;
      const got = (outcome: Outcome) => {
        p.got = outcome;
        if (!allowed.has(outcome)) {
          fail(`${what} settled with ${outcome}, allowed only ${[...allowed].join(", ")}`);
        }
      };
      runs.push(promise.then(
        (value) => {
          if (value !== i) fail(`${what} got the reply of ${value}`);
          got("reply");
        },
        (error) => {
          if (error === reason) got("abort");
          else if (error instanceof ClosedError) got("closed");
          else if (error instanceof TimeoutError) got("timeout");
          else if (error instanceof NoRespondersError) got("no-responders");
          else if (error instanceof InvalidReplyError) {
            assert(error.issues.length > 0, `${what}: an InvalidReplyError without issues`);
            got("invalid-reply");
          } else if (error instanceof RemoteError) {
            assertEquals(
              [error.code, error.description, error.data],
              [codeOf(i), `failed ${i}`, { i }],
              `${what} got another request's error reply`,
            );
            got("remote-error");
          } else fail(`${what} rejected with ${error}`);
        },
      ));
    }
    const closed = closing
      ? new Promise<void>((resolve) =>
        later(closeAt, () => {
          void caller.close();
          resolve();
        })
      )
      : undefined;
    await Promise.all(runs);
    await closed;
    assertStrictEquals(caller.pending, 0);
    await responders.drain(expectedReceipts);

    // Exactly once, with the outcome its promise got.
    assertEquals(settles.size, published.size, "one settle per published request");
    for (const p of plans) {
      if (p.how === "pre-abort") {
        assertStrictEquals(p.id, undefined, `request ${p.i} was published though aborted before`);
        continue;
      }
      assert(p.id !== undefined, `request ${p.i} (${p.mode}/${p.how}) was not published`);
      assertEquals(settles.get(p.id), [p.got!], `request ${p.i} (${p.mode}/${p.how}): settle`);
    }
    // Every reply that reached the endpoint settled its request or is a late reply.
    for (const id of late.keys()) {
      assert(published.has(id), `late reply for ${id}, which this endpoint never sent`);
    }
    for (const p of plans) {
      if (p.id === undefined) continue;
      const out = (sent.get(p.id) ?? 0) + (p.mode === "no-responders" ? 1 : 0);
      const byMessage = BY_MESSAGE.has(p.got!) ? 1 : 0;
      const came = byMessage + (late.get(p.id) ?? 0);
      const where = `request ${p.i} (${p.mode}/${p.how}, ${p.got}): ${out} replies sent, ` +
        `${byMessage} settled it, ${late.get(p.id) ?? 0} late`;
      if (closing) assert(came <= out, where);
      else assertStrictEquals(came, out, where);
      totals.sent += out;
      totals.byMessage += byMessage;
      totals.late += late.get(p.id) ?? 0;
      totals.dropped += out - came;
    }
    totals.requests += plans.length;
  }
  return { seen, totals };
}

for (
  const [name, makeFixture, batches, perBatch] of [
    ["memory", memoryFixture, 20, 200],
    ["nats", natsFixture, 8, 150],
  ] as const
) {
  Deno.test(`exactly once - random schedules settle once each, over ${name} (seed ${SEED})`, async () => {
    await using fx = await makeFixture();
    await seeded(async (seed) => {
      const { seen, totals } = await run(fx, seed, batches, perBatch);
      assertStrictEquals(totals.requests, batches * perBatch);
      assertStrictEquals(totals.sent, totals.byMessage + totals.late + totals.dropped);
      // The schedules did reach every outcome: the invariants were not checked vacuously.
      assertReached(seen, [
        "reply",
        "timeout",
        "abort",
        "closed",
        "no-responders",
        "invalid-reply",
        "remote-error",
        "late-reply",
      ]);
    });
  });
}
