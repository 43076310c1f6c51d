/**
 * What an endpoint does about its connection going down: a NATS client drops
 * what is published while it is disconnected, so requests made then are held
 * (bounded in bytes) and sent once it is back, within their deadlines; and a
 * no-responders 503 in the first moments after a reconnect may only mean the
 * responders' connections are not back yet, so it is retried, bounded and
 * jittered, inside the deadline. The clock, the random source and the timers
 * are injected, so tests drive them by hand.
 *
 * @module
 */

import type { PendingEntry } from "./pending.ts";
import { type Answer, REMEMBER_MS } from "./reply_memory.ts";
import { headerBytes } from "./limits.ts";

/** Time, randomness and timers, as the outage logic uses them. */
export interface Clock {
  /** Monotonic milliseconds, on the same base as the pending entries' deadlines. */
  now(): number;
  /** A number in [0, 1). */
  random(): number;
  /** Calls `fn` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer `setTimeout` returned. */
  clearTimeout(timer: unknown): void;
}

/** The platform's clock: `performance.now()`, `Math.random()` and its timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  random: () => Math.random(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/** How long after a reconnect a 503 may mean "responders not back yet", in milliseconds. */
export const RETRY_WINDOW = 5_000;
/** The first retry's backoff before jitter, in milliseconds; it doubles at each retry. */
const RETRY_BASE = 50;
/** How many times one request is sent again after a 503. */
const MAX_RETRIES = 6;

/** Options of {@linkcode Outage}. */
export interface OutageOptions {
  /** Whether the connection is down from the start. */
  down: boolean;
  /** How many bytes of requests may be held at once. */
  maxHeldBytes: number;
  /** Publishes a held or retried request again (and settles it if that fails). */
  resend(entry: PendingEntry): void;
  /** Whether an entry is still waiting (not settled meanwhile). */
  live(entry: PendingEntry): boolean;
  /** Publishes an answer a responder gave while the connection was down. */
  answer(reply: string, answer: Answer): void;
  /** Time, randomness and timers; the platform's by default. */
  clock?: Clock;
}

/** One endpoint's view of its connection: held requests, and 503 retries after a reconnect. */
export class Outage {
  readonly #clock: Clock;
  readonly #maxHeldBytes: number;
  readonly #resend: (entry: PendingEntry) => void;
  readonly #live: (entry: PendingEntry) => boolean;
  readonly #answer: (reply: string, answer: Answer) => void;
  /** Answers given while the connection was down, with when they stop being worth sending. */
  #answers: { reply: string; answer: Answer; until: number }[] = [];
  /** Held requests and their bytes. */
  readonly #held = new Map<PendingEntry, number>();
  /** Idempotent requests in flight when the connection dropped: sent again once it is back. */
  readonly #inDoubt = new Set<PendingEntry>();
  #heldBytes = 0;
  #down: boolean;
  #gone = false;
  #reconnectedAt = -Infinity;

  /** @param options The connection's state, the held-bytes bound, and how to resend. */
  constructor(options: OutageOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#maxHeldBytes = options.maxHeldBytes;
    this.#resend = options.resend;
    this.#live = options.live;
    this.#answer = options.answer;
    this.#down = options.down;
  }

  /** Whether the connection is down (requests made now are held). */
  get down(): boolean {
    return this.#down;
  }

  /** Whether the connection is closed for good. */
  get gone(): boolean {
    return this.#gone;
  }

  /** How many bytes of requests are held. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /** How many bytes of requests may be held at once. */
  get maxHeldBytes(): number {
    return this.#maxHeldBytes;
  }

  /** Whether a request of `size` bytes may be held now. */
  fits(size: number): boolean {
    return this.#heldBytes + size <= this.#maxHeldBytes;
  }

  /**
   * Whether a request sent now must keep what it sends: it is held, or a 503
   * soon after a reconnect may have it sent again.
   *
   * @param now The clock's time, when the caller has just read it (one read less per request).
   */
  keeps(now: number = this.#clock.now()): boolean {
    return this.#down || now - this.#reconnectedAt < RETRY_WINDOW;
  }

  /** Holds a request (with its `sent` bytes) until the connection is back. */
  hold(entry: PendingEntry): void {
    if (this.#held.has(entry)) return;
    this.#inDoubt.delete(entry); // sent once, when it is back
    entry.state = "held";
    const { size } = entry.sent!;
    this.#held.set(entry, size);
    this.#heldBytes += size;
  }

  /** Forgets a request that settled: its held bytes and its retry timer. */
  settled(entry: PendingEntry): void {
    // Most requests were never held and have no retry: nothing to touch for them.
    if (entry.state === "held") this.#unhold(entry);
    else if (entry.state === "disrupted") this.#inDoubt.delete(entry);
    if (entry.retry !== undefined) {
      this.#clock.clearTimeout(entry.retry);
      entry.retry = undefined;
    }
  }

  /**
   * The connection went down: requests in flight may be lost. Those of an
   * idempotent contract (not gathers: a responder would answer them twice)
   * are sent again once it is back.
   */
  disconnect(entries: Iterable<PendingEntry>): void {
    this.#down = true;
    for (const entry of entries) {
      if (entry.state !== "sent") continue;
      entry.state = "disrupted";
      if (entry.contract.idempotent && entry.sent && !entry.gather) {
        this.#inDoubt.add(entry);
        // It goes out again at the reconnect: a no-responders retry pending would send it twice.
        if (entry.retry !== undefined) {
          this.#clock.clearTimeout(entry.retry);
          entry.retry = undefined;
        }
      }
    }
  }

  /** The connection is back; `resendHeld()` then sends what was held. */
  reconnect(): void {
    this.#down = false;
    this.#reconnectedAt = this.#clock.now();
  }

  /**
   * Sends the held requests that still wait, in the order they were made; if
   * the connection drops again meanwhile, the rest stay held.
   */
  resendHeld(): void {
    // Responders' answers first: their callers have waited longest.
    const answers = this.#answers;
    this.#answers = [];
    const now = this.#clock.now();
    for (const held of answers) {
      if (this.#down) {
        this.#answers.push(held);
        continue;
      }
      this.#heldBytes -= answerBytes(held.answer);
      if (held.until > now) this.#answer(held.reply, held.answer);
    }
    for (const entry of [...this.#held.keys()]) {
      if (this.#down) return;
      if (!this.#live(entry)) continue;
      this.#unhold(entry);
      entry.state = "sent";
      this.#resend(entry);
    }
    // Then the idempotent ones that were in flight: the same id, what is left of their budget.
    for (const entry of [...this.#inDoubt]) {
      if (this.#down) return;
      this.#inDoubt.delete(entry);
      if (!this.#live(entry)) continue;
      entry.state = "sent";
      this.#resend(entry);
    }
  }

  /**
   * Holds a responder's answer made while the connection is down (a NATS
   * client would drop it): it is published once the connection is back, if
   * that is within {@linkcode REMEMBER_MS} and within the held-bytes bound.
   */
  holdAnswer(reply: string, answer: Answer): boolean {
    const size = answerBytes(answer);
    if (!this.fits(size)) return false;
    this.#heldBytes += size;
    this.#answers.push({ reply, answer, until: this.#clock.now() + REMEMBER_MS });
    return true;
  }

  /** The connection is closed for good. */
  close(): void {
    this.#down = this.#gone = true;
    for (const held of this.#answers) this.#heldBytes -= answerBytes(held.answer);
    this.#answers = [];
  }

  /** After a send: its bytes are dropped once no 503 retry or idempotent resend can need them. */
  sent(entry: PendingEntry): void {
    if (!this.keeps() && !entry.contract.idempotent) entry.sent = undefined;
  }

  /**
   * Schedules sending a request again after a 503, if that is safe and worth
   * it: within the retry window after a reconnect, at most `MAX_RETRIES` times,
   * and only if the jittered backoff ends before its deadline. Returns whether
   * it did; if not, the 503 settles the request as no responders.
   */
  retry(entry: PendingEntry): boolean {
    const clock = this.#clock;
    const now = clock.now();
    if (
      entry.sent === undefined || entry.attempts >= MAX_RETRIES ||
      now - this.#reconnectedAt > RETRY_WINDOW
    ) return false;
    const backoff = (RETRY_BASE << entry.attempts) * (0.5 + clock.random());
    if (now + backoff >= entry.deadline) return false;
    entry.attempts++;
    if (entry.retry !== undefined) clock.clearTimeout(entry.retry);
    entry.retry = clock.setTimeout(() => {
      entry.retry = undefined;
      if (!this.#live(entry)) return;
      // The connection dropped again: the 503 proved nobody got it, so hold it. (A
      // connection closed for good settled it, which cleared this timer.)
      if (this.#down) this.hold(entry);
      else this.#resend(entry);
    }, backoff);
    return true;
  }

  #unhold(entry: PendingEntry): void {
    this.#heldBytes -= this.#held.get(entry) ?? 0;
    this.#held.delete(entry);
  }
}

/** The bytes an answer holds: its body and its headers. */
function answerBytes(answer: Answer): number {
  return answer.data.length + headerBytes(answer.headers);
}
