/**
 * Exactly-once settlement, property-tested: seeded random schedules mix
 * replies, duplicate replies, slow replies, silence, aborts (before, during,
 * after the reply), timeouts and close(), over NATS and in memory. Whatever
 * the schedule, every promise settles once with an outcome the schedule
 * allows, never with another request's reply; `settle` fires once per
 * published request; `pending` ends at 0; the sanitizers see no timer or
 * subscription left. The seed is printed on failure: SEED=<n> reruns it.
 */

import * as v from "valibot";
import { assert, assertEquals, assertStrictEquals, fail } from "@std/assert";
import {
  ClosedError,
  defineRequest,
  Endpoint,
  int,
  KIND_HEADER,
  type SettleEvent,
  TimeoutError,
} from "../mod.ts";
import { type Fixture, memoryFixture, natsFixture } from "./helpers/fixture.ts";

const Echo = defineRequest({
  subject: "prop.echo",
  request: v.object({ i: v.number(), mode: v.string(), delay: v.number() }),
  response: int(),
});

type Mode = "reply" | "dup" | "slow" | "never";
type Caller = "plain" | "pre-abort" | "abort" | "close";

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(random: () => number, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)]!;

async function run(
  fx: Fixture,
  seed: number,
  batches: number,
  perBatch: number,
): Promise<Map<string, number>> {
  const random = prng(seed);
  const seen = new Map<string, number>();
  const count = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  const encode = (n: number) => new TextEncoder().encode(String(n));
  // A raw responder that answers as the schedule says.
  const sub = fx.responder.subscribe("prop.echo", (message) => {
    const { i, mode, delay } = JSON.parse(new TextDecoder().decode(message.data));
    const headers = { [KIND_HEADER]: "int" };
    const send = () => fx.responder.publish(message.reply, encode(i), { headers });
    if (mode === "reply") send();
    else if (mode === "dup") {
      send();
      send();
    } else if (mode === "slow") later(delay, send);
  });
  try {
    await fx.ready();
    for (let batch = 0; batch < batches; batch++) {
      await using caller = new Endpoint(fx.caller, { maxPending: perBatch + 1 });
      const settles = new Map<string, number>();
      let requests = 0;
      caller.addEventListener("request", () => requests++);
      caller.addEventListener("settle", (event: SettleEvent) => {
        settles.set(event.id, (settles.get(event.id) ?? 0) + 1);
        count(event.outcome);
      });
      caller.addEventListener("late-reply", () => count("late-reply"));
      // Every third batch is closed while its requests wait.
      const closeAt = batch % 3 === 1 ? 10 + Math.floor(random() * 50) : -1;
      const runs: Promise<void>[] = [];
      for (let n = 0; n < perBatch; n++) {
        const i = batch * perBatch + n;
        const mode = pick<Mode>(random, ["reply", "reply", "dup", "slow", "never"]);
        let how = pick<Caller>(random, ["plain", "plain", "pre-abort", "abort"]);
        if (closeAt >= 0 && how === "plain") how = "close";
        const delay = Math.floor(random() * 50);
        const timeout = 20 + Math.floor(random() * 80);
        const abortAt = Math.floor(random() * 60);
        const controller = new AbortController();
        const reason = new Error(`abort ${i}`);
        if (how === "pre-abort") controller.abort(reason);
        if (how === "abort") later(abortAt, () => controller.abort(reason));
        const promise = caller.request(Echo, { i, mode, delay }, {
          timeout,
          signal: controller.signal,
        });
        runs.push(promise.then(
          (value) => {
            if (value !== i) fail(`request ${i} got the reply of ${value}`);
            if (mode === "never") fail(`request ${i} (${mode}) resolved`);
            if (how === "pre-abort") fail(`request ${i} resolved though aborted before sending`);
          },
          (error) => {
            if (error === reason) {
              if (how === "plain" || how === "close") fail(`request ${i} aborted unasked`);
            } else if (error instanceof ClosedError) {
              if (closeAt < 0) fail(`request ${i} closed unasked`);
            } else if (!(error instanceof TimeoutError)) {
              fail(`request ${i} (${mode}/${how}) rejected with ${error}`);
            } else if (how === "pre-abort") {
              fail(`request ${i} timed out though aborted before sending`);
            }
          },
        ));
      }
      if (closeAt >= 0) later(closeAt, () => void caller.close());
      await Promise.all(runs);
      assertStrictEquals(caller.pending, 0);
      assertEquals(settles.size, requests, "one settle per published request");
      assert([...settles.values()].every((count) => count === 1), "settle fired once per request");
    }
  } finally {
    sub.unsubscribe();
    // Slow replies still scheduled would answer nobody: cancel them.
    for (const timer of timers) clearTimeout(timer);
  }
  return seen;
}

const SEED = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 2 ** 31));

for (
  const [name, makeFixture, batches, perBatch] of [
    ["memory", memoryFixture, 20, 200],
    ["nats", natsFixture, 8, 150],
  ] as const
) {
  Deno.test(`exactly once - random schedules settle once each, over ${name} (seed ${SEED})`, async () => {
    await using fx = await makeFixture();
    try {
      const seen = await run(fx, SEED, batches, perBatch);
      // The schedules did reach every outcome: the invariants were not checked vacuously.
      for (const what of ["reply", "timeout", "abort", "closed", "late-reply"]) {
        assert((seen.get(what) ?? 0) > 0, `no ${what} in ${JSON.stringify([...seen])}`);
      }
    } catch (error) {
      throw new Error(`failed with SEED=${SEED}: ${(error as Error).message}`, { cause: error });
    }
  });
}
