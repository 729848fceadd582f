/**
 * The pure parts of the charts' color scales and max-pooling, with no Plot,
 * Deno or node: imports, so the explorer's browser bundle runs the very same
 * code the static heatmaps run (the page and the charts must agree).
 *
 * A color scale here is a lookup table of `LUT_SIZE` RGBA colors over a
 * domain `[d0, d1]`; `_colorize.ts` tabulates Plot's scales into one.
 *
 * @module
 */

/** Colors per lookup table: finer than 8-bit color channels need. */
export const LUT_SIZE = 1024;

/** A color function over numbers, tabulated once. */
export interface Colorizer {
  /** Fills 4 bytes of `out` at `offset` with the color of `v`. */
  put(v: number, out: Uint8Array, offset: number): void;
}

/**
 * A colorizer reading a tabulated scale: `v` is clamped into `[d0, d1]` and
 * rounded to the nearest of the table's colors.
 *
 * @param lut `LUT_SIZE * 4` RGBA bytes, the colors of `d0` to `d1` evenly spaced.
 * @param d0 The domain's low end.
 * @param d1 The domain's high end.
 * @returns The colorizer.
 *
 * @example
 * ```ts
 * import { LUT_SIZE, lutColorizer } from "./_scale.ts";
 * import assert from "node:assert/strict";
 *
 * const lut = new Uint8Array(LUT_SIZE * 4);
 * for (let i = 0; i < LUT_SIZE; i++) lut.set([i >> 2, 0, 0, 255], i * 4);
 * const px = new Uint8Array(4);
 * lutColorizer(lut, 0, 2).put(5, px, 0); // clamped to the top
 * assert.deepEqual([...px], [255, 0, 0, 255]);
 * ```
 */
export function lutColorizer(
  lut: Uint8Array,
  d0: number,
  d1: number,
): Colorizer {
  const k = (LUT_SIZE - 1) / (d1 - d0 || 1);
  return {
    put(v, out, offset) {
      const j = Math.max(0, Math.min(LUT_SIZE - 1, Math.round((v - d0) * k))) *
        4;
      out[offset] = lut[j];
      out[offset + 1] = lut[j + 1];
      out[offset + 2] = lut[j + 2];
      out[offset + 3] = lut[j + 3];
    },
  };
}

/**
 * The q-quantile of the finite values (`NaN` cells are masked ones).
 *
 * @param values The values.
 * @param q The quantile in `[0, 1]`.
 * @returns The value, or 0 when there is none.
 *
 * @example
 * ```ts
 * import { quantile } from "./_scale.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(quantile(new Float32Array([3, NaN, 1, 2]), 0.5), 2);
 * ```
 */
export function quantile(values: Float32Array, q: number): number {
  const finite = values.filter((v) => !Number.isNaN(v)).sort();
  if (finite.length === 0) return 0;
  return finite[
    Math.min(finite.length - 1, Math.floor(q * (finite.length - 1)))
  ];
}

/**
 * Which of `bins` equal bins each of `n` items falls in (item `j` in bin
 * `floor(j * bins / n)`), as every max-pooled grid splits its axes.
 *
 * @param n Items.
 * @param bins Bins, at most `n`.
 * @returns The bin of each item.
 *
 * @example
 * ```ts
 * import { binMap } from "./_scale.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...binMap(5, 2)], [0, 0, 0, 1, 1]);
 * ```
 */
export function binMap(n: number, bins: number): Int32Array {
  const out = new Int32Array(n);
  for (let j = 0; j < n; j++) out[j] = Math.floor((j * bins) / n);
  return out;
}

/**
 * Max-pools one row of attention into a grid row: item `j` of `row`
 * (from `start`, `n` items) goes to `out[outBase + colBin[j]]`, which keeps
 * the largest value it sees (`NaN` cells count as empty). Zeros at or past
 * `maskFrom` are causally masked cells and are skipped, so a bin of masked
 * cells stays `NaN`.
 *
 * @param row The source values.
 * @param start Index in `row` of item 0.
 * @param n Items.
 * @param scale Factor applied to each value (1, or a renormalization).
 * @param out The grid, `NaN`-filled before the first row.
 * @param outBase Index in `out` of the grid row.
 * @param colBin The bin of each item ({@linkcode binMap}).
 * @param maskFrom First item index that is in the query's future.
 * @returns The largest value kept (0 when none).
 *
 * @example
 * ```ts
 * import { binMap, poolRowMax } from "./_scale.ts";
 * import assert from "node:assert/strict";
 *
 * const out = new Float32Array(2).fill(NaN);
 * poolRowMax([0.2, 0.7, 0.1, 0], 0, 4, 1, out, 0, binMap(4, 2), 3);
 * assert.deepEqual([...out].map((v) => +v.toFixed(2)), [0.7, 0.1]);
 * ```
 */
export function poolRowMax(
  row: ArrayLike<number>,
  start: number,
  n: number,
  scale: number,
  out: Float32Array,
  outBase: number,
  colBin: Int32Array,
  maskFrom: number,
): number {
  let max = 0;
  for (let j = 0; j < n; j++) {
    const v = row[start + j] * scale;
    if (v === 0 && j >= maskFrom) continue; // causal mask
    if (Number.isNaN(v)) continue;
    const at = outBase + colBin[j];
    const cur = out[at];
    if (!(cur >= v)) out[at] = v; // NaN-aware max
    if (v > max) max = v;
  }
  return max;
}
