/**
 * Byte-level pieces of the capture file format shared by `capture_file.ts`
 * and its worker: byte shuffling and restoring one layer's values from its
 * blob. Private: not exported from `mod.ts`.
 *
 * @module
 */

import { inflateSync } from "node:zlib";
import { constants as bufferConstants } from "node:buffer";
import { float16ToFloat32 } from "../float16.ts";
import {
  allocationError,
  isAllocationFailure,
  scoreCount,
} from "../vllm/_limits.ts";
import type { ScoresDType } from "../../data/scores.ts";

/** How one layer's values are stored (a subset of the header entry). */
export interface StoredLayer {
  /** Layer index, for messages. */
  layer: number;
  /** `[Tq, H, Tk]`. */
  shape: [number, number, number];
  /** The array type to restore. */
  dtype: ScoresDType;
  /** The element type in the file. */
  stored: ScoresDType;
  /** `"deflate"` (zlib stream) or `"none"`. */
  compression: "deflate" | "none";
  /** Whether bytes were split into planes before compressing. */
  shuffle: boolean;
}

/** A failure to restore, with the state and what to do. */
export class CorruptLayerError extends Error {
  /**
   * @param state What is wrong.
   */
  constructor(state: string) {
    super(state);
    this.name = "CorruptLayerError";
  }
}

/**
 * The values of one layer from its (checksum-verified) blob. The header was
 * checked by the reader (shape exact, blob able to hold it); the count is
 * checked again here because workers run this on their own.
 * @throws {CorruptLayerError} When the blob does not inflate to the shape's size.
 * @throws {RangeError} When the memory for the layer cannot be had.
 */
export function restoreLayerData(
  entry: StoredLayer,
  blob: Uint8Array,
  action: string = `load layer ${entry.layer}`,
): Float16Array | Float32Array {
  const width = entry.stored === "float16" ? 2 : 4;
  const count = scoreCount(entry.shape, { action });
  const size = count * width;
  let raw: Uint8Array;
  try {
    if (entry.compression === "deflate" && size > bufferConstants.MAX_LENGTH) {
      throw new RangeError(
        "Array buffer allocation failed: past node:zlib's largest buffer",
      );
    }
    raw = entry.compression === "deflate"
      // One output chunk of the expected size: zlib writes straight into it
      // instead of growing and copying its buffer; the cap stops a blob that
      // inflates past it at the first chunk.
      ? asBytes(
        inflateSync(blob, {
          chunkSize: Math.max(64, size),
          maxOutputLength: Math.max(1, size),
        }),
      )
      : blob;
  } catch (error) {
    if (
      (error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" &&
      size <= bufferConstants.MAX_LENGTH
    ) {
      throw new CorruptLayerError(
        `layer ${entry.layer} inflates past the ${size} bytes its shape needs`,
      );
    }
    if (isAllocationFailure(error)) {
      throw allocationError(size, `${entry.stored} values`, action, error);
    }
    throw new CorruptLayerError(`layer ${entry.layer} does not inflate`);
  }
  if (raw.length !== count * width) {
    throw new CorruptLayerError(
      `layer ${entry.layer} holds ${raw.length} bytes but shape [${
        entry.shape.join(", ")
      }] needs ${count * width}`,
    );
  }
  try {
    // Typed views need aligned, unshared memory: unshuffling makes a fresh
    // buffer; otherwise copy.
    const bytes = entry.shuffle ? unshuffleBytes(raw, width) : raw.slice();
    const values = width === 2
      ? new Float16Array(bytes.buffer, bytes.byteOffset, count)
      : new Float32Array(bytes.buffer, bytes.byteOffset, count);
    if (entry.dtype === "float32" && values instanceof Float16Array) {
      return float16ToFloat32(values);
    }
    if (entry.dtype === "float16" && values instanceof Float32Array) {
      const out = new Float16Array(values.length);
      out.set(values);
      return out;
    }
    return values;
  } catch (error) {
    if (!isAllocationFailure(error)) throw error;
    throw allocationError(
      count * (entry.dtype === "float16" ? 2 : 4),
      `${entry.dtype} scores`,
      action,
      error,
    );
  }
}

/** Byte planes: all byte 0s of each element, then all byte 1s, ... */
export function shuffleBytes(bytes: Uint8Array, width: number): Uint8Array {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  if (width === 2 && bytes.byteOffset % 2 === 0) {
    // Whole 16-bit words at a time: several times faster than byte by byte.
    const words = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
    const hi = out.subarray(n);
    for (let i = 0; i < n; i++) {
      const w = words[i];
      out[i] = w & 0xff;
      hi[i] = w >>> 8;
    }
    return out;
  }
  for (let b = 0; b < width; b++) {
    const plane = b * n;
    for (let i = 0; i < n; i++) out[plane + i] = bytes[i * width + b];
  }
  return out;
}

/** Inverse of {@linkcode shuffleBytes}, into a fresh buffer. */
export function unshuffleBytes(bytes: Uint8Array, width: number): Uint8Array {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  if (width === 2) {
    const words = new Uint16Array(out.buffer, 0, n);
    const lo = bytes.subarray(0, n);
    const hi = bytes.subarray(n);
    for (let i = 0; i < n; i++) words[i] = lo[i] | (hi[i] << 8);
    return out;
  }
  for (let b = 0; b < width; b++) {
    const plane = b * n;
    for (let i = 0; i < n; i++) out[i * width + b] = bytes[plane + i];
  }
  return out;
}

/** A Node Buffer as a plain byte view, without copying. */
export function asBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}
