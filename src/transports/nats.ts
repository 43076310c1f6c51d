/**
 * The NATS transport: the only file that imports the NATS client.
 *
 * @module
 */

import { type ConnectionOptions, headers as natsHeaders, type NatsConnection } from "nats.ws";
import { connectionClosed } from "../errors.ts";
import { assertSubscribeLine } from "../limits.ts";
import type {
  PublishOptions,
  SubscribeOptions,
  Transport,
  TransportMessage,
  TransportStatus,
  TransportSubscription,
} from "../transport.ts";

/**
 * Opens a nats.ws connection, for an add-on that connects on its own (the
 * Cloudflare callbacks object), so that this file stays the one that
 * imports the NATS client. `creds` is a `.creds` file's text.
 */
export async function openNats(
  options: ConnectionOptions & { creds?: string },
): Promise<NatsConnection> {
  // Imported here, so that an app that never opens a connection this way does not carry these.
  const { connect, credsAuthenticator } = await import("nats.ws");
  const { creds, ...rest } = options;
  return await connect(
    creds === undefined
      ? rest
      : { ...rest, authenticator: credsAuthenticator(new TextEncoder().encode(creds)) },
  );
}

/** The part of a NATS message the transport reads. */
export interface NatsMessageLike {
  /** Subject. */
  readonly subject: string;
  /** Reply subject, `""` or `undefined` for none. */
  readonly reply?: string | undefined;
  /** Body. */
  readonly data: Uint8Array;
  /** Headers, with the status code NATS puts in the header block. */
  readonly headers?: {
    readonly code: number;
    /** The text after the status code on the first line (`NATS/1.0 503 No Responders`). */
    readonly description?: string;
    has(name: string): boolean;
    get(name: string): string;
  } | undefined;
}

/** The part of NATS headers the transport writes. */
export interface NatsHeadersLike {
  /** Sets one header. */
  set(name: string, value: string): void;
}

/**
 * The part of a NATS connection the transport uses: a `nats.ws` connection
 * (`connect()`) has it, and so has a `@nats-io/nats-core` one (`wsconnect()`).
 */
export interface NatsConnectionLike {
  /** Publishes a message. */
  publish(
    subject: string,
    payload?: Uint8Array,
    options?: { reply?: string; headers?: NatsHeadersLike },
  ): void;
  /** Subscribes with a callback. */
  subscribe(
    subject: string,
    options?: {
      queue?: string;
      callback?: (error: Error | null, message: NatsMessageLike) => void;
    },
  ): { unsubscribe(): void };
  /** The server's INFO, with `max_payload`. */
  readonly info?: { readonly max_payload: number } | undefined;
  /** Connection status changes (`disconnect`, `reconnect`, …). */
  status?(): AsyncIterable<{ readonly type: string }>;
  /** Resolves when the connection is closed for good. */
  closed?(): Promise<void | Error>;
  /** Resolves once the server has processed everything sent before it. */
  flush?(): Promise<void>;
}

/**
 * Wraps a NATS connection as a {@linkcode Transport}. The connection stays
 * yours: closing an endpoint does not close it. One connection has one
 * transport: calling this again with the same connection returns the same
 * transport, so endpoints made and closed one after another on a long-lived
 * connection leave nothing behind on it.
 *
 * @param nc A connection from `nats.ws`'s `connect()`.
 * @returns A transport for {@linkcode Endpoint}.
 *
 * @example Over WebSocket NATS
 * ```ts ignore
 * import { connect } from "nats.ws";
 * import { Endpoint, natsTransport } from "@seed/callbacks";
 *
 * const nc = await connect({ servers: "ws://127.0.0.1:8080" });
 * await using endpoint = new Endpoint(natsTransport(nc), { timeout: 10_000 });
 * // … endpoint.request(…), endpoint.handle(…)
 * await nc.close();
 * ```
 */
export function natsTransport(nc: NatsConnectionLike): Transport {
  if (
    typeof nc !== "object" || nc === null || typeof nc.publish !== "function" ||
    typeof nc.subscribe !== "function"
  ) {
    throw new TypeError("natsTransport takes a NATS connection, e.g. from nats.ws connect()");
  }
  let transport = transports.get(nc);
  if (transport === undefined) transports.set(nc, transport = wrap(nc));
  return transport;
}

const transports = new WeakMap<NatsConnectionLike, Transport>();

function wrap(nc: NatsConnectionLike): Transport {
  const listeners = new Set<(status: TransportStatus) => void>();
  let connected = true;
  const notify = (status: TransportStatus) => {
    connected = status === "reconnect";
    if (status === "close" && !closed) {
      closed = true;
      markClosed();
    }
    for (const listener of [...listeners]) listener(status);
  };
  let watching = false;
  const startWatching = () => {
    // One status loop per transport, started by the first watcher; it ends when the
    // connection closes.
    if (watching) return;
    watching = true;
    if (typeof nc.status === "function") {
      (async () => {
        for await (const { type } of nc.status!()) {
          if (type === "disconnect" && connected) notify("disconnect");
          else if (type === "reconnect") notify("reconnect");
        }
      })().catch(() => {});
    }
    nc.closed?.().then(() => notify("close"), () => notify("close"));
  };
  /**
   * Resolves once the server has a subscription just sent: a round trip after
   * the SUB (a flush). A drop on the way waits for the reconnect (the client
   * sends its subscriptions again) and tries again; a closed connection
   * rejects with `DisconnectedError`, a subscription the server refused with
   * its error.
   */
  async function live(refused: () => Error | undefined): Promise<void> {
    startWatching();
    for (;;) {
      if (closed) throw connectionClosed();
      try {
        await Promise.race([nc.flush!(), whenClosed]);
        break;
      } catch (error) {
        if (closed) throw connectionClosed({ cause: error });
        // Dropped before the server answered: wait for the connection to come back.
        await new Promise<void>((resolve) => {
          const listener = (status: TransportStatus) => {
            if (status === "disconnect") return;
            listeners.delete(listener);
            resolve();
          };
          listeners.add(listener);
          if (connected && !closed) {
            listeners.delete(listener);
            resolve();
          }
        });
      }
    }
    const error = refused();
    if (error) throw error;
  }
  // Rejects once the connection is closed for good (a flush then never answers).
  let closed = false;
  let markClosed!: () => void;
  const whenClosed = new Promise<never>((_, reject) => {
    markClosed = () => reject(connectionClosed());
  });
  whenClosed.catch(() => {});

  return {
    get maxPayload(): number {
      return nc.info?.max_payload ?? Infinity;
    },
    get connected(): boolean {
      return connected;
    },
    watch(listener: (status: TransportStatus) => void): () => void {
      listeners.add(listener);
      startWatching();
      return () => listeners.delete(listener);
    },
    ...(typeof nc.flush === "function" ? { flush: () => live(() => undefined) } : {}),
    publish(subject: string, data: Uint8Array, options: PublishOptions = {}): void {
      const publishOptions: { reply?: string; headers?: NatsHeadersLike } = {};
      if (options.reply !== undefined) publishOptions.reply = options.reply;
      if (options.headers !== undefined) {
        const h = natsHeaders();
        for (const name in options.headers) h.set(name, options.headers[name]!);
        publishOptions.headers = h;
      }
      try {
        nc.publish(subject, data, publishOptions);
      } catch (error) {
        throw translate(error);
      }
    },
    subscribe(
      subject: string,
      onMessage: (message: TransportMessage) => void,
      options: SubscribeOptions = {},
    ): TransportSubscription {
      const { onError } = options;
      let refused: Error | undefined;
      const subscribeOptions: Parameters<NatsConnectionLike["subscribe"]>[1] = {
        callback: (error, msg) => {
          // An exception here would stop the client reading the connection: the endpoint's
          // callbacks never throw, and another subscriber's exception is logged, not thrown.
          try {
            if (error) onError?.(refused = error);
            else onMessage(new NatsMessage(msg));
          } catch (thrown) {
            console.error(`@seed/callbacks: a ${subject} subscriber threw:`, thrown);
          }
        },
      };
      if (options.queue !== undefined) subscribeOptions.queue = options.queue;
      assertSubscribeLine(subject, options.queue);
      let sub: { unsubscribe(): void };
      try {
        sub = nc.subscribe(subject, subscribeOptions);
      } catch (error) {
        throw translate(error);
      }
      let active = true;
      const ready = typeof nc.flush === "function" ? live(() => refused) : undefined;
      ready?.catch(() => {}); // only those who await it hear of a failure
      return {
        ...(ready === undefined ? {} : { ready }),
        unsubscribe(): void {
          if (!active) return;
          active = false;
          try {
            sub.unsubscribe();
          } catch {
            // The connection is closed: the subscription is gone with it.
          }
        },
      };
    },
  };
}

class NatsMessage implements TransportMessage {
  readonly #msg: NatsMessageLike;
  constructor(msg: NatsMessageLike) {
    this.#msg = msg;
  }
  get subject(): string {
    return this.#msg.subject;
  }
  get reply(): string {
    return this.#msg.reply ?? "";
  }
  get data(): Uint8Array {
    return this.#msg.data;
  }
  get status(): number {
    const h = this.#msg.headers;
    // The client reads a first line that is not "NATS/1.0 [code]" as code 0 with a description.
    if (h !== undefined && h.code === 0 && h.description) {
      throw new TypeError("the header block does not start with NATS/1.0");
    }
    return h?.code ?? 0;
  }
  header(name: string): string | undefined {
    const h = this.#msg.headers;
    return h?.has(name) ? h.get(name) : undefined;
  }
}

/** A closed or draining connection's error (nats.ws codes, nats-core v3 classes) as ours. */
function translate(error: unknown): unknown {
  const { code, name } = (error ?? {}) as { code?: unknown; name?: unknown };
  return code === "CONNECTION_CLOSED" || code === "CONNECTION_DRAINING" ||
      name === "ClosedConnectionError" || name === "DrainingConnectionError"
    ? connectionClosed({ cause: error })
    : error;
}
