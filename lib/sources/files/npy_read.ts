/**
 * Reading numpy's `.npy` header (format versions 1, 2 and 3), and the small
 * non-float arrays an `.npz` may carry beside the attention: a `tokens`
 * array of strings (`<U`) and a `prompt_len` integer.
 *
 * Layout (numpy's `lib/format.py`): the magic `\x93NUMPY`, major and minor
 * version bytes, the header length (uint16 in version 1, uint32 in 2 and 3),
 * then a Python dict literal `{'descr': '<f4', 'fortran_order': False,
 * 'shape': (1, 8, 5, 5), }` (UTF-8 in version 3, Latin-1 before), then the
 * data.
 *
 * @module
 */

import type { ElementType } from "./_tensor_sink.ts";

/** A parsed `.npy` header. */
export interface NpyHeader {
  /** numpy's type string, e.g. `"<f4"`. */
  descr: string;
  /** Whether the data is in Fortran (column-major) order. */
  fortranOrder: boolean;
  /** The shape. */
  shape: number[];
  /** Where the data starts. */
  dataOffset: number;
}

/** Float element types a `.npy` may hold, by descr without the byte order. */
const FLOATS: Record<string, ElementType> = { f2: "f16", f4: "f32", f8: "f64" };

/** Bytes needed to be sure the fixed part of a header is present. */
export const NPY_PREFIX = 12;

/**
 * Whether bytes start with the `.npy` magic.
 *
 * @param bytes The first bytes of a file.
 * @returns `true` for `\x93NUMPY`.
 *
 * @example
 * ```ts
 * import { isNpy } from "./npy_read.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isNpy(new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])), true);
 * assert.equal(isNpy(new Uint8Array([0x50, 0x4b])), false);
 * ```
 */
export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 6 && bytes[0] === 0x93 &&
    String.fromCharCode(...bytes.subarray(1, 6)) === "NUMPY";
}

/**
 * The total header length (where the data starts) from the fixed prefix.
 *
 * @param prefix At least the first {@linkcode NPY_PREFIX} bytes.
 * @returns The data offset.
 * @throws {SyntaxError} When the bytes are not a supported `.npy` header.
 *
 * @example
 * ```ts
 * import { npyHeaderLength } from "./npy_read.ts";
 * import { toNpy } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = toNpy({ data: new Float32Array(4), shape: [2, 2] });
 * assert.equal(npyHeaderLength(bytes), 128);
 * ```
 */
export function npyHeaderLength(prefix: Uint8Array): number {
  if (!isNpy(prefix)) {
    throw new SyntaxError("it does not start with the .npy magic \\x93NUMPY");
  }
  if (prefix.length < NPY_PREFIX) {
    throw new SyntaxError(
      `it ends after ${prefix.length} bytes, inside the .npy header`,
    );
  }
  const major = prefix[6];
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.length);
  if (major === 1) return 10 + view.getUint16(8, true);
  if (major === 2 || major === 3) return 12 + view.getUint32(8, true);
  throw new SyntaxError(
    `its .npy format version is ${major}.${
      prefix[7]
    }; attnscope reads versions 1 to 3`,
  );
}

/**
 * Parses a `.npy` header.
 *
 * @param bytes The file's bytes, at least through the header.
 * @returns descr, Fortran order, shape and data offset.
 * @throws {SyntaxError} When the header is malformed.
 *
 * @example
 * ```ts
 * import { readNpyHeader } from "./npy_read.ts";
 * import { toNpy } from "./npy.ts";
 * import assert from "node:assert/strict";
 *
 * const header = readNpyHeader(toNpy({ data: new Float32Array(6), shape: [1, 2, 3] }));
 * assert.deepEqual(header, { descr: "<f4", fortranOrder: false, shape: [1, 2, 3], dataOffset: 128 });
 * ```
 */
export function readNpyHeader(bytes: Uint8Array): NpyHeader {
  const dataOffset = npyHeaderLength(bytes);
  if (bytes.length < dataOffset) {
    throw new SyntaxError(
      `it ends after ${bytes.length} bytes, inside its ${dataOffset}-byte .npy header`,
    );
  }
  const start = bytes[6] === 1 ? 10 : 12;
  const text = new TextDecoder(bytes[6] === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(start, dataOffset),
  );
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new SyntaxError(
      `its .npy header ${
        JSON.stringify(text.trim().slice(0, 120))
      } lacks descr, fortran_order or shape`,
    );
  }
  const shape = shapeText.split(",").map((s) => s.trim()).filter(Boolean).map(
    Number,
  );
  if (!shape.every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new SyntaxError(`its .npy shape (${shapeText}) is not whole numbers`);
  }
  return { descr, fortranOrder: fortran === "True", shape, dataOffset };
}

/**
 * The float element type and byte order of a descr, or `null` for other types.
 *
 * @param descr numpy's type string.
 * @returns The element type and whether it is little-endian.
 *
 * @example
 * ```ts
 * import { npyFloatType } from "./npy_read.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(npyFloatType(">f4"), { element: "f32", littleEndian: false });
 * assert.equal(npyFloatType("<i8"), null);
 * ```
 */
export function npyFloatType(
  descr: string,
): { element: ElementType; littleEndian: boolean } | null {
  const match = /^([<>=|])(f[248])$/.exec(descr);
  if (!match) return null;
  return { element: FLOATS[match[2]], littleEndian: match[1] !== ">" };
}

/**
 * Reads a small whole `.npy` of strings (`<U`) or integers (`<i`, `<u`), as
 * an `.npz` stores `tokens` and `prompt_len`.
 *
 * @param bytes The whole `.npy`.
 * @returns The values, flattened.
 * @throws {SyntaxError} When the type is neither or the data is short.
 *
 * @example
 * ```ts
 * import { readNpyValues } from "./npy_read.ts";
 * import assert from "node:assert/strict";
 *
 * const dict = "{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }";
 * const header = new Uint8Array(10 + dict.length);
 * header.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, dict.length, 0]);
 * header.set(new TextEncoder().encode(dict), 10);
 * const data = new Uint8Array(new Uint32Array([104, 105, 33, 0]).buffer); // "hi", "!"
 * const bytes = new Uint8Array([...header, ...data]);
 * assert.deepEqual(readNpyValues(bytes), ["hi", "!"]);
 * ```
 */
export function readNpyValues(bytes: Uint8Array): (string | number)[] {
  const header = readNpyHeader(bytes);
  const count = header.shape.reduce((a, b) => a * b, 1);
  const match = /^([<>=|])([Uiu])(\d+)$/.exec(header.descr);
  if (!match) {
    throw new SyntaxError(
      `its type ${header.descr} is neither strings (<U) nor integers`,
    );
  }
  const little = match[1] !== ">";
  const size = Number(match[3]) * (match[2] === "U" ? 4 : 1);
  const need = header.dataOffset + count * size;
  if (bytes.length < need) {
    throw new SyntaxError(
      `it ends after ${bytes.length} bytes but its shape needs ${need}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const out: (string | number)[] = [];
  for (let i = 0; i < count; i++) {
    const at = header.dataOffset + i * size;
    if (match[2] === "U") {
      let s = "";
      for (let c = 0; c < size; c += 4) {
        const code = view.getUint32(at + c, little);
        if (code === 0) break;
        s += String.fromCodePoint(code);
      }
      out.push(s);
    } else {
      out.push(readInteger(view, at, size, match[2] === "i", little));
    }
  }
  return out;
}

function readInteger(
  view: DataView,
  at: number,
  size: number,
  signed: boolean,
  little: boolean,
): number {
  switch (size) {
    case 1:
      return signed ? view.getInt8(at) : view.getUint8(at);
    case 2:
      return signed ? view.getInt16(at, little) : view.getUint16(at, little);
    case 4:
      return signed ? view.getInt32(at, little) : view.getUint32(at, little);
    case 8:
      return Number(
        signed ? view.getBigInt64(at, little) : view.getBigUint64(at, little),
      );
  }
  throw new SyntaxError(`its integer size ${size} is not 1, 2, 4 or 8 bytes`);
}
