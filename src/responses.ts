/**
 * The three response kinds a contract can promise — `int()`, `enumOf()` and
 * `object()` — and how each is checked, encoded and decoded.
 *
 * The factories return plain frozen data, so unused kinds are dropped by a
 * bundler; the encoding logic lives in the two functions at the end.
 *
 * @module
 */

import type { Issue } from "./errors.ts";
import {
  type Checked,
  checkSchema,
  type InferInput,
  type InferOutput,
  isSchema,
  type Schema,
} from "./schema.ts";

/** An int reply: a safe integer, sent as decimal text. */
export interface IntResponse {
  /** The kind's name, sent in the `Callback-Kind` header. */
  readonly kind: "int";
}

/** An enum reply: one of `values`, sent as its JSON value. */
export interface EnumResponse<T extends string | number = string | number> {
  /** The kind's name, sent in the `Callback-Kind` header. */
  readonly kind: "enum";
  /** The members, in declaration order. */
  readonly values: readonly T[];
}

/** An object reply: JSON validated by a schema (valibot, or any Standard Schema). */
export interface ObjectResponse<S extends Schema = Schema> {
  /** The kind's name, sent in the `Callback-Kind` header. */
  readonly kind: "object";
  /** The schema the reply must pass. */
  readonly schema: S;
}

/** Any response kind. */
export type ResponseKind = IntResponse | EnumResponse | ObjectResponse;

/** The value a caller receives for a response kind. */
export type ResponseOutput<R extends ResponseKind> = R extends EnumResponse<infer T> ? T
  : R extends ObjectResponse<infer S> ? InferOutput<S>
  : number;

/** The value a handler returns for a response kind. */
export type ResponseInput<R extends ResponseKind> = R extends EnumResponse<infer T> ? T
  : R extends ObjectResponse<infer S> ? InferInput<S>
  : number;

/**
 * A reply that is an integer (a count, a status code, a version): the handler
 * returns a number, the caller gets a `number` that is a safe integer.
 *
 * @returns The int response kind.
 *
 * @example An int contract
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, int } from "@seed/callbacks";
 * const CheckStock = defineRequest({ subject: "stock.check", request: v.object({ sku: v.string() }), response: int() });
 * assert(CheckStock.response.kind === "int");
 * ```
 */
export function int(): IntResponse {
  return INT;
}
const INT: IntResponse = Object.freeze({ kind: "int" });

/**
 * A reply that is one member of an enumeration: give the members as a list
 * (`["Approved", "Rejected"] as const` is inferred without `as const`) or a
 * TypeScript `enum` object (numeric enums' reverse mappings are ignored).
 *
 * @param values The members: strings or finite numbers, at least one, no duplicates.
 * @returns The enum response kind.
 * @throws {TypeError} When there are no members, a member is not a string or
 * finite number, or a member repeats.
 *
 * @example From a list
 * ```ts
 * import { assert } from "@std/assert";
 * import { enumOf } from "@seed/callbacks";
 * const decision = enumOf(["Approved", "Rejected"]);
 * assert(decision.values.length === 2);
 * ```
 *
 * @example From a TypeScript enum
 * ```ts
 * import { assert } from "@std/assert";
 * import { enumOf } from "@seed/callbacks";
 * enum Level { Low = 1, High = 2 }
 * assert(enumOf(Level).values.join() === "1,2");
 * ```
 */
export function enumOf<const T extends readonly (string | number)[]>(
  values: T,
): EnumResponse<T[number]>;
/**
 * A reply that is one member of a TypeScript `enum` (numeric enums' reverse
 * mappings are ignored).
 *
 * @param enumObject The enum object.
 * @returns The enum response kind.
 * @throws {TypeError} When the enum has no members.
 *
 * @example From a string enum
 * ```ts
 * import { assert } from "@std/assert";
 * import { enumOf } from "@seed/callbacks";
 * enum Decision { Approved = "Approved", Rejected = "Rejected" }
 * assert(enumOf(Decision).values.join() === "Approved,Rejected");
 * ```
 */
export function enumOf<E extends Record<string, string | number>>(
  enumObject: E,
): EnumResponse<E[keyof E]>;
export function enumOf(
  values: readonly (string | number)[] | Record<string, string | number>,
): EnumResponse {
  const list = Array.isArray(values)
    ? values as readonly (string | number)[]
    : enumMembers(values as Record<string, string | number>);
  if (list.length === 0) throw new TypeError("enumOf needs at least one member");
  for (const value of list) {
    if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value))) {
      throw new TypeError(
        `enumOf members must be strings or finite numbers, got ${String(value)}`,
      );
    }
  }
  if (new Set(list).size !== list.length) {
    throw new TypeError(`enumOf members must be unique, got ${JSON.stringify(list)}`);
  }
  return Object.freeze({ kind: "enum", values: Object.freeze([...list]) });
}

function enumMembers(
  enumObject: Record<string, string | number>,
): (string | number)[] {
  if (typeof enumObject !== "object" || enumObject === null) {
    throw new TypeError("enumOf takes an array of members or a TypeScript enum object");
  }
  // A numeric enum maps names to numbers and numbers back to names; keep the numbers.
  return Object.keys(enumObject)
    .filter((key) => typeof enumObject[enumObject[key] as string] !== "number")
    .map((key) => enumObject[key] as string | number);
}

/**
 * A reply that is a JSON object checked by a valibot schema. The handler
 * returns the schema's input type; once it passes the schema, that value
 * travels as JSON and the caller parses it with the same schema, so the
 * caller gets the output type (transforms run on the caller's side). Keys the
 * schema does not name travel too (`v.object` drops them on the caller's
 * side); use `v.strictObject` to refuse them at the responder.
 *
 * @param schema A valibot schema, usually `v.object({ … })`.
 * @returns The object response kind.
 * @throws {TypeError} When `schema` is not a valibot schema.
 *
 * @example An object contract
 * ```ts
 * import { assert } from "@std/assert";
 * import * as v from "valibot";
 * import { defineRequest, object } from "@seed/callbacks";
 * const PlaceOrder = defineRequest({
 *   subject: "orders.place",
 *   request: v.object({ sku: v.string(), qty: v.number() }),
 *   response: object(v.object({ orderId: v.string(), eta: v.number() })),
 * });
 * assert(PlaceOrder.response.kind === "object");
 * ```
 */
export function object<S extends Schema>(schema: S): ObjectResponse<S> {
  if (!isSchema(schema)) {
    throw new TypeError("object() takes a valibot (or Standard Schema) schema, e.g. v.object({…})");
  }
  return Object.freeze({ kind: "object", schema });
}

/**
 * Checks a value against a response kind: a safe integer, a member, or what
 * the schema accepts (then its output).
 */
export function checkResponse<R extends ResponseKind>(
  response: R,
  value: unknown,
): Checked<ResponseOutput<R>> {
  switch (response.kind) {
    case "int":
      return Number.isSafeInteger(value)
        ? { ok: true, value: value as ResponseOutput<R> }
        : fail(`expected a safe integer, got ${describe(value)}`);
    case "enum":
      return (response.values as readonly unknown[]).includes(value)
        ? { ok: true, value: value as ResponseOutput<R> }
        : fail(
          `expected one of ${JSON.stringify(response.values)}, got ${describe(value)}`,
        );
    case "object":
      return checkSchema(response.schema, value) as Checked<ResponseOutput<R>>;
  }
}

/** Encodes a checked reply value as its kind's wire text. */
export function encodeResponse(response: ResponseKind, value: unknown): string {
  return response.kind === "int" ? String(value) : JSON.stringify(value);
}

const INTEGER = /^-?(?:0|[1-9][0-9]*)$/;

/**
 * Decodes a reply's text by the contract's kind and checks it: int is decimal
 * text, enum the member's JSON value (a plain responder's bare text that
 * equals a string member is accepted too), object JSON.
 */
export function decodeResponse<R extends ResponseKind>(
  response: R,
  text: string,
): Checked<ResponseOutput<R>> {
  const trimmed = text.trim();
  switch (response.kind) {
    case "int":
      return INTEGER.test(trimmed)
        ? checkResponse(response, Number(trimmed))
        : fail(`expected an integer as decimal text, got ${describe(text)}`);
    case "enum": {
      // The member's JSON value; else bare text equal to a string member.
      const parsed = parseJson(trimmed);
      if (parsed.ok) {
        const member = checkResponse(response, parsed.value);
        if (member.ok || typeof parsed.value === "string") return member;
      }
      return checkResponse(response, trimmed);
    }
    case "object": {
      const parsed = parseJson(trimmed);
      return parsed.ok ? checkResponse(response, parsed.value) : parsed;
    }
  }
}

/** Parses JSON without throwing. */
export function parseJson(text: string): Checked<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return fail(`expected JSON, got ${describe(text)}`);
  }
}

function fail(message: string): { ok: false; issues: Issue[] } {
  return { ok: false, issues: [{ message }] };
}

function describe(value: unknown): string {
  const text = typeof value === "string" ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
