/**
 * The client side of the RFC 6455 opening handshake (§4.1): an HTTP/1.1
 * `GET` with `Upgrade: websocket` and a random `Sec-WebSocket-Key`, and the
 * checks on the server's `101 Switching Protocols` answer, including
 * `Sec-WebSocket-Accept`.
 *
 * @module
 */

/** The GUID RFC 6455 appends to the key before hashing. */
const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Largest response head accepted. */
const MAX_HEAD_BYTES = 16 * 1024;

/** What the server agreed to. */
export interface HandshakeResult {
  /** the subprotocol the server selected, or "" */
  protocol: string;
  /** the extensions the server selected (always "": none is offered) */
  extensions: string;
  /** bytes read past the response head: the first frames */
  rest: Uint8Array;
}

/** A reader/writer the handshake runs over. */
export interface HandshakeConn {
  /** reads into `p`, resolves with the byte count or null at EOF */
  read(p: Uint8Array): Promise<number | null>;
  /** writes some of `p`, resolves with the byte count */
  write(p: Uint8Array): Promise<number>;
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)). */
export async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + WS_GUID));
  return base64(new Uint8Array(digest));
}

/** Writes all of `data`. */
export async function writeAll(conn: HandshakeConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

function indexOfHeadEnd(buf: Uint8Array, len: number): number {
  for (let i = 3; i < len; i++) {
    if (buf[i] === 10 && buf[i - 1] === 13 && buf[i - 2] === 10 && buf[i - 3] === 13) return i + 1;
  }
  return -1;
}

function hasToken(value: string | undefined, token: string): boolean {
  return value !== undefined &&
    value.split(",").some((t) => t.trim().toLowerCase() === token);
}

/**
 * Sends the upgrade request for `url` (ws: or wss:) and validates the answer.
 * Throws an Error saying what was wrong when the server does not accept.
 */
export async function clientHandshake(
  conn: HandshakeConn,
  url: URL,
  protocols: readonly string[],
  headers: Headers,
): Promise<HandshakeResult> {
  const keyBytes = new Uint8Array(16);
  crypto.getRandomValues(keyBytes);
  const key = base64(keyBytes);
  const path = (url.pathname || "/") + url.search;
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${url.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
  ];
  if (protocols.length > 0) lines.push(`Sec-WebSocket-Protocol: ${protocols.join(", ")}`);
  const reserved = new Set([
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
  ]);
  headers.forEach((value, name) => {
    if (!reserved.has(name)) lines.push(`${name}: ${value}`);
  });
  const expected = acceptFor(key);
  await writeAll(conn, new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));

  // read the response head
  const buf = new Uint8Array(MAX_HEAD_BYTES);
  let len = 0;
  let end = -1;
  while (end < 0) {
    if (len === buf.length) throw new Error("WebSocket handshake: response head too large");
    const n = await conn.read(buf.subarray(len));
    if (n === null) throw new Error("WebSocket handshake: connection closed before the response");
    len += n;
    end = indexOfHeadEnd(buf, len);
  }
  const head = new TextDecoder().decode(buf.subarray(0, end)).split("\r\n");
  const status = head[0] ?? "";
  const m = /^HTTP\/1\.1 (\d{3})/.exec(status);
  if (!m || m[1] !== "101") {
    throw new Error(`WebSocket handshake: expected "101 Switching Protocols", got "${status}"`);
  }
  const got = new Map<string, string>();
  for (const line of head.slice(1)) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    got.set(name, got.has(name) ? `${got.get(name)}, ${value}` : value);
  }
  if (got.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new Error("WebSocket handshake: missing or wrong Upgrade header");
  }
  if (!hasToken(got.get("connection"), "upgrade")) {
    throw new Error("WebSocket handshake: missing or wrong Connection header");
  }
  if (got.get("sec-websocket-accept") !== await expected) {
    throw new Error("WebSocket handshake: Sec-WebSocket-Accept does not match the key");
  }
  const extensions = got.get("sec-websocket-extensions") ?? "";
  if (extensions !== "") {
    throw new Error(`WebSocket handshake: server selected unrequested extensions "${extensions}"`);
  }
  const protocol = got.get("sec-websocket-protocol") ?? "";
  if (protocol !== "" && !protocols.includes(protocol)) {
    throw new Error(`WebSocket handshake: server selected unrequested subprotocol "${protocol}"`);
  }
  return { protocol, extensions, rest: buf.slice(end, len) };
}
