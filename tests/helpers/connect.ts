/**
 * Connects nats.ws in Deno tests without tripping the resource/op sanitizers.
 *
 * nats.ws' `close()` calls `WebSocket.close()` but resolves before the socket's closing
 * handshake finishes, so `deno test --sanitize-resources` reports the WebSocket as leaked.
 * {@linkcode connectWs} opens every socket through nats.ws' `wsFactory` hook, tracks it, and
 * makes `close()`, `closed()` and `drain()` resolve only once every tracked socket has fired
 * `close` (and any reconnect attempt still in flight has settled).
 *
 * @module
 */
import { connect } from "nats.ws";
import { wsconnect } from "@nats-io/nats-core";
import type { NatsConnection as CoreConnection } from "@nats-io/nats-core";
import type { ConnectionOptions, NatsConnection } from "nats.ws";

/** How long to wait for the sockets' `close` events before failing loudly. */
const SOCKET_CLOSE_TIMEOUT_MS = 10_000;

/** Shape of nats.ws' (unexported) `WsSocketFactory` option. */
type WsSocketFactory = (
  url: string,
  opts: ConnectionOptions,
) => Promise<{ socket: WebSocket; encrypted: boolean }>;

/** Internals of nats.ws' NatsConnectionImpl / ProtocolHandler used to settle reconnects. */
interface ProtocolInternals {
  protocol?: {
    connectPromise?: Promise<void> | null;
    heartbeats?: { cancel(): void };
    transport?: { close(err?: Error): Promise<void> };
  };
}

/** Tracks every WebSocket opened for one connection and a promise of its `close` event. */
class SocketTracker {
  readonly #pending = new Set<Promise<void>>();

  /** the `wsFactory` handed to nats.ws */
  readonly factory: WsSocketFactory = (url) => {
    const socket = new WebSocket(url);
    socket.binaryType = "arraybuffer";
    // addEventListener, not onclose: nats.ws assigns socket.onclose/onerror itself.
    const closed = new Promise<void>((resolve) => {
      socket.addEventListener("close", () => resolve(), { once: true });
    });
    this.#pending.add(closed);
    closed.then(() => this.#pending.delete(closed));
    // Resolve right away: nats.ws attaches its handlers to the still-connecting socket
    // and reports open/error itself.
    return Promise.resolve({ socket, encrypted: url.startsWith("wss:") });
  };

  /** resolves when every socket opened so far has fired `close` */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), SOCKET_CLOSE_TIMEOUT_MS);
      });
      try {
        const r = await Promise.race([Promise.all([...this.#pending]), timeout]);
        if (r === "timeout") {
          throw new Error(
            `connectWs: ${this.#pending.size} WebSocket(s) did not fire "close" within ` +
              `${SOCKET_CLOSE_TIMEOUT_MS} ms after the connection closed`,
          );
        }
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/**
 * After nats.ws reports the connection closed, a reconnect loop may still be sleeping or
 * dialing (nats.ws does not cancel it). Wait for it, then undo anything a dial that succeeded
 * after close() set up (heartbeat timer, open socket), and finally wait for all sockets.
 */
async function settle(nc: NatsConnection, tracker: SocketTracker): Promise<void> {
  const ph = (nc as unknown as ProtocolInternals).protocol;
  // once closed, nats.ws starts no new dial loop, so awaiting the current one is enough
  await ph?.connectPromise?.catch(() => {});
  ph?.heartbeats?.cancel();
  await ph?.transport?.close().catch(() => {});
  await tracker.settled();
}

/**
 * Connects nats.ws to the server's websocket port; the returned connection's close() resolves
 * only after every WebSocket it opened (including ones from reconnects) has fired "close".
 * `closed()` and `drain()` are wrapped the same way. `options.servers` overrides the URL.
 */
export function connectWs(
  server: { wsUrl: string } | string,
  options: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  return connectTracked(server, options, connect);
}

/**
 * The same as {@linkcode connectWs} with `@nats-io/nats-core`'s `wsconnect()`
 * (the maintained successor of nats.ws), for the tests that prove the library
 * works on it.
 */
export function connectCore(
  server: { wsUrl: string } | string,
  options: Partial<ConnectionOptions> = {},
): Promise<CoreConnection> {
  return connectTracked(
    server,
    options,
    wsconnect as unknown as typeof connect,
  ) as unknown as Promise<CoreConnection>;
}

async function connectTracked(
  server: { wsUrl: string } | string,
  options: Partial<ConnectionOptions>,
  connect: (options: ConnectionOptions) => Promise<NatsConnection>,
): Promise<NatsConnection> {
  const url = typeof server === "string" ? server : server.wsUrl;
  const tracker = new SocketTracker();
  const opts: ConnectionOptions & { wsFactory: WsSocketFactory } = {
    servers: url,
    ...options,
    wsFactory: tracker.factory,
  };
  let nc: NatsConnection;
  try {
    nc = await connect(opts);
  } catch (err) {
    await tracker.settled();
    throw err;
  }

  let settling: Promise<void> | undefined;
  const done = () => (settling ??= settle(nc, tracker));

  const close = nc.close.bind(nc);
  const closed = nc.closed.bind(nc);
  const drain = nc.drain.bind(nc);
  nc.close = async () => {
    await close();
    await done();
  };
  nc.closed = async () => {
    const err = await closed();
    await done();
    return err;
  };
  nc.drain = async () => {
    await drain();
    await done();
  };
  return nc;
}
