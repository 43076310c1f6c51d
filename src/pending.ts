/**
 * The callback table: what is waiting for a reply, with its timer, and a
 * bounded memory of what settled recently (to tell a late reply from a
 * stranger's).
 *
 * @module
 */

import type { Contract } from "./contract.ts";

/** A callback waiting for its reply. */
export interface PendingEntry {
  /** The reply token. */
  readonly id: string;
  /** The contract it was sent with. */
  readonly contract: Contract;
  /** `performance.now()` when `request()` was called. */
  readonly started: number;
  /** Settles the caller's promise with a value. */
  readonly resolve: (value: unknown) => void;
  /** Settles the caller's promise with an error. */
  readonly reject: (reason: unknown) => void;
  /** The timeout timer. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Removes the abort listener, if any. */
  detach: (() => void) | undefined;
}

/** The pending callbacks of one endpoint. */
export class PendingTable {
  readonly #entries = new Map<string, PendingEntry>();
  readonly #recent = new Map<string, Contract>();
  readonly #recentLimit: number;

  /** @param recentLimit How many settled ids to remember for late replies. */
  constructor(recentLimit: number) {
    this.#recentLimit = recentLimit;
  }

  /** How many callbacks are waiting. */
  get size(): number {
    return this.#entries.size;
  }

  /** Registers a callback. */
  add(entry: PendingEntry): void {
    this.#entries.set(entry.id, entry);
  }

  /**
   * Removes a callback so it can settle: clears its timer and abort listener
   * and remembers its id as recently settled. `undefined` when it is not
   * waiting (already settled, or never known).
   */
  take(id: string): PendingEntry | undefined {
    const entry = this.#entries.get(id);
    if (entry === undefined) return undefined;
    this.#entries.delete(id);
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    entry.detach?.();
    this.#recent.set(id, entry.contract);
    if (this.#recent.size > this.#recentLimit) {
      this.#recent.delete(this.#recent.keys().next().value!);
    }
    return entry;
  }

  /** The contract of a recently settled callback, `undefined` if unknown. */
  settled(id: string): Contract | undefined {
    return this.#recent.get(id);
  }

  /** The ids of every waiting callback. */
  ids(): string[] {
    return [...this.#entries.keys()];
  }
}
