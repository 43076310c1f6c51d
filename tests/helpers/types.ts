/**
 * Type-level assertions in the style of `@std/testing/types`: a test passes
 * when it type-checks.
 *
 * @module
 */

/** `true` when `A` and `B` are the same type, else `false`. */
export type IsExact<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2)
  ? true
  : false;

/** Asserts a type-level condition: `assertType<IsExact<typeof x, number>>(true)`. */
export function assertType<T extends true | false>(_expectTrue: T): void {}
