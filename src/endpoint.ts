/**
 * The endpoint: sends requests and settles their callbacks, and answers
 * requests with handlers.
 *
 * @module
 */

import { assertContract, type Contract, type ReplyOf, type RequestOf } from "./contract.ts";
import {
  ClosedError,
  connectionClosed,
  DisconnectedError,
  InvalidRequestError,
  PendingLimitError,
} from "./errors.ts";
import {
  ConnectionEvent,
  EndpointErrorEvent,
  EndpointEvents,
  LateReplyEvent,
  type Outcome,
  RequestEvent,
  SettleEvent,
} from "./events.ts";
import { type PendingEntry, PendingTable } from "./pending.ts";
import { readReply } from "./reply.ts";
import { type Handler, Responder, type ResponderHost } from "./responder.ts";
import { TransitClock } from "./transit.ts";
import { about, assertFitsLine, checkTimeout, encodeRequest, expired, stamp } from "./request.ts";
import { Outage } from "./outage.ts";
import {
  type EndpointOptions,
  type HandleOptions,
  queueOf,
  type Registration,
  type RequestOptions,
  settingsOf,
} from "./options.ts";
import { ReplyInbox } from "./inbox.ts";
import { type Hooks, INTERNALS, type RequestTrace, type ServeObserver } from "./internals.ts";
import { Gather, type GatherOptions, type GatherSummary } from "./gather.ts";
import { type ReplyHandler, ReplyHandlers } from "./reply_handlers.ts";
import type { Transport, TransportMessage, TransportStatus } from "./transport.ts";
import { errorText, SENT_HEADER, TIMEOUT_HEADER } from "./wire.ts";

/** How many settled requests, at least, are remembered to recognise late replies. */
const RECENT_LIMIT = 10_000;

/** What `#send` needs beside the contract and body: the call's options and how it settles. */
interface Outbound {
  readonly options: RequestOptions;
  readonly resolve: (value: unknown) => void;
  readonly reject: (reason: unknown) => void;
  readonly gather: Gather<unknown> | undefined;
}

const noop = (): void => {};

/** The outcomes a reply settles a request with. */
const BY_REPLY: ReadonlySet<Outcome> = new Set(["reply", "invalid-reply", "remote-error"]);

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
export class Endpoint extends EndpointEvents implements AsyncDisposable {
  readonly #transport: Transport;
  readonly #timeout: number;
  readonly #maxPending: number;
  readonly #sendOnly: boolean;
  readonly #pending = new PendingTable((entry) => {
    const [outcome, error] = expired(entry);
    // A gather's deadline is its normal end, unless it was never sent (held the whole time).
    this.#reject(entry, entry.gather && entry.state !== "held" ? "timeout" : outcome, error);
  }, RECENT_LIMIT);
  /** Held requests and 503 retries while the connection is down or just back. */
  readonly #outage: Outage;
  readonly #logErrors: boolean;
  /** The subjects this endpoint handles: one handler each. */
  readonly #handled = new Set<string>();
  /** What this endpoint's responders use of it. */
  readonly #host: ResponderHost;
  readonly #unwatch: (() => void) | undefined;
  readonly #registrations = new Set<Registration>();
  readonly #replyHandlers: ReplyHandlers;
  readonly #inbox: ReplyInbox;
  /** Set by add-ons (tracing): read at each request and each serve. */
  readonly #hooks: Hooks = {};
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
    this.#replyHandlers = new ReplyHandlers({
      report: (subject, error) => this.#report(subject, error),
      late: (subject, id) => this.dispatchEvent(new LateReplyEvent(subject, { id })),
    });
    this.#host = {
      transport,
      transit: new TransitClock(),
      report: (subject, error) => this.#report(subject, error),
      hooks: this.#hooks,
      hold: (reply, answer) => {
        if (!this.#outage.holdAnswer(reply, answer)) {
          this.#report(
            reply,
            new PendingLimitError(
              `an answer made while the connection is down was dropped: over maxHeldBytes ` +
                `(${this.#outage.maxHeldBytes}); its caller gets no reply: raise maxHeldBytes`,
            ),
          );
        }
      },
    };
    // A transport that keeps replies decides where they go.
    const settings = settingsOf(
      transport.inboxPrefix === undefined
        ? options
        : { ...options, inboxPrefix: transport.inboxPrefix },
    );
    this.#timeout = settings.timeout;
    this.#maxPending = settings.maxPending;
    this.#outage = new Outage({
      down: transport.connected === false,
      maxHeldBytes: settings.maxHeldBytes,
      resend: (entry) => this.#resend(entry),
      live: (entry) => this.#pending.get(entry.id) === entry,
      answer: (reply, { data, headers }) => {
        try {
          transport.publish(reply, data, { headers });
        } catch (error) {
          this.#report(reply, error);
        }
      },
    });
    this.#sendOnly = settings.sendOnly;
    this.#logErrors = settings.logErrors;
    this.#inbox = new ReplyInbox(transport, settings.inboxPrefix, {
      reply: (id, message) => this.#receiveReply(id, message),
      recovered: (id, message) => this.#replyHandlers.recover(id, message),
      failed: (subject, cause) => this.#inboxFailed(subject, cause),
    });
    this.#unwatch = transport.watch?.((status) => this.#connectionChanged(status));
    // Replies kept while no instance ran come in as soon as the inbox is open.
    if (transport.keepsReplies && !this.#sendOnly) this.#inbox.open();
    INTERNALS.set(this, {
      transport,
      register: (stop, ready) => this.#register(stop, ready),
      report: this.#host.report,
      hooks: this.#hooks,
    });
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
    // Not Promise.withResolvers: Node 20 lacks it.
    let resolve!: (value: unknown) => void;
    let reject!: (reason: unknown) => void;
    const promise = new Promise<ReplyOf<C>>((res, rej) => {
      resolve = res as (value: unknown) => void;
      reject = rej;
    });
    try {
      this.#send(contract, body, { options, resolve, reject, gather: undefined });
    } catch (error) {
      return Promise.reject(error);
    }
    return promise;
  }

  /**
   * Sends one request and waits for every reply to it: scatter-gather. The
   * result is an async iterable of `Promise.allSettled`-shaped results, one per
   * reply in arrival order: `{ status: "fulfilled", value }` for a valid reply
   * (typed by the contract), `{ status: "rejected", reason }` for an error or
   * invalid reply from one responder, which does not end the gathering.
   *
   * Nothing is sent before the loop starts. It ends at the first of: `max`
   * replies; no reply for `idle` ms (since the request, for the first); the
   * `timeout` (per call, else the endpoint's); an empty reply with
   * `sentinel: true`. Responders that are there but silent give an empty
   * result. Leaving the loop early releases everything at once. Responders
   * need nothing new: handlers with `queue: false` all answer.
   *
   * @param contract What to send and what to expect from each responder.
   * @param body The request body; validated against the contract first.
   * @param options `max`, `idle`, `sentinel`, `signal`, `timeout`, `headers`.
   * @returns The replies, as they come.
   * @throws {NoRespondersError} Nobody listens on the subject (the loop rejects).
   * @throws {InvalidRequestError} The body fails the request schema; nothing is sent.
   * @throws {ClosedError} The endpoint is or was closed while gathering.
   * @throws {DisconnectedError} The connection is closed, or was down the whole time.
   * @throws {PendingLimitError} `maxPending` callbacks are already waiting.
   * @throws {RangeError} `max`, `idle` or `timeout` is out of range.
   * @throws {TypeError} Not a contract; `sentinel` is not a boolean; the endpoint is `sendOnly`.
   *
   * @example Quotes from every carrier that answers within 200 ms of the last
   * ```ts
   * import { assert } from "@std/assert";
   * import * as v from "valibot";
   * import { defineRequest, Endpoint, memoryTransport, object } from "@seed/callbacks";
   *
   * const GetQuote = defineRequest({
   *   subject: "quotes.get",
   *   request: v.object({ sku: v.string() }),
   *   response: object(v.object({ carrier: v.string(), price: v.number() })),
   * });
   * const transport = memoryTransport();
   * await using endpoint = new Endpoint(transport);
   * await using a = new Endpoint(transport);
   * await using b = new Endpoint(transport);
   * a.handle(GetQuote, () => ({ carrier: "A", price: 12 }), { queue: false });
   * b.handle(GetQuote, () => ({ carrier: "B", price: 9 }), { queue: false });
   * const prices: number[] = [];
   * for await (const r of endpoint.requestMany(GetQuote, { sku: "A-1" }, { idle: 200, max: 2 })) {
   *   if (r.status === "fulfilled") prices.push(r.value.price);
   * }
   * assert(prices.sort((a, b) => a - b).join() === "9,12");
   * ```
   */
  requestMany<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options: GatherOptions = {},
  ): AsyncIterableIterator<PromiseSettledResult<ReplyOf<C>>> {
    return new Gather<ReplyOf<C>>({
      start: (gather) =>
        this.#send(contract, body, { options, resolve: noop, reject: noop, gather }),
      retry: (entry) => {
        const retried = this.#outage.retry(entry);
        if (retried) entry.trace?.event("retry");
        return retried;
      },
      finish: (entry, { outcome, error, replies, end }) => {
        this.#pending.take(entry.id);
        this.#finish(entry, outcome, error, { replies, end });
      },
      replied: (entry, value) => this.#replied(entry, value),
    }, options);
  }

  /** Validates, encodes and sends (or holds) a request; throws when nothing could be sent. */
  #send(contract: Contract, body: unknown, how: Outbound): PendingEntry {
    const { options } = how;
    const started = performance.now();
    const where = how.gather ? "requestMany" : "request";
    assertContract(contract, where);
    const timeout = options.timeout === undefined
      ? this.#timeout
      : checkTimeout(options.timeout, `${where} option timeout`);
    const { subject } = contract;
    if (this.#closed) {
      throw new ClosedError(`endpoint is closed: cannot send ${subject}; create a new endpoint`);
    }
    if (this.#outage.gone) throw connectionClosed({ subject, timeout });
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
    const id = crypto.randomUUID();
    const hook = this.#hooks.request;
    // Traced (an add-on): the headers gain a trace context before their size is checked.
    let trace: RequestTrace | undefined;
    let data!: Uint8Array;
    let headers!: Record<string, string>;
    let size!: number;
    let inbox!: string;
    try {
      ({ data, headers, size } = encodeRequest(contract, body, {
        headers: options.headers,
        timeout,
        maxPayload: this.#transport.maxPayload,
        trace: hook && ((headers, bytes) => {
          try {
            trace = hook({ subject, id, headers, bytes, gather: how.gather !== undefined });
          } catch (error) {
            this.#report(subject, error); // untraced, but sent
          }
        }),
      }));
      inbox = this.#inbox.open();
      assertFitsLine(subject, inbox, size);
      if (this.#outage.down && !this.#outage.fits(size)) {
        throw new PendingLimitError(
          `the connection to NATS is down and ${this.#outage.heldBytes} bytes of requests are ` +
            `held (maxHeldBytes ${this.#outage.maxHeldBytes}): retry once it is back, or raise maxHeldBytes; nothing was sent`,
        );
      }
    } catch (error) {
      trace?.end("unsent", error);
      throw error;
    }

    const { signal } = options;
    const entry: PendingEntry = {
      id,
      contract,
      started,
      deadline: started + timeout,
      timeout,
      resolve: how.resolve,
      reject: how.reject,
      gather: how.gather,
      trace,
      detach: undefined,
      prev: undefined,
      next: undefined,
      state: "sent",
      sent: undefined,
      attempts: 0,
      retry: undefined,
    };
    this.#pending.add(entry);
    how.gather?.attach(entry);
    if (signal) {
      const onAbort = () => this.#settle(id, "abort", () => signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
      entry.detach = () => signal.removeEventListener("abort", onAbort);
    }
    const reply = `${inbox}.${id}`;
    // Keep what is sent only while it is held, or a no-responders retry or (idempotent) a
    // resend after a drop may need it.
    if (this.#outage.keeps(started) || contract.idempotent) {
      entry.sent = { subject, reply, data, headers, size };
    }
    if (this.#outage.down) {
      // A NATS client drops what is published while disconnected: hold it until the
      // connection is back, within its deadline.
      this.#outage.hold(entry);
      trace?.event("held");
      return entry;
    }
    try {
      headers[SENT_HEADER] = stamp();
      this.#transport.publish(subject, data, { reply, headers });
    } catch (error) {
      // Never published: no request or settle event, nothing left behind.
      this.#pending.take(id);
      trace?.end("unsent", error);
      throw error instanceof DisconnectedError ? error : new InvalidRequestError(
        `${subject} could not be sent (${errorText(error)}); nothing was sent`,
        { cause: error },
      );
    }
    this.dispatchEvent(new RequestEvent(subject, { id, timeout }));
    how.gather?.sent();
    return entry;
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
   * @param options `queue` (default `"q"`, as NATS micro services; `false` for none).
   * @returns A registration: `stop()` unsubscribes; `ready` resolves once the server has the
   * subscription.
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
    const queue = queueOf(subject, options);
    if (this.#handled.has(subject)) {
      throw new TypeError(
        `handle(${subject}): this endpoint already handles ${subject}, and two handlers would ` +
          `split its requests; stop the first registration, or handle it on another endpoint`,
      );
    }
    // Add-ons (see internals.ts) pass an observer of every request served.
    const { observe } = options as { observe?: ServeObserver };
    const responder = new Responder(this.#host, contract, { handler, observe });
    const subscription = this.#transport.subscribe(
      subject,
      (message) => responder.serve(message),
      {
        ...(queue === undefined ? {} : { queue }),
        onError: (error) => this.#report(subject, error),
      },
    );
    this.#handled.add(subject);
    return this.#register(() => {
      responder.stop();
      this.#handled.delete(subject);
      subscription.unsubscribe();
    }, subscription.ready);
  }

  /**
   * Registers a client-side handler for an object contract's replies: it runs
   * after the callback (in a microtask queued once the caller's promise is
   * resolved, so the caller's `await` continues first), and also for valid late replies
   * of requests this endpoint sent (after a timeout, or from a second
   * responder). Int and enum replies have no such handlers (late ones are
   * dropped quietly), except on a durable transport, where replies kept while
   * no instance ran come back through these handlers, `recovered: true`.
   *
   * @param contract An object contract (any contract on a durable transport).
   * @param handler Gets the reply and `{ id, late, recovered }`.
   * @returns A registration: `stop()` removes the handler.
   * @throws {TypeError} The contract's response is not `object(…)` (on a transport that does not
   * keep replies).
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
  onReply<C extends Contract>(
    contract: C,
    handler: NoInfer<ReplyHandler<C>>,
  ): Registration {
    assertContract(contract, "onReply");
    if (contract.response.kind !== "object" && !this.#transport.keepsReplies) {
      throw new TypeError(
        `onReply(${contract.subject}): reply handlers see object replies only; ` +
          `int and enum replies are for the callback alone`,
      );
    }
    if (typeof handler !== "function") throw new TypeError("onReply() needs a handler function");
    return this.#register(this.#replyHandlers.add(contract, handler as ReplyHandler<Contract>));
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
    this.#inbox.close();
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

  #register(stop: () => void, ready: Promise<void> = Promise.resolve()): Registration {
    let active = true;
    // Handled here, so a caller that never awaits it meets no unhandled rejection.
    ready.catch(() => {});
    const registration: Registration = {
      ready,
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

  #inboxFailed(subject: string, cause: Error): void {
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
  #receiveReply(id: string, message: TransportMessage): void {
    const entry = this.#pending.get(id);
    if (entry === undefined) {
      return this.#replyHandlers.late(this.#pending.settled(id), { id, reply: message });
    }
    if (entry.gather) return entry.gather.receive(message);
    const result = readReply(entry.contract, message, entry.timeout);
    if (result.ok) {
      this.#pending.take(id);
      this.#finish(entry, "reply", undefined);
      entry.resolve(result.value);
      this.#replied(entry, result.value);
      return;
    }
    if (result.outcome === "no-responders" && this.#outage.retry(entry)) {
      return entry.trace?.event("retry");
    }
    this.#pending.take(id);
    this.#reject(entry, result.outcome, result.error);
  }

  /** Runs the contract's reply handlers for a valid reply, after its callback. */
  #replied(entry: PendingEntry, value: unknown): void {
    if (this.#replyHandlers.has(entry.contract)) {
      this.#replyHandlers.run(entry.contract, value, {
        id: entry.id,
        late: false,
        recovered: false,
      });
    }
  }

  #connectionChanged(status: TransportStatus): void {
    if (this.#closed) return;
    if (status === "disconnect") {
      this.#outage.disconnect(this.#pending.values());
    } else if (status === "reconnect") {
      this.#outage.reconnect();
      // The event before the resends: a listener of theirs may drop the connection again,
      // and its "disconnect" must come after this "reconnect".
      this.dispatchEvent(new ConnectionEvent(status));
      this.#outage.resendHeld();
      return;
    } else {
      this.#outage.close();
      for (const id of this.#pending.ids()) {
        this.#settle(id, "disconnected", (entry) => connectionClosed(about(entry)));
      }
    }
    this.dispatchEvent(new ConnectionEvent(status));
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
    this.#outage.sent(entry);
    entry.trace?.event("resent");
    this.dispatchEvent(new RequestEvent(subject, { id: entry.id, timeout: left }));
    entry.gather?.sent();
  }

  /** Settles a waiting request with an error made for it; nothing if it already settled. */
  #settle(id: string, outcome: Outcome, error: (entry: PendingEntry) => unknown): void {
    const entry = this.#pending.take(id);
    if (entry !== undefined) this.#reject(entry, outcome, error(entry));
  }

  /** Settles a request taken from the table with an error; a gather decides how it ends. */
  #reject(entry: PendingEntry, outcome: Outcome, reason: unknown): void {
    if (entry.gather) return entry.gather.ended(outcome, reason);
    this.#finish(entry, outcome, reason);
    entry.reject(reason);
  }

  #finish(entry: PendingEntry, outcome: Outcome, error: unknown, summary?: GatherSummary): void {
    this.#outage.settled(entry);
    entry.trace?.end(outcome, error);
    // Closed while waiting: a transport that keeps replies keeps this one for the next instance.
    if (outcome !== "closed") {
      this.#transport.forget?.(
        entry.id,
        summary ? summary.replies > 0 : BY_REPLY.has(outcome),
      );
    }
    this.dispatchEvent(
      new SettleEvent(entry.contract.subject, {
        id: entry.id,
        outcome,
        duration: performance.now() - entry.started,
        error,
        replies: summary?.replies,
        end: summary?.end,
      }),
    );
  }

  /**
   * Dispatches an `error` event; with no listener for it, logs the error (unless
   * `logErrors` is off), so that a bug is never silent.
   */
  #report(subject: string, error: unknown): void {
    this.dispatchEvent(new EndpointErrorEvent(subject, { error }));
    if (this.#logErrors && !this.listensForErrors) {
      console.error(`@seed/callbacks: ${subject}:`, error);
    }
  }
}
