/**
 * Captures saved to one compact file and loaded back without a server, so an
 * analysis can be shared and rerun: a notebook that loads a saved capture
 * draws exactly the charts it drew live.
 *
 * ## The file format (version 1), little-endian
 *
 * | bytes | content |
 * |---|---|
 * | 0-7 | magic `\x89ATTNCAP` (the high first byte catches text-mode mangling, as PNG's does) |
 * | 8-9 | format version, uint16 (1) |
 * | 10-11 | reserved, 0 |
 * | 12-15 | header length `n`, uint32 |
 * | 16-19 | CRC-32 of the header bytes |
 * | 20 … 20+n | header: UTF-8 JSON (below) |
 * | then | one blob per layer, back to back |
 * | last 8 | `ATTNEND\n` |
 *
 * The header holds `labels`, `text`, `response` (without score payloads),
 * `model`, `promptLen`, `finishReason`, and per layer: `layer`, `model`,
 * `shape`, `dtype` (the array type to restore), `stored` (`"float16"` or
 * `"float32"`), `compression` (`"deflate"`: zlib stream, or `"none"`),
 * `shuffle` (bytes split into planes before compressing: all first bytes,
 * then all second bytes, ...; float16's high bytes compress far better
 * apart), `keyOffset`, `queryPositions` (only when not the default), the
 * raw `tokenMeta`, and the blob's `offset` (from the first blob), `length`
 * and `crc32`. Python reads it with `json`, `zlib` and `numpy` alone.
 *
 * @module
 */

import { crc32, deflateSync, inflateSync } from "node:zlib";
import { type CaptureLike, normalizeCapture } from "./capture_input.ts";
import { type AttentionCapture, AttentionLayer } from "./layer.ts";
import { float16ToFloat32 } from "./float16.ts";
import { AttentionScores, type ScoresDType } from "./scores.ts";
import { TokenMeta } from "./token_meta.ts";
import { warn } from "./warn.ts";

/** The format version this module writes; it reads this version only. */
export const CAPTURE_FORMAT_VERSION = 1;

const MAGIC = new Uint8Array([0x89, 0x41, 0x54, 0x54, 0x4e, 0x43, 0x41, 0x50]);
const TRAILER = new TextEncoder().encode("ATTNEND\n");
const PREFIX = 20;

/** Options for {@linkcode encodeCapture} and {@linkcode saveCapture}. */
export interface EncodeCaptureOptions {
  /**
   * Element type stored. `"float16"` is what the server sent, so it loses
   * nothing for scores decoded from the wire; other float32 values are
   * rounded, with a warning. `"float32"` keeps float32 scores exactly.
   * @default {"float16"}
   */
  dtype?: ScoresDType;
  /**
   * `"deflate"` (zlib, readable everywhere) or `"none"` (fastest).
   * @default {"deflate"}
   */
  compression?: "deflate" | "none";
  /**
   * zlib level 1 (fastest) to 9 (smallest).
   * @default {6}
   */
  level?: number;
}

/** A capture as loaded from a file. */
export interface SavedCapture {
  /** Every layer, keyed by layer index. */
  attention: AttentionCapture;
  /** Token labels per absolute position, or `null`. */
  labels: string[] | null;
  /** The response metadata (no score payloads), or `null`. */
  response: Record<string, unknown> | null;
  /** The generated text, or `null`. */
  text: string | null;
  /** The model name, or `null`. */
  model: string | null;
  /** Prompt tokens, or `null`. */
  promptLen: number | null;
  /** The finish reason, or `null`. */
  finishReason: string | null;
}

interface LayerEntry {
  layer: number;
  model: string | null;
  shape: [number, number, number];
  dtype: ScoresDType;
  stored: ScoresDType;
  compression: "deflate" | "none";
  shuffle: boolean;
  keyOffset: number;
  queryPositions?: number[];
  tokenMeta: unknown;
  offset: number;
  length: number;
  crc32: number;
}

interface Header {
  format: "attnscope-capture";
  version: number;
  labels: string[] | null;
  text: string | null;
  response: Record<string, unknown> | null;
  model: string | null;
  promptLen: number | null;
  finishReason: string | null;
  layers: LayerEntry[];
  blobBytes: number;
}

/**
 * Encodes a capture, with its labels and response metadata, as the bytes of
 * a capture file.
 *
 * @param capture What `extractAttentionFromResponse` or `captureAttention` returns.
 * @param options Stored element type and compression.
 * @returns The file's bytes.
 * @throws {TypeError} When the capture holds no layers or an option is invalid.
 *
 * @example Round trip in memory
 * ```ts
 * import { decodeCapture, encodeCapture } from "./capture_file.ts";
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 2,
 *   model: "demo",
 *   scores: new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 1, total_len: 2 }),
 * });
 * const bytes = encodeCapture({ attention: { 2: layer }, labels: ["<bos>", "hi"], text: "hi" });
 * const loaded = decodeCapture(bytes);
 * assert.deepEqual(loaded.labels, ["<bos>", "hi"]);
 * assert.deepEqual([...loaded.attention[2].scores.data], [1, 0, 0.25, 0.75]);
 * assert.equal(loaded.attention[2].scores.dtype, "float32");
 * ```
 */
export function encodeCapture(
  capture: CaptureLike,
  options: EncodeCaptureOptions = {},
): Uint8Array {
  const stored = options.dtype ?? "float16";
  const compression = options.compression ?? "deflate";
  const level = options.level ?? 6;
  if (stored !== "float16" && stored !== "float32") {
    throw new TypeError(
      `Cannot encode capture: dtype ${
        JSON.stringify(stored)
      } is not "float16" or "float32"`,
    );
  }
  if (compression !== "deflate" && compression !== "none") {
    throw new TypeError(
      `Cannot encode capture: compression ${
        JSON.stringify(compression)
      } is not "deflate" or "none"`,
    );
  }
  if (!Number.isInteger(level) || level < 1 || level > 9) {
    throw new RangeError(
      `Cannot encode capture: level ${level} is not an integer from 1 to 9`,
    );
  }
  const normalized = normalizeCapture(capture, "encode capture");
  const record = (typeof capture === "object" && capture !== null &&
      "attention" in capture)
    ? capture as unknown as Record<string, unknown>
    : {};
  const blobs: Uint8Array[] = [];
  const entries: LayerEntry[] = [];
  let offset = 0;
  let rounded = 0;
  for (const layer of normalized.layers) {
    const s = layer.scores;
    const { bytes, lossy } = storedBytes(s, stored);
    if (lossy) rounded++;
    const shuffle = compression === "deflate";
    const body = shuffle
      ? shuffleBytes(bytes, stored === "float16" ? 2 : 4)
      : bytes;
    const blob = compression === "deflate"
      ? asBytes(deflateSync(body, { level }))
      : body;
    blobs.push(blob);
    entries.push({
      layer: layer.layer,
      model: layer.model,
      shape: [...s.shape] as [number, number, number],
      dtype: s.dtype,
      stored,
      compression,
      shuffle,
      keyOffset: s.keyOffset,
      ...(defaultPositions(s) ? {} : { queryPositions: [...s.queryPositions] }),
      tokenMeta: layer.tokenMeta.toJSON(),
      offset,
      length: blob.length,
      crc32: crc32(blob),
    });
    offset += blob.length;
  }
  if (rounded > 0) {
    warn(
      `encodeCapture: ${rounded} layer(s) held float32 values that float16 cannot represent and were rounded; pass { dtype: "float32" } to keep them exactly`,
    );
  }
  const header: Header = {
    format: "attnscope-capture",
    version: CAPTURE_FORMAT_VERSION,
    labels: normalized.labels ? [...normalized.labels].map(String) : null,
    text: normalized.text,
    response: responseMetadata(normalized.response),
    model: typeof record.model === "string"
      ? record.model
      : normalized.layers[0].model,
    promptLen: typeof record.promptLen === "number" ? record.promptLen : null,
    finishReason: typeof record.finishReason === "string"
      ? record.finishReason
      : null,
    layers: entries,
    blobBytes: offset,
  };
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(PREFIX + json.length + offset + TRAILER.length);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint16(8, CAPTURE_FORMAT_VERSION, true);
  view.setUint16(10, 0, true);
  view.setUint32(12, json.length, true);
  view.setUint32(16, crc32(json), true);
  out.set(json, PREFIX);
  let at = PREFIX + json.length;
  for (const blob of blobs) {
    out.set(blob, at);
    at += blob.length;
  }
  out.set(TRAILER, at);
  return out;
}

/**
 * Decodes the bytes of a capture file.
 *
 * @param bytes The file's bytes.
 * @param source How to name the bytes in errors (e.g. the path).
 * @returns The capture, its labels and response metadata.
 * @throws {SyntaxError} When the bytes are not a capture file, are truncated or corrupted.
 *
 * @example A foreign file is refused
 * ```ts
 * import { decodeCapture } from "./capture_file.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(
 *   () => decodeCapture(new TextEncoder().encode('{"choices": []}')),
 *   /not an attnscope capture file \(it looks like JSON/,
 * );
 * ```
 */
export function decodeCapture(
  bytes: Uint8Array,
  source: string = "bytes",
): SavedCapture {
  const fail = (state: string, todo: string) =>
    new SyntaxError(`Cannot load capture from ${source}: ${state}; ${todo}`);
  if (bytes.length < PREFIX || !MAGIC.every((b, i) => bytes[i] === b)) {
    if (
      bytes.length > 0 &&
      MAGIC.subarray(0, bytes.length).every((b, i) => bytes[i] === b)
    ) {
      throw fail(
        `the file is only ${bytes.length} bytes`,
        "it was truncated; copy or save it again",
      );
    }
    throw fail(
      `not an attnscope capture file (${describeForeign(bytes)})`,
      "load a file written by saveCapture",
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint16(8, true);
  if (version !== CAPTURE_FORMAT_VERSION) {
    throw fail(
      `the file has format version ${version} but this attnscope reads version ${CAPTURE_FORMAT_VERSION}`,
      version > CAPTURE_FORMAT_VERSION
        ? "upgrade attnscope"
        : "save the capture again",
    );
  }
  const headerLength = view.getUint32(12, true);
  if (PREFIX + headerLength > bytes.length) {
    throw fail(
      `the file is ${bytes.length} bytes but its header alone needs ${
        PREFIX + headerLength
      }`,
      "it was truncated; copy or save it again",
    );
  }
  const json = bytes.subarray(PREFIX, PREFIX + headerLength);
  if (crc32(json) !== view.getUint32(16, true)) {
    throw fail(
      "the header's checksum does not match",
      "the file is corrupted; copy or save it again",
    );
  }
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder().decode(json));
  } catch {
    throw fail(
      "the header is not valid JSON",
      "the file is corrupted; copy or save it again",
    );
  }
  const blobStart = PREFIX + headerLength;
  const expected = blobStart + header.blobBytes + TRAILER.length;
  if (bytes.length < expected) {
    throw fail(
      `the file is ${bytes.length} bytes but its header says ${expected}`,
      "it was truncated; copy or save it again",
    );
  }
  const trailer = bytes.subarray(expected - TRAILER.length, expected);
  if (!TRAILER.every((b, i) => trailer[i] === b)) {
    throw fail(
      "the end marker is missing",
      "the file is corrupted; copy or save it again",
    );
  }
  if (bytes.length > expected) {
    warn(
      `decodeCapture: ${
        bytes.length - expected
      } unexpected byte(s) after the end of ${source} were ignored`,
    );
  }
  const attention: AttentionCapture = {};
  for (const entry of header.layers) {
    const blob = bytes.subarray(
      blobStart + entry.offset,
      blobStart + entry.offset + entry.length,
    );
    if (crc32(blob) !== entry.crc32) {
      throw fail(
        `layer ${entry.layer}'s checksum does not match`,
        "the file is corrupted; copy or save it again",
      );
    }
    attention[entry.layer] = new AttentionLayer({
      layer: entry.layer,
      model: entry.model,
      scores: restoreScores(entry, blob, fail),
      tokenMeta: TokenMeta.from(entry.tokenMeta, entry.layer),
    });
  }
  return {
    attention,
    labels: header.labels,
    response: header.response,
    text: header.text,
    model: header.model,
    promptLen: header.promptLen,
    finishReason: header.finishReason,
  };
}

/**
 * Saves a capture to a file (see the module doc for the format).
 *
 * @param path Where to write; conventionally `*.attn`.
 * @param capture What `extractAttentionFromResponse` or `captureAttention` returns.
 * @param options Stored element type and compression.
 * @returns Resolves when written.
 *
 * @example
 * ```ts
 * import { loadCapture, saveCapture } from "./capture_file.ts";
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 0,
 *   model: null,
 *   scores: new AttentionScores(new Float16Array([1, 0, 0.5, 0.5]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
 * });
 * const path = await Deno.makeTempFile({ suffix: ".attn" });
 * await saveCapture(path, { 0: layer });
 * const loaded = await loadCapture(path);
 * assert.deepEqual(loaded.attention[0].scores.data, layer.scores.data);
 * await Deno.remove(path);
 * ```
 */
export async function saveCapture(
  path: string | URL,
  capture: CaptureLike,
  options: EncodeCaptureOptions = {},
): Promise<void> {
  await Deno.writeFile(path, encodeCapture(capture, options));
}

/**
 * Loads a capture saved by {@linkcode saveCapture}.
 *
 * @param path The file.
 * @returns The capture, labels and response metadata.
 * @throws {SyntaxError} When the file is not a capture file, is truncated or corrupted.
 *
 * @example
 * ```ts
 * import { loadCapture } from "./capture_file.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hello");
 * await assert.rejects(loadCapture(path), /not an attnscope capture file/);
 * await Deno.remove(path);
 * ```
 */
export async function loadCapture(path: string | URL): Promise<SavedCapture> {
  return decodeCapture(await Deno.readFile(path), String(path));
}

/** The scores' bytes in the stored type, and whether narrowing rounded. */
function storedBytes(
  s: AttentionScores,
  stored: ScoresDType,
): { bytes: Uint8Array; lossy: boolean } {
  const data = s.data;
  if (stored === "float32") {
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data);
    return {
      bytes: new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength),
      lossy: false,
    };
  }
  if (data instanceof Float16Array) {
    return {
      bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      lossy: false,
    };
  }
  const f16 = new Float16Array(data.length);
  f16.set(data);
  let lossy = false;
  for (let i = 0; i < data.length; i++) {
    if (f16[i] !== data[i]) {
      lossy = true;
      break;
    }
  }
  return { bytes: new Uint8Array(f16.buffer), lossy };
}

function restoreScores(
  entry: LayerEntry,
  blob: Uint8Array,
  fail: (state: string, todo: string) => SyntaxError,
): AttentionScores {
  const width = entry.stored === "float16" ? 2 : 4;
  const count = entry.shape[0] * entry.shape[1] * entry.shape[2];
  let raw: Uint8Array;
  try {
    raw = entry.compression === "deflate"
      ? new Uint8Array(inflateSync(blob))
      : blob.slice();
  } catch {
    throw fail(
      `layer ${entry.layer} does not inflate`,
      "the file is corrupted; copy or save it again",
    );
  }
  if (raw.length !== count * width) {
    throw fail(
      `layer ${entry.layer} holds ${raw.length} bytes but shape [${
        entry.shape.join(", ")
      }] needs ${count * width}`,
      "the file is corrupted; copy or save it again",
    );
  }
  // Typed views need aligned, unshared memory: unshuffling makes a fresh
  // buffer; otherwise copy.
  const bytes = entry.shuffle ? unshuffleBytes(raw, width) : raw.slice();
  const values = width === 2
    ? new Float16Array(bytes.buffer, bytes.byteOffset, count)
    : new Float32Array(bytes.buffer, bytes.byteOffset, count);
  let data: Float16Array | Float32Array = values;
  if (entry.dtype === "float32" && values instanceof Float16Array) {
    data = float16ToFloat32(values);
  } else if (entry.dtype === "float16" && values instanceof Float32Array) {
    data = new Float16Array(values.length);
    data.set(values);
  }
  return new AttentionScores(data, entry.shape, {
    keyOffset: entry.keyOffset,
    queryPositions: entry.queryPositions,
  });
}

/** Byte planes: all byte 0s of each element, then all byte 1s, ... */
function shuffleBytes(bytes: Uint8Array, width: number): Uint8Array {
  const n = bytes.length / width;
  const out = new Uint8Array(bytes.length);
  if (width === 2 && bytes.byteOffset % 2 === 0) {
    // Whole 16-bit words at a time: about 4x faster than byte by byte.
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

function unshuffleBytes(bytes: Uint8Array, width: number): Uint8Array {
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
function asBytes(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

function defaultPositions(s: AttentionScores): boolean {
  const first = s.keyOffset + s.keyLength - s.queryLength;
  return s.queryPositions.every((p, i) => p === first + i);
}

/** The response without score payloads (a raw body may still carry them). */
function responseMetadata(response: unknown): Record<string, unknown> | null {
  if (
    typeof response !== "object" || response === null || Array.isArray(response)
  ) {
    return null;
  }
  const copy: Record<string, unknown> = {
    ...response as Record<string, unknown>,
  };
  if (Array.isArray(copy.attn_capture_data)) {
    copy.attn_capture_data = copy.attn_capture_data.map((layer) => {
      if (typeof layer !== "object" || layer === null) return layer;
      const { data: _data, ...rest } = layer as Record<string, unknown>;
      return rest;
    });
  }
  return copy;
}

function describeForeign(bytes: Uint8Array): string {
  if (bytes.length === 0) return "it is empty";
  if (bytes[0] === 0x93 && bytes[1] === 0x4e) {
    return "it looks like a numpy .npy file";
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return "it looks like gzip data";
  if (bytes[0] === 0x50 && bytes[1] === 0x4b) return "it looks like a zip file";
  const first = String.fromCharCode(bytes[0]);
  if (first === "{" || first === "[") {
    return "it looks like JSON; a raw response loads with extractAttentionFromResponse";
  }
  return `it starts with bytes ${
    [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(
      " ",
    )
  }`;
}
