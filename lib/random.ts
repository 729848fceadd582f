/**
 * One small seeded random generator for everything that must repeat itself
 * exactly: the demo model's weights and sampling, the induction probe's
 * prompts, and test data.
 *
 * @module
 */

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): uniform numbers in
 * `[0, 1)`, the same sequence for the same seed on every platform. Not for
 * cryptography; chosen because it is tiny and fast, and because the committed
 * demo weights were built with it (another generator would change them).
 *
 * @param seed Any number; only its low 32 bits count.
 * @returns A function giving the next number each call.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./random.ts";
 * import assert from "node:assert/strict";
 *
 * const a = seededRandom(42), b = seededRandom(42);
 * const x = a();
 * assert.equal(x, b());
 * assert.ok(x >= 0 && x < 1);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
