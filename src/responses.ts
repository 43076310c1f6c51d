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
import { errorText } from "./wire.ts";
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
  // A numeric enum maps names to numbers and numbers back to names: a reverse mapping is a
  // key whose value names a member whose number is that key. Member names cannot be
  // numeric, so a member whose string value names another member is kept.
  return Object.keys(enumObject)
    .filter((key) => {
      const value = enumObject[key];
      return !(typeof value === "string" && String(enumObject[value]) === key &&
        typeof enumObject[value] === "number");
    })
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

/**
 * The wire text of a handler's value, or why it cannot be sent: it fails the
 * contract, or JSON would change it so that it no longer passes (`Infinity`,
 * `NaN`, a `Date`, a class instance, `undefined` in an object for a schema
 * that needs the key) or cannot encode it (a `toJSON` that throws, a BigInt, a
 * cycle). Never throws. What is sent passes the contract on the other side.
 */
export function encodeReply(response: ResponseKind, value: unknown): Checked<string> {
  try {
    const checked = checkResponse(response, value);
    if (!checked.ok) return checked;
    if (response.kind === "int") return { ok: true, value: String(value) };
    const text = JSON.stringify(value);
    if (response.kind === "enum" || jsonExact(value)) return { ok: true, value: text };
    // JSON changes this value: send it only if what arrives still passes the contract.
    if (text === undefined) return fail(`JSON cannot send ${describe(value)}`);
    const arrived = checkResponse(response, JSON.parse(text));
    return arrived.ok ? { ok: true, value: text } : fail(
      `JSON would change the value so that it fails the contract (${
        arrived.issues[0]?.message ?? "invalid"
      }): send plain JSON data (finite numbers, strings, booleans, null, arrays, plain objects)`,
    );
  } catch (error) {
    return fail(`the value cannot be sent as JSON: ${errorText(error)}`);
  }
}

/**
 * Whether JSON carries `value` unchanged: plain data, finite numbers, no
 * `undefined`, no property JSON leaves out (a non-enumerable one). Recursive: a
 * value nested past the stack's depth throws, and is refused by the caller.
 */
function jsonExact(value: unknown): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (!(i in value) || !jsonExact(value[i])) return false;
        }
        return Object.getPrototypeOf(value) === Array.prototype;
      }
      const proto = Object.getPrototypeOf(value);
      const keys = Object.keys(value);
      if (
        (proto !== Object.prototype && proto !== null) || "toJSON" in value ||
        keys.length !== Object.getOwnPropertyNames(value).length
      ) return false;
      return keys.every((key) => jsonExact((value as Record<string, unknown>)[key]));
    }
    default:
      return false;
  }
}

/** Decimal integer text, and nothing around it. */
const INTEGER = /^-?[0-9]+$/;

/**
 * Decodes a reply's text by the contract's kind and checks it: int is decimal
 * text (`-?[0-9]+`, nothing around it; `-0` is 0), enum the member's JSON
 * value (a plain responder's bare text that equals a string member is
 * accepted too), object JSON.
 */
export function decodeResponse<R extends ResponseKind>(
  response: R,
  text: string,
): Checked<ResponseOutput<R>> {
  switch (response.kind) {
    case "int":
      // `+ 0` turns -0 into 0.
      return INTEGER.test(text)
        ? checkResponse(response, Number(text) + 0)
        : fail(`expected an integer as decimal text, got ${describe(text)}`);
    case "enum": {
      // The member's JSON value; else bare text equal to a string member.
      const parsed = parseJson(text);
      if (parsed.ok) {
        const member = checkResponse(response, parsed.value);
        if (member.ok || typeof parsed.value === "string") return member;
      }
      return checkResponse(response, text);
    }
    case "object": {
      const parsed = parseJson(text);
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

/** A value in a message: never calls the value's own code (`toString`, getters). */
function describe(value: unknown): string {
  const text = typeof value === "string"
    ? JSON.stringify(value.length > 60 ? value.slice(0, 60) : value)
    : typeof value === "object"
    ? value === null ? "null" : Array.isArray(value) ? "an array" : "an object"
    : typeof value === "function"
    ? "a function"
    : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
