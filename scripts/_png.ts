/**
 * PNG pixels as RGBA, for checking screenshots and raster charts: a thin
 * layer over npm:fast-png's decoder (already the demo model's image reader)
 * that expands grey, grey+alpha, RGB and palette images to 8-bit RGBA.
 *
 * @module
 */

import { decode } from "fast-png";

/** A decoded image: RGBA bytes, row by row. */
export interface DecodedPng {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width * height * 4` bytes, RGBA. */
  rgba: Uint8Array;
}

/**
 * Decodes a PNG file's bytes to 8-bit RGBA.
 *
 * @param bytes The file.
 * @returns Width, height and RGBA pixels.
 * @throws {SyntaxError} When the bytes are not a PNG or are corrupt.
 *
 * @example A 1x1 red pixel
 * ```ts
 * import { decodePng } from "./_png.ts";
 * import { encode } from "fast-png";
 * import assert from "node:assert/strict";
 *
 * const png = encode({ width: 1, height: 1, data: new Uint8Array([255, 0, 0]), channels: 3 });
 * assert.deepEqual([...decodePng(png).rgba], [255, 0, 0, 255]);
 * ```
 */
export function decodePng(bytes: Uint8Array): DecodedPng {
  let image;
  try {
    image = decode(bytes);
  } catch (error) {
    throw new SyntaxError(
      `Cannot decode PNG: ${
        (error as Error).message
      }; pass a complete .png file`,
    );
  }
  const { width, height, palette } = image;
  if (image.depth < 8) {
    // fast-png leaves sub-byte samples packed; nothing here writes them.
    throw new SyntaxError(
      `Cannot decode PNG: bit depth ${image.depth} is not supported; pass an 8- or 16-bit PNG`,
    );
  }
  const count = width * height;
  // 16-bit samples keep their high byte: screenshots are compared by
  // brightness, where 8 bits are plenty.
  const shift = image.depth === 16 ? 8 : 0;
  const sample = (i: number) => image.data[i] >> shift;
  const rgba = new Uint8Array(count * 4);
  for (let i = 0; i < count; i++) {
    let r, g, b, a = 255;
    if (palette) {
      const entry = palette[sample(i)];
      [r, g, b] = entry;
      a = entry[3] ?? 255;
    } else if (image.channels <= 2) {
      r = g = b = sample(i * image.channels);
      if (image.channels === 2) a = sample(i * 2 + 1);
    } else {
      const s = i * image.channels;
      [r, g, b] = [sample(s), sample(s + 1), sample(s + 2)];
      if (image.channels === 4) a = sample(s + 3);
    }
    rgba.set([r, g, b, a], i * 4);
  }
  return { width, height, rgba };
}
