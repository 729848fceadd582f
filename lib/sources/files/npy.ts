/**
 * Export scores (or any float array with a shape) as numpy's `.npy` format,
 * version 1.0, so Python users can `numpy.load` a layer.
 *
 * The format (numpy's `lib/format.py`): the magic `\x93NUMPY`, version bytes
 * `1, 0`, a little-endian uint16 header length, then an ASCII Python dict
 * literal `{'descr': '<f2', 'fortran_order': False, 'shape': (Tq, H, Tk), }`
 * padded with spaces and ended by `\n` so that the data starts at a multiple
 * of 64 bytes, then the raw little-endian values in C order.
 *
 * @module
 */

import type { AttentionScores } from "../../data/scores.ts";
import { allocateBytes, readMaxBytes, sizeText } from "../vllm/_limits.ts";

/** Element types `.npy` export supports, with their numpy `descr`. */
export type NpyDType = "float16" | "float32" | "float64";

/** Any float array with a C-order shape, e.g. a rollout matrix. */
export interface NpyArray {
  /** The values in C order. */
  readonly data: Float16Array | Float32Array | Float64Array;
  /** The shape; its product must equal `data.length`. */
  readonly shape: readonly number[];
}

/** Options for {@linkcode toNpy}. */
export interface ToNpyOptions {
  /**
   * Element type written: `"float16"` (`<f2`), `"float32"` (`<f4`) or
   * `"float64"` (`<f8`). Narrowing rounds to nearest.
   * @default {the array's own type}
   */
  dtype?: NpyDType;
  /**
   * Largest file to make, in bytes: past it the export is refused before
   * anything is allocated (widening float16 to float64 quadruples a layer);
   * `Infinity` turns the check off.
   * @default {DEFAULT_MAX_BYTES} 8 GiB, which a 24 GiB machine survives
   */
  maxBytes?: number;
}

const DESCR: Record<NpyDType, string> = {
  float16: "<f2",
  float32: "<f4",
  float64: "<f8",
};
const BYTES: Record<NpyDType, number> = { float16: 2, float32: 4, float64: 8 };
const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/**
 * Encodes scores as `.npy` bytes (format 1.0, C order, shape `[Tq, H, Tk]`).
 *
 * @param scores The scores, or any `{ data, shape }` float array.
 * @param options The element type to write.
 * @returns The file's bytes.
 * @throws {TypeError} When the shape does not match the data or the dtype is unknown.
 * @throws {RangeError} When the file would be larger than `maxBytes`, or its
 *   memory cannot be had.
 *
 * @example Write a layer for numpy
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { toNpy } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
 * const bytes = toNpy(scores, { dtype: "float16" });
 * assert.equal(new TextDecoder().decode(bytes.subarray(1, 6)), "NUMPY");
 * assert.equal(bytes.length, 128 + 4 * 2); // header padded to 64-byte multiple, four float16 values
 * assert.match(new TextDecoder().decode(bytes.subarray(10, 128)), /'shape': \(2, 1, 2\)/);
 * ```
 */
export function toNpy(
  scores: AttentionScores | NpyArray,
  options: ToNpyOptions = {},
): Uint8Array {
  const { data, shape } = scores;
  const count = shape.reduce((a, b) => a * b, 1);
  // An exact product that equals the array's length is the evidence the
  // shape can be trusted before the output is sized from it.
  if (
    !shape.every((n) => Number.isInteger(n) && n >= 0) ||
    !Number.isSafeInteger(count) || count !== data.length
  ) {
    throw new TypeError(
      `Cannot write .npy: shape [${
        shape.join(", ")
      }] does not match ${data.length} values; pass an array whose shape product equals its length`,
    );
  }
  const dtype = options.dtype ?? dtypeOf(data);
  if (!(dtype in DESCR)) {
    throw new TypeError(
      `Cannot write .npy: unknown dtype ${
        JSON.stringify(dtype)
      }; use "float16", "float32" or "float64"`,
    );
  }
  const maxBytes = readMaxBytes(options.maxBytes, "write .npy");
  const header = npyHeader(DESCR[dtype], shape);
  const size = header.length + count * BYTES[dtype];
  if (size > maxBytes) {
    throw new RangeError(
      `Cannot write .npy: the file would take ${
        sizeText(size)
      } as ${dtype}, over maxBytes ${
        sizeText(maxBytes)
      }; pass a larger maxBytes if this machine has the memory, or a narrower dtype`,
    );
  }
  const out = allocateBytes(size, `${dtype} .npy bytes`, "write .npy");
  out.set(header);
  const body = out.subarray(header.length);
  // The typed-array views below are little-endian on every platform Deno runs on.
  const target = dtype === "float16"
    ? new Float16Array(body.buffer, body.byteOffset, count)
    : dtype === "float32"
    ? new Float32Array(body.buffer, body.byteOffset, count)
    : new Float64Array(body.buffer, body.byteOffset, count);
  target.set(data);
  return out;
}

/** The header (magic through padding) for a descr and shape. */
function npyHeader(descr: string, shape: readonly number[]): Uint8Array {
  // Python's tuple syntax: a one-element tuple needs a trailing comma.
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict =
    `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  // magic (6) + version (2) + length (2) + dict + padding + "\n" ≡ 0 mod 64.
  const unpadded = 10 + dict.length + 1;
  const padded = Math.ceil(unpadded / 64) * 64;
  const text = dict + " ".repeat(padded - unpadded) + "\n";
  const out = new Uint8Array(padded);
  out.set(MAGIC);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, text.length, true);
  out.set(new TextEncoder().encode(text), 10);
  return out;
}

function dtypeOf(data: NpyArray["data"]): NpyDType {
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Float32Array) return "float32";
  return "float16";
}
