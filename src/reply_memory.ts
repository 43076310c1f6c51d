/**
 * A responder's memory of the requests it recently answered, for idempotent
 * contracts: a request sent again with the same id (after its caller's
 * connection dropped) is answered with the remembered reply instead of
 * running the handler again, and one that arrives while the first run is
 * still going waits for that run's answer.
 *
 * @module
 */

/** How many answers one responder remembers, at most; the oldest go first. */
export const MAX_REMEMBERED = 10_000;
/** How long an answer is remembered when the caller sent no time budget, in milliseconds. */
export const REMEMBER_MS = 30_000;

/** An answer as it was published. */
export interface Answer {
  readonly data: Uint8Array;
  readonly headers: Record<string, string>;
}

interface Memory {
  /** `performance.now()` after which it is forgotten. */
  readonly until: number;
  /** The answer, once the first run has given one. */
  answer: Answer | undefined;
}

/**
 * Requests by reply subject (the caller's inbox and the request's id), each
 * remembered until its caller stops waiting, at most {@linkcode MAX_REMEMBERED}.
 * No timers: forgotten entries are dropped as new ones come.
 */
export class ReplyMemory {
  readonly #entries = new Map<string, Memory>();

  /**
   * What is remembered of `reply`: `undefined` when nothing (run the
   * handler), else the memory, whose `answer` is `undefined` while the first
   * run is still going.
   */
  recall(reply: string, now: number): { answer: Answer | undefined } | undefined {
    const memory = this.#entries.get(reply);
    if (memory === undefined || memory.until <= now) return undefined;
    return memory;
  }

  /** The first run of `reply` starts; it is remembered until `until` (`performance.now()` time). */
  begin(reply: string, until: number): void {
    const now = performance.now();
    this.#entries.delete(reply);
    this.#entries.set(reply, { until, answer: undefined });
    // Drop from the oldest: what expired, and what is over the bound.
    for (const [key, memory] of this.#entries) {
      if (memory.until > now && this.#entries.size <= MAX_REMEMBERED) break;
      this.#entries.delete(key);
    }
  }

  /** The first run of `reply` answered. */
  answered(reply: string, answer: Answer): void {
    const memory = this.#entries.get(reply);
    if (memory !== undefined) memory.answer = answer;
  }
}
