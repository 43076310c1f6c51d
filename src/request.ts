/**
 * One request on its way out: its body validated and encoded with its
 * headers, checked against what NATS can carry, and the reasons it can expire
 * with. Pure functions; the endpoint owns the request's callback.
 *
 * @module
 */

import type { Contract } from "./contract.ts";
import {
  DisconnectedError,
  InvalidRequestError,
  type NoReplyErrorOptions,
  TimeoutError,
} from "./errors.ts";
import type { Outcome } from "./events.ts";
import { headerBytes, headersProblem, MAX_CONTROL_LINE, publishLineBytes } from "./limits.ts";
import type { PendingEntry } from "./pending.ts";
import { summarize } from "./reply.ts";
import { checkSchema } from "./schema.ts";
import { encodeText, SENT_HEADER, STAMP_BYTES, TIMEOUT_HEADER } from "./wire.ts";

/** A request ready to publish. */
export interface EncodedRequest {
  /** The JSON of the validated body. */
  readonly data: Uint8Array;
  /** The caller's headers, the time budget, and a place for `Callback-Sent`. */
  readonly headers: Record<string, string>;
  /** Body and header bytes, as NATS counts them against `max_payload`. */
  readonly size: number;
}

/**
 * Validates a request body against its contract and encodes it with its
 * headers. Throws `InvalidRequestError` (nothing is sent) when the body fails
 * the schema, a header cannot travel, or body and headers pass `maxPayload`.
 */
export function encodeRequest(
  contract: Contract,
  body: unknown,
  options: {
    headers: Readonly<Record<string, string>> | undefined;
    timeout: number;
    maxPayload: number;
    /** Adds headers (a trace context) before the size is checked; gets the body's bytes. */
    trace?: ((headers: Record<string, string>, bytes: number) => void) | undefined;
  },
): EncodedRequest {
  const { subject } = contract;
  const checked = checkSchema(contract.request, body);
  if (!checked.ok) {
    throw new InvalidRequestError(
      `invalid ${subject} request: ${summarize(checked.issues)}; nothing was sent`,
      { issues: checked.issues },
    );
  }
  const extra = options.headers;
  const problem = extra === undefined ? undefined : headersProblem(extra);
  if (problem !== undefined) {
    throw new InvalidRequestError(`${subject} request: ${problem}; nothing was sent`);
  }
  const data = encodeText(JSON.stringify(body) ?? "null");
  const headers = {
    ...extra,
    [TIMEOUT_HEADER]: String(Math.ceil(options.timeout)),
    [SENT_HEADER]: "",
  } as Record<string, string>;
  options.trace?.(headers, data.length);
  const size = data.length + headerBytes(headers) + STAMP_BYTES;
  const { maxPayload } = options;
  if (size > maxPayload) {
    throw new InvalidRequestError(
      `${subject} request is ${size} bytes with its headers, over the server's ` +
        `max_payload of ${maxPayload} bytes: send less, or raise max_payload in the server config; nothing was sent`,
    );
  }
  return { data, headers, size };
}

/**
 * Throws `InvalidRequestError` unless a request of `size` bytes on `subject`,
 * with a reply subject in `inbox`, fits one NATS protocol line.
 */
export function assertFitsLine(subject: string, inbox: string, size: number): void {
  if (publishLineBytes(subject, `${inbox}.${ID_SAMPLE}`, size) > MAX_CONTROL_LINE) {
    throw new InvalidRequestError(
      `${subject} and the reply subject are too long for one NATS protocol line ` +
        `(${MAX_CONTROL_LINE} bytes): use a shorter subject or inboxPrefix; nothing was sent`,
    );
  }
}

/** A reply token as long as a `crypto.randomUUID()`, to measure a protocol line. */
const ID_SAMPLE = "00000000-0000-0000-0000-000000000000";

/** How a request whose deadline passed settles: held, in flight across a drop, or timed out. */
export function expired(entry: PendingEntry): [Outcome, Error] {
  const { subject } = entry.contract;
  const options = about(entry);
  if (entry.state === "held") {
    return [
      "disconnected",
      new DisconnectedError(
        `the connection to NATS was down for the whole ${entry.timeout} ms ${subject} could wait: ` +
          `nothing was sent; send again once it is back`,
        options,
      ),
    ];
  }
  if (entry.state === "disrupted") {
    return [
      "disconnected",
      new DisconnectedError(
        `the connection to NATS dropped while ${subject} was in flight and no reply came within ` +
          `${entry.timeout} ms: it may or may not have been processed`,
        options,
      ),
    ];
  }
  return [
    "timeout",
    new TimeoutError(
      `no reply to ${subject} within ${entry.timeout} ms: ` +
        `check that a responder runs and is healthy, or raise the timeout`,
      options,
    ),
  ];
}

/** The subject and timeout of a request, for the errors that carry them. */
export function about(entry: PendingEntry): NoReplyErrorOptions {
  return { subject: entry.contract.subject, timeout: entry.timeout };
}

/** When a request leaves, in milliseconds since 1970. */
export function stamp(): string {
  return String(Date.now());
}

/** The longest delay a timer holds, in milliseconds (2^31 − 1). */
export const MAX_TIMEOUT = 2_147_483_647;

/**
 * A timeout in milliseconds, from 1 to 2^31−1 (what a timer holds); a
 * `RangeError` naming `what` otherwise.
 */
export function checkTimeout(timeout: unknown, what: string): number {
  if (typeof timeout !== "number" || !(timeout >= 1) || timeout > MAX_TIMEOUT) {
    throw new RangeError(
      `${what} must be a number of milliseconds from 1 to 2147483647, got ${String(timeout)}`,
    );
  }
  return timeout;
}
