/**
 * Client-side reply handlers (`endpoint.onReply`), and what becomes of a
 * reply no callback waits for: they see a contract's replies after the
 * callback, its late replies, and the replies a durable transport kept for
 * this endpoint while no instance of it ran.
 *
 * @module
 */

import type { Contract, ReplyOf } from "./contract.ts";
import { readReply } from "./reply.ts";
import type { TransportMessage } from "./transport.ts";

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

/** What reply handlers tell their endpoint. */
export interface ReplyHandlersHost {
  /** Reports a handler that threw, or a kept reply against its contract (an `error` event). */
  report(subject: string, error: unknown): void;
  /** A reply no callback waited for (a `late-reply` event); `subject` when its contract is known. */
  late(subject: string | undefined, id: string): void;
}

/** The reply handlers of one endpoint, by contract. */
export class ReplyHandlers {
  readonly #handlers = new Map<Contract, Set<ReplyHandler<Contract>>>();
  readonly #host: ReplyHandlersHost;

  /** @param host Where errors and late replies are reported. */
  constructor(host: ReplyHandlersHost) {
    this.#host = host;
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

  /**
   * A reply whose callback already settled (`contract` is the one it was
   * sent with, when it is still remembered): a late reply, read and handed to
   * the contract's handlers if it has any.
   */
  late(contract: Contract | undefined, message: { id: string; reply: TransportMessage }): void {
    const { id, reply } = message;
    this.#host.late(contract?.subject, id);
    if (contract === undefined || !this.#handlers.has(contract)) return;
    const result = readReply(contract, reply);
    if (result.ok) this.run(contract, result.value, { id, late: true, recovered: false });
  }

  /**
   * A reply a durable transport kept for an earlier instance of this
   * endpoint: read against the contract its request was sent with, and
   * handed to that contract's handlers; one whose contract has no handler
   * yet is delivered again later.
   */
  recover(id: string, reply: TransportMessage): void {
    let subject: string | undefined;
    try {
      subject = reply.requestSubject;
    } catch {
      // Unknown: reported as late below.
    }
    let contract: Contract | undefined;
    for (const known of this.#handlers.keys()) if (known.subject === subject) contract = known;
    if (contract === undefined) {
      if (subject !== undefined && reply.retryLater) return reply.retryLater();
      return this.#host.late(subject, id);
    }
    const result = readReply(contract, reply);
    if (result.ok) return this.run(contract, result.value, { id, late: true, recovered: true });
    this.#host.late(subject, id);
    this.#host.report(contract.subject, result.error);
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
          this.#host.report(contract.subject, error);
        }
      }
    });
  }
}
