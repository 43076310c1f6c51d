/**
 * What nats-server refuses, checked before anything is sent or subscribed:
 * subject and queue group syntax, header names and values, and the length of
 * a protocol line. The server answers a line it cannot take by closing the
 * connection, and the client sends its subscriptions again at every
 * reconnect: one bad subject would fail every request on the connection.
 *
 * @module
 */

/**
 * nats-server's default `max_control_line`: the most bytes of arguments a
 * protocol line (`PUB`, `HPUB`, `SUB`) may have. Past it the server closes the
 * connection, and a subscription sent again at every reconnect closes it again.
 */
export const MAX_CONTROL_LINE = 4096;

// A subject token: no dot, no space or control character (nats-server splits a protocol line at
// spaces and tabs, and a CR or LF in a subject breaks every client that receives it).
// deno-lint-ignore no-control-regex
const TOKEN = /^[^\x00-\x20\x7f.]+$/;
// deno-lint-ignore no-control-regex
const QUEUE = /^[^\x00-\x20\x7f]+$/;
// A header name: printable ASCII but the colon.
const HEADER_NAME = /^[!-9;-~]+$/;
// A header value: no line breaks or other control characters (a tab is allowed).
// deno-lint-ignore no-control-regex
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;

/** Whether `subject` is a NATS subject to publish on: dot-separated tokens, no wildcard token. */
export function isPublishSubject(subject: string): boolean {
  return subject.split(".").every((token) => TOKEN.test(token) && token !== "*" && token !== ">");
}

/** Whether `subject` is a NATS subject to subscribe to: `*` and a last `>` allowed as whole tokens. */
export function isSubscribeSubject(subject: string): boolean {
  const tokens = subject.split(".");
  return tokens.every((token, i) =>
    TOKEN.test(token) && (token !== ">" || i === tokens.length - 1)
  );
}

/** Whether `queue` is a queue group name: no space or control character. */
export function isQueue(queue: string): boolean {
  return QUEUE.test(queue);
}

/** Why `headers` cannot be sent, or `undefined` when they can. */
export function headersProblem(headers: Readonly<Record<string, string>>): string | undefined {
  for (const name in headers) {
    const value: unknown = headers[name];
    if (!HEADER_NAME.test(name)) {
      return `header name ${
        JSON.stringify(name.slice(0, 40))
      } must be printable ASCII without spaces or ":"`;
    }
    if (typeof value !== "string" || !HEADER_VALUE.test(value)) {
      return `header ${name} must be a string without line breaks or control characters`;
    }
  }
  return undefined;
}

/** The bytes of a header block: `NATS/1.0\r\n`, `name: value\r\n` each, then `\r\n`. */
export function headerBytes(headers: Readonly<Record<string, string>>): number {
  let bytes = 12;
  for (const name in headers) bytes += name.length + utf8Length(headers[name]!) + 4;
  return bytes;
}

/**
 * The bytes nats-server counts against `max_control_line` when a message is
 * published: the arguments of `HPUB subject reply headers total`.
 */
export function publishLineBytes(subject: string, reply: string, total: number): number {
  // Sizes counted with the total's digits for both: at most one byte too many.
  return utf8Length(subject) + 1 + utf8Length(reply) + 2 * (String(total).length + 1);
}

/** The bytes of a subscription's arguments (`SUB subject queue sid`), with room for a sid. */
export function subscribeLineBytes(subject: string, queue: string | undefined): number {
  return utf8Length(subject) + (queue === undefined ? 0 : 1 + utf8Length(queue)) + 11;
}

/**
 * Throws a `RangeError` when a subscription would not fit one NATS protocol
 * line: nats-server would close the connection, and the client would send it
 * again at every reconnect.
 */
export function assertSubscribeLine(subject: string, queue: string | undefined): void {
  const bytes = subscribeLineBytes(subject, queue);
  if (bytes > MAX_CONTROL_LINE) {
    throw new RangeError(
      `the subscription to ${JSON.stringify(subject.slice(0, 60))}${
        subject.length > 60 ? "…" : ""
      } is ${bytes} bytes, over the ` +
        `${MAX_CONTROL_LINE} bytes of a NATS protocol line: use a shorter subject or queue`,
    );
  }
}

/** The UTF-8 length of a string. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 units
      i++;
    } else bytes += 2;
  }
  return bytes;
}
