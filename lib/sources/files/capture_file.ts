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

import { crc32, deflateSync } from "node:zlib";
import {
  asBytes,
  CorruptLayerError,
  restoreLayerData,
  shuffleBytes,
} from "./_capture_codec.ts";
import { writeFileAtomic } from "../../atomic_write.ts";
import {
  checkExpansion,
  DecodeBudget,
  readMaxBytes,
  scoreCount,
} from "../vllm/_limits.ts";
import {
  type CaptureLike,
  normalizeCapture,
} from "../../data/capture_input.ts";
import { type AttentionCapture, AttentionLayer } from "../../data/layer.ts";
import { AttentionScores, type ScoresDType } from "../../data/scores.ts";
import { TokenMeta } from "../../data/token_meta.ts";
import { warn } from "../../warn.ts";
import {
  type ProgressOptions,
  type ProgressReporter,
  progressReporter,
  ProgressTracker,
} from "../../progress.ts";
import { fileSource } from "./_byte_source.ts";

/**
 * The format version this module writes; it reads this version only.
 *
 * @example
 * ```ts
 * import { CAPTURE_FORMAT_VERSION } from "./capture_file.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CAPTURE_FORMAT_VERSION, 1);
 * ```
 */
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
 * import { AttentionLayer } from "../../data/layer.ts";
 * import { AttentionScores } from "../../data/scores.ts";
 * import { TokenMeta } from "../../data/token_meta.ts";
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
 * @param options The decoded-size limit.
 * @returns The capture, its labels and response metadata.
 * @throws {SyntaxError} When the bytes are not a capture file, are truncated or
 *   corrupted (a header whose shapes or blob sizes cannot be true included).
 * @throws {RangeError} When the capture decodes to more than `maxBytes`, or
 *   its memory cannot be had.
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
  options: DecodeCaptureOptions = {},
): SavedCapture {
  const reporter = progressReporter(options, "decodeCapture");
  try {
    const container = readContainer(bytes, source);
    checkBudget(container, options.maxBytes);
    const tracker = new ProgressTracker(reporter.onProgress, {
      phase: "decoding",
      layersTotal: container.header.layers.length,
    });
    const data = restoreLayers(container, () => tracker.finished());
    const decoded = assemble(container.header, data);
    tracker.done();
    reporter.finish("decoded");
    return decoded;
  } catch (error) {
    reporter.finish(null);
    throw error;
  }
}

/** Every layer restored on the calling thread; `onLayer` after each. */
function restoreLayers(
  container: Container,
  onLayer: () => void,
): (Float16Array | Float32Array)[] {
  return container.header.layers.map((entry) => {
    let data;
    try {
      data = restoreLayerData(
        entry,
        layerBlob(container, entry),
        layerAction(entry, container.source),
      );
    } catch (error) {
      throw asLoadError(error, container.source);
    }
    onLayer();
    return data;
  });
}

/**
 * Options for {@linkcode decodeCapture}. Progress: `decoding` with layers
 * restored of the file's layers, then `done`.
 */
export interface DecodeCaptureOptions extends ProgressOptions {
  /**
   * Largest decoded size of the capture in bytes (the layers' restored
   * types): a file past it is refused before any layer is inflated, with
   * its size and how to raise the limit; `Infinity` turns the check off.
   * @default {DEFAULT_MAX_BYTES} 8 GiB, which a 24 GiB machine survives
   */
  maxBytes?: number;
}

function layerAction(entry: { layer: unknown }, source: string): string {
  return `load layer ${entry.layer} from ${source}`;
}

/** Refuses a capture whose layers decode to more than `maxBytes`. */
function checkBudget(container: Container, maxBytes: unknown): void {
  const budget = new DecodeBudget(
    readMaxBytes(maxBytes, `load capture from ${container.source}`),
    "pass a larger maxBytes to loadCapture",
  );
  for (const entry of container.header.layers) {
    budget.take(
      entry.shape[0] * entry.shape[1] * entry.shape[2],
      entry.dtype,
      layerAction(entry, container.source),
    );
  }
}

/**
 * Checks what the header says against what can be true, before anything is
 * allocated from it: the checksum only proves the header is what was
 * written, not that a writer told the truth.
 */
function checkHeader(header: unknown, source: string): Header {
  const fail = (state: string) =>
    loadError(source, state, "the file is corrupted; copy or save it again");
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw fail("the header is not a JSON object");
  }
  const h = header as Header;
  if (!Number.isSafeInteger(h.blobBytes) || h.blobBytes < 0) {
    throw fail(
      `the header's blobBytes ${
        JSON.stringify(h.blobBytes)
      } is not a byte count`,
    );
  }
  if (!Array.isArray(h.layers) || h.layers.length === 0) {
    throw fail("the header lists no layers");
  }
  const seen = new Set<number>();
  for (const [n, entry] of h.layers.entries()) {
    if (entry === null || typeof entry !== "object") {
      throw fail(`header entry ${n} is not a layer object`);
    }
    const name = Number.isInteger(entry.layer) && entry.layer >= 0
      ? `layer ${entry.layer}`
      : `header entry ${n}`;
    if (name !== `layer ${entry.layer}` || seen.has(entry.layer)) {
      throw fail(
        `${name} has a bad or repeated layer index ${
          JSON.stringify(entry.layer)
        }`,
      );
    }
    seen.add(entry.layer);
    for (const key of ["dtype", "stored"] as const) {
      if (entry[key] !== "float16" && entry[key] !== "float32") {
        throw fail(
          `${name}'s ${key} ${
            JSON.stringify(entry[key])
          } is not "float16" or "float32"`,
        );
      }
    }
    if (entry.compression !== "deflate" && entry.compression !== "none") {
      throw fail(
        `${name}'s compression ${
          JSON.stringify(entry.compression)
        } is not "deflate" or "none"`,
      );
    }
    if (
      !Number.isSafeInteger(entry.offset) || entry.offset < 0 ||
      !Number.isSafeInteger(entry.length) || entry.length < 0 ||
      entry.offset + entry.length > h.blobBytes
    ) {
      throw fail(
        `${name}'s blob (offset ${entry.offset}, length ${entry.length}) does not lie within the ${h.blobBytes} blob bytes`,
      );
    }
    const context = {
      action: layerAction(entry, source),
      fix: "the file is corrupted; copy or save it again",
    };
    let count: number;
    try {
      count = scoreCount(entry.shape, context);
      const raw = count * (entry.stored === "float16" ? 2 : 4);
      if (entry.compression === "deflate") {
        checkExpansion(entry.shape, raw, entry.length, context);
      } else if (raw !== entry.length) {
        throw new RangeError(
          `Cannot ${context.action}: shape [${
            entry.shape.join(", ")
          }] needs ${raw} bytes but its uncompressed blob is ${entry.length}; ${context.fix}`,
        );
      }
    } catch (error) {
      // Impossible sizes are corruption, reported as the reader reports it.
      throw new SyntaxError((error as Error).message);
    }
  }
  return h;
}

/** A capture file's parsed header and where its blobs start. */
interface Container {
  header: Header;
  bytes: Uint8Array;
  blobStart: number;
  source: string;
}

function loadError(source: string, state: string, todo: string): SyntaxError {
  return new SyntaxError(
    `Cannot load capture from ${source}: ${state}; ${todo}`,
  );
}

function asLoadError(error: unknown, source: string): Error {
  return error instanceof CorruptLayerError
    ? loadError(
      source,
      error.message,
      "the file is corrupted; copy or save it again",
    )
    : error as Error;
}

/** Checks magic, version, header checksum, length and end marker. */
function readContainer(bytes: Uint8Array, source: string): Container {
  const fail = (state: string, todo: string) => loadError(source, state, todo);
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
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(json));
  } catch {
    throw fail(
      "the header is not valid JSON",
      "the file is corrupted; copy or save it again",
    );
  }
  const header = checkHeader(parsed, source);
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
  return { header, bytes, blobStart, source };
}

/** One layer's blob, its checksum verified. */
function layerBlob(container: Container, entry: LayerEntry): Uint8Array {
  const start = container.blobStart + entry.offset;
  const blob = container.bytes.subarray(start, start + entry.length);
  if (crc32(blob) !== entry.crc32) {
    throw loadError(
      container.source,
      `layer ${entry.layer}'s checksum does not match`,
      "the file is corrupted; copy or save it again",
    );
  }
  return blob;
}

function assemble(
  header: Header,
  data: (Float16Array | Float32Array)[],
): SavedCapture {
  const attention: AttentionCapture = {};
  header.layers.forEach((entry, n) => {
    attention[entry.layer] = new AttentionLayer({
      layer: entry.layer,
      model: entry.model,
      scores: new AttentionScores(data[n], entry.shape, {
        keyOffset: entry.keyOffset,
        queryPositions: entry.queryPositions,
      }),
      tokenMeta: TokenMeta.from(entry.tokenMeta, entry.layer),
    });
  });
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
 * Saves a capture to a file (see the module doc for the format). The file
 * is replaced only once the new one is whole on disk: a failure leaves the
 * previous file as it was.
 *
 * @param path Where to write; conventionally `*.attn`.
 * @param capture What `extractAttentionFromResponse` or `captureAttention` returns.
 * @param options Stored element type and compression.
 * @returns Resolves when written.
 *
 * @example
 * ```ts
 * import { loadCapture, saveCapture } from "./capture_file.ts";
 * import { AttentionLayer } from "../../data/layer.ts";
 * import { AttentionScores } from "../../data/scores.ts";
 * import { TokenMeta } from "../../data/token_meta.ts";
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
  // Encoded first, written whole: a failure never leaves half a file.
  await writeFileAtomic(path, encodeCapture(capture, options));
}

/**
 * Options for {@linkcode loadCapture}. Progress: `receiving` while the file
 * is read (bytes of its size), `decoding` while layers are restored, `done`;
 * the Jupyter bar shows only for loads over about a second.
 */
export interface LoadCaptureOptions extends ProgressOptions {
  /**
   * Worker threads restoring layers in parallel; `0` restores on the
   * calling thread. Worker start-up and copies cost about what they save
   * on a 2-core machine with 3 layers (see bench/analysis_bench.ts), so
   * workers pay off only for many large layers on more cores.
   * @default {0}
   */
  workers?: number;
  /**
   * Largest decoded size of the capture in bytes (the layers' restored
   * types): a file past it is refused before any layer is inflated, with
   * its size and how to raise the limit; `Infinity` turns the check off.
   * @default {DEFAULT_MAX_BYTES} 8 GiB, which a 24 GiB machine survives
   */
  maxBytes?: number;
}

/**
 * Loads a capture saved by {@linkcode saveCapture}, optionally restoring
 * layers on worker threads.
 *
 * @param path The file.
 * @param options Worker threads and the decoded-size limit.
 * @returns The capture, labels and response metadata.
 * @throws {SyntaxError} When the file is not a capture file, is truncated or corrupted.
 * @throws {RangeError} When the capture decodes to more than `maxBytes`, or
 *   its memory cannot be had.
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
export async function loadCapture(
  path: string | URL,
  options: LoadCaptureOptions = {},
): Promise<SavedCapture> {
  const source = String(path);
  const reporter = progressReporter(options, "loadCapture");
  try {
    const loaded = await loadWithProgress(path, source, options, reporter);
    reporter.finish("loaded");
    return loaded;
  } catch (error) {
    reporter.finish(null);
    throw error;
  }
}

async function loadWithProgress(
  path: string | URL,
  source: string,
  options: LoadCaptureOptions,
  reporter: ProgressReporter,
): Promise<SavedCapture> {
  const file = await fileSource(path);
  const tracker = new ProgressTracker(reporter.onProgress, {
    totalBytes: file.size,
    phase: "receiving",
  });
  const whole = new Uint8Array(file.size);
  let read = 0;
  try {
    // Read in chunks (not Deno.readFile) so that the bytes can be counted.
    await file.forEachChunk(0, file.size, (chunk) => {
      whole.set(chunk, read);
      read += chunk.length;
      tracker.received(chunk.length);
    });
  } finally {
    file.close();
  }
  const container = readContainer(whole.subarray(0, read), source);
  checkBudget(container, options.maxBytes);
  const entries = container.header.layers;
  for (let n = 0; n < entries.length; n++) tracker.announced();
  tracker.decoding();
  const workers = Math.min(entries.length, options.workers ?? 0);
  let data: (Float16Array | Float32Array)[];
  if (!(workers >= 1)) {
    data = restoreLayers(container, () => tracker.finished());
  } else {
    // Checksums are verified here, so a corrupted file fails before any
    // worker starts.
    const jobs = entries.map((entry) => ({
      entry,
      blob: layerBlob(container, entry),
    }));
    data = await restoreInWorkers(
      jobs,
      workers,
      source,
      () => tracker.finished(),
    );
  }
  const loaded = assemble(container.header, data);
  tracker.done();
  return loaded;
}

/** Restores layers on a few workers, in order; the workers end afterwards. */
async function restoreInWorkers(
  jobs: { entry: LayerEntry; blob: Uint8Array }[],
  count: number,
  source: string,
  onLayer: () => void,
): Promise<(Float16Array | Float32Array)[]> {
  const out: (Float16Array | Float32Array)[] = new Array(jobs.length);
  let next = 0;
  const pool = Array.from(
    { length: count },
    () =>
      new Worker(new URL("./_capture_worker.ts", import.meta.url).href, {
        type: "module",
      }),
  );
  const run = (worker: Worker): Promise<void> =>
    new Promise((resolve, reject) => {
      const take = () => {
        if (next >= jobs.length) return resolve();
        const n = next++;
        const { entry, blob } = jobs[n];
        worker.onmessage = (event) => {
          const reply = event.data;
          if (reply.error) {
            return reject(
              reply.corrupt
                ? loadError(
                  source,
                  reply.error,
                  "the file is corrupted; copy or save it again",
                )
                : reply.name === "RangeError"
                ? new RangeError(reply.error)
                : new Error(reply.error),
            );
          }
          out[n] = entry.dtype === "float16"
            ? new Float16Array(reply.buffer, reply.byteOffset, reply.length)
            : new Float32Array(reply.buffer, reply.byteOffset, reply.length);
          onLayer();
          take();
        };
        worker.onerror = (event) => {
          event.preventDefault();
          reject(
            new Error(
              `Cannot load capture from ${source}: a worker failed: ${event.message}`,
            ),
          );
        };
        // A copy of the blob is transferred; the file's bytes stay whole.
        const copy = blob.slice();
        worker.postMessage(
          { entry, blob: copy, action: layerAction(entry, source) },
          [copy.buffer],
        );
      };
      take();
    });
  try {
    await Promise.all(pool.map(run));
  } finally {
    for (const w of pool) w.terminate();
  }
  return out;
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
