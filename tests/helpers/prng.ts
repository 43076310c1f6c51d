/** Seeded randomness for property tests: a failing seed reruns the same schedule. */

/** mulberry32: a small seeded PRNG, giving numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One of `items`, at random. */
export const pick = <T>(random: () => number, items: readonly T[]): T =>
  items[Math.floor(random() * items.length)]!;

/** This run's seed: `SEED` from the environment, else a random one (named on failure). */
export const SEED: number = Number(Deno.env.get("SEED") ?? Math.floor(Math.random() * 2 ** 31));

/** Runs a property test with {@linkcode SEED}; a failure names the seed that reruns it. */
export async function seeded(test: (seed: number) => Promise<void>): Promise<void> {
  try {
    await test(SEED);
  } catch (error) {
    throw new Error(`failed with SEED=${SEED}: ${(error as Error).message}`, { cause: error });
  }
}

/** Throws unless each of `outcomes` was seen: the invariants were not checked vacuously. */
export function assertReached(
  seen: ReadonlyMap<string, number>,
  outcomes: readonly string[],
): void {
  for (const what of outcomes) {
    if ((seen.get(what) ?? 0) === 0) {
      throw new Error(`no ${what} in ${JSON.stringify([...seen])}`);
    }
  }
}
