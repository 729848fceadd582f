/**
 * Test helper: attention files built in memory (safetensors, .npy, .npz),
 * including broken ones, to feed `loadAttention`.
 *
 * @module
 */

import { zipSync } from "fflate";

/** One safetensors tensor: raw bytes, or a declared size with no bytes. */
export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
  /** Override data_offsets (to make a header lie). */
  offsets?: [number, number];
}

/** Builds a safetensors file. */
export function safetensors(
  tensors: RawTensor[],
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: t.offsets ?? [offset, offset + t.data.length],
    };
    offset += t.data.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of tensors) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}

/** Float32 values as bytes. */
export function f32(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** A causal [1, 1, t, t] pattern: row i spreads evenly over keys 0..i. */
export function causal(t: number): number[] {
  const out: number[] = [];
  for (let q = 0; q < t; q++) {
    for (let k = 0; k < t; k++) out.push(k <= q ? 1 / (q + 1) : 0);
  }
  return out;
}

/** A `.npy` with any descr and shape, and the given data bytes. */
export function npy(
  descr: string,
  shape: number[],
  data: Uint8Array,
): Uint8Array {
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  let dict =
    `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  dict += " ".repeat(63 - (10 + dict.length) % 64) + "\n";
  const out = new Uint8Array(10 + dict.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, dict.length, true);
  out.set(new TextEncoder().encode(dict), 10);
  out.set(data, 10 + dict.length);
  return out;
}

/** A zip of the entries (stored with level 0, deflated otherwise). */
export function zip(
  entries: Record<string, Uint8Array>,
  level: 0 | 6 = 0,
): Uint8Array {
  return zipSync(entries, { level });
}

/** A `.npy` of strings, as `np.array(tokens, dtype=str)` writes it (`<U`, UTF-32). */
export function npyStrings(values: readonly string[]): Uint8Array {
  const chars = values.map((v) => [...v].map((c) => c.codePointAt(0)!));
  const width = Math.max(1, ...chars.map((c) => c.length));
  const data = new Uint32Array(values.length * width);
  chars.forEach((c, i) => data.set(c, i * width));
  return npy(`<U${width}`, [values.length], new Uint8Array(data.buffer));
}

/** A scalar int64 `.npy`, as `np.savez(..., prompt_len=160)` writes it. */
export function npyInt(value: number): Uint8Array {
  const data = new Uint8Array(8);
  new DataView(data.buffer).setBigInt64(0, BigInt(value), true);
  return npy("<i8", [], data);
}
