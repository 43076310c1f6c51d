/**
 * Raw responders for property tests: subscribers on a fixture's responder
 * side that answer as each request's body says, count the requests they got
 * and the replies they sent per reply token, run replies on timers they can
 * cancel, and tell when everything sent has reached the caller.
 */

import { assertStrictEquals } from "@std/assert";
import type { TransportMessage } from "../../mod.ts";
import type { Fixture } from "./fixture.ts";

/** What a responder's answer function gets for one request. */
export interface Answer {
  /** The request's body, parsed. */
  // deno-lint-ignore no-explicit-any
  readonly body: any;
  /** Publishes one reply to the request, counted. */
  send(data: string, headers: Record<string, string>): void;
  /** Runs `fn` after `ms`; `drain()` waits for it. */
  after(ms: number, fn: () => void): void;
}

/** The responders of one property test run. */
export class RawResponders implements Disposable {
  readonly #fx: Fixture;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #subscriptions: { unsubscribe(): void }[] = [];
  #received = 0;
  #scheduled = 0;
  #wake: (() => void) | undefined;
  /** Replies sent, per reply token (the reply subject's last token). */
  readonly sent: Map<string, number> = new Map();

  /** @param fx The fixture whose responder side they subscribe on. */
  constructor(fx: Fixture) {
    this.#fx = fx;
  }

  /** Subscribes the k-th responder of `subject` (no queue group), answering with `answer`. */
  add(subject: string, k: number, answer: (k: number, request: Answer) => void): void {
    const encoder = new TextEncoder();
    this.#subscriptions.push(this.#fx.responder.subscribe(subject, (message: TransportMessage) => {
      this.#received++;
      const id = message.reply.slice(message.reply.lastIndexOf(".") + 1);
      answer(k, {
        body: JSON.parse(new TextDecoder().decode(message.data)),
        send: (data, headers) => {
          this.#fx.responder.publish(message.reply, encoder.encode(data), { headers });
          this.sent.set(id, (this.sent.get(id) ?? 0) + 1);
        },
        after: (ms, fn) => {
          this.#scheduled++;
          this.later(ms, () => {
            fn();
            this.#scheduled--;
            this.#progress();
          });
        },
      });
      this.#progress();
    }));
  }

  /** Runs `fn` after `ms` on a timer that `[Symbol.dispose]` cancels. */
  later(ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  /**
   * Waits until the responders got `expected` requests in all and sent every
   * reply, then until those replies reached the caller (NATS: the responder's
   * flush, then the caller's; memory: a macrotask).
   */
  async drain(expected: number): Promise<void> {
    let guard: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<never>((_, reject) => {
      guard = setTimeout(
        () =>
          reject(
            new Error(
              `responders stuck: ${this.#received}/${expected} requests, ${this.#scheduled} timers`,
            ),
          ),
        5_000,
      );
    });
    try {
      while (this.#received < expected || this.#scheduled > 0) {
        await Promise.race([new Promise<void>((resolve) => this.#wake = resolve), stuck]);
      }
    } finally {
      clearTimeout(guard);
    }
    await this.#fx.ready();
    await this.#fx.ready();
    await new Promise((resolve) => setTimeout(resolve, 0));
    assertStrictEquals(this.#received, expected, "requests received by the responders");
  }

  /** Unsubscribes, and cancels the replies still scheduled (after a failure they answer nobody). */
  [Symbol.dispose](): void {
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
    for (const timer of this.#timers) clearTimeout(timer);
  }

  #progress(): void {
    const resolve = this.#wake;
    this.#wake = undefined;
    resolve?.();
  }
}
