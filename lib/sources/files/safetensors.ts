/**
 * Reading the safetensors header: an 8-byte little-endian length `N`, then
 * `N` bytes of JSON naming each tensor's `dtype`, `shape` and
 * `data_offsets` (`[begin, end)` from the end of the header), plus an
 * optional `__metadata__` map of strings. The checks here run before any
 * tensor is read, so a header that lies costs nothing.
 *
 * @module
 */

import { ELEMENT_BYTES, type ElementType } from "./_tensor_sink.ts";

/** The largest header read, as the safetensors reference implementation allows. */
export const MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024;

/** One tensor's entry in the header, checked against the file size. */
export interface SafetensorsEntry {
  /** The tensor name. */
  name: string;
  /** The safetensors dtype, e.g. `"BF16"`. */
  dtype: string;
  /** The shape. */
  shape: number[];
  /** Absolute byte offset of the data in the file. */
  start: number;
  /** Bytes of data. */
  length: number;
}

/** A parsed header. */
export interface SafetensorsHeader {
  /** The tensors, in file order. */
  entries: SafetensorsEntry[];
  /** `__metadata__`, or an empty object. */
  metadata: Record<string, string>;
  /** Where the data starts. */
  dataStart: number;
}

const DTYPES: Record<string, ElementType> = {
  F16: "f16",
  BF16: "bf16",
  F32: "f32",
  F64: "f64",
};

/**
 * The attnscope element type of a safetensors dtype, or `null`.
 *
 * @param dtype E.g. `"BF16"`.
 * @returns The element type, or `null` when it is not a float type attnscope reads.
 *
 * @example
 * ```ts
 * import { safetensorsElement } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(safetensorsElement("BF16"), "bf16");
 * assert.equal(safetensorsElement("I64"), null);
 * ```
 */
export function safetensorsElement(dtype: string): ElementType | null {
  return Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype] : null;
}

/**
 * The header's length from the first 8 bytes, checked.
 *
 * @param prefix The file's first 8 bytes or more.
 * @param fileSize The file's size.
 * @returns The JSON header's byte length.
 * @throws {SyntaxError} When the length is over 100 MiB or past the end.
 *
 * @example
 * ```ts
 * import { safetensorsHeaderLength } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * const prefix = new Uint8Array(8);
 * new DataView(prefix.buffer).setBigUint64(0, 2n, true);
 * assert.equal(safetensorsHeaderLength(prefix, 100), 2);
 * assert.throws(() => safetensorsHeaderLength(prefix, 9), /header of 2 bytes/);
 * ```
 */
export function safetensorsHeaderLength(
  prefix: Uint8Array,
  fileSize: number,
): number {
  if (prefix.length < 8) {
    throw new SyntaxError(
      `it is ${prefix.length} bytes long, too short for a safetensors length prefix`,
    );
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(
    0,
    true,
  );
  if (n > BigInt(MAX_SAFETENSORS_HEADER)) {
    throw new SyntaxError(
      `its safetensors header claims ${n} bytes, over the 100 MiB limit`,
    );
  }
  const length = Number(n);
  if (8 + length > fileSize) {
    throw new SyntaxError(
      `its safetensors header of ${length} bytes runs past the end of the ${fileSize}-byte file`,
    );
  }
  return length;
}

/**
 * Parses and checks a safetensors header: every tensor's offsets lie inside
 * the file and match its shape and dtype (for the float types read here).
 *
 * @param json The header's bytes.
 * @param fileSize The file's size.
 * @returns The entries, metadata and data start.
 * @throws {SyntaxError} When the JSON or an entry is malformed or its offsets lie.
 *
 * @example
 * ```ts
 * import { parseSafetensorsHeader } from "./safetensors.ts";
 * import assert from "node:assert/strict";
 *
 * const json = new TextEncoder().encode(JSON.stringify({
 *   __metadata__: { tokens: '["a","b"]' },
 *   "layers.0": { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] },
 * }));
 * const header = parseSafetensorsHeader(json, 8 + json.length + 16);
 * assert.equal(header.entries[0].start, 8 + json.length);
 * assert.equal(header.metadata.tokens, '["a","b"]');
 * assert.throws(() => parseSafetensorsHeader(json, 8 + json.length + 8), /ends at byte/);
 * ```
 */
export function parseSafetensorsHeader(
  json: Uint8Array,
  fileSize: number,
): SafetensorsHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
  } catch (error) {
    throw new SyntaxError(
      `its safetensors header is not JSON (${(error as Error).message})`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SyntaxError("its safetensors header is not a JSON object");
  }
  const dataStart = 8 + json.length;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (name === "__metadata__") {
      if (typeof value === "object" && value !== null) {
        for (const [k, v] of Object.entries(value)) {
          if (typeof v === "string") metadata[k] = v;
        }
      }
      continue;
    }
    const v = value as {
      dtype?: unknown;
      shape?: unknown;
      data_offsets?: unknown;
    };
    const offsets = v?.data_offsets;
    if (
      typeof v?.dtype !== "string" || !Array.isArray(v.shape) ||
      !v.shape.every((n) => Number.isSafeInteger(n) && n >= 0) ||
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((n) => Number.isSafeInteger(n) && n >= 0)
    ) {
      throw new SyntaxError(
        `tensor "${name}" in its safetensors header lacks dtype, shape or data_offsets`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin || dataStart + end > fileSize) {
      throw new SyntaxError(
        `tensor "${name}" ends at byte ${
          dataStart + end
        } but the file has ${fileSize} (header offsets [${begin}, ${end}])`,
      );
    }
    const element = safetensorsElement(v.dtype);
    const shape = v.shape as number[];
    if (element) {
      const need = shape.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[element];
      if (need !== end - begin) {
        throw new SyntaxError(
          `tensor "${name}" has shape [${
            shape.join(", ")
          }] ${v.dtype} (${need} bytes) but its offsets span ${
            end - begin
          } bytes`,
        );
      }
    }
    entries.push({
      name,
      dtype: v.dtype,
      shape,
      start: dataStart + begin,
      length: end - begin,
    });
  }
  entries.sort((a, b) => a.start - b.start);
  return { entries, metadata, dataStart };
}
