/**
 * A contract: the subject a request is sent on, the schema of its body and
 * the kind of its reply. Both sides import the same contract.
 *
 * @module
 */

import type { ResponseInput, ResponseKind, ResponseOutput } from "./responses.ts";
import { isPublishSubject, MAX_CONTROL_LINE, utf8Length } from "./limits.ts";
import { type InferInput, type InferOutput, isSchema, type Schema } from "./schema.ts";

/** A request type and the response it expects. */
export interface Contract<
  Req extends Schema = Schema,
  Res extends ResponseKind = ResponseKind,
> {
  /** The NATS subject requests are published on. */
  readonly subject: string;
  /** The schema of the request body (valibot, or any Standard Schema). */
  readonly request: Req;
  /** The reply's kind: `int()`, `enumOf(…)` or `object(…)`. */
  readonly response: Res;
  /**
   * Whether handling a request twice does no harm. A request of an idempotent
   * contract that was in flight when the connection dropped is sent again
   * (same id) once it is back, and responders answer a repeated id from
   * memory instead of running the handler again.
   */
  readonly idempotent?: boolean;
}

/** What {@linkcode defineRequest} takes. */
export interface ContractDefinition<Req extends Schema, Res extends ResponseKind> {
  /** The NATS subject requests are published on: dot-separated tokens, no wildcards or spaces. */
  subject: string;
  /** The schema of the request body (valibot, or any Standard Schema). */
  request: Req;
  /** The reply's kind: `int()`, `enumOf(…)` or `object(…)`. */
  response: Res;
  /**
   * `true` when handling a request twice does no harm: a request in flight
   * when the connection drops is then sent again after the reconnect instead
   * of waiting out its deadline. Default `false`.
   */
  idempotent?: boolean;
}

/** The body a caller passes for a contract (the request schema's input). */
export type RequestOf<C extends Contract> = InferInput<C["request"]>;
/** The body a handler receives for a contract (the request schema's output). */
export type HandledRequestOf<C extends Contract> = InferOutput<C["request"]>;
/** The value a caller's `request()` resolves with for a contract. */
export type ReplyOf<C extends Contract> = ResponseOutput<C["response"]>;
/** The value a handler returns for a contract. */
export type HandlerReplyOf<C extends Contract> = ResponseInput<C["response"]>;

/**
 * Declares a request type and the response it expects. Types flow from it:
 * `request()` takes the request schema's input and resolves with the
 * response's type; `handle()` gets the schema's output and must return the
 * response's type.
 *
 * @param definition The subject, request schema and response kind.
 * @returns The frozen contract.
 * @throws {TypeError} When the subject is not a valid NATS subject for
 * publishing, or the schemas are not schemas.
 *
 * @example An int, an enum and an object contract
 * ```ts
 * import * as v from "valibot";
 * import { defineRequest, enumOf, int, object } from "@seed/callbacks";
 *
 * export const CheckStock = defineRequest({
 *   subject: "stock.check",
 *   request: v.object({ sku: v.string() }),
 *   response: int(),
 * });
 * export const Approve = defineRequest({
 *   subject: "orders.approve",
 *   request: v.object({ orderId: v.string() }),
 *   response: enumOf(["Approved", "Rejected"]),
 * });
 * export const PlaceOrder = defineRequest({
 *   subject: "orders.place",
 *   request: v.object({ sku: v.string(), qty: v.number() }),
 *   response: object(v.object({ orderId: v.string(), eta: v.number() })),
 * });
 * ```
 */
export function defineRequest<Req extends Schema, Res extends ResponseKind>(
  definition: ContractDefinition<Req, Res>,
): Contract<Req, Res> {
  const { subject, request, response, idempotent = false } = definition;
  assertSubject(subject, "defineRequest");
  if (typeof idempotent !== "boolean") {
    throw new TypeError(`defineRequest(${subject}): idempotent must be true or false`);
  }
  if (!isSchema(request)) {
    throw new TypeError(
      `defineRequest(${subject}): request must be a valibot (or Standard Schema) schema, e.g. v.object({…})`,
    );
  }
  const kind = (response as { kind?: unknown } | undefined)?.kind;
  if (kind !== "int" && kind !== "enum" && kind !== "object") {
    throw new TypeError(
      `defineRequest(${subject}): response must be int(), enumOf([…]) or object(schema)`,
    );
  }
  return Object.freeze({ subject, request, response, idempotent });
}

/**
 * Throws a TypeError unless `contract` looks like one `defineRequest` made and
 * its subject is one to publish on (a spread copy may carry any subject).
 * `where` names the caller, e.g. `"request"`.
 *
 * @example Checking an argument
 * ```ts
 * import { assertThrows } from "@std/assert";
 * import { assertContract } from "./contract.ts";
 * assertThrows(() => assertContract({}, "request"), TypeError, "defineRequest");
 * ```
 */
export function assertContract(contract: unknown, where: string): asserts contract is Contract {
  const c = contract as Partial<Contract> | null;
  if (
    typeof c !== "object" || c === null || !c.response ||
    (c.idempotent !== undefined && typeof c.idempotent !== "boolean")
  ) {
    throw new TypeError(`${where}() needs a contract made by defineRequest()`);
  }
  assertSubject(c.subject, `${where}()`);
}

/**
 * Throws unless `subject` is a NATS subject one can publish on: non-empty
 * dot-separated tokens without whitespace, control characters or wildcards
 * (`TypeError`), short enough to leave room for a reply subject in the
 * server's control line (`RangeError`, past {@linkcode MAX_SUBJECT} bytes).
 */
export function assertSubject(subject: unknown, where: string): asserts subject is string {
  if (typeof subject !== "string" || !isPublishSubject(subject)) {
    throw new TypeError(
      `${where}: ${JSON.stringify(subject)} is not a NATS subject to publish on: ` +
        `use dot-separated tokens without spaces or wildcards, e.g. "orders.place"`,
    );
  }
  if (utf8Length(subject) > MAX_SUBJECT) {
    throw new RangeError(
      `${where}: the subject is ${
        utf8Length(subject)
      } bytes; NATS takes at most ${MAX_SUBJECT} here (a protocol line is ${MAX_CONTROL_LINE} bytes with the reply subject): use a shorter subject`,
    );
  }
}

/** The longest subject, in UTF-8 bytes: a protocol line must also hold a reply subject. */
export const MAX_SUBJECT: number = MAX_CONTROL_LINE - 256;
