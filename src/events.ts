import type { Endpoint } from "./endpoint.ts";
import type { GatherEnd } from "./gather.ts";

/**
 * The events an {@linkcode Endpoint} dispatches, each an `Event` subclass
 * with typed fields.
 *
 * @module
 */

/** How a callback settled. */
export type Outcome =
  | "reply"
  | "timeout"
  | "abort"
  | "no-responders"
  | "invalid-reply"
  | "remote-error"
  | "closed"
  | "disconnected";

/**
 * Dispatched as `request` once a request is published.
 *
 * @example Counting requests
 * ```ts
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * await using endpoint = new Endpoint(memoryTransport());
 * let sent = 0;
 * endpoint.addEventListener("request", (event) => sent += event.subject ? 1 : 0);
 * ```
 */
export class RequestEvent extends Event {
  /** The contract's subject. */
  readonly subject: string;
  /** The request's reply token (the last token of its reply subject). */
  readonly id: string;
  /** The time budget it was sent with, in milliseconds. */
  readonly timeout: number;
  /** Makes a RequestEvent. */
  constructor(subject: string, init: { id: string; timeout: number }) {
    super("request");
    this.subject = subject;
    this.id = init.id;
    this.timeout = init.timeout;
  }
}

/**
 * Dispatched as `settle` exactly once per request, when its promise settles,
 * and once per `requestMany()` gather, when it ends: its outcome is `reply`
 * for a normal end (`max`, `idle`, `timeout`, `sentinel`, or the loop left),
 * and `replies` and `end` say how many replies came and why it ended.
 *
 * @example Logging outcomes and durations
 * ```ts
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * await using endpoint = new Endpoint(memoryTransport());
 * endpoint.addEventListener("settle", (event) => {
 *   console.log(event.subject, event.outcome, `${event.duration.toFixed(1)} ms`);
 * });
 * ```
 */
export class SettleEvent extends Event {
  /** The contract's subject. */
  readonly subject: string;
  /** The request's reply token. */
  readonly id: string;
  /** How it settled. */
  readonly outcome: Outcome;
  /** Milliseconds from `request()` to settling. */
  readonly duration: number;
  /** The rejection, when the outcome is not `reply`. */
  readonly error: unknown;
  /** For a gather: how many replies it received; `undefined` for a request. */
  readonly replies: number | undefined;
  /** For a gather: why it ended; `undefined` for a request. */
  readonly end: GatherEnd | undefined;
  /** Makes a SettleEvent. */
  constructor(
    subject: string,
    init: {
      id: string;
      outcome: Outcome;
      duration: number;
      error?: unknown;
      replies?: number | undefined;
      end?: GatherEnd | undefined;
    },
  ) {
    super("settle");
    this.subject = subject;
    this.id = init.id;
    this.outcome = init.outcome;
    this.duration = init.duration;
    this.error = init.error;
    this.replies = init.replies;
    this.end = init.end;
  }
}

/**
 * Dispatched as `late-reply` for a reply that settles nothing: its callback
 * already settled (a second responder, or a reply after the timeout), or the
 * endpoint never had it (`subject` is then `undefined`). The reply is dropped.
 *
 * @example Watching for slow responders
 * ```ts
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * await using endpoint = new Endpoint(memoryTransport());
 * endpoint.addEventListener("late-reply", (event) => {
 *   console.warn("late reply", event.subject ?? "(unknown request)", event.id);
 * });
 * ```
 */
export class LateReplyEvent extends Event {
  /** The contract's subject, `undefined` when the request is unknown to this endpoint. */
  readonly subject: string | undefined;
  /** The reply token the reply was addressed to. */
  readonly id: string;
  /** Makes a LateReplyEvent. */
  constructor(subject: string | undefined, init: { id: string }) {
    super("late-reply");
    this.subject = subject;
    this.id = init.id;
  }
}

/**
 * Dispatched as `error` when code the endpoint calls fails outside any
 * caller's promise: a handler that threw something other than a
 * `ReplyError` (the caller got a generic 500), a reply that could not be sent,
 * or an `onReply` handler that threw. Log it; the endpoint keeps serving.
 *
 * @example Logging handler failures
 * ```ts
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * await using endpoint = new Endpoint(memoryTransport());
 * endpoint.addEventListener("error", (event) => console.error(event.subject, event.error));
 * ```
 */
export class EndpointErrorEvent extends Event {
  /** The contract's subject. */
  readonly subject: string;
  /** What was thrown. */
  readonly error: unknown;
  /** Makes an EndpointErrorEvent. */
  constructor(subject: string, init: { error: unknown }) {
    super("error");
    this.subject = subject;
    this.error = init.error;
  }
}

/**
 * Dispatched as `connection` when the transport's connection goes down
 * (`disconnect`: requests made now are held, in-flight ones may be lost),
 * comes back (`reconnect`: held requests are sent), or closes for good
 * (`close`: everything pending rejects with `DisconnectedError`).
 *
 * @example Showing the connection state
 * ```ts
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * await using endpoint = new Endpoint(memoryTransport());
 * endpoint.addEventListener("connection", (event) => console.log("NATS:", event.status));
 * ```
 */
export class ConnectionEvent extends Event {
  /** What happened to the connection. */
  readonly status: "disconnect" | "reconnect" | "close";
  /** Makes a ConnectionEvent. */
  constructor(status: "disconnect" | "reconnect" | "close") {
    super("connection");
    this.status = status;
  }
}

/** A listener for one endpoint event, typed by its name. */
export type EndpointEventListener<K extends keyof EndpointEventMap> =
  | ((this: Endpoint, event: EndpointEventMap[K]) => void)
  | { handleEvent(event: EndpointEventMap[K]): void };

/**
 * An `EventTarget` whose `addEventListener` and `removeEventListener` are
 * typed by event name (see {@linkcode EndpointEventMap}), and which knows
 * whether anyone listens for `error` events. {@linkcode Endpoint} extends it.
 *
 * @example A typed listener
 * ```ts
 * import { Endpoint, memoryTransport } from "@seed/callbacks";
 * await using endpoint = new Endpoint(memoryTransport());
 * endpoint.addEventListener("settle", (event) => console.log(event.outcome));
 * ```
 */
export class EndpointEvents extends EventTarget {
  /** The `error` listeners, without and with `capture`: the platform keeps each pair once. */
  readonly #errorListeners = [new Set<unknown>(), new Set<unknown>()] as const;

  /**
   * Whether an `error` listener is registered. One added with `once` or a
   * `signal` may go away by itself and is not counted.
   */
  protected get listensForErrors(): boolean {
    return this.#errorListeners[0].size + this.#errorListeners[1].size > 0;
  }

  /** Adds a typed listener for an endpoint event (see {@linkcode EndpointEventMap}). */
  override addEventListener<K extends keyof EndpointEventMap>(
    type: K,
    listener: EndpointEventListener<K> | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Adds a listener. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
    // Counted for logErrors; one that may go away by itself (once, signal) is not counted,
    // so errors are then logged as well.
    if (
      type === "error" && listener &&
      !(typeof options === "object" && (options.once || options.signal))
    ) {
      this.#errorListeners[capture(options)].add(listener);
    }
  }

  /** Removes a typed listener. */
  override removeEventListener<K extends keyof EndpointEventMap>(
    type: K,
    listener: EndpointEventListener<K> | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Removes a listener. */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
    if (type === "error") this.#errorListeners[capture(options)].delete(listener);
  }
}

function capture(options: boolean | EventListenerOptions | undefined): 0 | 1 {
  return (typeof options === "boolean" ? options : options?.capture) ? 1 : 0;
}

/** Event names and their event types, for typed listeners. */
export interface EndpointEventMap {
  /** A request was published. */
  request: RequestEvent;
  /** A request settled. */
  settle: SettleEvent;
  /** A reply settled nothing. */
  "late-reply": LateReplyEvent;
  /** A handler or reply failed outside a caller's promise. */
  error: EndpointErrorEvent;
  /** The connection went down, came back, or closed. */
  connection: ConnectionEvent;
}
