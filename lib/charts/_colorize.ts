/**
 * Grid values to PNG pixels through a Plot color scale, with a lookup table
 * (parsing one CSS color per pixel would dominate the time of a raster).
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import { parseCssColor } from "../canvas.ts";
import { encodePng, pngDataUrl } from "../png.ts";
import { type Colorizer, LUT_SIZE, lutColorizer } from "./_scale.ts";

export { type Colorizer, quantile } from "./_scale.ts";

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
  const { lut, domain } = colorTable(color);
  return lutColorizer(lut, domain[0], domain[1]);
}

/**
 * Tabulates a Plot color scale: the table {@linkcode colorizer} reads, for
 * code that colors without Plot (the explorer's page).
 *
 * @param color Plot color scale options with a numeric domain.
 * @returns `LUT_SIZE * 4` RGBA bytes over the scale's domain.
 *
 * @example
 * ```ts
 * import { colorTable } from "./_colorize.ts";
 * import assert from "node:assert/strict";
 *
 * const t = colorTable({ type: "linear", domain: [0, 2], range: ["black", "white"] });
 * assert.deepEqual(t.domain, [0, 2]);
 * assert.deepEqual([...t.lut.slice(-4)], [255, 255, 255, 255]);
 * ```
 */
export function colorTable(
  color: Plot.ScaleOptions,
): { lut: Uint8Array; domain: [number, number] } {
  const scale = Plot.scale({ color });
  const [d0, d1] = (scale.domain as number[]).map(Number);
  const lut = new Uint8Array(LUT_SIZE * 4);
  for (let i = 0; i < LUT_SIZE; i++) {
    const v = d0 + ((d1 - d0) * i) / (LUT_SIZE - 1);
    lut.set(parseCssColor(String(scale.apply(v))) ?? [0, 0, 0, 255], i * 4);
  }
  return { lut, domain: [d0, d1] };
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
