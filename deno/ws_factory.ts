/**
 * The `wsFactory` for nats.ws and `@nats-io/nats-core`: every socket the NATS
 * client opens (the first connection and each reconnect) is a
 * {@linkcode NoDelayWebSocket}.
 *
 * @module
 */

import { NoDelayWebSocket, type NoDelayWebSocketOptions } from "./websocket.ts";

/** Options of {@linkcode createWsFactory}: those of {@linkcode NoDelayWebSocket}. */
export type WsFactoryOptions = NoDelayWebSocketOptions;

/**
 * What nats.ws (`connect`) and `@nats-io/nats-core` (`wsconnect`) accept as
 * `wsFactory`: given the server URL, a WebSocket and whether it is encrypted.
 */
export type WsFactory = (
  url: string,
  options?: unknown,
) => Promise<{ socket: WebSocket; encrypted: boolean }>;

/**
 * Makes a `wsFactory` whose sockets have `TCP_NODELAY` on and write each
 * frame in one write, with `options` (e.g. `caCerts` for a `wss://` server
 * whose certificate a private CA signed). The socket is handed over while it
 * connects, as `new WebSocket(url)` would be, with `binaryType` `"arraybuffer"`.
 */
export function createWsFactory(options: WsFactoryOptions = {}): WsFactory {
  return (url) => {
    try {
      const socket = new NoDelayWebSocket(url, options);
      socket.binaryType = "arraybuffer";
      return Promise.resolve({ socket, encrypted: new URL(socket.url).protocol === "wss:" });
    } catch (err) {
      return Promise.reject(err);
    }
  };
}

/** `createWsFactory()` with default options: the system's root certificates for `wss://`. */
export const wsFactory: WsFactory = createWsFactory();
