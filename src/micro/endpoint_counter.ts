/**
 * The counters of one service endpoint, as `$SRV.STATS` reports them.
 *
 * @module
 */

import { ERROR_CODE_HEADER, ERROR_HEADER } from "../wire.ts";
import type { EndpointStats } from "./protocol.ts";

/** Counts the requests one endpoint serves, its error replies and its time. */
export class EndpointCounter {
  readonly #endpoint: {
    readonly name: string;
    readonly subject: string;
    readonly queue_group: string;
  };
  #requests = 0;
  #errors = 0;
  #lastError = "";
  #nanoseconds = 0;

  /** @param endpoint The endpoint's name, subject and queue group (`""` for none). */
  constructor(endpoint: { name: string; subject: string; queue_group: string }) {
    const { name, subject, queue_group } = endpoint;
    this.#endpoint = { name, subject, queue_group };
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
      ...this.#endpoint,
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
