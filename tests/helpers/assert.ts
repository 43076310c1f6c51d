/**
 * The subset of `@std/assert` this project's tests use, with the same names
 * and signatures, built on Deno's `node:assert`. JSR is out of reach on the
 * machines this project is built on; where it is reachable, map
 * `"@std/assert"` to `"jsr:@std/assert@^1"` in deno.json and delete this
 * file: the tests do not change.
 *
 * @module
 */

import nodeAssert from "node:assert";

/** Thrown when an assertion fails. */
export const AssertionError = nodeAssert.AssertionError;

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg?: string): asserts expr {
  nodeAssert.ok(expr, msg);
}

/** Asserts that `expr` is falsy. */
export function assertFalse(expr: unknown, msg?: string): void {
  nodeAssert.ok(!expr, msg ?? `expected a falsy value, got ${String(expr)}`);
}

/** Asserts deep equality (structural, like std's `assertEquals`). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, msg);
}

/** Asserts deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  nodeAssert.notDeepStrictEqual(actual, expected, msg);
}

/** Asserts `Object.is` equality. */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  nodeAssert.strictEqual(actual, expected, msg);
}

/** Asserts that a value is neither `null` nor `undefined`. */
export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  nodeAssert.ok(actual !== null && actual !== undefined, msg ?? "expected a value, got none");
}

/** Asserts that `actual` matches `expected`. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  nodeAssert.match(actual, expected, msg);
}

/** Asserts that `actual` is an instance of `expectedType`. */
export function assertInstanceOf<T extends abstract new (...args: never[]) => unknown>(
  actual: unknown,
  expectedType: T,
  msg?: string,
): asserts actual is InstanceType<T> {
  if (!(actual instanceof expectedType)) {
    const got = actual instanceof Error ? `${actual.name}: ${actual.message}` : String(actual);
    nodeAssert.fail(msg ?? `expected an instance of ${expectedType.name}, got ${got}`);
  }
}

/** Fails with a message. */
export function fail(msg?: string): never {
  nodeAssert.fail(msg ?? "failed");
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

/** Asserts that `fn` throws (an instance of `ErrorClass`, whose message includes `msgIncludes`); returns the error. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (error) {
    return check(error, ErrorClass, msgIncludes);
  }
  nodeAssert.fail("expected the function to throw");
}

/** Asserts that `fn`'s promise rejects (an instance of `ErrorClass`, whose message includes `msgIncludes`); returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  let promise: PromiseLike<unknown>;
  try {
    promise = fn();
  } catch {
    // As std does: a function that throws is not one that rejects.
    nodeAssert.fail("Function throws when expected to reject");
  }
  try {
    await promise;
  } catch (error) {
    return check(error, ErrorClass, msgIncludes);
  }
  nodeAssert.fail("expected the promise to reject");
}

function check<E extends Error>(
  error: unknown,
  ErrorClass: ErrorClass<E> | undefined,
  msgIncludes: string | undefined,
): E {
  if (ErrorClass) assertInstanceOf(error, ErrorClass);
  if (msgIncludes !== undefined) {
    const message = (error as Error).message;
    nodeAssert.ok(
      message.includes(msgIncludes),
      `expected the error message to include ${JSON.stringify(msgIncludes)}, got ${
        JSON.stringify(message)
      }`,
    );
  }
  return error as E;
}
