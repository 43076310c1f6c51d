/**
 * The callbacks object's work: one NATS connection and one endpoint, opened
 * on the first request, serving the requests of many Workers at once. A
 * request that arrives while the connection opens waits for it within its
 * deadline; one that arrives while it is down is held by the endpoint, as
 * every endpoint holds requests. A connection closed for good is opened
 * again by the next request.
 *
 * @module
 */

import { Endpoint } from "../endpoint.ts";
import { DisconnectedError, EdgeError, NoReplyError } from "../errors.ts";
import type { EndpointOptions } from "../options.ts";
import { type NatsConnectionLike, natsTransport } from "../transports/nats.ts";
import { EDGE_VERSION, type EdgeAnswer, failed, readRequest } from "./protocol.ts";

/** A connection the relay can watch and close. */
export interface RelayConnection extends NatsConnectionLike {
  /** Resolves when the connection is closed for good. */
  closed(): Promise<void | Error>;
  /** Closes it. */
  close(): Promise<void>;
}

/** Options of {@linkcode Relay}. */
export interface RelayOptions {
  /** Opens the connection; rejects with an `EdgeError` the Worker should see. */
  open(): Promise<RelayConnection>;
  /** Where the connection goes, for messages (`NATS_SERVERS`). */
  servers: string;
  /** The endpoint's options (`inboxPrefix`). */
  endpoint?: EndpointOptions;
}

/** How a callbacks object is doing, for health checks and tests. */
export interface EdgeStats {
  /** Whether its NATS connection is up (`false` while it opens or reconnects). */
  readonly connected: boolean;
  /** Requests it is waiting on for Workers. */
  readonly pending: number;
  /** NATS connections it opened since it started (1 while all is well). */
  readonly connections: number;
}

interface Live {
  readonly nc: RelayConnection;
  readonly endpoint: Endpoint;
}

/** Serves Workers' requests over one NATS connection; see the module doc. */
export class Relay {
  readonly #options: RelayOptions;
  readonly #waiting = new Map<string, AbortController>();
  #opening: Promise<Live> | undefined;
  #live: Live | undefined;
  #connections = 0;
  #closed = false;

  /** @param options How to open the connection. */
  constructor(options: RelayOptions) {
    this.#options = options;
  }

  /** How it is doing. */
  stats(): EdgeStats {
    return {
      connected: this.#live !== undefined && natsTransport(this.#live.nc).connected !== false,
      pending: this.#waiting.size,
      connections: this.#connections,
    };
  }

  /** Sends a Worker's request; the answer carries the reply's value or the error. Never rejects. */
  async request(input: unknown): Promise<EdgeAnswer> {
    const arrived = performance.now();
    const read = readRequest(input);
    if (read instanceof EdgeError) return failed(read);
    const { id, contract, body, timeout, headers } = read;
    if (this.#waiting.has(id)) {
      return failed(new EdgeError(`request ${id} is already waiting`, { reason: "protocol" }));
    }
    const cancel = new AbortController();
    this.#waiting.set(id, cancel);
    try {
      const live = this.#live ?? await this.#connect(contract.subject, timeout, cancel.signal);
      // What is left of its time once the connection is there (all of it, when it was).
      const left = Math.ceil(timeout - (performance.now() - arrived));
      if (left < 1) throw unreachable(contract.subject, timeout, this.#options.servers);
      const value = await live.endpoint.request(contract, body as never, {
        timeout: left,
        signal: cancel.signal,
        ...(headers === undefined ? {} : { headers }),
      });
      return { v: EDGE_VERSION, value };
    } catch (error) {
      return failed(restated(error, contract.subject, timeout));
    } finally {
      this.#waiting.delete(id);
    }
  }

  /** Stops waiting for a request the Worker gave up on (aborted). */
  cancel(id: unknown): void {
    if (typeof id !== "string") return;
    this.#waiting.get(id)?.abort(
      new DOMException("the Worker stopped waiting", "AbortError"),
    );
  }

  /** Closes the connection; requests still waiting end with `DisconnectedError`. */
  async close(): Promise<void> {
    this.#closed = true;
    const opening = this.#opening;
    this.#opening = undefined;
    const live = this.#live ?? await opening?.catch(() => undefined);
    this.#live = undefined;
    if (live) {
      await live.endpoint.close();
      await live.nc.close();
    }
  }

  /** The live connection, once open: waits within the request's deadline, or its cancel. */
  async #connect(subject: string, timeout: number, signal: AbortSignal): Promise<Live> {
    const opening = this.#opening ??= this.#open();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    try {
      return await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(unreachable(subject, timeout, this.#options.servers)),
            timeout,
          );
          onAbort = () => reject(signal.reason);
          signal.addEventListener("abort", onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort!);
    }
  }

  async #open(): Promise<Live> {
    if (this.#closed) throw new EdgeError("the callbacks object is closed", { reason: "object" });
    let nc: RelayConnection;
    try {
      nc = await this.#options.open();
    } catch (error) {
      this.#opening = undefined; // the next request tries again
      throw error;
    }
    this.#connections++;
    const endpoint = new Endpoint(natsTransport(nc), this.#options.endpoint);
    const live: Live = { nc, endpoint };
    if (this.#closed) {
      await nc.close();
      throw new EdgeError("the callbacks object is closed", { reason: "object" });
    }
    this.#live = live;
    // Closed for good (not a drop: the endpoint holds requests through those): the next
    // request opens a new connection.
    nc.closed().then(() => {
      if (this.#live === live) {
        this.#live = undefined;
        this.#opening = undefined;
      }
      return endpoint.close();
    }).catch(() => {});
    return live;
  }
}

/**
 * An error that tells the time the request could wait as the Worker gave it
 * (the endpoint was given what was left of it once the connection opened).
 */
function restated(error: unknown, subject: string, timeout: number): unknown {
  if (!(error instanceof NoReplyError) || error.timeout === undefined) return error;
  if (error.timeout === timeout) return error;
  const Class = error.constructor as typeof NoReplyError;
  return new Class(error.message.replaceAll(`${error.timeout} ms`, `${timeout} ms`), {
    subject,
    timeout,
    cause: error.cause,
  });
}

/** The connection did not open within a request's deadline. */
function unreachable(subject: string, timeout: number, servers: string): DisconnectedError {
  return new DisconnectedError(
    `NATS at ${servers} could not be reached within the ${timeout} ms ${subject} could wait: ` +
      `nothing was sent; check that NATS runs there (NATS_SERVERS), or send again`,
    { subject, timeout },
  );
}
