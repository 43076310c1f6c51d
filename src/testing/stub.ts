/**
 * A stand-in for the responders an application calls, for its unit tests:
 * ordered rules answer requests, every request is recorded, and a request no
 * rule matches is answered with a clear error instead of hanging.
 *
 * @module
 */

import {
  assertContract,
  type Contract,
  type HandledRequestOf,
  type HandlerReplyOf,
} from "../contract.ts";
import { Endpoint } from "../endpoint.ts";
import type { EndpointOptions } from "../options.ts";
import { InvalidReplyError, ReplyError } from "../errors.ts";
import { summarize } from "../reply.ts";
import { encodeReply, parseJson } from "../responses.ts";
import { checkSchema } from "../schema.ts";
import type { PublishOptions, Transport } from "../transport.ts";
import { memoryTransport } from "../transports/memory.ts";
import { decodeText, encodeText, errorBody, errorHeaders, KIND_HEADER } from "../wire.ts";

/** A request the stub received. */
export interface RecordedRequest {
  /** The subject it was sent on. */
  readonly subject: string;
  /** The body, parsed from JSON (`undefined` if it was not JSON). */
  readonly body: unknown;
  /**
   * The contract of the rule that answered it (or whose matcher threw),
   * `undefined` when none matched.
   */
  readonly contract: Contract | undefined;
  /**
   * What the answering rule's matcher or reply function threw, when one did
   * (a bug in the test, not an answer): the caller's request rejected with a
   * `RemoteError` 500 that names the rule. Absent otherwise, and for a
   * `ReplyError` a reply function throws on purpose.
   */
  readonly error?: unknown;
}

/** A recorded request while the stub may still attach the reply function's exception. */
type Recording = { -readonly [K in keyof RecordedRequest]: RecordedRequest[K] };

/** Options of a rule's answer. */
export interface AnswerOptions {
  /** Milliseconds to wait before answering. */
  delay?: number;
}

/** What a rule answers with: pick one. */
export interface RuleBuilder<C extends Contract> {
  /** Answers with a value, or with what a function of the request returns. */
  reply(
    value:
      | HandlerReplyOf<C>
      | ((body: HandledRequestOf<C>) => HandlerReplyOf<C> | Promise<HandlerReplyOf<C>>),
    options?: AnswerOptions,
  ): CallbackStub;
  /** Answers with an error reply: the caller's request rejects with a `RemoteError`. */
  fail(error: ReplyError, options?: AnswerOptions): CallbackStub;
  /** Answers as NATS does when nobody listens: the caller rejects with `NoRespondersError`. */
  noResponders(): CallbackStub;
  /** Never answers: the caller's request times out (or is aborted). */
  silence(): CallbackStub;
}

type Answer =
  | { kind: "reply"; value: unknown; delay: number }
  | { kind: "fail"; error: ReplyError; delay: number }
  | { kind: "no-responders" }
  | { kind: "silence" };

interface Rule {
  /** 1-based, in the order of the when() calls, for messages. */
  readonly number: number;
  readonly contract: Contract;
  readonly match: (body: never) => boolean;
  answer: Answer | undefined;
}

/**
 * Answers the requests of code under test by ordered rules, without a server.
 *
 * Give the code under test `stub.endpoint` (or `new Endpoint(stub.transport)`):
 * requests go through the real endpoint — validation, typing, timeouts,
 * aborts — and the stub answers them. For each request the first rule whose
 * contract has the request's subject and whose matcher accepts the body
 * answers; a request no rule matches is answered with error 501 (a
 * `RemoteError` whose description names the subject and body) and listed in
 * `unmatched`.
 *
 * A matcher or reply function that throws is a bug in the test, not an
 * answer: the caller's request rejects with a `RemoteError` 500 whose
 * description names the rule (its number, in `when()` order, and subject)
 * and the exception, and the exception itself is kept as the recorded
 * request's `error`. A throwing matcher stops the search (later rules are not
 * tried) and its request is recorded in `requests` under that rule's
 * contract, not in `unmatched`. A `ReplyError` thrown by a reply function is
 * an answer, as from a real responder.
 *
 * @example Faking a stock service
 * ```ts
 * import * as v from "valibot";
 * import { assertEquals } from "@std/assert";
 * import { defineRequest, int, ReplyError } from "@seed/callbacks";
 * import { CallbackStub } from "@seed/callbacks/testing";
 *
 * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
 *
 * await using stub = new CallbackStub();
 * stub.when(CheckStock, ({ sku }) => sku === "A-1").reply(5)
 *   .when(CheckStock, ({ sku }) => sku === "Z-9").fail(new ReplyError(404, "unknown sku"))
 *   .when(CheckStock).reply(0);
 *
 * assertEquals(await stub.endpoint.request(CheckStock, { sku: "A-1" }), 5);
 * assertEquals(await stub.endpoint.request(CheckStock, { sku: "B-2" }), 0);
 * assertEquals(stub.requests.map((r) => r.body), [{ sku: "A-1" }, { sku: "B-2" }]);
 * ```
 */
export class CallbackStub implements AsyncDisposable {
  /** A transport that answers by the rules; several endpoints may share it. */
  readonly transport: Transport;
  /** An endpoint over {@linkcode CallbackStub.transport}, closed with the stub. */
  readonly endpoint: Endpoint;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  /** The requests no rule matched, in order. */
  readonly unmatched: RecordedRequest[] = [];
  readonly #rules: Rule[] = [];
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  readonly #bus = memoryTransport();

  /**
   * Makes a stub.
   *
   * @param options Options of the stub's {@linkcode CallbackStub.endpoint}.
   */
  constructor(options: EndpointOptions = {}) {
    const bus = this.#bus;
    this.transport = {
      maxPayload: bus.maxPayload,
      publish: (subject: string, data: Uint8Array, publishOptions: PublishOptions = {}) => {
        if (publishOptions.reply) this.#receive(subject, data, publishOptions.reply);
        else bus.publish(subject, data, publishOptions);
      },
      subscribe: (subject, onMessage, subscribeOptions) =>
        bus.subscribe(subject, onMessage, subscribeOptions),
    };
    this.endpoint = new Endpoint(this.transport, options);
  }

  /**
   * Adds a rule for a contract, tried after the rules added before it.
   *
   * @param contract The contract whose requests the rule answers.
   * @param match Accepts the validated request body; absent: every request. If
   * it throws, the request is answered with a `RemoteError` 500 naming this
   * rule, no later rule is tried, and the exception is the recorded request's
   * `error`.
   * @returns What to answer with: `.reply()`, `.fail()`, `.noResponders()`, `.silence()`.
   *
   * @example Answering from the body
   * ```ts
   * import * as v from "valibot";
   * import { assertEquals } from "@std/assert";
   * import { defineRequest, enumOf } from "@seed/callbacks";
   * import { CallbackStub } from "@seed/callbacks/testing";
   *
   * const Approve = defineRequest({
   *   subject: "orders.approve",
   *   request: v.object({ total: v.number() }),
   *   response: enumOf(["Approved", "Rejected"]),
   * });
   * await using stub = new CallbackStub();
   * stub.when(Approve).reply(({ total }) => total > 100 ? "Rejected" : "Approved");
   * assertEquals(await stub.endpoint.request(Approve, { total: 500 }), "Rejected");
   * ```
   */
  when<C extends Contract>(
    contract: C,
    match?: (body: HandledRequestOf<C>) => boolean,
  ): RuleBuilder<C> {
    assertContract(contract, "when");
    const rule: Rule = {
      number: this.#rules.length + 1,
      contract,
      match: match ?? (() => true),
      answer: undefined,
    };
    this.#rules.push(rule);
    const set = (answer: Answer): CallbackStub => {
      if (rule.answer) {
        throw new TypeError(
          "a rule answers one way: call reply, fail, noResponders or silence once",
        );
      }
      rule.answer = answer;
      return this;
    };
    return {
      reply: (value, options = {}) => set({ kind: "reply", value, delay: delayOf(options) }),
      fail: (error, options = {}) => {
        if (!(error instanceof ReplyError)) throw new TypeError("fail() takes a ReplyError");
        return set({ kind: "fail", error, delay: delayOf(options) });
      },
      noResponders: () => set({ kind: "no-responders" }),
      silence: () => set({ kind: "silence" }),
    };
  }

  /** The recorded bodies of one contract's requests, in order. */
  bodiesOf<C extends Contract>(contract: C): HandledRequestOf<C>[] {
    return this.requests.filter((r) => r.contract === contract).map((r) =>
      r.body as HandledRequestOf<C>
    );
  }

  /** Closes the endpoint and cancels answers still waiting on a delay. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    await this.endpoint.close();
  }

  #receive(subject: string, data: Uint8Array, reply: string): void {
    let text: string | undefined;
    try {
      text = decodeText(data);
    } catch {
      // Not UTF-8: no rule can match it.
    }
    const parsed = text === undefined ? undefined : parseJson(text);
    const body = parsed?.ok ? parsed.value : undefined;
    let found: { rule: Rule; value: unknown } | undefined;
    let thrown: { rule: Rule; error: unknown } | undefined;
    for (const rule of this.#rules) {
      if (rule.contract.subject !== subject || rule.answer === undefined) continue;
      const checked = checkSchema(rule.contract.request, body);
      if (!checked.ok) continue;
      let matched: boolean;
      try {
        matched = rule.match(checked.value as never);
      } catch (error) {
        thrown = { rule, error };
        break;
      }
      if (matched) {
        found = { rule, value: checked.value };
        break;
      }
    }
    const recorded: Recording = {
      subject,
      body,
      contract: (thrown ?? found)?.rule.contract,
    };
    const index = this.requests.push(recorded) - 1;
    // A rule that throws is a bug in the test: a 500 naming it, the exception kept.
    const bug = (why: string, error: unknown): void => {
      recorded.error = error;
      this.#send(reply, "", errorHeaders(500, bugDescription(why, error, index)), 0);
    };
    if (thrown !== undefined) {
      return bug(`the matcher of ${ruleName(thrown.rule)} threw`, thrown.error);
    }
    if (found === undefined) {
      this.unmatched.push(recorded);
      const description = `@seed/callbacks/testing: no rule matches ${subject} ${
        oneLine(text ?? "(not UTF-8)", 120)
      }; add stub.when(contract, match) for it`;
      this.#send(reply, "", errorHeaders(501, description), 0);
      return;
    }
    const { rule, value } = found;
    // A ReplyError is an answer, as from a real responder: code, description and data.
    const fail = (error: ReplyError, delay: number): void => {
      let body: string;
      try {
        body = errorBody(error.data);
      } catch (cause) {
        return bug(`the ReplyError data of ${ruleName(rule)} could not be encoded`, cause);
      }
      this.#send(reply, body, errorHeaders(error.code, error.description), delay);
    };
    const answer = rule.answer!;
    switch (answer.kind) {
      case "silence":
        return;
      case "no-responders":
        // The bus answers a request nobody listens to with a 503, as NATS does.
        this.#bus.publish(`${subject}.__no_responders__`, new Uint8Array(), { reply });
        return;
      case "fail":
        return fail(answer.error, answer.delay);
      case "reply":
        this.#later(answer.delay, async () => {
          let result: unknown;
          try {
            result = typeof answer.value === "function"
              ? await (answer.value as (body: unknown) => unknown)(value)
              : answer.value;
          } catch (error) {
            if (error instanceof ReplyError) fail(error, 0);
            else bug(`the reply function of ${ruleName(rule)} threw`, error);
            return;
          }
          // Checked and encoded as handle() does: a value that breaks the contract (or that
          // JSON would change so that it does) is a bug in the test, answered 500.
          const { response } = rule.contract;
          const encoded = encodeReply(response, result);
          if (!encoded.ok) {
            const why = `the reply of ${ruleName(rule)} does not match the contract`;
            return bug(
              why,
              new InvalidReplyError(`${why}: ${summarize(encoded.issues)}`, {
                issues: encoded.issues,
              }),
            );
          }
          this.#send(reply, encoded.value, { [KIND_HEADER]: response.kind }, 0);
        });
    }
  }

  #send(reply: string, body: string, headers: Record<string, string>, delay: number): void {
    this.#later(delay, () => {
      try {
        this.#bus.publish(reply, encodeText(body), { headers });
      } catch (error) {
        // Too large for the bus: the caller gets a 500 at once, as from handle().
        this.#bus.publish(reply, new Uint8Array(), {
          headers: errorHeaders(
            500,
            `@seed/callbacks/testing: the answer could not be sent: ${
              error instanceof Error ? error.message.slice(0, 200) : "too large"
            }`,
          ),
        });
      }
    });
  }

  #later(delay: number, fn: () => void | Promise<void>): void {
    if (delay <= 0) {
      queueMicrotask(fn);
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, delay);
    this.#timers.add(timer);
  }
}

function delayOf(options: AnswerOptions): number {
  const delay = options.delay ?? 0;
  if (typeof delay !== "number" || !(delay >= 0) || !Number.isFinite(delay)) {
    throw new RangeError(`delay must be a number of milliseconds, 0 or more, got ${delay}`);
  }
  return delay;
}

function ruleName(rule: Rule): string {
  return `rule ${rule.number} (when(${rule.contract.subject}))`;
}

/** A one-line description of a bug in a rule, safe for a NATS header. */
function bugDescription(why: string, error: unknown, index: number): string {
  let text: string;
  try {
    text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  } catch {
    text = "(unprintable)";
  }
  return `@seed/callbacks/testing: ${why}: ${
    oneLine(text, 200)
  }; it is stub.requests[${index}].error`;
}

/** `text` on one line, cut to `max` characters. */
function oneLine(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ");
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}
