/**
 * A responder's memory of the requests it recently answered, for idempotent
 * contracts: a request sent again with the same id (after its caller's
 * connection dropped) is answered with the remembered reply instead of
 * running the handler again, and one that arrives while the first run is
 * still going waits for that run's answer.
 *
 * @module
 */

import { headerBytes } from "./limits.ts";

/** How many answers one responder remembers, at most; the oldest go first. */
export const MAX_REMEMBERED = 10_000;
/** How long an answer is remembered when the caller sent no time budget, in milliseconds. */
export const REMEMBER_MS = 30_000;
/** How many bytes of answers (bodies, headers and reply subjects) one responder remembers, at most. */
export const MAX_REMEMBERED_BYTES = 16 * 1024 * 1024;

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
  /** The bytes it holds. */
  bytes: number;
}

/**
 * Requests by reply subject (the caller's inbox and the request's id), each
 * remembered until its caller stops waiting, at most {@linkcode MAX_REMEMBERED}.
 * No timers: forgotten entries are dropped as new ones come.
 */
export class ReplyMemory {
  readonly #entries = new Map<string, Memory>();
  #bytes = 0;

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
    this.#forget(reply);
    const bytes = reply.length;
    this.#entries.set(reply, { until, answer: undefined, bytes });
    this.#bytes += bytes;
    this.#trim();
  }

  /** The first run of `reply` answered. */
  answered(reply: string, answer: Answer): void {
    const memory = this.#entries.get(reply);
    if (memory === undefined || memory.answer !== undefined) return;
    memory.answer = answer;
    const bytes = answer.data.length + headerBytes(answer.headers);
    memory.bytes += bytes;
    this.#bytes += bytes;
    this.#trim();
  }

  /** Drops from the oldest: what expired, and what is over the bounds. */
  #trim(): void {
    const now = performance.now();
    for (const [key, memory] of this.#entries) {
      if (
        memory.until > now && this.#entries.size <= MAX_REMEMBERED &&
        this.#bytes <= MAX_REMEMBERED_BYTES
      ) break;
      this.#forget(key);
    }
  }

  #forget(reply: string): void {
    const memory = this.#entries.get(reply);
    if (memory === undefined) return;
    this.#entries.delete(reply);
    this.#bytes -= memory.bytes;
  }
}
