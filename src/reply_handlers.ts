/**
 * Client-side reply handlers (`endpoint.onReply`): they see an object
 * contract's replies after the callback, and its late replies.
 *
 * @module
 */

import type { Contract, ReplyOf } from "./contract.ts";

/** Sees object replies of one contract, after the callback, and its late replies. */
export type ReplyHandler<C extends Contract> = (
  reply: ReplyOf<C>,
  info: ReplyInfo,
) => void;

/** What a reply handler learns beside the reply. */
export interface ReplyInfo {
  /** The request's id (its `request` event's `id`). */
  readonly id: string;
  /** Whether no callback waited for it (it came after the callback settled, or was recovered). */
  readonly late: boolean;
  /** Whether it arrived while no instance of a durable endpoint ran, and was kept for this one. */
  readonly recovered: boolean;
}

/** The reply handlers of one endpoint, by contract. */
export class ReplyHandlers {
  readonly #handlers = new Map<Contract, Set<ReplyHandler<Contract>>>();
  readonly #report: (subject: string, error: unknown) => void;

  /** @param report Reports a handler that threw (an `error` event). */
  constructor(report: (subject: string, error: unknown) => void) {
    this.#report = report;
  }

  /** Adds a handler; returns what removes it. */
  add(contract: Contract, handler: ReplyHandler<Contract>): () => void {
    let handlers = this.#handlers.get(contract);
    if (!handlers) this.#handlers.set(contract, handlers = new Set());
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
      if (handlers.size === 0) this.#handlers.delete(contract);
    };
  }

  /** Whether a contract has handlers (so a late reply is worth reading). */
  has(contract: Contract): boolean {
    return this.#handlers.has(contract);
  }

  /** The contract with handlers whose subject is `subject`, if any. */
  bySubject(subject: string): Contract | undefined {
    for (const contract of this.#handlers.keys()) if (contract.subject === subject) return contract;
    return undefined;
  }

  /**
   * Runs the handlers registered when the reply arrived, after the callback: in
   * a microtask, so the caller's continuation (queued by `resolve`) runs first,
   * and replies' handlers run in arrival order. A handler stopped (or an
   * endpoint closed) by the caller's continuation still sees the reply it was
   * registered for. A handler that throws is reported; the others still run.
   */
  run(
    contract: Contract,
    value: unknown,
    info: ReplyInfo,
  ): void {
    const registered = this.#handlers.get(contract);
    if (registered === undefined) return;
    const handlers = [...registered];
    queueMicrotask(() => {
      for (const handler of handlers) {
        try {
          handler(value as never, info);
        } catch (error) {
          this.#report(contract.subject, error);
        }
      }
    });
  }
}
