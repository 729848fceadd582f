/**
 * Grid values to PNG pixels through a Plot color scale, with a lookup table
 * (parsing one CSS color per pixel would dominate the time of a raster).
 *
 * @module
 */

import * as Plot from "@observablehq/plot";
import { parseCssColor } from "../canvas.ts";
import { encodePng, pngDataUrl } from "../png.ts";

/** Colors per lookup table: finer than 8-bit color channels need. */
const LUT_SIZE = 1024;

/** A color function over numbers, tabulated once. */
export interface Colorizer {
  /** Fills 4 bytes of `out` at `offset` with the color of `v`. */
  put(v: number, out: Uint8Array, offset: number): void;
}

/**
 * Tabulates a Plot color scale over its domain.
 *
 * @param color Plot color scale options with a numeric domain.
 * @returns The colorizer.
 *
 * @example
 * ```ts
 * import { colorizer } from "./_colorize.ts";
 * import assert from "node:assert/strict";
 *
 * const c = colorizer({ type: "linear", domain: [0, 1], range: ["black", "white"] });
 * const px = new Uint8Array(4);
 * c.put(1, px, 0);
 * assert.deepEqual([...px], [255, 255, 255, 255]);
 * ```
 */
export function colorizer(color: Plot.ScaleOptions): Colorizer {
  const scale = Plot.scale({ color });
  const [d0, d1] = (scale.domain as number[]).map(Number);
  const lut = new Uint8Array(LUT_SIZE * 4);
  for (let i = 0; i < LUT_SIZE; i++) {
    const v = d0 + ((d1 - d0) * i) / (LUT_SIZE - 1);
    lut.set(parseCssColor(String(scale.apply(v))) ?? [0, 0, 0, 255], i * 4);
  }
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
 * A grid of values as a PNG data URL; `NaN` cells are transparent.
 *
 * @param values `rows * cols` values, row-major.
 * @param cols Columns.
 * @param colors The colorizer.
 * @returns `data:image/png;base64,...`.
 *
 * @example
 * ```ts
 * import { colorizer, gridPng } from "./_colorize.ts";
 * import assert from "node:assert/strict";
 *
 * const c = colorizer({ type: "linear", domain: [0, 1], scheme: "viridis" });
 * assert.match(gridPng(new Float32Array([0, NaN, 1, 0.5]), 2, c), /^data:image\/png;base64,/);
 * ```
 */
export function gridPng(
  values: Float32Array,
  cols: number,
  colors: Colorizer,
): string {
  const rows = values.length / cols;
  const rgba = new Uint8Array(values.length * 4);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isNaN(v)) colors.put(v, rgba, i * 4);
  }
  return pngDataUrl(encodePng(rgba, cols, rows));
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
 * import { quantile } from "./_colorize.ts";
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
