/**
 * Scatter-gather: one request, many replies, each read and checked against
 * the contract and handed out as a `Promise.allSettled`-shaped result, until
 * `max` replies, an `idle` gap, the timeout, a sentinel, or no responders.
 *
 * @module
 */

import type { Outcome } from "./events.ts";
import type { RequestOptions } from "./options.ts";
import type { PendingEntry } from "./pending.ts";
import { readReply } from "./reply.ts";
import { checkTimeout } from "./request.ts";
import type { TransportMessage } from "./transport.ts";
import { ERROR_CODE_HEADER } from "./wire.ts";

/** Options of {@linkcode Endpoint.requestMany}. */
export interface GatherOptions extends RequestOptions {
  /** End after this many replies (every reply counts, errors and invalid ones included). */
  max?: number;
  /** End when no reply came for this many milliseconds (since the request, for the first). */
  idle?: number;
  /** End at the first reply with an empty body (not yielded), NATS's end-of-stream convention. */
  sentinel?: boolean;
}

/**
 * Why a gather ended: `max` replies, an `idle` gap, its `timeout`, a
 * `sentinel`, the consumer left the loop (`return`), or it failed
 * (`no-responders`, `abort`, `closed`, `disconnected`).
 */
export type GatherEnd =
  | "max"
  | "idle"
  | "timeout"
  | "sentinel"
  | "return"
  | "no-responders"
  | "abort"
  | "closed"
  | "disconnected";

/** What a gather uses of its endpoint. */
export interface GatherHost {
  /** Validates and sends the request; returns its pending entry, or throws (nothing sent). */
  start(gather: Gather<unknown>): void;
  /** Whether a no-responders answer is retried (just after a reconnect); see `Outage.retry`. */
  retry(entry: PendingEntry): boolean;
  /** Removes the entry if it is still pending and dispatches its `settle` event. */
  finish(entry: PendingEntry, ending: GatherEnding): void;
  /** Runs the contract's `onReply` handlers for a valid reply. */
  replied(entry: PendingEntry, value: unknown): void;
}

/** How a gather ended, for its `settle` event. */
export interface GatherSummary {
  /** How many replies it received (the sentinel not included). */
  readonly replies: number;
  /** Why it ended. */
  readonly end: GatherEnd;
}

/** A gather's end as its `settle` event reports it. */
export interface GatherEnding extends GatherSummary {
  /** `reply` for a normal end, else the failure's outcome. */
  readonly outcome: Outcome;
  /** The failure, if any. */
  readonly error: unknown;
}

type Result<T> = PromiseSettledResult<T>;

interface Waiting<T> {
  resolve(result: IteratorResult<Result<T>>): void;
  reject(reason: unknown): void;
}

/**
 * One gather: an async iterator of settled results. Nothing is sent before
 * the first `next()`; leaving the loop (`return()`) releases everything at
 * once.
 */
export class Gather<T> implements AsyncIterableIterator<Result<T>> {
  readonly #host: GatherHost;
  readonly #max: number;
  readonly #idle: number | undefined;
  readonly #sentinel: unknown;
  readonly #queue: Result<T>[] = [];
  /** `next()` calls waiting for a result, oldest first (`for await` makes one at a time). */
  readonly #waiting: Waiting<T>[] = [];
  #entry: PendingEntry | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #replies = 0;
  #state: "new" | "open" | "done" | "failed" = "new";
  #error: unknown;

  /**
   * @param host The endpoint's side of the gather.
   * @param options `max`, `idle`, `sentinel` (checked at the first `next()`).
   */
  constructor(host: GatherHost, options: GatherOptions) {
    this.#host = host;
    this.#max = options.max ?? Infinity;
    this.#idle = options.idle;
    this.#sentinel = options.sentinel ?? false;
  }

  /** The gather itself: it is iterated once. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The next result; the first call sends the request. */
  next(): Promise<IteratorResult<Result<T>>> {
    if (this.#state === "new") {
      try {
        checkGather({ max: this.#max, idle: this.#idle, sentinel: this.#sentinel });
        this.#state = "open";
        this.#host.start(this as Gather<unknown>);
      } catch (error) {
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#state = "done";
        return Promise.reject(error);
      }
    }
    const value = this.#queue.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.#state === "failed") {
      // Rejects once; after that, the iteration is over.
      this.#state = "done";
      return Promise.reject(this.#error);
    }
    if (this.#state === "done") return Promise.resolve({ value: undefined, done: true });
    // Not Promise.withResolvers: Node 20 lacks it.
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Leaves the gather: everything is released at once. */
  return(): Promise<IteratorResult<Result<T>>> {
    this.#queue.length = 0;
    if (this.#state === "open") this.#end("return");
    this.#state = "done";
    return Promise.resolve({ value: undefined, done: true });
  }

  /** The request was published (or published again): the idle gap starts now. */
  sent(): void {
    if (this.#state === "open" && this.#replies === 0) this.#arm();
  }

  /** The entry, registered before anything is published. */
  attach(entry: PendingEntry): void {
    this.#entry = entry;
  }

  /** A reply on the request's inbox subject. Never throws. */
  receive(message: TransportMessage): void {
    const entry = this.#entry;
    if (this.#state !== "open" || entry === undefined) return;
    if (this.#sentinel === true && isSentinel(message)) return this.#end("sentinel");
    const result = readReply(entry.contract, message, entry.timeout);
    if (!result.ok && result.outcome === "no-responders") {
      // Only a first answer can say nobody listens; a retry after a reconnect may find them.
      if (this.#replies > 0) return;
      if (this.#host.retry(entry)) {
        // The idle gap starts again when it is sent again.
        clearTimeout(this.#timer);
        return;
      }
      return this.#fail("no-responders", result.error);
    }
    this.#replies++;
    this.#push(
      result.ok
        ? { status: "fulfilled", value: result.value as T }
        : { status: "rejected", reason: result.error },
    );
    if (result.ok) this.#host.replied(entry, result.value);
    if (this.#replies >= this.#max) this.#end("max");
    else this.#arm();
  }

  /**
   * The endpoint settled the gather's entry (already removed from the pending
   * table): its deadline passed (`timeout`, a normal end), the signal aborted,
   * the endpoint closed, the connection was lost.
   */
  ended(outcome: Outcome, error: unknown): void {
    if (this.#state !== "open") return;
    if (outcome === "timeout") this.#end("timeout");
    else this.#fail(outcome as GatherEnd, error);
  }

  #push(result: Result<T>): void {
    const waiting = this.#waiting.shift();
    if (waiting === undefined) this.#queue.push(result);
    else waiting.resolve({ value: result, done: false });
  }

  #arm(): void {
    if (this.#idle === undefined) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#end("idle"), this.#idle);
  }

  #close(outcome: Outcome, error: unknown, end: GatherEnd): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#state = "done";
    this.#host.finish(this.#entry!, { outcome, error, replies: this.#replies, end });
  }

  /** A normal end: what is queued is still yielded, then the iteration is done. */
  #end(end: GatherEnd): void {
    if (this.#state !== "open") return;
    this.#close("reply", undefined, end);
    for (const waiting of this.#waiting.splice(0)) {
      waiting.resolve({ value: undefined, done: true });
    }
  }

  /** A failure: the iteration rejects with `error` at once (queued results are dropped). */
  #fail(end: GatherEnd, error: unknown): void {
    this.#close(end as Outcome, error, end);
    this.#queue.length = 0;
    const [first, ...rest] = this.#waiting.splice(0);
    if (first === undefined) {
      this.#state = "failed";
      this.#error = error;
      return;
    }
    first.reject(error);
    for (const waiting of rest) waiting.resolve({ value: undefined, done: true });
  }
}

/** An empty reply without a status or an error code: the end-of-stream marker. */
function isSentinel(message: TransportMessage): boolean {
  try {
    return message.data.length === 0 && message.status === 0 &&
      message.header(ERROR_CODE_HEADER) === undefined;
  } catch {
    return false;
  }
}

function checkGather(options: { max: number; idle: number | undefined; sentinel: unknown }): void {
  const { max, idle, sentinel } = options;
  if (max !== Infinity && !(Number.isInteger(max) && max >= 1)) {
    throw new RangeError(`requestMany option max must be a whole number, at least 1, got ${max}`);
  }
  if (idle !== undefined) checkTimeout(idle, "requestMany option idle");
  if (typeof sentinel !== "boolean") {
    throw new TypeError("requestMany option sentinel must be true or false");
  }
}
