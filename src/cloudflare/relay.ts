/**
 * The callbacks object's work: one NATS connection and one endpoint, opened
 * on the first request, serving the requests of many Workers at once. A
 * request that arrives while the connection opens waits for it within its
 * deadline; one that arrives while it is down is held by the endpoint, as
 * every endpoint holds requests. While NATS cannot be reached the relay
 * keeps trying; a connection closed for good is opened again by the next
 * request.
 *
 * @module
 */

import { Endpoint } from "../endpoint.ts";
import { ClosedError, DisconnectedError, EdgeError, NoReplyError } from "../errors.ts";
import { errorText } from "../wire.ts";
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
  /**
   * Makes one attempt to open the connection. Rejects with an `EdgeError`
   * for what trying again does not mend (refused credentials): the Worker
   * sees it; with anything else (NATS unreachable) the relay tries again.
   */
  open(): Promise<RelayConnection>;
  /** Where the connection goes, for messages (`NATS_SERVERS`, without credentials). */
  servers: string;
  /** The endpoint's options (`inboxPrefix`). */
  endpoint?: EndpointOptions;
}

/** How a callbacks object is doing, for health checks and tests. */
export interface EdgeStats {
  /** Whether its NATS connection is up (`false` while it opens or reconnects). */
  readonly connected: boolean;
  /** Whether it is trying to open a connection (while requests wait for one). */
  readonly connecting: boolean;
  /** Requests it is waiting on for Workers. */
  readonly pending: number;
  /** NATS connections it opened since it started (1 while all is well). */
  readonly connections: number;
}

interface Live {
  readonly nc: RelayConnection;
  readonly endpoint: Endpoint;
}

/** What a request is, for the errors that say what became of it. */
interface About {
  readonly subject: string;
  readonly timeout: number;
}

/** Between two attempts to open a connection NATS did not accept. */
const RETRY_MS = 250;
const RETRY_JITTER_MS = 100;
/** How long a refusal (credentials) answers requests before the next attempt. */
const REFUSED_MS = 1_000;

/** Serves Workers' requests over one NATS connection; see the module doc. */
export class Relay {
  readonly #options: RelayOptions;
  readonly #waiting = new Map<string, AbortController>();
  /** Aborted by `close()`: ends the attempts to connect and what waits for them. */
  readonly #stop = new AbortController();
  #opening: Promise<Live> | undefined;
  #live: Live | undefined;
  #refused: { readonly error: EdgeError; readonly until: number } | undefined;
  /** Why the last attempt to connect failed, for the message of a request that gave up. */
  #failure: string | undefined;
  #connections = 0;
  #closing: Promise<void> | undefined;

  /** @param options How to open the connection. */
  constructor(options: RelayOptions) {
    this.#options = options;
  }

  /** How it is doing. */
  stats(): EdgeStats {
    return {
      connected: this.#live !== undefined && natsTransport(this.#live.nc).connected !== false,
      connecting: this.#opening !== undefined,
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
    const about: About = { subject: contract.subject, timeout };
    if (this.#waiting.has(id)) {
      return failed(
        new EdgeError(
          `request ${id} is already waiting: give each request its own id (edgeEndpoint does)`,
          { reason: "protocol" },
        ),
      );
    }
    const cancel = new AbortController();
    this.#waiting.set(id, cancel);
    let live: Live | undefined;
    try {
      live = this.#live ?? await this.#connect(about, cancel.signal);
      // What is left of its time once the connection is there (all of it, when it was).
      const left = Math.ceil(timeout - (performance.now() - arrived));
      if (left < 1) throw this.#unreachable(about);
      const value = await live.endpoint.request(contract, body as never, {
        timeout: left,
        signal: cancel.signal,
        ...(headers === undefined ? {} : { headers }),
      });
      return { v: EDGE_VERSION, value };
    } catch (error) {
      // Its endpoint closed by close(): the Worker sends again (a new object, if need be).
      if (this.#stop.signal.aborted && error instanceof ClosedError) {
        return failed(closed("a reply"));
      }
      // Its connection closed for good: the next request opens another.
      if (live && this.#live !== live && isConnectionLoss(error)) return failed(lost(about));
      return failed(restated(error, about));
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

  /**
   * Closes the connection: requests still waiting end with an `EdgeError`
   * (`object`). An attempt to connect under way is waited for (at most the
   * connect timeout) and what it opened closed.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  async #close(): Promise<void> {
    this.#stop.abort();
    // An attempt under way ends (and closes what it opened); no other starts.
    const live = this.#live ?? await this.#opening?.catch(() => undefined);
    this.#live = undefined;
    if (live) {
      await live.endpoint.close();
      await live.nc.close();
    }
  }

  /** The live connection, once open: waits within the request's deadline, or its cancel. */
  async #connect(about: About, signal: AbortSignal): Promise<Live> {
    const stop = this.#stop.signal;
    if (stop.aborted) throw closed();
    if (this.#refused && performance.now() < this.#refused.until) throw this.#refused.error;
    // Cleared once settled (never before it is set, even if the attempt fails at once).
    const opening = this.#opening ??= this.#open().finally(() => this.#opening = undefined);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let onAbort: (() => void) | undefined;
    let onStop: (() => void) | undefined;
    try {
      return await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(this.#unreachable(about)), about.timeout);
          onAbort = () => reject(signal.reason);
          onStop = () => reject(closed());
          signal.addEventListener("abort", onAbort, { once: true });
          stop.addEventListener("abort", onStop, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort!);
      stop.removeEventListener("abort", onStop!);
    }
  }

  /** Attempts to connect until one succeeds, NATS refuses (credentials), or `close()`. */
  async #open(): Promise<Live> {
    const stop = this.#stop.signal;
    while (true) {
      let nc: RelayConnection;
      try {
        nc = await this.#options.open();
      } catch (error) {
        if (error instanceof EdgeError) {
          this.#refused = { error, until: performance.now() + REFUSED_MS };
          throw error;
        }
        this.#failure = errorText(error);
        // Nobody waits any more: the next request starts trying again.
        if (this.#waiting.size === 0) throw error;
        await pause(RETRY_MS + Math.random() * RETRY_JITTER_MS, stop);
        if (stop.aborted) throw closed();
        continue;
      }
      if (stop.aborted) {
        await nc.close();
        throw closed();
      }
      this.#connections++;
      this.#failure = undefined;
      const endpoint = new Endpoint(natsTransport(nc), this.#options.endpoint);
      const live: Live = { nc, endpoint };
      this.#live = live;
      // Closed for good (not a drop: the endpoint holds requests through those): the next
      // request opens a new connection.
      nc.closed().then(() => {
        if (this.#live === live) this.#live = undefined;
        return endpoint.close();
      }).catch(() => {});
      return live;
    }
  }

  /** The connection did not open within a request's deadline. */
  #unreachable(about: About): DisconnectedError {
    const why = this.#failure === undefined ? "" : ` (${this.#failure})`;
    return new DisconnectedError(
      `NATS at ${this.#options.servers} could not be reached${why} within the ${about.timeout} ms ` +
        `${about.subject} could wait: nothing was sent; check that NATS runs there ` +
        `(NATS_SERVERS), or send again`,
      about,
    );
  }
}

/** An error a request met because its connection closed (for good). */
function isConnectionLoss(error: unknown): boolean {
  return error instanceof ClosedError || error instanceof DisconnectedError;
}

/** The connection closed for good while the request waited for its reply. */
function lost(about: About): DisconnectedError {
  return new DisconnectedError(
    `the callbacks object's NATS connection closed while ${about.subject} waited: it may or ` +
      `may not have been processed; send it again if that is safe (the object connects again)`,
    about,
  );
}

function closed(what = "its connection"): EdgeError {
  return new EdgeError(
    `the callbacks object was closed while the request waited for ${what}: send it again`,
    { reason: "object" },
  );
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * An error that tells the time the request could wait as the Worker gave it
 * (the endpoint was given what was left of it once the connection opened).
 */
function restated(error: unknown, about: About): unknown {
  if (!(error instanceof NoReplyError) || error.timeout === undefined) return error;
  if (error.timeout === about.timeout) return error;
  const Class = error.constructor as typeof NoReplyError;
  return new Class(error.message.replaceAll(`${error.timeout} ms`, `${about.timeout} ms`), {
    ...about,
    cause: error.cause,
  });
}
