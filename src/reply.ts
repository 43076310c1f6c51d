/**
 * Reading a reply: its headers, status, kind and body, decoded and checked
 * against the contract. Pure functions that never throw: whatever comes off
 * the wire becomes a value or a typed error.
 *
 * @module
 */

import type { Contract } from "./contract.ts";
import { InvalidReplyError, type Issue, NoRespondersError, RemoteError } from "./errors.ts";
import type { Outcome } from "./events.ts";
import { decodeResponse, parseJson } from "./responses.ts";
import type { TransportMessage } from "./transport.ts";
import { decodeText, ERROR_CODE_HEADER, ERROR_HEADER, errorText, KIND_HEADER } from "./wire.ts";

/** A reply read: the value, or the outcome and error it settles its request with. */
export type ReplyResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly outcome: Outcome; readonly error: Error };

/** An error code as NATS micro sends it: three digits, 100 to 999. */
const ERROR_CODE = /^[1-9][0-9]{2}$/;

/**
 * Reads a reply for a contract. Never throws: a message whose headers, status
 * or body cannot be read is an `InvalidReplyError` carrying the cause.
 *
 * @param contract The contract the request was sent with.
 * @param message The reply as the transport delivered it.
 * @param timeout The time the request could wait, for the errors that carry it.
 */
export function readReply(
  contract: Contract,
  message: TransportMessage,
  timeout?: number,
): ReplyResult {
  try {
    return read(contract, message, timeout);
  } catch (cause) {
    return invalid(contract.subject, `it cannot be read (${errorText(cause)})`, { cause });
  }
}

function read(contract: Contract, message: TransportMessage, timeout?: number): ReplyResult {
  const { subject, response } = contract;
  const code = message.header(ERROR_CODE_HEADER);
  if (code !== undefined) {
    if (!ERROR_CODE.test(code)) {
      return invalid(
        subject,
        `its ${ERROR_CODE_HEADER} ${
          JSON.stringify(code.slice(0, 20))
        } is not a three-digit code from 100 to 999`,
      );
    }
    const description = message.header(ERROR_HEADER) ?? "";
    const text = decodeText(message.data);
    const parsed = text === "" ? undefined : parseJson(text);
    const data = parsed === undefined ? undefined : parsed.ok ? parsed.value : text;
    return {
      ok: false,
      outcome: "remote-error",
      error: new RemoteError(
        `${subject} failed remotely: ${code} ${description}`.trimEnd(),
        { code: Number(code), description, data },
      ),
    };
  }
  const status = message.status;
  if (status === 503 && message.data.length === 0) {
    return {
      ok: false,
      outcome: "no-responders",
      error: new NoRespondersError(
        `no responders for ${subject}: nothing listens on that subject; start a responder, ` +
          `or check the subject and the account`,
        timeout === undefined ? { subject } : { subject, timeout },
      ),
    };
  }
  if (status !== 0) return invalid(subject, `it carries NATS status ${status}`);
  const kind = message.header(KIND_HEADER);
  if (kind !== undefined && kind !== response.kind) {
    return invalid(
      subject,
      `it is of kind ${JSON.stringify(kind.slice(0, 20))}, the contract expects "${response.kind}"`,
    );
  }
  let text: string;
  try {
    text = decodeText(message.data);
  } catch (cause) {
    return invalid(subject, "its body is not UTF-8", { cause });
  }
  const decoded = decodeResponse(response, text);
  return decoded.ok
    ? decoded
    : invalid(subject, summarize(decoded.issues), { issues: decoded.issues });
}

/**
 * The result of a reply that does not fit its contract: an
 * `InvalidReplyError` saying why, in the words every reply reader uses.
 */
export function invalid(
  subject: string,
  why: string,
  options: { issues?: readonly Issue[]; cause?: unknown } = {},
): ReplyResult & { ok: false } {
  return {
    ok: false,
    outcome: "invalid-reply",
    error: new InvalidReplyError(
      `invalid reply to ${subject}: ${why}; the responder and this contract disagree`,
      options.cause === undefined
        ? { issues: options.issues ?? [{ message: why }] }
        : { issues: [{ message: why }], cause: options.cause },
    ),
  };
}

/**
 * The first of a schema's issues, with its path, as one line of at most 300
 * characters (a schema's message may quote the whole value it received).
 */
export function summarize(issues: readonly Issue[]): string {
  const first = issues[0];
  if (first === undefined) return "unknown problem";
  const path = first.path?.map((item) => String(typeof item === "object" ? item.key : item)).join(
    ".",
  );
  let text = path ? `${path}: ${first.message}` : first.message;
  if (text.length > 300) text = `${text.slice(0, 297)}...`;
  return issues.length > 1 ? `${text} (and ${issues.length - 1} more)` : text;
}
