/**
 * Local stand-in for `jsr:@std/assert`, built on `node:assert/strict`.
 *
 * JSR is unreachable where this project is built, so `deno.json` maps the
 * `@std/assert` specifier here. Only the functions the tests use exist, with
 * std's names and argument order, so switching the map back to
 * `jsr:@std/assert@^1` needs no change in any test.
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Thrown when an assertion fails (std's class name). */
export class AssertionError extends Error {
  override name = "AssertionError";
}

function wrap(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    if (error instanceof nodeAssert.AssertionError) {
      throw new AssertionError(error.message, { cause: error });
    }
    throw error;
  }
}

/** Asserts that `expr` is truthy. */
export function assert(expr: unknown, msg = "Expected expression to be truthy"): asserts expr {
  if (!expr) throw new AssertionError(msg);
}

/** Asserts deep equality (structural, strict types). */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  wrap(() => nodeAssert.deepStrictEqual(actual, expected, msg));
}

/** Asserts deep inequality. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  wrap(() => nodeAssert.notDeepStrictEqual(actual, expected, msg));
}

/** Asserts `Object.is` equality. */
export function assertStrictEquals<T>(
  actual: unknown,
  expected: T,
  msg?: string,
): asserts actual is T {
  wrap(() => nodeAssert.strictEqual(actual, expected, msg));
}

/** Asserts that a value is neither `null` nor `undefined`. */
export function assertExists<T>(actual: T, msg?: string): asserts actual is NonNullable<T> {
  if (actual === null || actual === undefined) {
    throw new AssertionError(msg ?? `Expected actual: "${actual}" to not be null or undefined.`);
  }
}

/** Asserts that `actual` contains `expected`. */
export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    throw new AssertionError(msg ?? `Expected actual: "${actual}" to contain: "${expected}".`);
  }
}

/** Asserts that `actual` matches the regular expression. */
export function assertMatch(actual: string, expected: RegExp, msg?: string): void {
  wrap(() => nodeAssert.match(actual, expected, msg));
}

/** Asserts that `actual` is greater than or equal to `expected`. */
export function assertGreaterOrEqual<T>(actual: T, expected: T, msg?: string): void {
  if (!(actual >= expected)) {
    throw new AssertionError(msg ?? `Expect ${actual} >= ${expected}`);
  }
}

type ErrorClass<E extends Error> = abstract new (...args: never[]) => E;

function checkError<E extends Error>(
  error: unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  if (ErrorClass && !(error instanceof ErrorClass)) {
    throw new AssertionError(
      `Expected error to be instance of "${ErrorClass.name}", but was "${
        (error as Error)?.constructor?.name
      }": ${(error as Error)?.message}`,
    );
  }
  if (msgIncludes !== undefined && !String((error as Error)?.message).includes(msgIncludes)) {
    throw new AssertionError(
      `Expected error message to include "${msgIncludes}", but got "${(error as Error)?.message}".`,
    );
  }
  return error as E;
}

/** Asserts that `fn` throws, optionally of a class and with a message part; returns the error. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (error) {
    return checkError(error, ErrorClass, msgIncludes);
  }
  throw new AssertionError("Expected function to throw.");
}

/** Asserts that the promise returned by `fn` rejects; returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  ErrorClass?: ErrorClass<E>,
  msgIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    return checkError(error, ErrorClass, msgIncludes);
  }
  throw new AssertionError("Expected function to reject.");
}

/** Fails the test unconditionally. */
export function fail(msg?: string): never {
  throw new AssertionError(msg ? `Failed assertion: ${msg}` : "Failed assertion.");
}
