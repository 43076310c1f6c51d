/**
 * The `wsFactory` for nats.ws and `@nats-io/nats-core`, built on npm `ws`:
 * every socket the NATS client opens (the first connection and each
 * reconnect) is a `ws` WebSocket, which turns `TCP_NODELAY` on for its
 * connection. This is the only module of the package that imports `ws`.
 *
 * @module
 */

import NodeWebSocket from "ws";

/** Options of {@linkcode createWsFactory}, passed on to npm `ws`. */
export interface WsFactoryOptions {
  /** subprotocols offered in `Sec-WebSocket-Protocol` */
  protocols?: string | readonly string[];
  /**
   * PEM certificates of CAs to trust for `wss://` (`ws`'s `ca` option), for a
   * server whose certificate a private or self-signed CA signed
   */
  caCerts?: readonly string[];
  /** extra request headers for the upgrade request (`Authorization`, `Origin`, `Cookie`…) */
  headers?: HeadersInit;
  /**
   * how long `close()` waits for the server's half of the closing handshake
   * before it drops the connection (ms, default 5000)
   */
  closeTimeout?: number;
  /** largest message accepted from the server (bytes, default 64 MiB); larger closes with 1009 */
  maxMessageSize?: number;
}

/**
 * What nats.ws (`connect`) and `@nats-io/nats-core` (`wsconnect`) accept as
 * `wsFactory`: given the server URL, a WebSocket and whether it is encrypted.
 */
export type WsFactory = (
  url: string,
  options?: unknown,
) => Promise<{ socket: WebSocket; encrypted: boolean }>;

const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
const DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024;

function ignoreError(): void {}

/**
 * Makes a `wsFactory` whose sockets are npm `ws` WebSockets (`TCP_NODELAY`
 * on), with `options` (e.g. `caCerts` for a `wss://` server whose
 * certificate a private CA signed). The socket is handed over while it
 * connects, as `new WebSocket(url)` would be, with `binaryType`
 * `"arraybuffer"`. It offers no `permessage-deflate`: NATS messages are
 * small and latency matters more than bytes.
 *
 * @param options the sockets' options
 * @returns the factory to pass as `wsFactory`
 */
export function createWsFactory(options: WsFactoryOptions = {}): WsFactory {
  const settings = {
    perMessageDeflate: false,
    closeTimeout: options.closeTimeout ?? DEFAULT_CLOSE_TIMEOUT_MS,
    maxPayload: options.maxMessageSize ?? DEFAULT_MAX_MESSAGE,
    ...(options.caCerts ? { ca: [...options.caCerts] } : {}),
    ...(options.headers ? { headers: Object.fromEntries(new Headers(options.headers)) } : {}),
  };
  const protocols = typeof options.protocols === "string"
    ? options.protocols
    : options.protocols
    ? [...options.protocols]
    : undefined;
  return (url) => {
    try {
      const socket = new NodeWebSocket(url, protocols, settings);
      socket.binaryType = "arraybuffer";
      // ws is an EventEmitter: an "error" with no listener throws out of an I/O callback. The
      // NATS clients listen through `onerror`, but nats-core clears it once a socket has
      // failed; this listener stays, and the clients still see every error they listen for.
      socket.on("error", ignoreError);
      return Promise.resolve({
        // ws implements the part of the web WebSocket the NATS clients use
        // (on*/addEventListener, send, close, binaryType, readyState)
        socket: socket as unknown as WebSocket,
        encrypted: ["wss:", "https:"].includes(new URL(url).protocol),
      });
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

/** `createWsFactory()` with default options: the default root certificates for `wss://`. */
export const wsFactory: WsFactory = createWsFactory();
