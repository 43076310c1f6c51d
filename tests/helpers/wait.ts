/**
 * Waiting on an outcome in tests: poll a check until it holds, within a
 * deadline, rather than sleeping a fixed time.
 *
 * @module
 */

const POLL_MS = 20;

/**
 * Polls `check` until it resolves `true`, or throws "timed out waiting for
 * `what`" after `timeoutMs`, with the check's last error (if it threw) as the
 * `cause`.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (true) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${what}`,
        last === undefined ? undefined : { cause: last },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
