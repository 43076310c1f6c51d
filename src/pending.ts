/**
 * The callback table: what is waiting for a reply, its deadlines, and a
 * bounded memory of what settled recently (to tell a late reply from a
 * stranger's).
 *
 * Deadlines cost one timer per table, not one per request: callbacks with
 * the same timeout expire in the order they were added, so each distinct
 * timeout keeps a FIFO list (doubly linked through the entries, so settling
 * early unlinks in O(1)), and a single timer waits for the earliest head.
 * The timer is cleared whenever nothing is waiting, so an idle endpoint
 * holds no timer.
 *
 * @module
 */

import type { Contract } from "./contract.ts";
import type { Outcome } from "./events.ts";
import type { RequestTrace } from "./internals.ts";
import type { TransportMessage } from "./transport.ts";

/** A callback waiting for its reply. */
export interface PendingEntry {
  /** The reply token. */
  readonly id: string;
  /** The contract it was sent with. */
  readonly contract: Contract;
  /** `performance.now()` when `request()` was called. */
  readonly started: number;
  /** `performance.now()` after which it times out. */
  readonly deadline: number;
  /** Its timeout, in milliseconds: the list it waits in. */
  readonly timeout: number;
  /** Settles the caller's promise with a value. */
  readonly resolve: (value: unknown) => void;
  /** Settles the caller's promise with an error. */
  readonly reject: (reason: unknown) => void;
  /** For a `requestMany()` gather: it takes every reply, and its end, instead of resolve/reject. */
  readonly gather: Gathering | undefined;
  /** Its trace, when an add-on traces the endpoint's requests. */
  trace: RequestTrace | undefined;
  /** Removes the abort listener, if any. */
  detach: (() => void) | undefined;
  /** Where it stands with the connection. */
  state: EntryState;
  /** What to publish, kept while held or while a retry may be needed. */
  sent: Outgoing | undefined;
  /** How many times it was sent again after a no-responders status. */
  attempts: number;
  /** The timer of a pending retry (the outage logic's clock made it, and clears it). */
  retry: unknown;
  /** Neighbours in its timeout list. */
  prev: PendingEntry | undefined;
  /** Neighbours in its timeout list. */
  next: PendingEntry | undefined;
}

/** What the endpoint tells a gather (see `Gather`). */
export interface Gathering {
  /** The entry was registered (before it is published). */
  attach(entry: PendingEntry): void;
  /** A reply arrived. */
  receive(message: TransportMessage): void;
  /** The request was published, or published again. */
  sent(): void;
  /** The endpoint settled it: deadline (`timeout`), abort, close, connection lost. */
  ended(outcome: Outcome, error: unknown): void;
}

/**
 * Where a callback stands with the connection: `sent` (published, waiting),
 * `held` (made while the connection was down, not published yet) or
 * `disrupted` (published, then the connection dropped before the reply).
 */
export type EntryState = "sent" | "held" | "disrupted";

/** A request as published. */
export interface Outgoing {
  /** The contract's subject. */
  readonly subject: string;
  /** The reply subject. */
  readonly reply: string;
  /** The body. */
  readonly data: Uint8Array;
  /** The headers. */
  readonly headers: Record<string, string>;
  /** Body and header bytes, with room for the `Callback-Sent` stamp. */
  readonly size: number;
}

interface Lane {
  head: PendingEntry | undefined;
  tail: PendingEntry | undefined;
}

/** The pending callbacks of one endpoint. */
export class PendingTable {
  readonly #entries = new Map<string, PendingEntry>();
  readonly #lanes = new Map<number, Lane>();
  readonly #onExpire: (entry: PendingEntry) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  // Two generations of recently settled ids: O(1) inserts and a bounded size.
  #recent = new Map<string, Contract>();
  #older = new Map<string, Contract>();
  readonly #recentLimit: number;

  /**
   * @param onExpire Called with each entry whose deadline passed (already removed).
   * @param recentLimit How many settled ids, at least, to remember for late replies.
   */
  constructor(onExpire: (entry: PendingEntry) => void, recentLimit: number) {
    this.#onExpire = onExpire;
    this.#recentLimit = recentLimit;
  }

  /** How many callbacks are waiting. */
  get size(): number {
    return this.#entries.size;
  }

  /** Registers a callback and its deadline. */
  add(entry: PendingEntry): void {
    this.#entries.set(entry.id, entry);
    let lane = this.#lanes.get(entry.timeout);
    if (lane === undefined) this.#lanes.set(entry.timeout, lane = { head: entry, tail: entry });
    else if (lane.tail === undefined) lane.head = lane.tail = entry;
    else {
      entry.prev = lane.tail;
      lane.tail.next = entry;
      lane.tail = entry;
    }
    if (entry.deadline < this.#timerAt) this.#schedule(entry.deadline);
  }

  /**
   * Removes a callback so it can settle: unlinks its deadline, removes its
   * abort listener and remembers its id as recently settled. `undefined` when
   * it is not waiting (already settled, or never known).
   */
  take(id: string): PendingEntry | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    this.#remove(entry);
    if (this.#entries.size === 0) this.#cancel();
    return entry;
  }

  /** The contract of a recently settled callback, `undefined` if unknown. */
  settled(id: string): Contract | undefined {
    return this.#recent.get(id) ?? this.#older.get(id);
  }

  /** The ids of every waiting callback. */
  ids(): string[] {
    return [...this.#entries.keys()];
  }

  /** A waiting callback, left in place. */
  get(id: string): PendingEntry | undefined {
    return this.#entries.get(id);
  }

  /** Every waiting callback. */
  values(): IterableIterator<PendingEntry> {
    return this.#entries.values();
  }

  #remove(entry: PendingEntry): void {
    this.#entries.delete(entry.id);
    const lane = this.#lanes.get(entry.timeout)!;
    if (entry.prev) entry.prev.next = entry.next;
    else lane.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else lane.tail = entry.prev;
    entry.prev = entry.next = undefined;
    if (lane.head === undefined && this.#lanes.size > 8) this.#lanes.delete(entry.timeout);
    entry.detach?.();
    entry.sent = undefined;
    this.#recent.set(entry.id, entry.contract);
    if (this.#recent.size >= this.#recentLimit) {
      this.#older = this.#recent;
      this.#recent = new Map();
    }
  }

  #schedule(at: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(this.#expire, Math.max(0, at - performance.now()));
  }

  #cancel(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #expire = (): void => {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = performance.now();
    const expired: PendingEntry[] = [];
    let next = Infinity;
    for (const lane of this.#lanes.values()) {
      while (lane.head !== undefined && lane.head.deadline <= now) {
        const entry = lane.head;
        this.#remove(entry);
        expired.push(entry);
      }
      if (lane.head !== undefined && lane.head.deadline < next) next = lane.head.deadline;
    }
    if (next !== Infinity) this.#schedule(next);
    for (const entry of expired) this.#onExpire(entry);
  };
}
