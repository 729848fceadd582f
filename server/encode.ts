/**
 * The wire encoder: one captured layer as vLLM's attention instrumentation
 * sends it (`base64(gzip(float16 little-endian))`, `shape [T, H, T]`,
 * `dtype: "torch.float16"`, `token_meta`). See `docs/wire-format.md`.
 *
 * @module
 */

import { gzipSync } from "node:zlib";
import {
  type LayerMeta,
  layerMetaToWire,
  type WireLayerMeta,
} from "../lib/data/layer_meta.ts";

/** Half-open range of positions, as `token_meta` spells it. */
export interface WireRange {
  /** First position. */
  start: number;
  /** One past the last position. */
  end: number;
}

/** `token_meta` as the wire carries it. */
export interface WireTokenMeta {
  /** Absolute position of each query row. */
  token_idx: number[];
  /** Prompt tokens. */
  prompt_len: number;
  /** Positions seen: prompt plus generated, less the last generated one. */
  total_len: number;
  /** Image positions, within the prompt. */
  vision_ranges: WireRange[];
  /** Text positions: the complement of `vision_ranges` within the prompt. */
  lang_ranges: WireRange[];
  /** How `token_idx` counts; always `"window_local"`, as vLLM. */
  token_idx_basis: "window_local";
}

/** One entry of `attn_capture_data`. */
export interface WireLayer {
  /** Decoder layer index. */
  layer_idx: number;
  /** `base64(gzip(float16 little-endian bytes))`. */
  data: string;
  /** `[Tq, H, Tk]`. */
  shape: [number, number, number];
  /** Always `"torch.float16"`. */
  dtype: "torch.float16";
  /** What each position is. */
  token_meta: WireTokenMeta;
  /** The layer's architecture, when the model says it (other clients ignore it). */
  layer_meta?: WireLayerMeta;
}

/** Options for {@linkcode encodeAttentionLayer}. */
export interface EncodeOptions {
  /**
   * gzip level; 9 is what Python's `gzip.compress` (and so vLLM) uses.
   * @default {9}
   */
  level?: number;
  /**
   * The layer's architecture, sent as `layer_meta`.
   * @default {undefined} no `layer_meta`
   */
  layerMeta?: LayerMeta;
}

/** Everything the encoder needs to know about the positions. */
export interface PositionInfo {
  /** Prompt tokens. */
  promptLen: number;
  /** Image positions within the prompt. */
  visionRanges: readonly WireRange[];
  /**
   * Position of the first query row (`attn_capture_prefix`).
   * @default {0}
   */
  firstRow?: number;
  /**
   * Rows of the whole generation (prompt plus generated, less one), the
   * wire's `total_len`.
   * @default {the number of rows}
   */
  totalLen?: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Encodes one layer's `[Tq, H, T]` softmax scores in the wire format: all
 * T rows, or the `Tq` rows from `positions.firstRow` on (which may be none,
 * as vLLM's slice of rows past the end is empty).
 *
 * @param layerIdx The decoder layer index.
 * @param scores Flat `[Tq, H, T]` scores in C order (float32 from the forward pass).
 * @param shape `[Tq, H, T]`.
 * @param positions Prompt length and vision ranges.
 * @param options The gzip level.
 * @returns The `attn_capture_data` entry.
 * @throws {RangeError} When the shape does not match the scores.
 *
 * @example
 * ```ts
 * import { encodeAttentionLayer } from "./encode.ts";
 * import { gunzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const wire = encodeAttentionLayer(
 *   4,
 *   new Float32Array([1, 0, 0.25, 0.75]),
 *   [2, 1, 2],
 *   { promptLen: 2, visionRanges: [] },
 * );
 * const raw = gunzipSync(Uint8Array.fromBase64(wire.data));
 * const halves = new Float16Array(raw.buffer, raw.byteOffset, raw.length / 2);
 * assert.deepEqual([...halves], [1, 0, 0.25, 0.75]);
 * assert.deepEqual(wire.token_meta.lang_ranges, [{ start: 0, end: 2 }]);
 * assert.equal(wire.dtype, "torch.float16");
 * ```
 */
export function encodeAttentionLayer(
  layerIdx: number,
  scores: Float32Array,
  shape: readonly [number, number, number],
  positions: PositionInfo,
  options: EncodeOptions = {},
): WireLayer {
  const [tq, h, tk] = shape;
  if (tq * h * tk !== scores.length) {
    throw new RangeError(
      `Cannot encode layer ${layerIdx}: shape [${shape}] needs ${
        tq * h * tk
      } scores but ${scores.length} were given; the model returned a capture of the wrong size`,
    );
  }
  const bytes = float16Bytes(scores);
  const gzipped = gzipSync(bytes, { level: options.level ?? 9 });
  return {
    layer_idx: layerIdx,
    data: gzipped.toBase64(),
    shape: [tq, h, tk],
    dtype: "torch.float16",
    token_meta: buildTokenMeta(tq, positions),
    ...(options.layerMeta
      ? { layer_meta: layerMetaToWire(options.layerMeta) }
      : {}),
  };
}

/**
 * The `token_meta` of a capture of `rows` query rows: rows are positions
 * `firstRow..firstRow+rows-1` (`0..T-1` for a full capture), `total_len` is
 * the generation's row count, and language ranges fill the prompt around the
 * vision ranges.
 *
 * @param rows The number of query rows.
 * @param positions Prompt length and vision ranges.
 * @returns The wire object.
 *
 * @example
 * ```ts
 * import { buildTokenMeta } from "./encode.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = buildTokenMeta(7, { promptLen: 6, visionRanges: [{ start: 2, end: 4 }] });
 * assert.deepEqual(meta.lang_ranges, [{ start: 0, end: 2 }, { start: 4, end: 6 }]);
 * assert.deepEqual(meta.token_idx, [0, 1, 2, 3, 4, 5, 6]);
 * assert.equal(meta.total_len, 7);
 * const rows = buildTokenMeta(2, { promptLen: 6, visionRanges: [], firstRow: 5, totalLen: 7 });
 * assert.deepEqual(rows.token_idx, [5, 6]);
 * assert.equal(rows.total_len, 7);
 * ```
 */
export function buildTokenMeta(
  rows: number,
  positions: PositionInfo,
): WireTokenMeta {
  const vision = [...positions.visionRanges]
    .filter((r) => r.end > r.start)
    .sort((a, b) => a.start - b.start);
  const lang: WireRange[] = [];
  let at = 0;
  for (const r of vision) {
    if (r.start > at) lang.push({ start: at, end: r.start });
    at = Math.max(at, r.end);
  }
  if (at < positions.promptLen) {
    lang.push({ start: at, end: positions.promptLen });
  }
  const first = positions.firstRow ?? 0;
  return {
    token_idx: Array.from({ length: rows }, (_, i) => first + i),
    prompt_len: positions.promptLen,
    total_len: positions.totalLen ?? rows,
    vision_ranges: vision.map(({ start, end }) => ({ start, end })),
    lang_ranges: lang,
    token_idx_basis: "window_local",
  };
}

/**
 * IEEE float16 bytes, little-endian, rounded to nearest even as numpy's
 * `astype(np.float16)` rounds.
 *
 * @param values The values.
 * @returns `2 * values.length` bytes.
 *
 * @example
 * ```ts
 * import { float16Bytes } from "./encode.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...float16Bytes(new Float32Array([1, -2]))], [0x00, 0x3c, 0x00, 0xc0]);
 * ```
 */
export function float16Bytes(values: Float32Array): Uint8Array {
  const halves = new Float16Array(values);
  if (LITTLE_ENDIAN) return new Uint8Array(halves.buffer);
  // Big-endian hosts: the wire is little-endian whatever the host.
  const out = new Uint8Array(halves.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < halves.length; i++) {
    view.setFloat16(i * 2, halves[i], true);
  }
  return out;
}
