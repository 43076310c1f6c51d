/**
 * The counters of one service endpoint, as `$SRV.STATS` reports them.
 *
 * @module
 */

import { ERROR_CODE_HEADER, ERROR_HEADER } from "../wire.ts";
import type { EndpointStats } from "./protocol.ts";

/** Counts the requests one endpoint serves, its error replies and its time. */
export class EndpointCounter {
  readonly #name: string;
  readonly #subject: string;
  readonly #queue: string | undefined;
  #requests = 0;
  #errors = 0;
  #lastError = "";
  #nanoseconds = 0;

  /**
   * @param name The endpoint's name.
   * @param subject The subject it answers on.
   * @param queue Its queue group, `undefined` for none.
   */
  constructor(name: string, subject: string, queue: string | undefined) {
    this.#name = name;
    this.#subject = subject;
    this.#queue = queue;
  }

  /**
   * Counts one request served in `milliseconds`, answered with `headers`
   * (`undefined` when no answer was sent): an error reply counts as an error.
   */
  record(milliseconds: number, headers: Readonly<Record<string, string>> | undefined): void {
    this.#requests++;
    this.#nanoseconds += Math.max(0, Math.round(milliseconds * 1e6));
    const code = headers?.[ERROR_CODE_HEADER];
    if (code !== undefined) {
      this.#errors++;
      this.#lastError = `${code}:${headers?.[ERROR_HEADER] ?? ""}`;
    }
  }

  /** Zeroes the counters. */
  reset(): void {
    this.#requests = this.#errors = this.#nanoseconds = 0;
    this.#lastError = "";
  }

  /** The counters as the `$SRV.STATS` document has them. */
  stats(): EndpointStats {
    return {
      name: this.#name,
      subject: this.#subject,
      ...(this.#queue === undefined ? {} : { queue_group: this.#queue }),
      num_requests: this.#requests,
      num_errors: this.#errors,
      last_error: this.#lastError,
      processing_time: this.#nanoseconds,
      average_processing_time: this.#requests === 0
        ? 0
        : Math.floor(this.#nanoseconds / this.#requests),
    };
  }
}
