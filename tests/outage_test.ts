/**
 * The outage logic on a fake clock: held requests and their bytes, resending
 * at a reconnect, and the bounded, jittered 503 retry window. No test sleeps.
 */

import * as v from "valibot";
import { assert, assertEquals, assertStrictEquals } from "@std/assert";
import { defineRequest, int } from "../mod.ts";
import { REMEMBER_MS } from "../src/reply_memory.ts";
import { type Clock, Outage, RETRY_WINDOW } from "../src/outage.ts";
import type { PendingEntry } from "../src/pending.ts";

const Count = defineRequest({ subject: "outage.count", request: v.number(), response: int() });

/** A clock whose time, randomness and timers the test moves by hand. */
class FakeClock implements Clock {
  time = 1_000;
  rand = 0.5;
  readonly timers = new Map<number, { at: number; fn: () => void }>();
  #next = 1;
  now = (): number => this.time;
  random = (): number => this.rand;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.#next++;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  };
  clearTimeout = (timer: unknown): void => void this.timers.delete(timer as number);
  /** Moves time on by `ms`, firing the timers that come due, in order. */
  tick(ms: number): void {
    const until = this.time + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) =>
        t.at <= until
      ).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = until;
  }
}

function entry(id: string, deadline: number, bytes = 10): PendingEntry {
  return {
    id,
    contract: Count,
    started: 0,
    deadline,
    timeout: deadline,
    resolve: () => {},
    reject: () => {},
    gather: undefined,
    trace: undefined,
    detach: undefined,
    state: "sent",
    sent: {
      subject: Count.subject,
      reply: `r.${id}`,
      data: new Uint8Array(bytes),
      headers: {},
      size: bytes,
    },
    attempts: 0,
    retry: undefined,
    prev: undefined,
    next: undefined,
  };
}

function setup(options: { down?: boolean; maxHeldBytes?: number } = {}) {
  const clock = new FakeClock();
  const resent: string[] = [];
  const answered: string[] = [];
  const settled = new Set<PendingEntry>();
  const outage = new Outage({
    down: options.down ?? false,
    maxHeldBytes: options.maxHeldBytes ?? 1_000,
    clock,
    resend: (e) => resent.push(e.id),
    live: (e) => !settled.has(e),
    answer: (reply) => answered.push(reply),
  });
  return { clock, resent, answered, settled, outage };
}

Deno.test("outage - requests held while down are counted in bytes, bounded, and sent in order when it is back", () => {
  const { outage, resent, settled } = setup({ down: true, maxHeldBytes: 80 });
  const [a, b, c] = [entry("a", 10_000, 30), entry("b", 10_000, 30), entry("c", 10_000, 30)];
  // Each held request counts the bytes it will send.
  const each = 30;
  assert(outage.fits(each));
  outage.hold(a);
  outage.hold(a); // holding twice counts once
  assertEquals(outage.heldBytes, each);
  outage.hold(b);
  assert(!outage.fits(each), "a third would pass maxHeldBytes");
  settled.add(b);
  outage.settled(b); // settled while held: its bytes are free
  assertEquals([outage.heldBytes, b.state], [each, "held"]);
  outage.hold(c);
  outage.reconnect();
  outage.resendHeld();
  assertEquals(resent, ["a", "c"]);
  assertEquals([a.state, c.state, outage.heldBytes], ["sent", "sent", 0]);
});

Deno.test("outage - a drop while the held requests are sent keeps the rest held", () => {
  const clock = new FakeClock();
  const resent: string[] = [];
  const outage: Outage = new Outage({
    down: true,
    maxHeldBytes: 1_000,
    clock,
    resend: (e) => {
      resent.push(e.id);
      outage.disconnect([e]); // the first resend drops the connection again
    },
    live: () => true,
    answer: () => {},
  });
  const [a, b] = [entry("a", 10_000), entry("b", 10_000)];
  outage.hold(a);
  outage.hold(b);
  outage.reconnect();
  outage.resendHeld();
  assertEquals([resent, a.state, b.state], [["a"], "disrupted", "held"]);
  outage.reconnect();
  outage.resendHeld();
  assertEquals(resent, ["a", "b"]);
});

Deno.test("outage - a 503 after a reconnect is retried with jittered doubling backoff, at most six times", () => {
  const { clock, outage, resent } = setup();
  outage.reconnect();
  const e = entry("e", clock.time + 60_000);
  const backoffs: number[] = [];
  for (const rand of [0, 0.999, 0.5, 0, 0.5, 0.25]) {
    clock.rand = rand;
    const before = clock.time;
    assert(outage.retry(e), `retry ${e.attempts + 1}`);
    const [timer] = [...clock.timers.values()];
    backoffs.push(Math.round(timer!.at - before));
    clock.tick(timer!.at - before);
  }
  // 50 ms doubling at each retry, times a jitter of 0.5 to 1.5.
  assertEquals(backoffs, [25, 150, 200, 200, 800, 1200]);
  assertEquals(resent.length, 6);
  assert(!outage.retry(e), "a seventh 503 settles as no responders");
  assertEquals(clock.timers.size, 0);
});

Deno.test("outage - no retry outside the window after a reconnect, past the deadline, or without the bytes", () => {
  const { clock, outage } = setup();
  const e = entry("e", clock.time + 60_000);
  assert(!outage.retry(e), "never reconnected: a 503 is an answer");
  outage.reconnect();
  const late = entry("late", clock.time + 40); // backoff 50 ms ends past its deadline
  assert(!outage.retry(late));
  const lean = entry("lean", clock.time + 60_000);
  lean.sent = undefined;
  assert(!outage.retry(lean));
  clock.tick(RETRY_WINDOW + 1);
  assert(!outage.retry(e), "the window has closed");
  assert(!outage.keeps(), "and requests no longer keep their bytes");
  assertEquals(clock.timers.size, 0);
});

Deno.test("outage - a retry whose timer fires while down is held, and sent when it is back", () => {
  const { clock, outage, resent } = setup();
  outage.reconnect();
  const e = entry("e", clock.time + 3_000);
  assert(outage.retry(e));
  outage.disconnect([e]);
  clock.tick(100);
  assertEquals([resent, e.state], [[], "held"]);
  assert(outage.heldBytes > 0);
  outage.reconnect();
  outage.resendHeld();
  assertEquals([resent, e.state, outage.heldBytes], [["e"], "sent", 0]);
});

Deno.test("outage - settling clears a pending retry; a settled request's timer sends nothing", () => {
  const { clock, outage, resent, settled } = setup();
  outage.reconnect();
  const [a, b] = [entry("a", clock.time + 3_000), entry("b", clock.time + 3_000)];
  assert(outage.retry(a) && outage.retry(b));
  outage.settled(a);
  assertStrictEquals(a.retry, undefined);
  settled.add(b); // settled elsewhere: its timer finds it gone
  clock.tick(1_000);
  assertEquals(resent, []);
  assertEquals(clock.timers.size, 0);
});

Deno.test("outage - a request made soon after a reconnect keeps its bytes until the window closes", () => {
  const { clock, outage } = setup();
  assert(!outage.keeps());
  outage.reconnect();
  assert(outage.keeps());
  const e = entry("e", clock.time + 60_000);
  outage.sent(e);
  assert(e.sent !== undefined);
  clock.tick(RETRY_WINDOW);
  outage.sent(e);
  assertStrictEquals(e.sent, undefined);
  outage.close();
  assert(outage.down && outage.gone && outage.keeps());
});

Deno.test("outage - answers given while down are held, bounded, and published once it is back within their window", () => {
  const { outage, answered, clock } = setup({ maxHeldBytes: 100 });
  outage.disconnect([]);
  const answer = (bytes: number) => ({ data: new Uint8Array(bytes), headers: {} });
  outage.holdAnswer("r.1", answer(30));
  clock.tick(REMEMBER_MS - 1_000);
  outage.holdAnswer("r.2", answer(30));
  outage.holdAnswer("r.3", answer(30)); // over maxHeldBytes: dropped
  assertEquals(outage.heldBytes, 2 * (30 + 12)); // bodies and their (empty) header blocks
  clock.tick(2_000); // r.1's window has passed: its caller has stopped waiting
  outage.reconnect();
  outage.resendHeld();
  assertEquals([answered, outage.heldBytes], [["r.2"], 0]);
});

Deno.test("outage - idempotent requests in flight at a drop are sent again once it is back; others are not", () => {
  const { outage, resent, settled } = setup();
  const idempotent = { ...entry("i", 10_000), contract: { ...Count, idempotent: true } };
  const plain = entry("p", 10_000);
  const gone = { ...entry("g", 10_000), contract: { ...Count, idempotent: true } };
  outage.disconnect([idempotent, plain, gone]);
  assertEquals([idempotent.state, plain.state], ["disrupted", "disrupted"]);
  settled.add(gone);
  outage.settled(gone); // settled meanwhile: not sent again
  outage.reconnect();
  outage.resendHeld();
  assertEquals(resent, ["i"]);
  assertEquals([idempotent.state, plain.state], ["sent", "disrupted"]);
});

Deno.test("outage - an idempotent request with a no-responders retry pending at a drop is sent once at the reconnect", () => {
  const { outage, resent, clock } = setup();
  const idempotent = { ...entry("i", 10_000), contract: { ...Count, idempotent: true } };
  outage.reconnect(); // inside the retry window
  assert(outage.retry(idempotent), "a retry is scheduled");
  outage.disconnect([idempotent]);
  clock.tick(5_000); // the retry's timer would have fired while down
  outage.reconnect();
  outage.resendHeld();
  clock.tick(5_000);
  assertEquals(resent, ["i"]);
});
