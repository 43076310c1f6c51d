/**
 * Type-level assertions in the style of `@std/testing/types`: a test passes
 * when it type-checks.
 *
 * @module
 */

type IsAny<T> = 0 extends 1 & T ? true : false;

/** `true` when `A` and `B` are mutually assignable (and both or neither is `any`), else `false`. */
export type IsExact<A, B> = [IsAny<A>, IsAny<B>] extends [true, true] ? true
  : [IsAny<A> | IsAny<B>] extends [false] ? [A] extends [B] ? [B] extends [A] ? true : false : false
  : false;

/** Asserts a type-level condition: `assertType<IsExact<typeof x, number>>(true)`. */
export function assertType<T extends true | false>(_expectTrue: T): void {}
