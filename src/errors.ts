/**
 * Every error a callback can settle with, and the one a responder throws.
 *
 * Each class sets `name`, carries `cause` where there is one, and has a
 * message that says what to do. Wrong arguments are plain `TypeError` /
 * `RangeError`; an abort rejects with the signal's `reason`, as the web
 * platform does.
 *
 * @module
 */

/**
 * One problem found by a schema, as Standard Schema describes it; valibot's
 * issues carry more fields (`kind`, `expected`, `received`, …), kept as they are.
 */
export interface Issue {
  /** What went wrong, in the schema library's words. */
  readonly message: string;
  /** Where, as keys from the root; absent for the root itself. */
  readonly path?: readonly (PropertyKey | { readonly key: PropertyKey })[] | undefined;
}

/**
 * The base class of every error this library makes, so a program can tell
 * them from anything else with one `instanceof`.
 *
 * @example Telling the library's errors apart
 * ```ts
 * import { assert } from "@std/assert";
 * import { CallbackError, TimeoutError } from "@seed/callbacks";
 * const error = new TimeoutError("no reply", { subject: "stock.check", timeout: 10 });
 * assert(error instanceof CallbackError && error.subject === "stock.check");
 * ```
 */
export class CallbackError extends Error {
  /** The error's name, for logs and for telling errors apart. */
  override name: string = "CallbackError";
}

/** Options of the errors that say what happened to one request. */
export interface NoReplyErrorOptions extends ErrorOptions {
  /** The contract's subject. */
  subject?: string;
  /** The time the request could wait, in milliseconds. */
  timeout?: number;
}

/**
 * The request got no reply: it timed out ({@linkcode TimeoutError}), nobody
 * listens ({@linkcode NoRespondersError}), or the connection was lost
 * ({@linkcode DisconnectedError}). Each carries the subject and the timeout
 * that applied, to branch and log on.
 *
 * @example Reading the subject and the timeout
 * ```ts
 * import { assert } from "@std/assert";
 * import { NoRespondersError, NoReplyError } from "@seed/callbacks";
 * const error = new NoRespondersError("no responders", { subject: "stock.check", timeout: 10 });
 * assert(error instanceof NoReplyError && error.timeout === 10);
 * ```
 */
export class NoReplyError extends CallbackError {
  /** The contract's subject; `undefined` when the error concerns no single request. */
  readonly subject: string | undefined;
  /** The time the request could wait, in milliseconds; `undefined` when none applied yet. */
  readonly timeout: number | undefined;
  /** Makes a NoReplyError. */
  constructor(message: string, options: NoReplyErrorOptions = {}) {
    super(message, options);
    this.subject = options.subject;
    this.timeout = options.timeout;
  }
}

/**
 * No reply arrived before the deadline (the call's `timeout`, else the
 * endpoint's).
 *
 * An abort through `AbortSignal.timeout()` is not this error: the request
 * rejects with the signal's reason, a `DOMException` that is also named
 * `"TimeoutError"`. Tell them apart with `instanceof TimeoutError` (this
 * class), never with `error.name`.
 *
 * @example Telling a timeout apart from an AbortSignal.timeout()
 * ```ts
 * import { assert } from "@std/assert";
 * import { TimeoutError } from "@seed/callbacks";
 * const ours = new TimeoutError("no reply to stock.check within 10 ms", { subject: "stock.check", timeout: 10 });
 * const platform = new DOMException("signal timed out", "TimeoutError");
 * assert(ours instanceof TimeoutError && !(platform instanceof TimeoutError));
 * ```
 */
export class TimeoutError extends NoReplyError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "TimeoutError";
}

/**
 * Nobody is subscribed to the request's subject (NATS status 503): the request
 * was not received by anyone, so it is safe to send again later.
 *
 * @example Falling back when no responder runs
 * ```ts
 * import { assert } from "@std/assert";
 * import { NoRespondersError } from "@seed/callbacks";
 * const error = new NoRespondersError("no responders for stock.check: start a responder");
 * assert(error instanceof NoRespondersError);
 * ```
 */
export class NoRespondersError extends NoReplyError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "NoRespondersError";
}

/** Options of {@linkcode InvalidReplyError} and {@linkcode InvalidRequestError}. */
export interface ValidationErrorOptions extends ErrorOptions {
  /** The schema's issues. */
  issues?: readonly Issue[];
}

/**
 * A reply arrived but is not what the contract promises: wrong kind header,
 * not decodable, or rejected by the response schema. `issues` says why.
 *
 * @example Reading the issues
 * ```ts
 * import { assert } from "@std/assert";
 * import { InvalidReplyError } from "@seed/callbacks";
 * const error = new InvalidReplyError("invalid reply", { issues: [{ message: "not an int" }] });
 * assert(error.issues[0]?.message === "not an int");
 * ```
 */
export class InvalidReplyError extends CallbackError {
  /** What the schema found wrong (empty when the reply could not be decoded at all). */
  readonly issues: readonly Issue[];
  /** Makes an InvalidReplyError. */
  constructor(message: string, options: ValidationErrorOptions = {}) {
    super(message, options);
    this.name = "InvalidReplyError";
    this.issues = options.issues ?? [];
  }
}

/**
 * The request body does not match the contract's request schema; nothing was
 * sent.
 *
 * @example Reading the issues
 * ```ts
 * import { assert } from "@std/assert";
 * import { InvalidRequestError } from "@seed/callbacks";
 * const error = new InvalidRequestError("invalid request", { issues: [{ message: "sku is required" }] });
 * assert(error.issues.length === 1);
 * ```
 */
export class InvalidRequestError extends CallbackError {
  /** What the schema found wrong. */
  readonly issues: readonly Issue[];
  /** Makes an InvalidRequestError. */
  constructor(message: string, options: ValidationErrorOptions = {}) {
    super(message, options);
    this.name = "InvalidRequestError";
    this.issues = options.issues ?? [];
  }
}

/** Options of {@linkcode RemoteError}. */
export interface RemoteErrorOptions extends ErrorOptions {
  /** The `Nats-Service-Error-Code` header. */
  code: number;
  /** The `Nats-Service-Error` header. */
  description: string;
  /** The error reply's JSON body, if it had one. */
  data?: unknown;
}

/**
 * The responder answered with an error (`Nats-Service-Error-Code` and
 * `Nats-Service-Error` headers, as NATS micro services do).
 *
 * @example Branching on the code
 * ```ts
 * import { assert } from "@std/assert";
 * import { RemoteError } from "@seed/callbacks";
 * const error = new RemoteError("stock.check failed", { code: 404, description: "unknown sku" });
 * assert(error.code === 404 && error.description === "unknown sku");
 * ```
 */
export class RemoteError extends CallbackError {
  /** The error code the responder sent (400 invalid request, 500 handler failure, or its own). */
  readonly code: number;
  /** The responder's description. */
  readonly description: string;
  /** The JSON body of the error reply, `undefined` when it had none. */
  readonly data: unknown;
  /** Makes a RemoteError. */
  constructor(message: string, options: RemoteErrorOptions) {
    super(message, options);
    this.name = "RemoteError";
    this.code = options.code;
    this.description = options.description;
    this.data = options.data;
  }
}

/**
 * The endpoint was closed: callbacks live in memory, so whatever was pending
 * is rejected with this and its replies, if they come, are dropped.
 *
 * @example After close
 * ```ts
 * import { assert } from "@std/assert";
 * import { ClosedError } from "@seed/callbacks";
 * assert(new ClosedError("endpoint closed").name === "ClosedError");
 * ```
 */
export class ClosedError extends CallbackError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "ClosedError";
}

/**
 * `maxPending` callbacks are already waiting; the request was not sent.
 *
 * @example Shedding load
 * ```ts
 * import { assert } from "@std/assert";
 * import { PendingLimitError } from "@seed/callbacks";
 * assert(new PendingLimitError("too many").name === "PendingLimitError");
 * ```
 */
export class PendingLimitError extends CallbackError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "PendingLimitError";
}

/**
 * The connection to NATS was down for the whole time the request could wait,
 * closed, or dropped while the request was in flight.
 *
 * @example Retrying later
 * ```ts
 * import { assert } from "@std/assert";
 * import { DisconnectedError } from "@seed/callbacks";
 * assert(new DisconnectedError("connection closed").name === "DisconnectedError");
 * ```
 */
export class DisconnectedError extends NoReplyError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "DisconnectedError";
}

/**
 * The `DisconnectedError` of a NATS connection closed for good, whether the
 * endpoint saw it close or a publish on it failed (`cause`).
 *
 * @example The error a closed connection gives
 * ```ts
 * import { assert } from "@std/assert";
 * import { connectionClosed, DisconnectedError } from "./errors.ts";
 * assert(connectionClosed() instanceof DisconnectedError);
 * ```
 */
export function connectionClosed(options: NoReplyErrorOptions = {}): DisconnectedError {
  return new DisconnectedError(
    "the NATS connection is closed: no reply can arrive; open a new connection and a new endpoint, and send again",
    options,
  );
}

/** Options of {@linkcode ReplyError}. */
export interface ReplyErrorOptions extends ErrorOptions {
  /** Sent as the error reply's JSON body; the caller reads it as `RemoteError.data`. */
  data?: unknown;
}

/**
 * Thrown by a handler to answer with a typed error: the caller's request
 * rejects with a {@linkcode RemoteError} of the same `code` and
 * `description`. Any other exception answers code 500 with a generic
 * description, so nothing of the handler's internals leaks.
 *
 * @example Answering "not found"
 * ```ts
 * import { assert } from "@std/assert";
 * import { ReplyError } from "@seed/callbacks";
 * const error = new ReplyError(404, "unknown sku", { data: { sku: "Z-9" } });
 * assert(error.code === 404);
 * ```
 */
export class ReplyError extends CallbackError {
  /** The error code sent in `Nats-Service-Error-Code`. */
  readonly code: number;
  /** The description sent in `Nats-Service-Error`. */
  readonly description: string;
  /** The error reply's body, `undefined` for none. */
  readonly data: unknown;
  /**
   * Makes a ReplyError.
   *
   * @param code An integer error code, 100 to 999 like HTTP's (400, 404, 409, 503, …).
   * @param description A one-line description for the caller (no line breaks).
   * @throws {RangeError} When the code is not an integer from 100 to 999.
   */
  constructor(code: number, description: string, options: ReplyErrorOptions = {}) {
    if (!Number.isInteger(code) || code < 100 || code > 999) {
      throw new RangeError(`ReplyError code must be an integer from 100 to 999, got ${code}`);
    }
    super(`${code} ${description}`, options);
    this.name = "ReplyError";
    this.code = code;
    this.description = description;
    this.data = options.data;
  }
}

/**
 * A durable transport could not start: the server has no JetStream, or
 * another live instance holds the durable name. The message says which and
 * what to do.
 *
 * @example Telling a name in use apart
 * ```ts
 * import { assert } from "@std/assert";
 * import { DurableError } from "@seed/callbacks/durable";
 * const error = new DurableError("the durable name checkout-1 is in use", { reason: "name-in-use" });
 * assert(error.reason === "name-in-use");
 * ```
 */
export class DurableError extends CallbackError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "DurableError";
  /** Why: `no-jetstream` or `name-in-use`. */
  readonly reason: "no-jetstream" | "name-in-use";
  /**
   * Makes a DurableError.
   *
   * @param message What happened and what to do.
   * @param options `reason`, and the `cause`.
   */
  constructor(
    message: string,
    options: ErrorOptions & { reason: "no-jetstream" | "name-in-use" },
  ) {
    super(message, options);
    this.reason = options.reason;
  }
}

/**
 * Why a Worker's callback could not go through its callbacks Durable
 * Object: `config` (the object's NATS settings are missing or wrong),
 * `connect` (NATS refused the object's connection, e.g. its credentials),
 * `protocol` (the Worker and the object do not understand each other: deploy
 * them from one version), `object` (the object failed).
 */
export type EdgeErrorReason = "config" | "connect" | "protocol" | "object";

/**
 * A Worker's callback could not go through its callbacks Durable Object for
 * a reason of the deployment, not of the request: the message says which and
 * what to fix. (A NATS connection that is down, or a responder that does not
 * answer, give the same errors as an endpoint: `DisconnectedError`,
 * `TimeoutError`, `NoRespondersError`.)
 *
 * @example Telling a missing setting apart
 * ```ts
 * import { assert } from "@std/assert";
 * import { EdgeError } from "@seed/callbacks/cloudflare";
 * const error = new EdgeError("set NATS_SERVERS", { reason: "config" });
 * assert(error.reason === "config" && error.name === "EdgeError");
 * ```
 */
export class EdgeError extends CallbackError {
  /** The error's name, for logs and for telling errors apart. */
  override readonly name = "EdgeError";
  /** Why: `config`, `connect`, `protocol` or `object`. */
  readonly reason: EdgeErrorReason;
  /**
   * Makes an EdgeError.
   *
   * @param message What happened and what to do.
   * @param options `reason`, and the `cause`.
   */
  constructor(message: string, options: ErrorOptions & { reason: EdgeErrorReason }) {
    super(message, options);
    this.reason = options.reason;
  }
}
