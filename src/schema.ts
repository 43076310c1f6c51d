/**
 * Schemas as the endpoint sees them: the Standard Schema interface
 * (`~standard`), which valibot schemas implement (so do zod 3.24+ and
 * ArkType). The core calls `validate` and never imports a schema library.
 *
 * @module
 */

import type { Issue } from "./errors.ts";
import { errorText } from "./wire.ts";

/** The result of a Standard Schema's `validate`. */
export type SchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: readonly Issue[] };

/**
 * A schema with the Standard Schema interface, e.g. any valibot schema
 * (`v.object({…})`, `v.string()`, `v.pipe(…)`).
 *
 * @example A valibot schema is a Schema
 * ```ts
 * import * as v from "valibot";
 * import type { Schema } from "@seed/callbacks";
 * const sku: Schema<string> = v.string();
 * ```
 */
export interface Schema<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** Standard Schema version. */
    readonly version: 1;
    /** The library that made the schema. */
    readonly vendor: string;
    /** Validates a value: its output, or issues. */
    readonly validate: (
      value: unknown,
    ) => SchemaResult<Output> | Promise<SchemaResult<Output>>;
    /** Carries the input and output types for inference. */
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** The input type of a schema: what a sender passes. */
export type InferInput<S extends Schema> = NonNullable<S["~standard"]["types"]>["input"];
/** The output type of a schema: what a receiver gets. */
export type InferOutput<S extends Schema> = NonNullable<S["~standard"]["types"]>["output"];

/** Whether a value has the Standard Schema interface. */
export function isSchema(value: unknown): value is Schema {
  const standard = (value as { "~standard"?: { validate?: unknown } } | null)?.["~standard"];
  return typeof standard === "object" && standard !== null &&
    typeof standard.validate === "function";
}

/** The outcome of checking a value: the value to use, or what is wrong. */
export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly issues: readonly Issue[] };

/**
 * Validates synchronously; an async schema, or one that throws, is reported
 * as an issue.
 */
export function checkSchema(schema: Schema, value: unknown): Checked<unknown> {
  let result: SchemaResult<unknown> | Promise<SchemaResult<unknown>>;
  try {
    result = schema["~standard"].validate(value);
  } catch (error) {
    // A schema whose check or transform throws rejects the value; it never escapes.
    return { ok: false, issues: [{ message: `the schema threw: ${errorText(error)}` }] };
  }
  if (result instanceof Promise) {
    result.catch(() => {});
    return {
      ok: false,
      issues: [{ message: "async schemas are not supported: use synchronous checks" }],
    };
  }
  return result.issues ? { ok: false, issues: result.issues } : { ok: true, value: result.value };
}
