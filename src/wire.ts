/**
 * The wire format: header names and the bytes of requests, replies and error
 * replies. Interoperable with plain NATS requesters and responders and with
 * NATS micro services' error headers.
 *
 * @module
 */

/** Header with the caller's remaining time budget, in whole milliseconds (like gRPC's `grpc-timeout`). */
export const TIMEOUT_HEADER = "Callback-Timeout";
/** Header naming a reply's kind: `int`, `enum` or `object`. */
export const KIND_HEADER = "Callback-Kind";
/** NATS micro's error description header. */
export const ERROR_HEADER = "Nats-Service-Error";
/** NATS micro's error code header. */
export const ERROR_CODE_HEADER = "Nats-Service-Error-Code";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** UTF-8 bytes of a string. */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}

/** A string from UTF-8 bytes (invalid sequences become U+FFFD). */
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
  // Header values cannot hold line breaks; keep descriptions on one line.
  return {
    [ERROR_CODE_HEADER]: String(code),
    [ERROR_HEADER]: description.replace(/[\r\n]+/g, " "),
  };
}
