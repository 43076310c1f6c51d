/**
 * The wire format: header names and the bytes of requests, replies and error
 * replies. Interoperable with plain NATS requesters and responders and with
 * NATS micro services' error headers.
 *
 * @module
 */

/** Header with the caller's remaining time budget, in whole milliseconds (like gRPC's `grpc-timeout`). */
export const TIMEOUT_HEADER = "Callback-Timeout";
/**
 * Header with when the request was sent, in milliseconds since 1970 by the
 * sender's clock; a responder learns from it, without trusting clocks, when a
 * caller has given up (see `TransitClock`).
 */
export const SENT_HEADER = "Callback-Sent";
/** The bytes of a `Callback-Sent` value: milliseconds since 1970, 13 digits until 2286. */
export const STAMP_BYTES = 13;
/** Header naming a reply's kind: `int`, `enum` or `object`. */
export const KIND_HEADER = "Callback-Kind";
/** NATS micro's error description header. */
export const ERROR_HEADER = "Nats-Service-Error";
/** NATS micro's error code header. */
export const ERROR_CODE_HEADER = "Nats-Service-Error-Code";

const encoder = new TextEncoder();
// Strict: invalid UTF-8 throws instead of becoming U+FFFD, and a byte order mark stays in the
// text (where it makes a number or JSON invalid) instead of being dropped.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** UTF-8 bytes of a string. */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A string from UTF-8 bytes; throws a `TypeError` on invalid UTF-8. */
export function decodeText(bytes: Uint8Array): string {
  return bytes.length === 0 ? "" : decoder.decode(bytes);
}

/**
 * The body of an error reply: the JSON of a `ReplyError`'s `data`, empty without
 * it. Throws what `JSON.stringify` throws (a BigInt, a cycle).
 */
export function errorBody(data: unknown): string {
  return data === undefined ? "" : JSON.stringify(data) ?? "";
}

/** The headers of an error reply, as NATS micro sends them. */
export function errorHeaders(code: number, description: string): Record<string, string> {
  // Header values cannot hold line breaks or other control characters; keep descriptions on
  // one line.
  return {
    [ERROR_CODE_HEADER]: String(code),
    // deno-lint-ignore no-control-regex
    [ERROR_HEADER]: description.replace(/[\x00-\x1f\x7f]+/g, " "),
  };
}

/**
 * A thrown value as one line of text, for messages: never throws, whatever
 * was thrown (a getter that throws, a Proxy, an object without `toString`).
 */
export function errorText(error: unknown): string {
  try {
    return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  } catch {
    return "(a value that cannot be shown)";
  }
}
