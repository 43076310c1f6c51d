/**
 * The endpoint, the façade of both sides: its requests go to its callbacks
 * (callbacks.ts), its handlers to responders (responder.ts); it holds their
 * registrations, reports their errors and closes them.
 *
 * @module
 */

import { Callbacks } from "./callbacks.ts";
import { assertContract, type Contract, type ReplyOf, type RequestOf } from "./contract.ts";
import { ClosedError, PendingLimitError } from "./errors.ts";
import { EndpointErrorEvent, EndpointEvents } from "./events.ts";
import type { GatherOptions } from "./gather.ts";
import { type Hooks, INTERNALS, type ServeObserver } from "./internals.ts";
import {
  type EndpointOptions,
  type HandleOptions,
  queueOf,
  type Registration,
  type RequestOptions,
  settingsOf,
} from "./options.ts";
import type { ReplyHandler } from "./reply_handlers.ts";
import { type Handler, Responder, type ResponderHost } from "./responder.ts";
import { TransitClock } from "./transit.ts";
import type { Transport } from "./transport.ts";

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
  /** Its requests and their callbacks. */
  readonly #callbacks: Callbacks;
  readonly #logErrors: boolean;
  /** The subjects this endpoint handles: one handler each. */
  readonly #handled = new Set<string>();
  /** What this endpoint's responders use of it. */
  readonly #host: ResponderHost;
  readonly #unwatch: (() => void) | undefined;
  readonly #registrations = new Set<Registration>();
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
    // A transport that keeps replies decides where they go.
    const settings = settingsOf(
      transport.inboxPrefix === undefined
        ? options
        : { ...options, inboxPrefix: transport.inboxPrefix },
    );
    this.#logErrors = settings.logErrors;
    const report = (subject: string, error: unknown) => this.#report(subject, error);
    const callbacks = this.#callbacks = new Callbacks({
      transport,
      settings,
      events: this,
      hooks: this.#hooks,
      report,
    });
    this.#host = {
      transport,
      transit: new TransitClock(),
      report,
      hooks: this.#hooks,
      hold: (reply, answer) => {
        if (!callbacks.outage.holdAnswer(reply, answer)) {
          report(
            reply,
            new PendingLimitError(
              `an answer made while the connection is down was dropped: over maxHeldBytes ` +
                `(${settings.maxHeldBytes}); its caller gets no reply: raise maxHeldBytes`,
            ),
          );
        }
      },
    };
    this.#unwatch = transport.watch?.((status) => callbacks.changed(status));
    INTERNALS.set(this, {
      transport,
      register: (stop, ready) => this.#register(stop, ready),
      report,
      hooks: this.#hooks,
    });
  }

  /** How many callbacks are waiting for a reply. */
  get pending(): number {
    return this.#callbacks.size;
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
    return this.#callbacks.request(contract, body, options);
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
    return this.#callbacks.requestMany(contract, body, options);
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
    return this.#register(
      this.#callbacks.replies.add(contract, handler as ReplyHandler<Contract>),
    );
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
    this.#callbacks.close();
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
