/**
 * The callbacks: an endpoint's requests on their way out and back. Each is
 * validated, encoded and sent (or held while the connection is down), waits
 * in the pending table, and settles exactly once: with its reply, or with the
 * error that says why not. The endpoint delegates its requests here and its
 * handlers to responders.
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
  type EndpointEvents,
  LateReplyEvent,
  type Outcome,
  RequestEvent,
  SettleEvent,
} from "./events.ts";
import { Gather, type GatherOptions, type GatherSummary } from "./gather.ts";
import { ReplyInbox } from "./inbox.ts";
import type { Hooks, RequestTrace } from "./internals.ts";
import type { RequestOptions, Settings } from "./options.ts";
import { Outage } from "./outage.ts";
import { type PendingEntry, PendingTable } from "./pending.ts";
import { readReply } from "./reply.ts";
import { ReplyHandlers } from "./reply_handlers.ts";
import { about, assertFitsLine, checkTimeout, encodeRequest, expired, stamp } from "./request.ts";
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

/** What the callbacks use of their endpoint. */
export interface CallbacksHost {
  readonly transport: Transport;
  readonly settings: Settings;
  /** Where their events go: the endpoint. */
  readonly events: EndpointEvents;
  /** Set by add-ons (tracing): read at each request. */
  readonly hooks: Hooks;
  /** Reports an error nobody else can see. */
  report(subject: string, error: unknown): void;
}

/** An endpoint's requests and their callbacks; see the module doc. */
export class Callbacks {
  /** Held requests and answers, 503 retries, while the connection is down or just back. */
  readonly outage: Outage;
  /** The handlers of replies (`onReply`), late and recovered ones included. */
  readonly replies: ReplyHandlers;
  readonly #transport: Transport;
  readonly #settings: Settings;
  readonly #events: EndpointEvents;
  readonly #hooks: Hooks;
  readonly #report: (subject: string, error: unknown) => void;
  readonly #pending = new PendingTable((entry) => {
    const [outcome, error] = expired(entry);
    // A gather's deadline is its normal end, unless it was never sent (held the whole time).
    this.#reject(entry, entry.gather && entry.state !== "held" ? "timeout" : outcome, error);
  }, RECENT_LIMIT);
  readonly #inbox: ReplyInbox;
  #closed = false;

  /** @param host The endpoint's transport, settings, events, hooks and error reporting. */
  constructor(host: CallbacksHost) {
    const { transport, settings, events, report } = host;
    this.#transport = transport;
    this.#settings = settings;
    this.#events = events;
    this.#hooks = host.hooks;
    this.#report = report;
    this.replies = new ReplyHandlers({
      report,
      late: (subject, id) => events.dispatchEvent(new LateReplyEvent(subject, { id })),
    });
    this.outage = new Outage({
      down: transport.connected === false,
      maxHeldBytes: settings.maxHeldBytes,
      resend: (entry) => this.#resend(entry),
      live: (entry) => this.#pending.get(entry.id) === entry,
      answer: (reply, { data, headers }) => {
        try {
          transport.publish(reply, data, { headers });
        } catch (error) {
          report(reply, error);
        }
      },
    });
    this.#inbox = new ReplyInbox(transport, settings.inboxPrefix, {
      reply: (id, message) => this.#receiveReply(id, message),
      recovered: (id, message) => this.replies.recover(id, message),
      failed: (subject, cause) => this.#inboxFailed(subject, cause),
    });
    // Replies kept while no instance ran come in as soon as the inbox is open.
    if (transport.keepsReplies && !settings.sendOnly) this.#inbox.open();
  }

  /** How many callbacks are waiting. */
  get size(): number {
    return this.#pending.size;
  }

  /** `Endpoint.request`. */
  request<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options: RequestOptions,
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

  /** `Endpoint.requestMany`. */
  requestMany<C extends Contract>(
    contract: C,
    body: RequestOf<C>,
    options: GatherOptions,
  ): AsyncIterableIterator<PromiseSettledResult<ReplyOf<C>>> {
    return new Gather<ReplyOf<C>>({
      start: (gather) =>
        this.#send(contract, body, { options, resolve: noop, reject: noop, gather }),
      retry: (entry) => {
        const retried = this.outage.retry(entry);
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

  /** Stops the inbox and rejects every waiting callback with `ClosedError`. */
  close(): void {
    this.#closed = true;
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
  }

  /** Validates, encodes and sends (or holds) a request; throws when nothing could be sent. */
  #send(contract: Contract, body: unknown, how: Outbound): PendingEntry {
    const { options } = how;
    const started = performance.now();
    const where = how.gather ? "requestMany" : "request";
    assertContract(contract, where);
    const timeout = options.timeout === undefined
      ? this.#settings.timeout
      : checkTimeout(options.timeout, `${where} option timeout`);
    const { subject } = contract;
    if (this.#closed) {
      throw new ClosedError(`endpoint is closed: cannot send ${subject}; create a new endpoint`);
    }
    if (this.outage.gone) throw connectionClosed({ subject, timeout });
    if (this.#settings.sendOnly) {
      throw new TypeError(
        "no reply inbox: a sendOnly endpoint cannot wait for replies; create the endpoint without sendOnly",
      );
    }
    options.signal?.throwIfAborted();
    if (this.#pending.size >= this.#settings.maxPending) {
      throw new PendingLimitError(
        `${this.#pending.size} requests are already waiting (maxPending ${this.#settings.maxPending}): ` +
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
      if (this.outage.down && !this.outage.fits(size)) {
        throw new PendingLimitError(
          `the connection to NATS is down and ${this.outage.heldBytes} bytes of requests are ` +
            `held (maxHeldBytes ${this.outage.maxHeldBytes}): retry once it is back, or raise maxHeldBytes; nothing was sent`,
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
    if (this.outage.keeps(started) || contract.idempotent) {
      entry.sent = { subject, reply, data, headers, size };
    }
    if (this.outage.down) {
      // A NATS client drops what is published while disconnected: hold it until the
      // connection is back, within its deadline.
      this.outage.hold(entry);
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
    this.#events.dispatchEvent(new RequestEvent(subject, { id, timeout }));
    how.gather?.sent();
    return entry;
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
      return this.replies.late(this.#pending.settled(id), { id, reply: message });
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
    if (result.outcome === "no-responders" && this.outage.retry(entry)) {
      return entry.trace?.event("retry");
    }
    this.#pending.take(id);
    this.#reject(entry, result.outcome, result.error);
  }

  /** Runs the contract's reply handlers for a valid reply, after its callback. */
  #replied(entry: PendingEntry, value: unknown): void {
    if (this.replies.has(entry.contract)) {
      this.replies.run(entry.contract, value, {
        id: entry.id,
        late: false,
        recovered: false,
      });
    }
  }

  /** The transport's connection changed: hold, resend, or fail what waits. */
  changed(status: TransportStatus): void {
    if (this.#closed) return;
    if (status === "disconnect") {
      this.outage.disconnect(this.#pending.values());
    } else if (status === "reconnect") {
      this.outage.reconnect();
      // The event before the resends: a listener of theirs may drop the connection again,
      // and its "disconnect" must come after this "reconnect".
      this.#events.dispatchEvent(new ConnectionEvent(status));
      this.outage.resendHeld();
      return;
    } else {
      this.outage.close();
      for (const id of this.#pending.ids()) {
        this.#settle(id, "disconnected", (entry) => connectionClosed(about(entry)));
      }
    }
    this.#events.dispatchEvent(new ConnectionEvent(status));
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
    this.outage.sent(entry);
    entry.trace?.event("resent");
    this.#events.dispatchEvent(new RequestEvent(subject, { id: entry.id, timeout: left }));
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
    this.outage.settled(entry);
    entry.trace?.end(outcome, error);
    // Closed while waiting: a transport that keeps replies keeps this one for the next instance.
    if (outcome !== "closed") {
      this.#transport.forget?.(
        entry.id,
        summary ? summary.replies > 0 : BY_REPLY.has(outcome),
      );
    }
    this.#events.dispatchEvent(
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
}
