/**
 * The endpoint: sends requests and settles their callbacks, and answers
 * requests with handlers.
 *
 * @module
 */

import {
  assertContract,
  type Contract,
  type HandledRequestOf,
  type HandlerReplyOf,
  type ReplyOf,
  type RequestOf,
} from "./contract.ts";
import {
  ClosedError,
  connectionClosed,
  DisconnectedError,
  InvalidReplyError,
  InvalidRequestError,
  type NoReplyErrorOptions,
  PendingLimitError,
  ReplyError,
  TimeoutError,
} from "./errors.ts";
import {
  ConnectionEvent,
  EndpointErrorEvent,
  type EndpointEventMap,
  LateReplyEvent,
  type Outcome,
  RequestEvent,
  SettleEvent,
} from "./events.ts";
import {
  headerBytes,
  headersProblem,
  isPublishSubject,
  isQueue,
  MAX_CONTROL_LINE,
  publishLineBytes,
  subscribeLineBytes,
  utf8Length,
} from "./limits.ts";
import { type PendingEntry, PendingTable } from "./pending.ts";
import { readReply, summarize } from "./reply.ts";
import { encodeReply, type ObjectResponse, parseJson } from "./responses.ts";
import { type Checked, checkSchema } from "./schema.ts";
import { TransitClock } from "./transit.ts";
import type {
  Transport,
  TransportMessage,
  TransportStatus,
  TransportSubscription,
} from "./transport.ts";
import {
  decodeText,
  encodeText,
  errorBody,
  errorHeaders,
  errorText,
  KIND_HEADER,
  SENT_HEADER,
  TIMEOUT_HEADER,
} from "./wire.ts";

/** Options of {@linkcode Endpoint}. */
export interface EndpointOptions {
  /** Default time a request waits for its reply, in milliseconds. Default 30 000. */
  timeout?: number;
  /** How many callbacks may wait at once; beyond it `request()` rejects with `PendingLimitError`. Default 10 000. */
  maxPending?: number;
  /** An endpoint that only answers (`handle`) and never waits for replies: it opens no reply inbox. */
  sendOnly?: boolean;
  /** The subject space of the reply inbox. Default `_INBOX`. */
  inboxPrefix?: string;
  /**
   * How many bytes of requests (bodies and headers) may be held while the
   * connection is down; beyond it `request()` rejects at once with
   * `PendingLimitError`. Default 16 MiB.
   */
  maxHeldBytes?: number;
  /**
   * Whether an `error` (a handler that threw, a reply against the contract, a
   * reply that could not be sent) is logged with `console.error` when no
   * `error` listener is registered. Default `true`.
   */
  logErrors?: boolean;
}

/** Options of {@linkcode Endpoint.request}. */
export interface RequestOptions {
  /** Aborts the wait: the promise rejects with `signal.reason` and the callback is removed. */
  signal?: AbortSignal;
  /** Time to wait for the reply, in milliseconds; the endpoint's `timeout` when absent. */
  timeout?: number;
  /** Extra headers to send with the request. */
  headers?: Readonly<Record<string, string>>;
}

/** What a handler gets beside the request body. */
export interface HandlerContext {
  /** Aborts when the caller has stopped waiting (its time budget ran out) or the endpoint closes. */
  readonly signal: AbortSignal;
  /** When the caller stops waiting, as a `Date.now()` timestamp; `undefined` when it sent no budget. */
  readonly deadline: number | undefined;
  /** The subject the request arrived on. */
  readonly subject: string;
  /** One request header's value, `undefined` when absent. */
  header(name: string): string | undefined;
}

/** Answers one contract's requests. */
export type Handler<C extends Contract> = (
  body: HandledRequestOf<C>,
  context: HandlerContext,
) => HandlerReplyOf<C> | Promise<HandlerReplyOf<C>>;

/** Options of {@linkcode Endpoint.handle}. */
export interface HandleOptions {
  /** Queue group, so that scaled-out responders share the requests. Default `"callbacks"`; `false` for none (every instance answers). */
  queue?: string | false;
}

/** Sees object replies of one contract, after the callback, and its late replies. */
export type ReplyHandler<C extends Contract> = (
  reply: ReplyOf<C>,
  info: { readonly id: string; readonly late: boolean },
) => void;

/** A registration that can be stopped: a responder or a reply handler. */
export interface Registration extends Disposable {
  /** Stops it. Idempotent. */
  stop(): void;
}

/** A listener for one endpoint event, typed by its name. */
export type EndpointEventListener<K extends keyof EndpointEventMap> =
  | ((this: Endpoint, event: EndpointEventMap[K]) => void)
  | { handleEvent(event: EndpointEventMap[K]): void };

const DEFAULT_TIMEOUT = 30_000;
/** How long after a reconnect a 503 may mean "responders not back yet". */
const RETRY_WINDOW = 5_000;
const RETRY_BASE = 50;
const MAX_RETRIES = 6;
const DEFAULT_MAX_PENDING = 10_000;
const DEFAULT_MAX_HELD_BYTES = 16 * 1024 * 1024;
const RECENT_LIMIT = 10_000;

/**
 * A requesting and processing endpoint over a {@linkcode Transport}.
 *
 * A request's promise settles exactly once: with the first valid reply, or
 * with an error saying why not. Callbacks live in memory: `close()` rejects
 * whatever is waiting with `ClosedError`, and a process restart loses them.
 * Closing an endpoint leaves the transport (the caller's NATS connection)
 * open.
 *
 * @example Answer and call an int contract
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, Endpoint, int, memoryTransport } from "@seed/callbacks";
 *
 * const CheckStock = defineRequest({
 *   subject: "stock.check",
 *   request: v.object({ sku: v.string() }),
 *   response: int(),
 * });
 * await using endpoint = new Endpoint(memoryTransport(), { timeout: 10_000 });
 * endpoint.handle(CheckStock, ({ sku }) => sku === "A-1" ? 5 : 0);
 * const left: number = await endpoint.request(CheckStock, { sku: "A-1" });
 * assert(left === 5);
 * ```
 */
export class Endpoint extends EventTarget implements AsyncDisposable {
  readonly #transport: Transport;
  readonly #timeout: number;
  readonly #maxPending: number;
  readonly #sendOnly: boolean;
  readonly #inboxPrefix: string;
  readonly #pending = new PendingTable((entry) => {
    const { subject } = entry.contract;
    const about = { subject, timeout: entry.timeout };
    const [outcome, error]: [Outcome, Error] = entry.state === "held"
      ? [
        "disconnected",
        new DisconnectedError(
          `the connection to NATS was down for the whole ${entry.timeout} ms ${subject} could wait: ` +
            `nothing was sent; send again once it is back`,
          about,
        ),
      ]
      : entry.state === "disrupted"
      ? [
        "disconnected",
        new DisconnectedError(
          `the connection to NATS dropped while ${subject} was in flight and no reply came within ` +
            `${entry.timeout} ms: it may or may not have been processed`,
          about,
        ),
      ]
      : [
        "timeout",
        new TimeoutError(
          `no reply to ${subject} within ${entry.timeout} ms: ` +
            `check that a responder runs and is healthy, or raise the timeout`,
          about,
        ),
      ];
    this.#finish(entry, outcome, error);
    entry.reject(error);
  }, RECENT_LIMIT);
  /** Requests held while the connection is down, and their bytes. */
  readonly #held = new Map<PendingEntry, number>();
  #heldBytes = 0;
  readonly #maxHeldBytes: number;
  readonly #logErrors: boolean;
  readonly #errorListeners = new Set<unknown>();
  /** The subjects this endpoint handles: one handler each. */
  readonly #handled = new Set<string>();
  readonly #transit = new TransitClock();
  #down: boolean;
  #gone = false;
  #reconnectedAt = -Infinity;
  readonly #unwatch: (() => void) | undefined;
  readonly #registrations = new Set<Registration>();
  readonly #replyHandlers = new Map<Contract, Set<ReplyHandler<Contract>>>();
  #inbox: { subject: string; subscription: TransportSubscription } | undefined;
  #closed = false;

  /**
   * Makes an endpoint.
   *
   * @param transport `natsTransport(nc)` or `memoryTransport()`.
   * @param options `timeout`, `maxPending`, `sendOnly`, `inboxPrefix`, `maxHeldBytes`, `logErrors`.
   * @throws {RangeError} When `timeout`, `maxPending` or `maxHeldBytes` is out of range, or
   * `inboxPrefix` is too long for a protocol line.
   * @throws {TypeError} When `inboxPrefix` is not a subject.
   */
  constructor(transport: Transport, options: EndpointOptions = {}) {
    super();
    if (
      typeof transport !== "object" || transport === null ||
      typeof transport.publish !== "function"
    ) {
      throw new TypeError(
        "Endpoint needs a transport: natsTransport(nc) or memoryTransport()",
      );
    }
    this.#transport = transport;
    this.#timeout = checkTimeout(options.timeout ?? DEFAULT_TIMEOUT, "Endpoint option timeout");
    this.#maxPending = atLeastOne(options.maxPending ?? DEFAULT_MAX_PENDING, "maxPending");
    this.#maxHeldBytes = atLeastOne(options.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES, "maxHeldBytes");
    this.#sendOnly = options.sendOnly === true;
    this.#logErrors = options.logErrors !== false;
    const prefix = options.inboxPrefix ?? "_INBOX";
    if (typeof prefix !== "string" || !isPublishSubject(prefix)) {
      throw new TypeError(
        `Endpoint option inboxPrefix must be a subject without wildcards, e.g. "_INBOX.app", got ${
          JSON.stringify(prefix)
        }`,
      );
    }
    if (utf8Length(prefix) > MAX_INBOX_PREFIX) {
      throw new RangeError(
        `Endpoint option inboxPrefix is ${
          utf8Length(prefix)
        } bytes; at most ${MAX_INBOX_PREFIX} leave room for the subject in a NATS protocol line`,
      );
    }
    this.#inboxPrefix = prefix;
    this.#down = transport.connected === false;
    this.#unwatch = transport.watch?.((status) => this.#onStatus(status));
  }

  /** How many callbacks are waiting for a reply. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends a request and waits for its reply.
   *
   * @param contract What to send and what to expect.
   * @param body The request body; validated against the contract first.
   * @param options `signal`, `timeout`, `headers`.
   * @returns The reply, validated and typed by the contract's response kind.
   * @throws {InvalidRequestError} The body fails the request schema, or is over the transport's `maxPayload`; nothing is sent.
   * @throws {TimeoutError} No reply within the timeout.
   * @throws {NoRespondersError} Nobody listens on the subject.
   * @throws {InvalidReplyError} The reply is not what the contract promises.
   * @throws {RemoteError} The responder answered with an error.
   * @throws {ClosedError} The endpoint is or was closed while waiting.
   * @throws {PendingLimitError} `maxPending` callbacks are already waiting.
   * @throws {DisconnectedError} The connection is closed.
   * @throws {TypeError} The endpoint is `sendOnly`.
   * @throws {RangeError} `timeout` is not a positive number.
   *
   * @example With a deadline and a cancel button
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, enumOf, memoryTransport } from "@seed/callbacks";
   *
   * const Approve = defineRequest({
   *   subject: "orders.approve",
   *   request: v.object({ orderId: v.string() }),
   *   response: enumOf(["Approved", "Rejected"]),
   * });
   * await using endpoint = new Endpoint(memoryTransport());
   * endpoint.handle(Approve, ({ orderId }) => orderId.startsWith("A") ? "Approved" : "Rejected");
   * const cancel = new AbortController();
   * const decision: "Approved" | "Rejected" = await endpoint.request(Approve, { orderId: "A7" }, {
   *   signal: cancel.signal,
   *   timeout: 2_000,
   * });
   * assert(decision === "Approved");
   * ```
   */
  request<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options: RequestOptions = {},
  ): Promise<ReplyOf<C>> {
    const started = performance.now();
    let data: Uint8Array;
    let timeout: number;
    let inbox: string;
    let headers: Record<string, string>;
    let size: number;
    try {
      assertContract(contract, "request");
      timeout = options.timeout === undefined
        ? this.#timeout
        : checkTimeout(options.timeout, "request option timeout");
      const { subject } = contract;
      if (this.#closed) {
        throw new ClosedError(`endpoint is closed: cannot send ${subject}; create a new endpoint`);
      }
      if (this.#gone) throw connectionClosed({ subject, timeout });
      if (this.#sendOnly) {
        throw new TypeError(
          "no reply inbox: a sendOnly endpoint cannot wait for replies; create the endpoint without sendOnly",
        );
      }
      options.signal?.throwIfAborted();
      if (this.#pending.size >= this.#maxPending) {
        throw new PendingLimitError(
          `${this.#pending.size} requests are already waiting (maxPending ${this.#maxPending}): ` +
            `retry later, or raise the endpoint's maxPending`,
        );
      }
      const checked = checkSchema(contract.request, body);
      if (!checked.ok) {
        throw new InvalidRequestError(
          `invalid ${subject} request: ${summarize(checked.issues)}; nothing was sent`,
          { issues: checked.issues },
        );
      }
      const extra = options.headers;
      const problem = extra === undefined ? undefined : headersProblem(extra);
      if (problem !== undefined) {
        throw new InvalidRequestError(`${subject} request: ${problem}; nothing was sent`);
      }
      data = encodeText(JSON.stringify(body) ?? "null");
      headers = { ...extra, [TIMEOUT_HEADER]: String(Math.ceil(timeout)), [SENT_HEADER]: "" };
      const maxPayload = this.#transport.maxPayload;
      size = data.length + headerBytes(headers) + STAMP_BYTES;
      if (size > maxPayload) {
        throw new InvalidRequestError(
          `${subject} request is ${size} bytes with its headers, over the server's ` +
            `max_payload of ${maxPayload} bytes: send less, or raise max_payload in the server config; nothing was sent`,
        );
      }
      inbox = this.#openInbox();
      if (publishLineBytes(subject, `${inbox}.${ID_SAMPLE}`, size) > MAX_CONTROL_LINE) {
        throw new InvalidRequestError(
          `${subject} and the reply subject are too long for one NATS protocol line ` +
            `(${MAX_CONTROL_LINE} bytes): use a shorter subject or inboxPrefix; nothing was sent`,
        );
      }
      if (this.#down && this.#heldBytes + size > this.#maxHeldBytes) {
        throw new PendingLimitError(
          `the connection to NATS is down and ${this.#heldBytes} bytes of requests are held ` +
            `(maxHeldBytes ${this.#maxHeldBytes}): retry once it is back, or raise maxHeldBytes; nothing was sent`,
        );
      }
    } catch (error) {
      return Promise.reject(error);
    }

    const id = crypto.randomUUID();
    const { signal } = options;
    // Not Promise.withResolvers: Node 20 lacks it.
    let resolve!: (value: ReplyOf<C>) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<ReplyOf<C>>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const entry: PendingEntry = {
      id,
      contract,
      started,
      deadline: started + timeout,
      timeout,
      resolve: resolve as (value: unknown) => void,
      reject,
      detach: undefined,
      prev: undefined,
      next: undefined,
      state: "sent",
      sent: undefined,
      attempts: 0,
      retry: undefined,
    };
    this.#pending.add(entry);
    if (signal) {
      const onAbort = () => this.#settle(id, "abort", () => signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      entry.detach = () => signal.removeEventListener("abort", onAbort);
    }
    const { subject } = contract;
    const reply = `${inbox}.${id}`;
    // Keep what is sent only while it is held or a no-responders retry may need it.
    if (this.#down || started - this.#reconnectedAt < RETRY_WINDOW) {
      entry.sent = { subject, reply, data, headers };
    }
    if (this.#down) {
      // A NATS client drops what is published while disconnected: hold it until the
      // connection is back, within its deadline.
      this.#hold(entry);
      return promise;
    }
    try {
      headers[SENT_HEADER] = stamp();
      this.#transport.publish(subject, data, { reply, headers });
    } catch (error) {
      // Never published: no request or settle event, nothing left behind.
      this.#pending.take(id);
      return Promise.reject(
        error instanceof DisconnectedError ? error : new InvalidRequestError(
          `${subject} could not be sent (${errorText(error)}); nothing was sent`,
          { cause: error },
        ),
      );
    }
    this.dispatchEvent(new RequestEvent(subject, { id, timeout }));
    return promise;
  }

  /**
   * Answers a contract's requests. The handler gets the validated body and a
   * context whose `signal` aborts when the caller stops waiting; its return
   * value is checked against the contract and sent as the reply. Throw a
   * `ReplyError` to answer with a typed error; any other exception answers
   * code 500 with a generic description and is dispatched as an `error`
   * event. An invalid request body is answered with code 400.
   *
   * @param contract The contract to answer.
   * @param handler Returns the reply (or a promise of it).
   * @param options `queue` (default `"callbacks"`; `false` for none).
   * @returns A registration: `stop()` unsubscribes.
   * @throws {ClosedError} The endpoint is closed.
   * @throws {TypeError} Not a contract or handler; a queue with a space or control character;
   * this endpoint already handles the subject.
   * @throws {RangeError} The subject and queue are too long for a NATS protocol line.
   *
   * @example A responder that answers with a typed error
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, int, memoryTransport, RemoteError, ReplyError } from "@seed/callbacks";
   *
   * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
   * await using endpoint = new Endpoint(memoryTransport());
   * using _responder = endpoint.handle(CheckStock, ({ sku }) => {
   *   if (sku === "") throw new ReplyError(404, "unknown sku");
   *   return 3;
   * });
   * const error = await endpoint.request(CheckStock, { sku: "" }).catch((e) => e);
   * assert(error instanceof RemoteError && error.code === 404);
   * ```
   */
  handle<C extends Contract>(
    contract: C,
    handler: NoInfer<Handler<C>>,
    options: HandleOptions = {},
  ): Registration {
    assertContract(contract, "handle");
    if (typeof handler !== "function") throw new TypeError("handle() needs a handler function");
    if (this.#closed) {
      throw new ClosedError("endpoint is closed: create a new endpoint to handle requests");
    }
    const { subject } = contract;
    const queue = options.queue === undefined ? "callbacks" : options.queue;
    if (queue !== false && (typeof queue !== "string" || !isQueue(queue))) {
      throw new TypeError(
        `handle(${subject}): queue must be a name without spaces or wildcards, or false; got ${
          JSON.stringify(queue)
        }`,
      );
    }
    if (subscribeLineBytes(subject, queue || undefined) > MAX_CONTROL_LINE) {
      throw new RangeError(
        `handle(${subject}): the subject and queue are too long for one NATS protocol line ` +
          `(${MAX_CONTROL_LINE} bytes): use a shorter subject or queue`,
      );
    }
    if (this.#handled.has(subject)) {
      throw new TypeError(
        `handle(${subject}): this endpoint already handles ${subject}, and two handlers would ` +
          `split its requests; stop the first registration, or handle it on another endpoint`,
      );
    }
    const state: ResponderState = { stopped: false, inFlight: new Set() };
    const subscription = this.#transport.subscribe(
      subject,
      (message) => this.#serve(contract, handler, message, state),
      {
        ...(queue === false ? {} : { queue }),
        onError: (error) => this.#report(subject, error),
      },
    );
    this.#handled.add(subject);
    return this.#register(() => {
      state.stopped = true;
      this.#handled.delete(subject);
      subscription.unsubscribe();
      for (const controller of state.inFlight) controller.abort(stopped(contract));
    });
  }

  /**
   * Registers a client-side handler for an object contract's replies: it runs
   * after the callback (in a microtask queued once the caller's promise is
   * resolved, so the caller's `await` continues first), and also for valid late replies
   * of requests this endpoint sent (after a timeout, or from a second
   * responder). Int and enum replies have no such handlers: late ones are
   * dropped quietly.
   *
   * @param contract An object contract.
   * @param handler Gets the reply and `{ id, late }`.
   * @returns A registration: `stop()` removes the handler.
   * @throws {TypeError} The contract's response is not `object(…)`.
   *
   * @example Auditing every order placed, late ones included
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, memoryTransport, object } from "@seed/callbacks";
   *
   * const PlaceOrder = defineRequest({
   *   subject: "orders.place",
   *   request: v.object({ sku: v.string() }),
   *   response: object(v.object({ orderId: v.string() })),
   * });
   * await using endpoint = new Endpoint(memoryTransport());
   * const audited = Promise.withResolvers<string>();
   * using _audit = endpoint.onReply(PlaceOrder, (reply, { late }) => {
   *   audited.resolve(`${reply.orderId}${late ? " (late)" : ""}`);
   * });
   * endpoint.handle(PlaceOrder, ({ sku }) => ({ orderId: `o-${sku}` }));
   * const order = await endpoint.request(PlaceOrder, { sku: "A-1" });
   * // The handler runs after the callback: once the caller's code has the reply.
   * assert((await audited.promise) === order.orderId);
   * ```
   */
  onReply<C extends Contract & { readonly response: ObjectResponse }>(
    contract: C,
    handler: NoInfer<ReplyHandler<C>>,
  ): Registration {
    assertContract(contract, "onReply");
    if (contract.response.kind !== "object") {
      throw new TypeError(
        `onReply(${contract.subject}): reply handlers see object replies only; ` +
          `int and enum replies are for the callback alone`,
      );
    }
    if (typeof handler !== "function") throw new TypeError("onReply() needs a handler function");
    let handlers = this.#replyHandlers.get(contract);
    if (!handlers) this.#replyHandlers.set(contract, handlers = new Set());
    const added = handler as ReplyHandler<Contract>;
    handlers.add(added);
    return this.#register(() => {
      handlers.delete(added);
      if (handlers.size === 0) this.#replyHandlers.delete(contract);
    });
  }

  /**
   * Closes the endpoint: stops its handlers, unsubscribes its reply inbox and
   * rejects every waiting callback with `ClosedError`. The transport (your
   * NATS connection) stays open. Idempotent.
   *
   * @returns A promise that resolves once closed.
   *
   * @example Closing by hand
   * ```ts
   * import { assert } from "@std/assert";
   * import { Endpoint, memoryTransport } from "@seed/callbacks";
   * const endpoint = new Endpoint(memoryTransport());
   * await endpoint.close();
   * assert(endpoint.closed && endpoint.pending === 0);
   * ```
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    this.#unwatch?.();
    for (const registration of [...this.#registrations]) registration.stop();
    this.#inbox?.subscription.unsubscribe();
    this.#inbox = undefined;
    for (const id of this.#pending.ids()) {
      this.#settle(
        id,
        "closed",
        () =>
          new ClosedError(
            "the endpoint was closed while waiting for the reply: callbacks live in memory; send again on a new endpoint",
          ),
      );
    }
    return Promise.resolve();
  }

  /** Closes the endpoint, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
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
      this.#errorListeners.add(listener);
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
    if (type === "error") this.#errorListeners.delete(listener);
  }

  #register(stop: () => void): Registration {
    let active = true;
    const registration: Registration = {
      stop: () => {
        if (!active) return;
        active = false;
        this.#registrations.delete(registration);
        stop();
      },
      [Symbol.dispose]: () => registration.stop(),
    };
    this.#registrations.add(registration);
    return registration;
  }

  #openInbox(): string {
    if (this.#inbox) return this.#inbox.subject;
    const subject = `${this.#inboxPrefix}.${randomToken()}`;
    const prefixLength = subject.length + 1;
    const subscription = this.#transport.subscribe(
      `${subject}.*`,
      (message) => this.#onReply(prefixLength, message),
      { onError: (error) => this.#inboxFailed(subject, error) },
    );
    this.#inbox = { subject, subscription };
    return subject;
  }

  #inboxFailed(subject: string, cause: Error): void {
    if (this.#inbox?.subject !== subject) return;
    this.#inbox.subscription.unsubscribe();
    this.#inbox = undefined;
    for (const id of this.#pending.ids()) {
      this.#settle(id, "disconnected", (entry) =>
        new DisconnectedError(
          `the reply inbox subscription ${subject}.* failed (${cause.message}): if your NATS user may ` +
            `subscribe only to its own inbox subjects, set the endpoint's inboxPrefix option to one of them`,
          { cause, ...about(entry) },
        ));
    }
  }

  /**
   * A message on the reply inbox. Everything about it is read by `readReply`,
   * which never throws: a reply that cannot be read settles its request as
   * `InvalidReplyError`, so nothing from the wire can throw into the transport.
   */
  #onReply(prefixLength: number, message: TransportMessage): void {
    let id: string;
    try {
      id = message.subject.slice(prefixLength);
    } catch {
      return; // no subject, no request to settle
    }
    const entry = this.#pending.get(id);
    if (entry === undefined) {
      this.#late(id, message);
      return;
    }
    const result = readReply(entry.contract, message, entry.timeout);
    if (result.ok) {
      this.#pending.take(id);
      this.#finish(entry, "reply", undefined);
      entry.resolve(result.value);
      this.#queueReplyHandlers(entry.contract, result.value, id, false);
      return;
    }
    if (result.outcome === "no-responders" && entry.sent !== undefined && this.#retry(entry)) {
      return;
    }
    this.#pending.take(id);
    this.#finish(entry, result.outcome, result.error);
    entry.reject(result.error);
  }

  #onStatus(status: TransportStatus): void {
    if (this.#closed) return;
    if (status === "disconnect") {
      this.#down = true;
      for (const entry of this.#pending.values()) {
        if (entry.state === "sent") entry.state = "disrupted";
      }
    } else if (status === "reconnect") {
      this.#down = false;
      this.#reconnectedAt = performance.now();
      // The event before the resends: a listener of theirs may drop the connection again,
      // and its "disconnect" must come after this "reconnect".
      this.dispatchEvent(new ConnectionEvent(status));
      const held = [...this.#held.keys()];
      for (const entry of held) {
        // A listener may have settled it (abort, close) or dropped the connection again.
        if (this.#pending.get(entry.id) !== entry || this.#down) continue;
        this.#unhold(entry);
        entry.state = "sent";
        this.#resend(entry);
      }
      return;
    } else {
      this.#down = this.#gone = true;
      for (const id of this.#pending.ids()) {
        this.#settle(id, "disconnected", (entry) => connectionClosed(about(entry)));
      }
    }
    this.dispatchEvent(new ConnectionEvent(status));
  }

  /** Holds a request while the connection is down, counting its bytes. */
  #hold(entry: PendingEntry): void {
    if (this.#held.has(entry)) return;
    entry.state = "held";
    const { data, headers } = entry.sent!;
    const size = data.length + headerBytes(headers) + STAMP_BYTES;
    this.#held.set(entry, size);
    this.#heldBytes += size;
  }

  #unhold(entry: PendingEntry): void {
    this.#heldBytes -= this.#held.get(entry) ?? 0;
    this.#held.delete(entry);
  }

  /**
   * After a reconnect, a 503 may only mean the responders' connections are not
   * back yet; it proves nobody received the request, so sending it again is
   * safe. Retries are bounded, jittered, and inside the deadline.
   */
  #retry(entry: PendingEntry): boolean {
    const now = performance.now();
    if (entry.attempts >= MAX_RETRIES || now - this.#reconnectedAt > RETRY_WINDOW) return false;
    const backoff = (RETRY_BASE << entry.attempts) * (0.5 + Math.random());
    if (now + backoff >= entry.deadline) return false;
    entry.attempts++;
    clearTimeout(entry.retry);
    entry.retry = setTimeout(() => {
      entry.retry = undefined;
      if (this.#pending.get(entry.id) !== entry) return;
      // The connection dropped again: the 503 proved nobody got it, so hold it. (A
      // connection closed for good settled it, which cleared this timer.)
      if (this.#down) this.#hold(entry);
      else this.#resend(entry);
    }, backoff);
    return true;
  }

  /** Publishes a held or retried request with what is left of its time budget. */
  #resend(entry: PendingEntry): void {
    const { subject, reply, data, headers } = entry.sent!;
    const left = Math.max(1, Math.ceil(entry.deadline - performance.now()));
    try {
      this.#transport.publish(subject, data, {
        reply,
        headers: { ...headers, [TIMEOUT_HEADER]: String(left), [SENT_HEADER]: stamp() },
      });
    } catch (error) {
      this.#settle(entry.id, "disconnected", () => error);
      return;
    }
    if (performance.now() - this.#reconnectedAt >= RETRY_WINDOW) entry.sent = undefined;
    this.dispatchEvent(new RequestEvent(subject, { id: entry.id, timeout: left }));
  }

  #late(id: string, message: TransportMessage): void {
    const contract = this.#pending.settled(id);
    this.dispatchEvent(new LateReplyEvent(contract?.subject, { id }));
    if (contract === undefined || !this.#replyHandlers.has(contract)) return;
    const result = readReply(contract, message);
    if (result.ok) this.#queueReplyHandlers(contract, result.value, id, true);
  }

  /**
   * Runs the reply handlers registered when the reply arrived, after the callback: in a
   * microtask, so the caller's continuation (queued by `resolve`) runs first, and replies'
   * handlers run in arrival order. A handler stopped (or an endpoint closed) by the caller's
   * continuation still sees the reply it was registered for.
   */
  #queueReplyHandlers(contract: Contract, value: unknown, id: string, late: boolean): void {
    const registered = this.#replyHandlers.get(contract);
    if (registered === undefined) return;
    const handlers = [...registered];
    queueMicrotask(() => this.#runReplyHandlers(contract, handlers, value, { id, late }));
  }

  #runReplyHandlers(
    contract: Contract,
    handlers: readonly ReplyHandler<Contract>[],
    value: unknown,
    info: { readonly id: string; readonly late: boolean },
  ): void {
    for (const handler of handlers) {
      try {
        handler(value as never, info);
      } catch (error) {
        this.#report(contract.subject, error);
      }
    }
  }

  /** Settles a waiting request with an error made for it; nothing if it already settled. */
  #settle(id: string, outcome: Outcome, error: (entry: PendingEntry) => unknown): void {
    const entry = this.#pending.take(id);
    if (entry === undefined) return;
    const reason = error(entry);
    this.#finish(entry, outcome, reason);
    entry.reject(reason);
  }

  #finish(entry: PendingEntry, outcome: Outcome, error: unknown): void {
    if (entry.state === "held") this.#unhold(entry);
    this.dispatchEvent(
      new SettleEvent(entry.contract.subject, {
        id: entry.id,
        outcome,
        duration: performance.now() - entry.started,
        error,
      }),
    );
  }

  /**
   * Dispatches an `error` event; with no listener for it, logs the error (unless
   * `logErrors` is off), so that a bug is never silent.
   */
  #report(subject: string, error: unknown): void {
    this.dispatchEvent(new EndpointErrorEvent(subject, { error }));
    if (this.#logErrors && this.#errorListeners.size === 0) {
      console.error(`@seed/callbacks: ${subject}:`, error);
    }
  }

  /**
   * A request for one of this endpoint's handlers: read it, run the handler,
   * answer. Never throws: a request that cannot be read is answered 400, and
   * whatever the handler does, the caller gets one answer.
   */
  #serve<C extends Contract>(
    contract: C,
    handler: Handler<C>,
    message: TransportMessage,
    state: ResponderState,
  ): void {
    let reply = "";
    let request: Checked<unknown>;
    let budget = NaN;
    let age = 0;
    try {
      reply = message.reply;
      let text: string | undefined;
      try {
        text = decodeText(message.data);
      } catch {
        // Not UTF-8: answered below.
      }
      const parsed = text === undefined
        ? { ok: false as const, issues: [{ message: "the body is not UTF-8" }] }
        : parseJson(text);
      request = parsed.ok ? checkSchema(contract.request, parsed.value) : parsed;
      if (request.ok) {
        budget = Number(message.header(TIMEOUT_HEADER));
        const sent = Number(message.header(SENT_HEADER));
        const sender = reply.slice(0, reply.lastIndexOf("."));
        if (Number.isFinite(sent) && sender !== "") age = this.#transit.age(sender, sent);
      }
    } catch (error) {
      request = { ok: false, issues: [{ message: `it cannot be read (${errorText(error)})` }] };
    }
    if (!request.ok) {
      let why: string;
      try {
        why = summarize(request.issues);
      } catch {
        why = "it fails the contract";
      }
      this.#respond(contract, reply, EMPTY, errorHeaders(400, `invalid request: ${why}`));
      return;
    }
    // The time the caller has left: its budget, less what the request is known to have
    // spent on the way (see TransitClock).
    const left = budget > 0 && Number.isFinite(budget) ? budget - age : undefined;
    if (left !== undefined && left <= 0) return; // the caller has stopped waiting
    this.#answer(contract, handler, message, request.value, left, reply, state);
  }

  async #answer<C extends Contract>(
    contract: C,
    handler: Handler<C>,
    message: TransportMessage,
    body: unknown,
    left: number | undefined,
    reply: string,
    state: ResponderState,
  ): Promise<void> {
    const deadline = left === undefined ? undefined : Date.now() + left;
    // The signal (and its deadline timer) is made only for handlers that read it.
    let controller: AbortController | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let answered = false;
    const signal = (): AbortSignal => {
      if (controller) return controller.signal;
      const made = controller = new AbortController();
      // Read after the handler returned: nothing waits on it any more.
      if (answered) {
        made.abort(new ClosedError(`the ${contract.subject} request was answered`));
        return made.signal;
      }
      if (state.stopped) {
        made.abort(stopped(contract));
        return made.signal;
      }
      state.inFlight.add(made);
      if (deadline !== undefined) {
        const expire = () =>
          made.abort(
            new TimeoutError(`the caller of ${contract.subject} stopped waiting`, {
              subject: contract.subject,
              timeout: left!,
            }),
          );
        const wait = deadline - Date.now();
        if (wait <= 0) expire();
        else if (wait <= MAX_TIMER) timer = setTimeout(expire, wait);
      }
      return made.signal;
    };
    let data: Uint8Array = EMPTY;
    let headers: Record<string, string> | undefined;
    try {
      const value = await handler(body as HandledRequestOf<C>, {
        get signal() {
          return signal();
        },
        deadline,
        subject: message.subject,
        header: (name) => message.header(name),
      });
      const encoded = encodeReply(contract.response, value);
      if (encoded.ok) {
        data = encodeText(encoded.value);
        headers = { [KIND_HEADER]: contract.response.kind };
      } else {
        headers = errorHeaders(
          500,
          "internal error: the handler's reply does not match the contract",
        );
        this.#report(
          contract.subject,
          new InvalidReplyError(
            `the ${contract.subject} handler returned a reply that does not match the contract: ${
              summarize(encoded.issues)
            }`,
            { issues: encoded.issues },
          ),
        );
      }
    } catch (error) {
      // Whatever was thrown, and however it behaves when inspected, the caller gets an answer.
      try {
        headers = this.#failure(contract, error, controller);
        if (headers !== undefined && error instanceof ReplyError && error.data !== undefined) {
          try {
            data = encodeText(errorBody(error.data));
          } catch (cause) {
            this.#report(contract.subject, cause);
          }
        }
      } catch (inspection) {
        headers = errorHeaders(500, "internal error");
        this.#report(contract.subject, inspection);
      }
    } finally {
      answered = true;
      if (timer !== undefined) clearTimeout(timer);
      if (controller) state.inFlight.delete(controller);
    }
    if (headers !== undefined) this.#respond(contract, reply, data, headers);
  }

  /** The error headers a handler's exception answers with; `undefined` for no answer. */
  #failure(
    contract: Contract,
    error: unknown,
    controller: AbortController | undefined,
  ): Record<string, string> | undefined {
    if (controller?.signal.aborted && error === controller.signal.reason) {
      // The handler gave up because its signal aborted. At the caller's deadline
      // nobody waits for an answer; when the responder stopped, say so at once.
      return error instanceof ClosedError
        ? errorHeaders(503, "the responder stopped before answering: send the request again")
        : undefined;
    }
    if (error instanceof ReplyError) {
      const { code, description } = error;
      if (Number.isInteger(code) && code >= 100 && code <= 999 && typeof description === "string") {
        return errorHeaders(code, description);
      }
    }
    this.#report(contract.subject, error);
    return errorHeaders(500, "internal error");
  }

  /**
   * Publishes an answer. One that cannot be sent (over `max_payload`, too long
   * for a protocol line, refused by the client) is reported, and the caller gets
   * `500 internal error: the reply could not be sent` instead of waiting.
   */
  #respond(
    contract: Contract,
    reply: string,
    data: Uint8Array,
    headers: Record<string, string>,
  ): void {
    if (reply === "") return;
    try {
      const size = data.length + headerBytes(headers);
      if (
        size > this.#transport.maxPayload || publishLineBytes(reply, "", size) > MAX_CONTROL_LINE
      ) {
        throw new RangeError(
          `the ${contract.subject} reply is ${size} bytes, over the server's max_payload of ` +
            `${this.#transport.maxPayload}, or its reply subject is too long`,
        );
      }
      this.#transport.publish(reply, data, { headers });
    } catch (error) {
      this.#report(contract.subject, error);
      try {
        // The caller should not wait for its timeout because the reply could not be sent.
        this.#transport.publish(reply, EMPTY, {
          headers: errorHeaders(500, "internal error: the reply could not be sent"),
        });
      } catch {
        // The connection is gone; the caller times out.
      }
    }
  }
}

/** What a responder registration shares with its in-flight handlers. */
interface ResponderState {
  stopped: boolean;
  readonly inFlight: Set<AbortController>;
}

const EMPTY = new Uint8Array();
const MAX_TIMER = 2_147_483_647;

function stopped(contract: Contract): ClosedError {
  return new ClosedError(`the ${contract.subject} handler was stopped`);
}

/** The reply token's length: a `crypto.randomUUID()`. */
const ID_SAMPLE = "00000000-0000-0000-0000-000000000000";
/** The bytes of a `Callback-Sent` value: milliseconds since 1970, 13 digits until 2286. */
const STAMP_BYTES = 13;

/** When a request leaves, in milliseconds since 1970. */
function stamp(): string {
  return String(Date.now());
}

/** The subject and timeout of a request, for the errors that carry them. */
function about(entry: PendingEntry): NoReplyErrorOptions {
  return { subject: entry.contract.subject, timeout: entry.timeout };
}

function checkTimeout(timeout: unknown, what: string): number {
  if (typeof timeout !== "number" || !(timeout >= 1) || timeout > 2_147_483_647) {
    throw new RangeError(
      `${what} must be a number of milliseconds from 1 to 2147483647, got ${String(timeout)}`,
    );
  }
  return timeout;
}

function atLeastOne(value: unknown, name: string): number {
  if (typeof value !== "number" || !(value >= 1)) {
    throw new RangeError(
      `Endpoint option ${name} must be a number, at least 1, got ${String(value)}`,
    );
  }
  return value;
}

/** 128 random bits as 32 hex digits. */
function randomToken(): string {
  let token = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(16))) {
    token += (byte | 256).toString(16).slice(1);
  }
  return token;
}

/** The longest `inboxPrefix`, in bytes: a request's line holds the subject, the reply and sizes. */
const MAX_INBOX_PREFIX = 1024;
