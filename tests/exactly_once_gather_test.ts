/**
 * Exactly once for gathers, property-tested: seeded random schedules of
 * `requestMany` against three raw responders without a queue group (each
 * answering at once, after a delay, twice, with an error or an invalid reply,
 * or not at all), with random `max`, `idle` and timeouts, aborts before and
 * during, leaving the loop after the first result, and close(), over NATS
 * and in memory.
 *
 * Whatever the schedule: every published gather ends exactly once (one
 * `settle` event, and its iteration completes or rejects once, as the event
 * says); it yields no more results than replies it received, and no more than
 * `max`; each fulfilled value is its own and each error its own; once the
 * responders have sent everything, every reply to a gather was received by
 * it or is a `late-reply` event (only a close() may drop some); `pending` ends
 * at 0; the sanitizers see no timer or subscription left. SEED=<n> reruns a
 * failing schedule.
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
  RemoteError,
  type RequestEvent,
  type SettleEvent,
} from "../mod.ts";
import { type Fixture, memoryFixture, natsFixture } from "./helpers/fixture.ts";
import { assertReached, pick, prng, SEED, seeded } from "./helpers/prng.ts";
import { RawResponders } from "./helpers/raw_responders.ts";

const Gathered = defineRequest({
  subject: "prop.gather",
  request: v.object({ i: v.number(), mode: v.string(), delays: v.array(v.number()) }),
  response: int(),
});

type Mode = "all" | "mixed" | "slow" | "dup" | "some-silent" | "silent";
type How = "plain" | "pre-abort" | "abort" | "break";
const MODES: readonly Mode[] = [
  "all",
  "all",
  "mixed",
  "slow",
  "slow",
  "dup",
  "some-silent",
  "silent",
];
const codeOf = (i: number) => 400 + (i % 100);

interface GatherPlan {
  readonly i: number;
  readonly mode: Mode;
  readonly how: How;
  readonly delays: number[];
  readonly max: number | undefined;
  readonly idle: number | undefined;
  readonly timeout: number;
  readonly abortAt: number;
  id?: string;
  /** How the iteration ended: "done", or the rejection's kind. */
  ended?: string;
  yielded: number;
}

async function run(fx: Fixture, seed: number, batches: number, perBatch: number) {
  const random = prng(seed);
  const seen = new Map<string, number>();
  const count = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
  using responders = new RawResponders(fx);
  const { sent } = responders;
  const later = (ms: number, fn: () => void) => responders.later(ms, fn);
  for (const k of [1, 2, 3]) {
    responders.add(Gathered.subject, k, (k, { body: { i, mode, delays }, send, after }) => {
      const reply = () => send(String(i), { [KIND_HEADER]: "int" });
      if (mode === "all") reply();
      else if (mode === "mixed") {
        if (k === 1) reply();
        else if (k === 2) {
          send(JSON.stringify({ i }), {
            [ERROR_CODE_HEADER]: String(codeOf(i)),
            [ERROR_HEADER]: `failed ${i}`,
          });
        } else send(`not ${i}`, {});
      } else if (mode === "slow") after(delays[k - 1]!, reply);
      else if (mode === "dup") {
        reply();
        after(delays[k - 1]!, reply);
      } else if (mode === "some-silent" && k === 1) reply();
    });
  }

  let expected = 0;
  let gathers = 0;
  await fx.ready();
  for (let batch = 0; batch < batches; batch++) {
    await using caller = new Endpoint(fx.caller, { maxPending: perBatch + 1 });
    const settles = new Map<string, SettleEvent[]>();
    const late = new Map<string, number>();
    let lastId: string | undefined;
    caller.addEventListener("request", (event: RequestEvent) => {
      lastId = event.id;
      expected += 3;
    });
    caller.addEventListener("settle", (event) => {
      settles.set(event.id, [...settles.get(event.id) ?? [], event]);
      count(`${event.outcome}/${event.end}`);
    });
    caller.addEventListener("late-reply", (event) => {
      late.set(event.id, (late.get(event.id) ?? 0) + 1);
      count("late-reply");
    });
    const closing = batch % 3 === 2;
    const plans: GatherPlan[] = [];
    const runs: Promise<void>[] = [];
    for (let n = 0; n < perBatch; n++) {
      const i = batch * perBatch + n;
      const p: GatherPlan = {
        i,
        mode: pick(random, MODES),
        how: pick<How>(random, ["plain", "plain", "plain", "pre-abort", "abort", "break"]),
        delays: [0, 1, 2].map(() => Math.floor(random() * 80)),
        max: pick(random, [undefined, undefined, 1, 2, 3, 5]),
        idle: pick(random, [undefined, undefined, 15, 40, 80]),
        timeout: 60 + Math.floor(random() * 120),
        abortAt: Math.floor(random() * 80),
        yielded: 0,
      };
      plans.push(p);
      const controller = new AbortController();
      const reason = new Error(`abort ${i}`);
      if (p.how === "pre-abort") controller.abort(reason);
      if (p.how === "abort") later(p.abortAt, () => controller.abort(reason));
      const what = () => `gather ${i} (${JSON.stringify(p)})`;
      const iterator = caller.requestMany(
        Gathered,
        { i, mode: p.mode, delays: p.delays },
        {
          timeout: p.timeout,
          signal: controller.signal,
          ...(p.max === undefined ? {} : { max: p.max }),
          ...(p.idle === undefined ? {} : { idle: p.idle }),
        },
      );
      lastId = undefined;
      const first = iterator.next();
      if (lastId !== undefined) p.id = lastId;
      runs.push((async () => {
        try {
          for (let step = first;; step = iterator.next()) {
            const { value, done } = await step;
            if (done) break;
            p.yielded++;
            if (value.status === "fulfilled") {
              if (value.value !== i) fail(`${what()} got the reply of ${value.value}`);
            } else if (value.reason instanceof RemoteError) {
              assertEquals(
                [value.reason.code, value.reason.description, value.reason.data],
                [codeOf(i), `failed ${i}`, { i }],
                `${what()} got another request's error reply`,
              );
            } else if (!(value.reason instanceof InvalidReplyError)) {
              fail(`${what()} yielded ${value.reason}`);
            }
            if (p.how === "break") {
              await iterator.return!();
              break;
            }
          }
          p.ended = "done";
        } catch (error) {
          if (error === reason) p.ended = "abort";
          else if (error instanceof ClosedError) p.ended = "closed";
          else fail(`${what()} rejected with ${error}`);
        }
      })());
    }
    if (closing) later(20 + Math.floor(random() * 60), () => void caller.close());
    await Promise.all(runs);
    assertStrictEquals(caller.pending, 0);
    await responders.drain(expected);

    for (const p of plans) {
      const where = `gather ${p.i} (${JSON.stringify(p)})`;
      if (p.how === "pre-abort") {
        assertStrictEquals(p.id, undefined, `${where} was published though aborted before`);
        assertEquals(p.ended, "abort");
        continue;
      }
      assert(p.id !== undefined, `${where} was not published`);
      const events = settles.get(p.id) ?? [];
      assertEquals(events.length, 1, `${where}: one settle event`);
      const [event] = events as [SettleEvent];
      // The iteration ends as the event says.
      const expectedEnd = event.outcome === "reply" ? "done" : event.outcome;
      assertEquals(p.ended, expectedEnd, `${where}: iteration vs settle ${event.outcome}`);
      if (p.ended === "abort") assert(p.how === "abort", `${where}: aborted without a signal`);
      if (p.ended === "closed") assert(closing, `${where}: closed outside a closing batch`);
      const replies = event.replies!;
      assert(p.yielded <= replies, `${where}: yielded ${p.yielded} of ${replies} received`);
      // A normal end hands out everything received (only leaving the loop drops the rest).
      if (p.ended === "done" && p.how !== "break") {
        assertEquals(p.yielded, replies, `${where}: yielded all it received`);
      }
      if (p.max !== undefined) assert(replies <= p.max, `${where}: ${replies} over max`);
      if (event.end === "max") assertEquals(replies, p.max, `${where}: ended at max`);
      if (event.end === "return") assertEquals(p.how, "break", `${where}: left without break`);
      // Every reply sent to it was received by it or is late (a close may drop some).
      const out = sent.get(p.id) ?? 0;
      const came = replies + (late.get(p.id) ?? 0);
      const accounting = `${where}: ${out} sent, ${replies} received, ${late.get(p.id) ?? 0} late`;
      if (closing) assert(came <= out, accounting);
      else assertStrictEquals(came, out, accounting);
    }
    gathers += plans.length;
  }
  return { seen, gathers };
}

for (
  const [name, makeFixture, batches, perBatch] of [
    ["memory", memoryFixture, 9, 120],
    ["nats", natsFixture, 6, 100],
  ] as const
) {
  Deno.test(`exactly once - random gathers end once each, over ${name} (seed ${SEED})`, async () => {
    await using fx = await makeFixture();
    await seeded(async (seed) => {
      const { seen, gathers } = await run(fx, seed, batches, perBatch);
      assertStrictEquals(gathers, batches * perBatch);
      assertReached(seen, [
        "reply/max",
        "reply/idle",
        "reply/timeout",
        "reply/return",
        "abort/abort",
        "closed/closed",
        "late-reply",
      ]);
    });
  });
}
