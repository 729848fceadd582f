/**
 * Turns a PNG into the demo model's vision tokens: the image is cut into a
 * grid of at most 8 x 8 patches and each patch becomes one token whose
 * features are its mean red, green and blue (0..1, transparent pixels seen
 * over white).
 *
 * PNG decoding is npm:fast-png (every colour type, bit depth and interlacing
 * of the PNG standard); this module only reads pixels and averages them.
 *
 * @module
 */

import { decode, hasPngSignature } from "npm:fast-png@^6.4.0";

/** Most patches along each side. */
export const PATCH_GRID = 8;

/** The patches of one image. */
export interface ImagePatches {
  /** Patch rows. */
  rows: number;
  /** Patch columns. */
  cols: number;
  /** Mean red, green, blue of each patch, row-major. */
  features: Float32Array[];
}

/**
 * Decodes a PNG and averages it into patches.
 *
 * @param png The PNG file's bytes.
 * @returns The patch grid and features.
 * @throws {TypeError} When the bytes are not a PNG or the PNG is damaged.
 *
 * @example A 2x1 image: one red pixel, one blue pixel
 * ```ts
 * import { encode } from "fast-png";
 * import { imagePatches } from "./image.ts";
 * import assert from "node:assert/strict";
 * const png = encode({ width: 2, height: 1, channels: 3, data: new Uint8Array([255, 0, 0, 0, 0, 255]) });
 * const { rows, cols, features } = imagePatches(png);
 * assert.deepEqual([rows, cols], [1, 2]);
 * assert.deepEqual([...features[0]], [1, 0, 0]);
 * ```
 */
export function imagePatches(png: Uint8Array): ImagePatches {
  if (!(png instanceof Uint8Array) || !hasPngSignature(png)) {
    const head = png instanceof Uint8Array
      ? [...png.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0"))
        .join(" ")
      : typeof png;
    throw new TypeError(
      `Cannot read the image: it is not a PNG (it starts with ${
        head || "nothing"
      }); send a PNG, e.g. as a data:image/png;base64 URL`,
    );
  }
  let image: ReturnType<typeof decode>;
  try {
    image = decode(png);
  } catch (error) {
    throw new TypeError(
      `Cannot decode the PNG: ${
        (error as Error).message
      }; re-save the image as a standard PNG`,
    );
  }
  const { width, height, channels, depth } = image;
  if (width < 1 || height < 1) {
    throw new TypeError(
      `Cannot read the image: it is ${width}x${height} pixels; send a non-empty image`,
    );
  }
  const data = image.data;
  const palette = image.palette;
  const max = (1 << depth) - 1;
  const rowValues = Math.ceil((width * channels * depth) / 8);
  const sample = (x: number, y: number, c: number): number => {
    const index = x * channels + c;
    if (depth >= 8) return data[y * width * channels + index];
    const bit = index * depth;
    const byte = data[y * rowValues + (bit >> 3)];
    return (byte >> (8 - depth - (bit & 7))) & max;
  };
  const rgb = (x: number, y: number): [number, number, number] => {
    if (palette) {
      const entry = palette[sample(x, y, 0)] ?? [0, 0, 0];
      return [entry[0] / 255, entry[1] / 255, entry[2] / 255];
    }
    const hasAlpha = channels === 2 || channels === 4;
    const alpha = hasAlpha ? sample(x, y, channels - 1) / max : 1;
    const over = (v: number) => alpha * (v / max) + (1 - alpha);
    if (channels <= 2) {
      const g = over(sample(x, y, 0));
      return [g, g, g];
    }
    return [
      over(sample(x, y, 0)),
      over(sample(x, y, 1)),
      over(sample(x, y, 2)),
    ];
  };
  const rows = Math.min(PATCH_GRID, height), cols = Math.min(PATCH_GRID, width);
  const features: Float32Array[] = [];
  for (let pr = 0; pr < rows; pr++) {
    const y0 = Math.floor((pr * height) / rows),
      y1 = Math.floor(((pr + 1) * height) / rows);
    for (let pc = 0; pc < cols; pc++) {
      const x0 = Math.floor((pc * width) / cols),
        x1 = Math.floor(((pc + 1) * width) / cols);
      let r = 0, g = 0, b = 0;
      for (let y = y0; y < y1; y++) {
        for (let x = x0; x < x1; x++) {
          const [pr_, pg, pb] = rgb(x, y);
          r += pr_;
          g += pg;
          b += pb;
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      features.push(new Float32Array([r / n, g / n, b / n]));
    }
  }
  return { rows, cols, features };
}
