/**
 * The options of an endpoint and of its calls: their types, defaults and
 * checks.
 *
 * @module
 */

import { checkInboxPrefix } from "./inbox.ts";
import { isQueue, MAX_CONTROL_LINE, subscribeLineBytes } from "./limits.ts";
import { checkTimeout } from "./request.ts";

/** Options of {@linkcode Endpoint}. */
export interface EndpointOptions {
  /** Default time a request waits for its reply, in milliseconds. Default 30 000. */
  timeout?: number;
  /** How many callbacks may wait at once; beyond it `request()` rejects with `PendingLimitError`. Default 10 000. */
  maxPending?: number;
  /** An endpoint that only answers (`handle`) and never waits for replies: it opens no reply inbox. */
  sendOnly?: boolean;
  /** The subject space of the reply inbox. Default `_INBOX`. */
  inboxPrefix?: string;
  /**
   * How many bytes of requests (bodies and headers) may be held while the
   * connection is down; beyond it `request()` rejects at once with
   * `PendingLimitError`. Default 16 MiB.
   */
  maxHeldBytes?: number;
  /**
   * Whether an `error` (a handler that threw, a reply against the contract, a
   * reply that could not be sent) is logged with `console.error` when no
   * `error` listener is registered. Default `true`.
   */
  logErrors?: boolean;
}

/** Options of {@linkcode Endpoint.request}. */
export interface RequestOptions {
  /** Aborts the wait: the promise rejects with `signal.reason` and the callback is removed. */
  signal?: AbortSignal;
  /** Time to wait for the reply, in milliseconds; the endpoint's `timeout` when absent. */
  timeout?: number;
  /** Extra headers to send with the request. */
  headers?: Readonly<Record<string, string>>;
}

/** Options of {@linkcode Endpoint.handle}. */
export interface HandleOptions {
  /** Queue group, so that scaled-out responders share the requests. Default `"q"`, the queue group NATS micro services use, so responders of both kinds share requests on one subject; `false` for none (every instance answers). */
  queue?: string | false;
}

/** A registration that can be stopped: a responder or a reply handler. */
export interface Registration extends Disposable {
  /** Stops it. Idempotent. */
  stop(): void;
  /**
   * Resolves once it is live: for `handle()`, once the server has the
   * subscription, so a caller on another connection started after it never
   * meets "no responders" (a drop on the way waits for the reconnect). Rejects
   * with `DisconnectedError` if the connection closes first, and with the
   * server's error if it refuses the subscription (permissions).
   */
  readonly ready: Promise<void>;
}

/** An endpoint's options, checked, with their defaults. */
export interface Settings {
  readonly timeout: number;
  readonly maxPending: number;
  readonly maxHeldBytes: number;
  readonly sendOnly: boolean;
  readonly logErrors: boolean;
  readonly inboxPrefix: string;
}

/**
 * Checks an endpoint's options and fills in the defaults: `timeout` 30 s,
 * `maxPending` 10,000, `maxHeldBytes` 16 MiB, `inboxPrefix` `_INBOX`,
 * `logErrors` on. Throws `RangeError` or `TypeError` for a bad one.
 */
export function settingsOf(options: EndpointOptions): Settings {
  return {
    timeout: checkTimeout(options.timeout ?? 30_000, "Endpoint option timeout"),
    maxPending: atLeastOne(options.maxPending ?? 10_000, "maxPending"),
    maxHeldBytes: atLeastOne(options.maxHeldBytes ?? 16 * 1024 * 1024, "maxHeldBytes"),
    sendOnly: options.sendOnly === true,
    logErrors: options.logErrors !== false,
    inboxPrefix: checkInboxPrefix(options.inboxPrefix ?? "_INBOX"),
  };
}

/**
 * The queue group `handle()` joins: `"q"` by default, as NATS micro services;
 * `undefined` for none (`queue: false`). Throws `TypeError` for a name with a
 * space or control character, `RangeError` when the subscription would not fit
 * one NATS protocol line.
 */
export function queueOf(subject: string, options: HandleOptions): string | undefined {
  const queue = options.queue === undefined ? "q" : options.queue;
  if (queue !== false && (typeof queue !== "string" || !isQueue(queue))) {
    throw new TypeError(
      `handle(${subject}): queue must be a name without spaces or control characters, or false; got ${
        JSON.stringify(queue)
      }`,
    );
  }
  if (subscribeLineBytes(subject, queue || undefined) > MAX_CONTROL_LINE) {
    throw new RangeError(
      `handle(${subject}): the subject and queue are too long for one NATS protocol line ` +
        `(${MAX_CONTROL_LINE} bytes): use a shorter subject or queue`,
    );
  }
  return queue || undefined;
}

function atLeastOne(value: unknown, name: string): number {
  if (typeof value !== "number" || !(value >= 1)) {
    throw new RangeError(
      `Endpoint option ${name} must be a number, at least 1, got ${String(value)}`,
    );
  }
  return value;
}
