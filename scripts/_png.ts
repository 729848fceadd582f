/**
 * A small PNG decoder for checking screenshots: 8-bit grey, grey+alpha, RGB
 * and RGBA, not interlaced (what Chromium's `--screenshot` writes). Pixels
 * come back as RGBA.
 *
 * @module
 */

import { inflate } from "pako";

/** A decoded image: RGBA bytes, row by row. */
export interface DecodedPng {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width * height * 4` bytes, RGBA. */
  rgba: Uint8Array;
}

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/**
 * Decodes a PNG file's bytes.
 *
 * @param bytes The file.
 * @returns Width, height and RGBA pixels.
 * @throws {SyntaxError} When the bytes are not a PNG or use a layout this
 * decoder does not read (palette, 16-bit, interlaced).
 *
 * @example A 1x1 red pixel
 * ```ts
 * import { decodePng } from "./_png.ts";
 * import { deflate } from "pako";
 * import assert from "node:assert/strict";
 *
 * const chunk = (type: string, data: Uint8Array) => {
 *   const out = new Uint8Array(12 + data.length);
 *   const view = new DataView(out.buffer);
 *   view.setUint32(0, data.length);
 *   out.set(new TextEncoder().encode(type), 4);
 *   out.set(data, 8);
 *   return out; // the decoder does not check CRCs
 * };
 * const header = new Uint8Array(13);
 * new DataView(header.buffer).setUint32(0, 1);
 * new DataView(header.buffer).setUint32(4, 1);
 * header.set([8, 2, 0, 0, 0], 8);
 * const png = new Uint8Array([
 *   137, 80, 78, 71, 13, 10, 26, 10,
 *   ...chunk("IHDR", header),
 *   ...chunk("IDAT", deflate(new Uint8Array([0, 255, 0, 0]))),
 *   ...chunk("IEND", new Uint8Array()),
 * ]);
 * const image = decodePng(png);
 * assert.deepEqual([...image.rgba], [255, 0, 0, 255]);
 * ```
 */
export function decodePng(bytes: Uint8Array): DecodedPng {
  if (!SIGNATURE.every((b, i) => bytes[i] === b)) {
    throw new SyntaxError(
      "Cannot decode PNG: the file does not start with the PNG signature; pass a .png file",
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let width = 0, height = 0, channels = 0;
  const idat: Uint8Array[] = [];
  for (let at = 8; at + 8 <= bytes.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === "IHDR") {
      width = view.getUint32(at + 8);
      height = view.getUint32(at + 12);
      const [depth, colorType, , , interlace] = data.subarray(8, 13);
      channels = CHANNELS[colorType] ?? 0;
      if (depth !== 8 || !channels || interlace !== 0) {
        throw new SyntaxError(
          `Cannot decode PNG: bit depth ${depth}, color type ${colorType}, interlace ${interlace} is not supported; only 8-bit grey/RGB(A) without interlacing is`,
        );
      }
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    at += 12 + length;
  }
  if (!width || !height || !idat.length) {
    throw new SyntaxError(
      "Cannot decode PNG: no IHDR or IDAT chunk; the file may be truncated",
    );
  }
  const raw = inflate(concat(idat));
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) {
    throw new SyntaxError(
      `Cannot decode PNG: inflated ${raw.length} bytes but ${width}x${height} needs ${
        height * (stride + 1)
      }; the file may be truncated`,
    );
  }
  const pixels = unfilter(raw, height, stride, channels);
  return { width, height, rgba: toRgba(pixels, width * height, channels) };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

// PNG filters predict each byte from its left (a), up (b) and up-left (c)
// neighbours; undo them row by row.
function unfilter(
  raw: Uint8Array,
  height: number,
  stride: number,
  bpp: number,
): Uint8Array {
  const out = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[row + x - bpp] : 0;
      const b = y > 0 ? out[prev + x] : 0;
      const c = x >= bpp && y > 0 ? out[prev + x - bpp] : 0;
      let p = 0;
      if (filter === 1) p = a;
      else if (filter === 2) p = b;
      else if (filter === 3) p = (a + b) >> 1;
      else if (filter === 4) {
        const base = a + b - c;
        const pa = Math.abs(base - a), pb = Math.abs(base - b);
        const pc = Math.abs(base - c);
        p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) {
        throw new SyntaxError(
          `Cannot decode PNG: row ${y} uses unknown filter ${filter}; the file is corrupt`,
        );
      }
      out[row + x] = (raw[src + x] + p) & 255;
    }
  }
  return out;
}

function toRgba(
  pixels: Uint8Array,
  count: number,
  channels: number,
): Uint8Array {
  if (channels === 4) return pixels;
  const out = new Uint8Array(count * 4);
  for (let i = 0; i < count; i++) {
    const s = i * channels;
    const grey = channels <= 2;
    out[i * 4] = pixels[s];
    out[i * 4 + 1] = grey ? pixels[s] : pixels[s + 1];
    out[i * 4 + 2] = grey ? pixels[s] : pixels[s + 2];
    out[i * 4 + 3] = channels === 2 ? pixels[s + 1] : 255;
  }
  return out;
}
