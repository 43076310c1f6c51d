/**
 * {@linkcode NoDelayWebSocket}: a WebSocket client over `Deno.connect` with
 * `TCP_NODELAY` on, that writes every frame (header and payload) in one write.
 * It has the browser `WebSocket` interface, so clients written for the web
 * platform (nats.ws, `@nats-io/nats-core`) take it through their `wsFactory`.
 *
 * @module
 */

import { encodeFrame, type Frame, FrameDecoder, FrameError, isControl, Opcode } from "./frame.ts";
import { clientHandshake, writeAll } from "./handshake.ts";

/** Options of {@linkcode NoDelayWebSocket}. */
export interface NoDelayWebSocketOptions {
  /** subprotocols offered in `Sec-WebSocket-Protocol` */
  protocols?: string | readonly string[];
  /**
   * PEM root certificates trusted for `wss://`, in addition to the default
   * roots (as `Deno.connectTls`' `caCerts`); for a private or self-signed CA
   */
  caCerts?: readonly string[];
  /**
   * extra request headers for the upgrade request (`Authorization`, `Origin`,
   * `Cookie`…); the handshake's own headers cannot be overridden
   */
  headers?: HeadersInit;
  /**
   * how long `close()` waits for the server's half of the closing handshake
   * before it drops the connection (ms, default 5000)
   */
  closeTimeout?: number;
  /** largest message accepted from the server (bytes, default 64 MiB); larger closes with 1009 */
  maxMessageSize?: number;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
type ReadyState = 0 | 1 | 2 | 3;

const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;
const READ_BUFFER_BYTES = 64 * 1024;
const MAX_REASON_BYTES = 123;

/**
 * How a {@linkcode NoDelayWebSocket} opens its TCP connection: `Deno.connect`.
 * Internal (not exported by `deno.ts`): tests swap it with
 * {@linkcode setTcpConnect} to observe the connection the socket uses.
 */
export type TcpConnect = (
  options: Deno.ConnectOptions & { signal?: AbortSignal },
) => Promise<Deno.TcpConn>;

const denoConnect: TcpConnect = (options) => Deno.connect(options);
let tcpConnect: TcpConnect = denoConnect;

/**
 * Internal, for tests: makes the sockets constructed from now on connect
 * with `connect` instead of `Deno.connect` (`undefined` restores it). Returns
 * a function that restores the previous one; call it in a `finally`.
 */
export function setTcpConnect(connect: TcpConnect | undefined): () => void {
  const previous = tcpConnect;
  tcpConnect = connect ?? denoConnect;
  return () => {
    tcpConnect = previous;
  };
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });

type Handler<E extends Event> = ((this: WebSocket, ev: E) => unknown) | null;

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new FrameError(1007, "invalid UTF-8 in a text message or close reason");
  }
}

/** a close code the server may send (RFC 6455 §7.4) */
function validReceivedCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) ||
    (code >= 3000 && code <= 4999);
}

/** Truncates `reason` to at most 123 UTF-8 bytes on a character boundary. */
function reasonBytes(reason: string): Uint8Array {
  let bytes = encoder.encode(reason);
  while (bytes.length > MAX_REASON_BYTES) {
    reason = reason.slice(0, -1);
    bytes = encoder.encode(reason);
  }
  return bytes;
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * A WebSocket client for Deno with `TCP_NODELAY` on and one write per frame
 * (several queued frames may share a write; a frame is never split by us).
 *
 * It behaves like the web platform's `WebSocket`: `readyState`, `binaryType`
 * (`"blob"` by default, `"arraybuffer"`), `bufferedAmount`, `protocol`,
 * `extensions`, `send()`, `close()`, and `open`/`message`/`error`/`close`
 * events, dispatched both to `addEventListener` listeners and to the `on…`
 * properties. `close` fires only after the connection's resources are
 * released, so Deno's test sanitizers see nothing leaked.
 *
 * Differences from a browser: `close(code)` also accepts the codes an
 * endpoint may send on the wire (1000–1003, 1007–1014, 3000–4999) and a
 * longer reason is truncated to 123 bytes rather than thrown on (nats.ws
 * closes with 1002 and an error message); `send()` after `close()` discards
 * without counting in `bufferedAmount`; no extensions (permessage-deflate),
 * proxies or redirects.
 *
 * @example
 * ```ts ignore
 * import { NoDelayWebSocket } from "@seed/callbacks/deno";
 *
 * const ws = new NoDelayWebSocket("ws://127.0.0.1:8080");
 * ws.binaryType = "arraybuffer";
 * ws.onmessage = (e) => console.log(new Uint8Array(e.data as ArrayBuffer));
 * ws.onopen = () => ws.send(new TextEncoder().encode("PING\r\n"));
 * ```
 */
export class NoDelayWebSocket extends EventTarget implements WebSocket {
  /** readyState: connecting */
  static readonly CONNECTING: 0 = 0;
  /** readyState: open */
  static readonly OPEN: 1 = 1;
  /** readyState: closing handshake under way */
  static readonly CLOSING: 2 = 2;
  /** readyState: closed */
  static readonly CLOSED: 3 = 3;
  /** readyState: connecting */
  readonly CONNECTING: 0 = 0;
  /** readyState: open */
  readonly OPEN: 1 = 1;
  /** readyState: closing handshake under way */
  readonly CLOSING: 2 = 2;
  /** readyState: closed */
  readonly CLOSED: 3 = 3;

  /** the URL connected to (absolute, as parsed) */
  readonly url: string;
  /** how binary messages are delivered: `"blob"` (default) or `"arraybuffer"` */
  binaryType: BinaryType = "blob";

  #readyState: ReadyState = CONNECTING;
  #protocol = "";
  #bufferedAmount = 0;
  #handlers = new Map<string, Handler<Event>>();

  readonly #target: URL;
  readonly #protocols: readonly string[];
  readonly #caCerts: string[] | undefined;
  readonly #headers: Headers;
  readonly #closeTimeout: number;
  readonly #maxMessage: number;
  readonly #abort = new AbortController();

  #conn: Deno.Conn | undefined;
  #queue: Uint8Array[] = [];
  /** Blob sends being read, in order; each has a zero-length placeholder in #queue */
  #pending: Promise<Uint8Array>[] = [];
  #queueBytes = 0;
  #queuePayload = 0;
  #draining: Promise<void> | undefined;
  #sentClose = false;
  #received: { code: number; reason: string } | undefined;
  #failure: Error | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #fragments: Uint8Array<ArrayBuffer>[] = [];
  #closeAfterDrain = false;
  #fragmentBytes = 0;
  #fragmentOpcode = 0;

  /**
   * Starts connecting to `url` (`ws:`, `wss:`, or `http:`/`https:` which map
   * to them). Throws a `SyntaxError` DOMException for an unusable URL.
   */
  constructor(url: string | URL, options: NoDelayWebSocketOptions = {}) {
    super();
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      throw new DOMException(`Invalid URL: ${url}`, "SyntaxError");
    }
    if (target.protocol === "http:") target.protocol = "ws:";
    if (target.protocol === "https:") target.protocol = "wss:";
    if (target.protocol !== "ws:" && target.protocol !== "wss:") {
      throw new DOMException(`Unsupported URL scheme: ${target.protocol}`, "SyntaxError");
    }
    if (target.hash !== "") {
      throw new DOMException("A WebSocket URL cannot have a fragment", "SyntaxError");
    }
    this.#target = target;
    this.url = target.href;
    const protocols = options.protocols;
    this.#protocols = typeof protocols === "string" ? [protocols] : [...(protocols ?? [])];
    this.#caCerts = options.caCerts ? [...options.caCerts] : undefined;
    this.#headers = new Headers(options.headers);
    this.#closeTimeout = options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#maxMessage = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE;
    this.#run();
  }

  /** `CONNECTING` (0), `OPEN` (1), `CLOSING` (2) or `CLOSED` (3) */
  get readyState(): 0 | 1 | 2 | 3 {
    return this.#readyState;
  }
  /** payload bytes passed to `send()` and not yet written to the socket */
  get bufferedAmount(): number {
    return this.#bufferedAmount;
  }
  /** the subprotocol the server selected, or "" */
  get protocol(): string {
    return this.#protocol;
  }
  /** the extensions the server selected: always "" (none is offered) */
  get extensions(): string {
    return "";
  }

  /** handler of the `open` event */
  get onopen(): ((this: WebSocket, ev: Event) => unknown) | null {
    return this.#handlers.get("open") ?? null;
  }
  set onopen(handler: ((this: WebSocket, ev: Event) => unknown) | null) {
    this.#setHandler("open", handler);
  }
  /** handler of the `message` event */
  get onmessage(): ((this: WebSocket, ev: MessageEvent) => unknown) | null {
    return (this.#handlers.get("message") ?? null) as Handler<MessageEvent>;
  }
  set onmessage(handler: ((this: WebSocket, ev: MessageEvent) => unknown) | null) {
    this.#setHandler("message", handler as Handler<Event>);
  }
  /** handler of the `error` event */
  get onerror(): ((this: WebSocket, ev: Event) => unknown) | null {
    return this.#handlers.get("error") ?? null;
  }
  set onerror(handler: ((this: WebSocket, ev: Event) => unknown) | null) {
    this.#setHandler("error", handler);
  }
  /** handler of the `close` event */
  get onclose(): ((this: WebSocket, ev: CloseEvent) => unknown) | null {
    return (this.#handlers.get("close") ?? null) as Handler<CloseEvent>;
  }
  set onclose(handler: ((this: WebSocket, ev: CloseEvent) => unknown) | null) {
    this.#setHandler("close", handler as Handler<Event>);
  }

  #setHandler(type: string, handler: Handler<Event>): void {
    if (!this.#handlers.has(type)) {
      // like an event handler attribute: one listener, added when first set
      this.addEventListener(type, (ev) => this.#handlers.get(type)?.call(this, ev));
    }
    this.#handlers.set(type, typeof handler === "function" ? handler : null);
  }

  /**
   * Queues a message: a string as a text frame, bytes (ArrayBuffer, a view,
   * a Blob) as a binary frame. Throws an `InvalidStateError` DOMException
   * while connecting; after `close()` the data is discarded.
   */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    if (this.#readyState === CONNECTING) {
      throw new DOMException("WebSocket is still connecting", "InvalidStateError");
    }
    if (typeof data === "string") {
      this.#sendData(Opcode.Text, encoder.encode(data));
    } else if (data instanceof Blob) {
      if (this.#readyState !== OPEN) return;
      // keep the order of messages: everything sent after the Blob waits for it
      const bytes = data.bytes();
      this.#enqueue(bytes.then((b) => encodeFrame(Opcode.Binary, b)), data.size);
    } else if (ArrayBuffer.isView(data)) {
      this.#sendData(
        Opcode.Binary,
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
    } else {
      this.#sendData(Opcode.Binary, new Uint8Array(data));
    }
  }

  /**
   * Starts the closing handshake (or abandons a connection still being
   * made); the `close` event fires once the server answered (or after
   * `closeTimeout`) and the socket is closed.
   */
  close(code?: number, reason?: string): void {
    if (code !== undefined) {
      if (
        !Number.isInteger(code) ||
        !(code === 1000 || (code >= 3000 && code <= 4999) || validReceivedCode(code))
      ) {
        throw new DOMException(`Invalid close code ${code}`, "InvalidAccessError");
      }
    }
    if (this.#readyState === CLOSING || this.#readyState === CLOSED) return;
    if (this.#readyState === CONNECTING) {
      this.#readyState = CLOSING;
      this.#failure = new Error("WebSocket was closed before the connection was established");
      this.#abort.abort(this.#failure);
      this.#closeConn();
      return;
    }
    this.#readyState = CLOSING;
    let payload = new Uint8Array(0);
    if (code !== undefined) {
      const r = reasonBytes(reason ?? "");
      payload = new Uint8Array(2 + r.length);
      payload[0] = code >>> 8;
      payload[1] = code & 0xff;
      payload.set(r, 2);
    }
    this.#sendClose(payload);
  }

  #sendData(opcode: number, payload: Uint8Array): void {
    if (this.#readyState !== OPEN) return;
    this.#enqueue(encodeFrame(opcode, payload), payload.length);
  }

  #sendClose(payload: Uint8Array): void {
    if (this.#sentClose) return;
    this.#sentClose = true;
    this.#enqueue(encodeFrame(Opcode.Close, payload), 0);
    this.#closeTimer ??= setTimeout(() => {
      this.#closeTimer = undefined;
      this.#closeConn();
    }, this.#closeTimeout);
  }

  #enqueue(frame: Uint8Array | Promise<Uint8Array>, payloadBytes: number): void {
    if (frame instanceof Promise) {
      // a Blob: hold it (and what follows) until its bytes are read
      this.#pending.push(frame);
      this.#queue.push(new Uint8Array(0));
    } else {
      this.#queue.push(frame);
      this.#queueBytes += frame.length;
    }
    this.#queuePayload += payloadBytes;
    this.#bufferedAmount += payloadBytes;
    if (this.#draining === undefined) {
      // start in a microtask so the frames sent in the same turn share a write
      this.#draining = Promise.resolve().then(() => this.#drain());
    }
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const conn = this.#conn;
        if (!conn) return;
        let frames = this.#queue;
        let total = this.#queueBytes;
        const payload = this.#queuePayload;
        this.#queue = [];
        this.#queueBytes = 0;
        this.#queuePayload = 0;
        if (this.#pending.length > 0) {
          // resolve Blob placeholders (zero-length entries) in order
          const blobs = this.#pending;
          this.#pending = [];
          const resolved = await Promise.all(blobs);
          let b = 0;
          frames = frames.map((f) => f.length === 0 ? resolved[b++]! : f);
          total = frames.reduce((n, f) => n + f.length, 0);
        }
        await writeAll(conn, frames.length === 1 ? frames[0]! : concat(frames, total));
        this.#bufferedAmount -= payload;
      }
    } catch (err) {
      // the socket is broken (or was closed under us): end the connection
      if (this.#readyState === OPEN) {
        this.#failure ??= err instanceof Error ? err : new Error(String(err));
      }
      this.#closeConn();
    } finally {
      this.#draining = undefined;
      if (this.#closeAfterDrain) this.#closeConn();
    }
  }

  #closeConn(): void {
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
  }

  /** connect, handshake, read until the connection ends, then fire close */
  async #run(): Promise<void> {
    try {
      const target = this.#target;
      const secure = target.protocol === "wss:";
      const hostname = target.hostname.replace(/^\[(.*)\]$/, "$1");
      const port = target.port ? Number(target.port) : secure ? 443 : 80;
      const tcp = await tcpConnect({ hostname, port, signal: this.#abort.signal });
      this.#conn = tcp;
      tcp.setNoDelay(true);
      this.#throwIfClosing();
      if (secure) {
        const tls = await Deno.startTls(tcp, {
          hostname,
          ...(this.#caCerts ? { caCerts: this.#caCerts } : {}),
        });
        this.#conn = tls;
        this.#throwIfClosing();
        await tls.handshake();
        this.#throwIfClosing();
      }
      const conn = this.#conn;
      const hs = await clientHandshake(conn, target, this.#protocols, this.#headers);
      this.#throwIfClosing();
      this.#protocol = hs.protocol;
      this.#readyState = OPEN;
      this.dispatchEvent(new Event("open"));

      const decoder = new FrameDecoder(this.#maxMessage);
      this.#onBytes(decoder, hs.rest);
      const buf = new Uint8Array(READ_BUFFER_BYTES);
      while (this.#conn !== undefined) {
        let n: number | null;
        try {
          n = await conn.read(buf);
        } catch {
          break; // reset, or closed by us (timeout, failure)
        }
        if (n === null) break;
        this.#onBytes(decoder, buf.subarray(0, n));
      }
    } catch (err) {
      this.#failure ??= err instanceof Error ? err : new Error(String(err));
    }
    await this.#finish();
  }

  #throwIfClosing(): void {
    if (this.#readyState !== CONNECTING) {
      throw this.#failure ??
        new Error("WebSocket was closed before the connection was established");
    }
  }

  #onBytes(decoder: FrameDecoder, bytes: Uint8Array): void {
    if (bytes.length === 0 || this.#failure) return;
    try {
      // frames before a protocol error in the same read are still handled, then it fails
      const { frames, error } = decoder.push(bytes);
      for (const frame of frames) this.#onFrame(frame);
      if (error) throw error;
    } catch (err) {
      // fail the WebSocket connection (RFC 6455 §7.1.7): tell the server why, then drop it
      this.#failure = err instanceof Error ? err : new Error(String(err));
      this.#readyState = CLOSING;
      if (err instanceof FrameError && !this.#sentClose) {
        this.#closeAfterDrain = true;
        this.#sendClose(new Uint8Array([err.code >>> 8, err.code & 0xff]));
      } else {
        this.#closeConn();
      }
    }
  }

  #onFrame(frame: Frame): void {
    if (this.#failure) return;
    const { opcode, payload } = frame;
    if (isControl(opcode)) {
      if (opcode === Opcode.Ping) {
        if (!this.#sentClose) this.#enqueue(encodeFrame(Opcode.Pong, payload), 0);
      } else if (opcode === Opcode.Close) {
        this.#onClose(payload);
      }
      return;
    }
    if (opcode === Opcode.Continuation) {
      if (this.#fragmentOpcode === 0) throw new FrameError(1002, "continuation without a message");
    } else if (this.#fragmentOpcode !== 0) {
      throw new FrameError(1002, "new message inside a fragmented one");
    } else {
      this.#fragmentOpcode = opcode;
    }
    this.#fragmentBytes += payload.length;
    if (this.#fragmentBytes > this.#maxMessage) {
      throw new FrameError(1009, `message over the ${this.#maxMessage} byte limit`);
    }
    this.#fragments.push(payload);
    if (!frame.fin) return;
    const parts = this.#fragments;
    const data = parts.length === 1 ? parts[0]! : concat(parts, this.#fragmentBytes);
    const messageOpcode = this.#fragmentOpcode;
    this.#fragments = [];
    this.#fragmentBytes = 0;
    this.#fragmentOpcode = 0;
    if (messageOpcode === Opcode.Text) {
      const text = decodeUtf8(data);
      if (this.#readyState === OPEN) {
        this.dispatchEvent(new MessageEvent("message", { data: text }));
      }
      return;
    }
    if (this.#readyState !== OPEN) return;
    const body = this.binaryType === "arraybuffer" ? data.buffer : new Blob([data]);
    this.dispatchEvent(new MessageEvent("message", { data: body }));
  }

  #onClose(payload: Uint8Array): void {
    if (this.#received) return;
    let code = 1005;
    let reason = "";
    if (payload.length === 1) throw new FrameError(1002, "close frame with a 1-byte payload");
    if (payload.length >= 2) {
      code = (payload[0]! << 8) | payload[1]!;
      if (!validReceivedCode(code)) throw new FrameError(1002, `invalid close code ${code}`);
      reason = decodeUtf8(payload.subarray(2));
    }
    this.#received = { code, reason };
    this.#readyState = CLOSING;
    // echo the code (RFC 6455 §5.5.1); the server then closes the TCP connection
    this.#sendClose(payload.length >= 2 ? payload.subarray(0, 2) : new Uint8Array(0));
  }

  async #finish(): Promise<void> {
    this.#closeConn();
    this.#conn = undefined;
    // pending writes fail at once on the closed resource; wait so no op outlives the socket
    while (this.#draining) await this.#draining;
    await Promise.allSettled(this.#pending);
    this.#pending = [];
    this.#queue = [];
    clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    this.#readyState = CLOSED;
    this.#bufferedAmount = 0;
    const clean = this.#failure === undefined && this.#sentClose && this.#received !== undefined;
    const failure = this.#failure;
    if (failure !== undefined) {
      this.dispatchEvent(
        new ErrorEvent("error", {
          message: failure.message,
          error: failure,
        }),
      );
    }
    this.dispatchEvent(
      new CloseEvent("close", {
        wasClean: clean,
        code: clean ? this.#received!.code : 1006,
        reason: clean ? this.#received!.reason : "",
      }),
    );
  }
}
