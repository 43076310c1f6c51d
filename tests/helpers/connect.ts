/**
 * Connects nats.ws (or `@nats-io/nats-core`) in Deno tests without tripping
 * the resource/op sanitizers. nats.ws' `close()` resolves before the socket's
 * closing handshake finishes, so `deno test --sanitize-resources` reports the
 * WebSocket as leaked. Every socket is opened through a tracked `wsFactory`
 * (Deno's own WebSocket by default, or `@seed/callbacks/deno`'s), and the
 * connection's `close()`, `closed()` and `drain()` resolve only once every
 * socket it opened has fired `close` and any reconnect still in flight has
 * settled. {@linkcode connectNode} connects `@nats-io/transport-node` to the
 * NATS TCP port instead, for the one test file that uses it.
 *
 * @module
 */
import { connect, type ConnectionOptions, type NatsConnection } from "nats.ws";
import { wsconnect } from "../deps/nats_core.ts";
import type {
  ConnectionOptions as CoreOptions,
  NatsConnection as CoreConnection,
} from "../deps/nats_core.ts";
import { connect as connectTcp } from "../deps/transport_node.ts";
import type { WsFactory } from "../../deno.ts";

const SOCKET_CLOSE_TIMEOUT_MS = 10_000;

/** A factory wrapper that records every socket and a promise of its `close` event. */
export class TrackedFactory {
  readonly #inner: WsFactory;
  readonly #pending = new Set<Promise<void>>();
  /** every socket opened so far, in order */
  readonly sockets: WebSocket[] = [];

  /** @param inner the factory whose sockets are tracked */
  constructor(inner: WsFactory) {
    this.#inner = inner;
  }

  /** the `wsFactory` to hand to the NATS client */
  readonly factory: WsFactory = async (url, options) => {
    const opened = await this.#inner(url, options);
    const socket = opened.socket;
    this.sockets.push(socket);
    // addEventListener, not onclose: the NATS client assigns socket.onclose itself
    const closed = new Promise<void>((resolve) => {
      socket.addEventListener("close", () => resolve(), { once: true });
    });
    this.#pending.add(closed);
    closed.then(() => this.#pending.delete(closed));
    return opened;
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
          throw new Error(`${this.#pending.size} socket(s) did not fire "close" in time`);
        }
      } finally {
        clearTimeout(timer);
      }
    }
  }
}

/** Internals of the client's protocol handler used to settle a reconnect still in flight. */
interface ProtocolInternals {
  protocol?: {
    connectPromise?: Promise<void> | null;
    heartbeats?: { cancel(): void };
    transport?: { close(err?: Error): Promise<void> };
  };
}

/** A connect function of nats.ws' shape (nats.ws `connect`, nats-core `wsconnect`). */
export type ConnectFn<C> = (options: ConnectionOptions & { wsFactory: WsFactory }) => Promise<C>;

/**
 * Connects with `connectFn` through `tracked.factory`; the connection's
 * `close()`/`closed()`/`drain()` resolve after all its sockets closed.
 */
export async function connectTracked<C = NatsConnection>(
  tracked: TrackedFactory,
  options: ConnectionOptions,
  connectFn: ConnectFn<C> = connect as unknown as ConnectFn<C>,
): Promise<C> {
  let nc: C;
  try {
    nc = await connectFn({ ...options, wsFactory: tracked.factory });
  } catch (err) {
    await tracked.settled();
    throw err;
  }
  settleOnClose(nc as unknown as NatsConnection, () => tracked.settled());
  return nc;
}

/**
 * Makes `close()`, `closed()` and `drain()` of a connection (nats.ws or
 * nats-core) also settle what its client leaves running once they end: a dial
 * still in flight, the heartbeat timer, the socket; then `after`, if given.
 */
export function settleOnClose(
  nc: { close(): Promise<void>; closed(): Promise<void | Error>; drain(): Promise<void> },
  after?: () => Promise<void>,
): void {
  let settling: Promise<void> | undefined;
  const done = () =>
    settling ??= (async () => {
      const ph = (nc as unknown as ProtocolInternals).protocol;
      // once closed, the client starts no new dial loop: awaiting the current one is enough
      await ph?.connectPromise?.catch(() => {});
      ph?.heartbeats?.cancel();
      await ph?.transport?.close().catch(() => {});
      await after?.();
    })();
  afterClose(nc, done);
}

/** Makes `close()`, `closed()` and `drain()` of a connection also await `done` once they end. */
function afterClose(
  conn: { close(): Promise<void>; closed(): Promise<void | Error>; drain(): Promise<void> },
  done: () => Promise<void>,
): void {
  const close = conn.close.bind(conn);
  const closed = conn.closed.bind(conn);
  const drain = conn.drain.bind(conn);
  conn.close = async () => {
    await close();
    await done();
  };
  conn.closed = async () => {
    const err = await closed();
    await done();
    return err;
  };
  conn.drain = async () => {
    await drain();
    await done();
  };
}

/** Deno's own WebSocket, as a `wsFactory`. */
export const nativeWsFactory: WsFactory = (url) => {
  const socket = new WebSocket(url);
  socket.binaryType = "arraybuffer";
  // Resolve at once: the client attaches its handlers to the connecting socket.
  return Promise.resolve({ socket, encrypted: url.startsWith("wss:") });
};

/** Connects nats.ws to the server's websocket port with Deno's own WebSocket, tracked. */
export function connectWs(
  server: { wsUrl: string } | string,
  options: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  const servers = typeof server === "string" ? server : server.wsUrl;
  return connectTracked(new TrackedFactory(nativeWsFactory), { servers, ...options });
}

/** The same with `@nats-io/nats-core`'s `wsconnect()`, the maintained successor of nats.ws. */
export function connectCore(
  server: { wsUrl: string } | string,
  options: Partial<ConnectionOptions> = {},
): Promise<CoreConnection> {
  const servers = typeof server === "string" ? server : server.wsUrl;
  return connectTracked<CoreConnection>(
    new TrackedFactory(nativeWsFactory),
    { servers, ...options },
    wsconnect as unknown as ConnectFn<CoreConnection>,
  );
}

/**
 * Connects to the server's NATS TCP port with `@nats-io/transport-node`, as
 * a Deno server or script that reaches that port would. Its `close()`,
 * `closed()` and `drain()` also settle a reconnect still in flight.
 *
 * Opening it replaces nats-core's module-wide transport factory (as `wsconnect()`
 * does): `wsconnect()` connections opened earlier in the same process no longer
 * reconnect. Use it only in a test file of its own (Deno runs each test file in
 * its own isolate).
 */
export async function connectNode(
  server: { port: number } | string,
  options: Partial<CoreOptions> = {},
): Promise<CoreConnection> {
  const servers = typeof server === "string" ? server : `127.0.0.1:${server.port}`;
  const nc = await connectTcp({ ...options, servers });
  settleOnClose(nc);
  return nc;
}
