/**
 * IEEE float16 to float32 conversion through a 65,536-entry table.
 *
 * Every float16 bit pattern maps to exactly one float32, so a table built
 * once (256 KiB) turns conversion into one load per value; on these machines
 * it beats the built-in `Float32Array.prototype.set(Float16Array)` (see
 * `bench/float16_bench.ts`). The table copies bit patterns (through
 * `Uint32Array` views), so NaN payloads survive and no float rounding happens.
 *
 * @module
 */

let table: Uint32Array | undefined;

/** The float32 bit pattern of every float16 bit pattern, built on first use. */
function float16Table(): Uint32Array {
  if (!table) {
    const halves = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) halves[i] = i;
    const floats = new Float32Array(65536);
    floats.set(new Float16Array(halves.buffer));
    table = new Uint32Array(floats.buffer);
  }
  return table;
}

/**
 * Converts float16 values (given as a `Float16Array` or as their raw
 * little-endian `Uint16Array` bit patterns) to float32.
 *
 * @param halves The float16 values.
 * @param out Where to write; must have the same length.
 * @default out a new `Float32Array`
 * @returns `out`, filled.
 * @throws {RangeError} When `out` has a different length.
 *
 * @example
 * ```ts
 * import { float16ToFloat32 } from "./float16.ts";
 * import assert from "node:assert/strict";
 *
 * const halves = new Float16Array([1, 0.5, -2, 65504, 2 ** -24]);
 * assert.deepEqual([...float16ToFloat32(halves)], [1, 0.5, -2, 65504, 2 ** -24]);
 * // Raw bit patterns work too: 0x3c00 is 1.0.
 * assert.deepEqual([...float16ToFloat32(new Uint16Array([0x3c00]))], [1]);
 * ```
 */
export function float16ToFloat32(
  halves: Float16Array | Uint16Array,
  out: Float32Array = new Float32Array(halves.length),
): Float32Array {
  if (out.length !== halves.length) {
    throw new RangeError(
      `Cannot convert float16 to float32: ${halves.length} values but the output holds ${out.length}; pass an output of the same length`,
    );
  }
  const bits = halves instanceof Uint16Array
    ? halves
    : new Uint16Array(halves.buffer, halves.byteOffset, halves.length);
  const lut = float16Table();
  const dst = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0, n = bits.length; i < n; i++) dst[i] = lut[bits[i]];
  return out;
}
