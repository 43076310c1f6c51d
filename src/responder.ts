/**
 * The responder: serves one contract's requests with a handler. It reads the
 * request (decode, validate, the caller's time left), runs the handler with
 * its `ctx`, checks and encodes the answer, and answers exactly once, with
 * the value or an error reply. Nothing from the wire or from the handler can
 * make it throw into the transport.
 *
 * @module
 */

import type { Contract, HandledRequestOf, HandlerReplyOf } from "./contract.ts";
import type { Hooks, ServeObserver, ServeTrace } from "./internals.ts";
import { ClosedError, InvalidReplyError, ReplyError, TimeoutError } from "./errors.ts";
import { headerBytes, MAX_CONTROL_LINE, publishLineBytes } from "./limits.ts";
import { summarize } from "./reply.ts";
import { MAX_TIMEOUT } from "./request.ts";
import { type Answer, REMEMBER_MS, ReplyMemory } from "./reply_memory.ts";
import { encodeReply, parseJson } from "./responses.ts";
import { type Checked, checkSchema } from "./schema.ts";
import type { TransitClock } from "./transit.ts";
import type { Transport, TransportMessage } from "./transport.ts";
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

/** What a responder uses of its endpoint. */
export interface ResponderHost {
  /** Where answers are published. */
  readonly transport: Transport;
  /** Learns how long requests spend on the way. */
  readonly transit: TransitClock;
  /** Reports an error outside any caller's promise (an `error` event). */
  report(subject: string, error: unknown): void;
  /** Holds an answer made while the connection is down, to publish once it is back. */
  hold(reply: string, answer: Answer): void;
  /** The endpoint's hooks (tracing). */
  readonly hooks: Hooks;
}

/** One request being served: when it arrived (for an observer) and its trace. */
interface Served {
  readonly start: number;
  readonly trace: ServeTrace | undefined;
}

/** Serves one contract's requests with a handler; made by `Endpoint.handle()`. */
export class Responder<C extends Contract> {
  readonly #host: ResponderHost;
  readonly #contract: C;
  readonly #handler: Handler<C>;
  readonly #observe: ServeObserver | undefined;
  /** Recent answers by reply subject, for an idempotent contract. */
  readonly #memory: ReplyMemory | undefined;
  /** The signals of handlers still running, aborted by `stop()`. */
  readonly #inFlight = new Set<AbortController>();
  #stopped = false;

  /**
   * @param host The endpoint's transport, transit clock and error reporting.
   * @param contract The contract served.
   * @param options `handler` returns the reply (or a promise of it); `observe` is told of every
   * request served, with its time and answer.
   */
  constructor(
    host: ResponderHost,
    contract: C,
    options: { handler: Handler<C>; observe?: ServeObserver | undefined },
  ) {
    this.#host = host;
    this.#contract = contract;
    this.#handler = options.handler;
    this.#observe = options.observe;
    if (contract.idempotent) this.#memory = new ReplyMemory();
  }

  /**
   * Stops serving: running handlers' `ctx.signal` aborts with a `ClosedError`
   * (a handler that gives up then answers 503).
   */
  stop(): void {
    this.#stopped = true;
    for (const controller of this.#inFlight) controller.abort(stopped(this.#contract));
  }

  /**
   * A request for the handler: read it, run the handler, answer. Never throws: a request that cannot be read is answered 400, and
   * whatever the handler does, the caller gets one answer.
   */
  serve(message: TransportMessage): void {
    const contract = this.#contract;
    let served = UNWATCHED;
    // Only a traced or observed responder keeps anything per request.
    const hook = this.#host.hooks.serve;
    if (hook || this.#observe) {
      let trace: ServeTrace | undefined;
      try {
        trace = hook?.({ subject: contract.subject, message });
      } catch (error) {
        this.#host.report(contract.subject, error); // served untraced
      }
      served = { start: this.#observe ? performance.now() : 0, trace };
    }
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
        if (Number.isFinite(sent) && sender !== "") age = this.#host.transit.age(sender, sent);
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
      this.#respond(reply, EMPTY, errorHeaders(400, `invalid request: ${why}`), served);
      return;
    }
    // The time the caller has left: its budget, less what the request is known to have
    // spent on the way (see TransitClock).
    const left = budget > 0 && Number.isFinite(budget) ? budget - age : undefined;
    if (left !== undefined && left <= 0) {
      // The caller has stopped waiting.
      this.#observed(served);
      return;
    }
    const memory = this.#memory;
    // Only requests of this library's requesters (they stamp Callback-Sent) are remembered: their
    // reply subjects are unique per request, so a repeat is the same request sent again.
    if (memory && reply !== "" && message.header(SENT_HEADER) !== undefined) {
      // An idempotent contract's request sent again (same reply subject) runs the handler once.
      const now = performance.now();
      const known = memory.recall(reply, now);
      if (known) {
        // Answered: again, from memory. Still running: its answer goes to this same subject.
        if (known.answer) this.#respond(reply, known.answer.data, known.answer.headers, served);
        else this.#observed(served);
        return;
      }
      memory.begin(reply, now + (left ?? REMEMBER_MS));
    }
    this.#answer(message, request.value, left, reply, served);
  }

  async #answer(
    message: TransportMessage,
    body: unknown,
    left: number | undefined,
    reply: string,
    served: Served,
  ): Promise<void> {
    const contract = this.#contract;
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
      if (this.#stopped) {
        made.abort(stopped(contract));
        return made.signal;
      }
      this.#inFlight.add(made);
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
        else if (wait <= MAX_TIMEOUT) timer = setTimeout(expire, wait);
      }
      return made.signal;
    };
    let data: Uint8Array = EMPTY;
    let headers: Record<string, string> | undefined;
    try {
      const run = () =>
        this.#handler(body as HandledRequestOf<C>, {
          get signal() {
            return signal();
          },
          deadline,
          subject: message.subject,
          header: (name) => message.header(name),
        });
      const value = await (served.trace ? served.trace.run(run) : run());
      const encoded = encodeReply(contract.response, value);
      if (encoded.ok) {
        data = encodeText(encoded.value);
        headers = { [KIND_HEADER]: contract.response.kind };
      } else {
        headers = errorHeaders(
          500,
          "internal error: the handler's reply does not match the contract",
        );
        this.#host.report(
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
        headers = this.#failure(error, controller);
        if (headers !== undefined && error instanceof ReplyError && error.data !== undefined) {
          try {
            data = encodeText(errorBody(error.data));
          } catch (cause) {
            this.#host.report(contract.subject, cause);
          }
        }
      } catch (inspection) {
        headers = errorHeaders(500, "internal error");
        this.#host.report(contract.subject, inspection);
      }
    } finally {
      answered = true;
      if (timer !== undefined) clearTimeout(timer);
      if (controller) this.#inFlight.delete(controller);
    }
    if (headers !== undefined) this.#respond(reply, data, headers, served);
    else this.#observed(served);
  }

  /** Tells the observer, if any, of a request served; its exception is reported, never thrown. */
  #observed(served: Served, headers?: Record<string, string>): void {
    try {
      served.trace?.end(headers);
      this.#observe?.(performance.now() - served.start, headers);
    } catch (error) {
      this.#host.report(this.#contract.subject, error);
    }
  }

  /** The error headers a handler's exception answers with; `undefined` for no answer. */
  #failure(
    error: unknown,
    controller: AbortController | undefined,
  ): Record<string, string> | undefined {
    const contract = this.#contract;
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
    this.#host.report(contract.subject, error);
    return errorHeaders(500, "internal error");
  }

  /**
   * Publishes an answer. One that cannot be sent (over `max_payload`, too long
   * for a protocol line, refused by the client) is reported, and the caller gets
   * `500 internal error: the reply could not be sent` instead of waiting.
   */
  #respond(
    reply: string,
    data: Uint8Array,
    headers: Record<string, string>,
    served: Served,
  ): void {
    if (reply === "") return this.#observed(served, headers);
    const { transport } = this.#host;
    const { subject } = this.#contract;
    try {
      const size = data.length + headerBytes(headers);
      if (
        size > transport.maxPayload || publishLineBytes(reply, "", size) > MAX_CONTROL_LINE
      ) {
        throw new RangeError(
          `the ${subject} reply is ${size} bytes, over the server's max_payload of ` +
            `${transport.maxPayload}, or its reply subject is too long`,
        );
      }
      this.#send(reply, { data, headers });
    } catch (error) {
      this.#host.report(subject, error);
      data = EMPTY;
      headers = errorHeaders(500, "internal error: the reply could not be sent");
      try {
        // The caller should not wait for its timeout because the reply could not be sent.
        this.#send(reply, { data, headers });
      } catch {
        // The connection is gone; the caller times out.
      }
    }
    this.#memory?.answered(reply, { data, headers });
    this.#observed(served, headers);
  }

  /**
   * Publishes, or, while the connection is down (a NATS client would drop it),
   * holds the answer to publish once it is back: the caller may be waiting still.
   */
  #send(reply: string, answer: Answer): void {
    const { transport } = this.#host;
    if (transport.connected === false) this.#host.hold(reply, answer);
    else transport.publish(reply, answer.data, { headers: answer.headers });
  }
}

const EMPTY = new Uint8Array();
/** What a request served neither traced nor observed carries. */
const UNWATCHED: Served = Object.freeze({ start: 0, trace: undefined });

function stopped(contract: Contract): ClosedError {
  return new ClosedError(`the ${contract.subject} handler was stopped`);
}
