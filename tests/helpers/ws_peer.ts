/**
 * A scripted WebSocket server peer over `Deno.listen`, for testing a
 * WebSocket client's protocol handling: it answers one upgrade request (with
 * a correct or a deliberately wrong `Sec-WebSocket-Accept`), then lets the
 * test read the client's frames (unmasked, with their mask bit reported) and
 * write raw server frames.
 *
 * @module
 */
import { acceptFor } from "../../deno/handshake.ts";

/** A frame read from the client. */
export interface ClientFrame {
  /** the FIN bit */
  fin: boolean;
  /** the opcode */
  opcode: number;
  /** whether the frame was masked (clients must mask) */
  masked: boolean;
  /** the unmasked payload */
  payload: Uint8Array;
}

/** Options of a server frame. */
export interface ServerFrameOptions {
  /** the FIN bit (default true) */
  fin?: boolean;
  /** mask the frame (a protocol violation for a server) */
  mask?: boolean;
}

/** Encodes a server frame with the shortest length form. */
export function serverFrame(
  opcode: number,
  payload: Uint8Array,
  options: ServerFrameOptions = {},
): Uint8Array {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const maskLen = options.mask ? 4 : 0;
  const out = new Uint8Array(2 + ext + maskLen + len);
  out[0] = (options.fin === false ? 0 : 0x80) | opcode;
  const m = options.mask ? 0x80 : 0;
  if (ext === 0) out[1] = m | len;
  else if (ext === 2) {
    out[1] = m | 126;
    new DataView(out.buffer).setUint16(2, len);
  } else {
    out[1] = m | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(len));
  }
  // a masked frame from the server uses a zero mask key: payload bytes unchanged
  out.set(payload, 2 + ext + maskLen);
  return out;
}

/** The accepted connection of a {@linkcode WsPeer}. */
export class PeerConn {
  readonly #conn: Deno.Conn;
  #buf: Uint8Array;
  /** the request head the client sent */
  readonly request: string;

  /** @param conn the TCP connection @param rest bytes read past the request head @param request the head */
  constructor(conn: Deno.Conn, rest: Uint8Array, request: string) {
    this.#conn = conn;
    this.#buf = rest;
    this.request = request;
  }

  async #fill(n: number): Promise<void> {
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(64 * 1024);
      const r = await this.#conn.read(chunk);
      if (r === null) throw new Error("peer: client closed the connection");
      const next = new Uint8Array(this.#buf.length + r);
      next.set(this.#buf);
      next.set(chunk.subarray(0, r), this.#buf.length);
      this.#buf = next;
    }
  }

  async #take(n: number): Promise<Uint8Array> {
    await this.#fill(n);
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** Reads one frame from the client. */
  async readFrame(): Promise<ClientFrame> {
    const [b0, b1] = await this.#take(2) as unknown as [number, number];
    let len = b1 & 0x7f;
    if (len === 126) len = new DataView((await this.#take(2)).buffer).getUint16(0);
    else if (len === 127) len = Number(new DataView((await this.#take(8)).buffer).getBigUint64(0));
    const masked = (b1 & 0x80) !== 0;
    const key = masked ? await this.#take(4) : new Uint8Array(4);
    const payload = await this.#take(len);
    for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload };
  }

  /** Resolves with true when the client closed the TCP connection (EOF). */
  async readEof(): Promise<boolean> {
    if (this.#buf.length > 0) return false;
    return await this.#conn.read(new Uint8Array(1)) === null;
  }

  /** Writes raw bytes. */
  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Closes the TCP connection. */
  close(): void {
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/** Options of {@linkcode startWsPeer}. */
export interface WsPeerOptions {
  /** answer with this Sec-WebSocket-Accept instead of the right one */
  accept?: string;
}

/** A listening peer: connect a client to `url`, then await `accepted`. */
export interface WsPeer {
  /** `ws://127.0.0.1:<port>/` */
  readonly url: string;
  /** the first connection, after the upgrade response was sent */
  readonly accepted: Promise<PeerConn>;
}

/** Listens on 127.0.0.1 and serves one WebSocket upgrade. */
export function startWsPeer(options: WsPeerOptions = {}): WsPeer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } finally {
      listener.close();
    }
    let buf = new Uint8Array(0);
    let end = -1;
    while (end < 0) {
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) throw new Error("peer: connection closed during the handshake");
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
      const text = new TextDecoder().decode(buf);
      const i = text.indexOf("\r\n\r\n");
      if (i >= 0) end = i + 4;
    }
    const request = new TextDecoder().decode(buf.subarray(0, end));
    const key = /^sec-websocket-key:\s*(\S+)\s*$/im.exec(request)?.[1] ?? "";
    const accept = options.accept ?? await acceptFor(key);
    const response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
      `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
    const peer = new PeerConn(conn, buf.slice(end), request);
    await peer.write(new TextEncoder().encode(response));
    return peer;
  })();
  const { port } = listener.addr as Deno.NetAddr;
  return { url: `ws://127.0.0.1:${port}/`, accepted };
}
