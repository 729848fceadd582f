/**
 * Packs a capture into an explorer page's header and blob within a byte
 * budget: every head at full resolution when it fits, else heads in layer
 * order at full resolution while they fit and the rest as a max-pooled
 * overview plus each query row's strongest keys.
 *
 * @module
 */

import { deflateRawSync } from "node:zlib";
import type { AttentionLayer } from "../data/layer.ts";
import type { AttentionScores } from "../data/scores.ts";
import { binMap, poolRowMax } from "../charts/_scale.ts";
import type { HeadBlock, Segment } from "./_protocol.ts";
import { QUANT, TOP_QUANT } from "./_protocol.ts";

/** Most overview cells of one layer's reduced heads, all heads together. */
const MAX_LAYER_CELLS = 1 << 19;

/** What {@linkcode packLayers} decided and made. */
export interface Packed {
  /** The blob (compressed segments back to back). */
  blob: Uint8Array;
  /** Per layer, its heads' blocks. */
  layers: { layer: number; heads: HeadBlock[] }[];
  /** Pooled overview size. */
  pooled: { rows: number; cols: number };
  /** Keys kept per row in reduced heads. */
  topK: number;
  /** Bytes per top-k index. */
  idxBytes: 2 | 4;
  /** Heads at full resolution, and reduced. */
  fullHeads: number;
  /** Heads reduced. */
  reducedHeads: number;
}

/** Options for {@linkcode packLayers}. */
export interface PackOptions {
  /** Most bytes the blob may take (before base64). */
  budget: number;
  /** Keys kept per row in reduced heads. */
  topK: number;
  /** Largest side of a pooled overview. */
  pooledSize: number;
  /**
   * Per layer, whether it is causal (future keys masked in its overview).
   * @default {undefined} every layer causal
   */
  causal?: readonly boolean[];
}

/** One head's row `q` as float32 (a view when the scores are float32). */
function headRow(scores: AttentionScores, q: number, h: number): Float32Array {
  const r = scores.row(q, h);
  return r instanceof Float32Array ? r : Float32Array.from(r);
}

function quantize(v: number, steps = QUANT): number {
  return v <= 0 ? 0 : v >= 1 ? steps : Math.round(v * steps);
}

/** The head's full matrix, quantized; `every` > 1 keeps every n-th row (a size sample). */
function fullMatrix(
  scores: AttentionScores,
  h: number,
  every = 1,
): Uint16Array {
  const [tq, , tk] = scores.shape;
  const rows = Math.ceil(tq / every);
  const out = new Uint16Array(rows * tk);
  for (let i = 0; i < rows; i++) {
    const row = headRow(scores, i * every, h);
    const base = i * tk;
    for (let k = 0; k < tk; k++) out[base + k] = quantize(row[k]);
  }
  return out;
}

/** The head's pooled overview and per-row top-k, quantized. */
function reducedHead(
  scores: AttentionScores,
  h: number,
  rows: number,
  cols: number,
  topK: number,
  idxBytes: 2 | 4,
  causal = true,
): { pooled: Uint16Array; idx: Uint16Array | Uint32Array; val: Uint16Array } {
  const [tq, , tk] = scores.shape;
  const grid = new Float32Array(rows * cols).fill(NaN);
  const colBin = binMap(tk, cols);
  const idx = idxBytes === 2
    ? new Uint16Array(tq * topK)
    : new Uint32Array(tq * topK);
  const val = new Uint16Array(tq * topK);
  const bestV = new Float32Array(topK);
  const bestK = new Int32Array(topK);
  // One row type for poolRowMax (the charts pass Float64Array): a
  // polymorphic call site made pooling several times slower.
  const row = new Float64Array(tk);
  for (let q = 0; q < tq; q++) {
    row.set(headRow(scores, q, h));
    const qPos = scores.queryPositions[q];
    poolRowMax(
      row,
      0,
      tk,
      1,
      grid,
      Math.floor((q * rows) / tq) * cols,
      colBin,
      causal ? qPos + 1 - scores.keyOffset : Infinity,
    );
    // Top-k by insertion into a descending list: k is small.
    bestV.fill(-1);
    bestK.fill(0);
    for (let k = 0; k < tk; k++) {
      const v = row[k];
      if (!(v > bestV[topK - 1])) continue;
      let j = topK - 1;
      while (j > 0 && bestV[j - 1] < v) {
        bestV[j] = bestV[j - 1];
        bestK[j] = bestK[j - 1];
        j--;
      }
      bestV[j] = v;
      bestK[j] = k;
    }
    // Stored ascending by key, so the page can binary-search a column
    // (insertion sort: k is small, and a closure sort per row was slow).
    for (let a = 1; a < topK; a++) {
      const kk = bestK[a], vv = bestV[a];
      let b = a - 1;
      while (b >= 0 && bestK[b] > kk) {
        bestK[b + 1] = bestK[b];
        bestV[b + 1] = bestV[b];
        b--;
      }
      bestK[b + 1] = kk;
      bestV[b + 1] = vv;
    }
    for (let j = 0; j < topK; j++) {
      idx[q * topK + j] = bestK[j];
      val[q * topK + j] = quantize(Math.max(0, bestV[j]), TOP_QUANT);
    }
  }
  const pooled = new Uint16Array(rows * cols);
  for (let i = 0; i < grid.length; i++) {
    pooled[i] = Number.isNaN(grid[i]) ? 0 : quantize(grid[i], TOP_QUANT);
  }
  deltaRows(idx, topK);
  return { pooled, idx, val };
}

function deflate(a: ArrayBufferView): Uint8Array {
  const bytes = a instanceof Uint16Array
    ? planes16(a)
    : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return new Uint8Array(deflateRawSync(bytes, { level: 6 }));
}

/**
 * 16-bit values as two byte planes, high bytes then low: small weights
 * make the high plane mostly zeros, which deflate all but removes.
 */
function planes16(a: Uint16Array): Uint8Array {
  const n = a.length;
  const out = new Uint8Array(n * 2);
  for (let i = 0; i < n; i++) {
    out[i] = a[i] >> 8;
    out[n + i] = a[i] & 255;
  }
  return out;
}

/** Top-k key indices per row as differences from the previous key (first: from 0). */
function deltaRows(idx: Uint16Array | Uint32Array, k: number): void {
  for (let base = idx.length - k; base >= 0; base -= k) {
    for (let j = k - 1; j > 0; j--) idx[base + j] -= idx[base + j - 1];
  }
}

/**
 * Packs the layers within the budget.
 *
 * @param layers The layers (same shape).
 * @param options Budget, top-k and pooled size.
 * @returns The blob and the header's block list.
 * @throws {RangeError} When even the reduced form does not fit.
 *
 * @example
 * ```ts
 * import { packLayers } from "./_payload.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 0,
 *   model: null,
 *   scores: new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({}),
 * });
 * const packed = packLayers([layer], { budget: 1 << 20, topK: 32, pooledSize: 512 });
 * assert.equal(packed.fullHeads, 1);
 * assert.ok(packed.layers[0].heads[0].full);
 * ```
 */
export function packLayers(
  layers: readonly AttentionLayer[],
  options: PackOptions,
): Packed {
  const [tq, heads, tk] = layers[0].scores.shape;
  const total = layers.length * heads;
  const idxBytes: 2 | 4 = tk <= 65536 ? 2 : 4;
  // The reduced form's size barely varies between heads: measure one, and
  // halve top-k and the overview until every head fits in that form.
  let topK = Math.min(options.topK, tk);
  let side = options.pooledSize;
  // A page shows one layer first and inflates its heads then: at most
  // MAX_LAYER_CELLS overview cells per layer keep that quick (T = 4,096,
  // 8 heads: 256 x 256).
  while (heads * Math.min(tq, side) * Math.min(tk, side) > MAX_LAYER_CELLS) {
    side >>= 1;
  }
  let rows = 0, cols = 0, reducedCost = 0;
  for (;;) {
    rows = Math.min(tq, side);
    cols = Math.min(tk, side);
    const r = reducedHead(layers[0].scores, 0, rows, cols, topK, idxBytes);
    reducedCost = deflate(r.pooled).length + deflate(r.idx).length +
      deflate(r.val).length;
    if (total * reducedCost * 1.05 <= options.budget || topK <= 4) break;
    topK = Math.max(4, topK >> 1);
    side = Math.max(128, side >> 1);
  }
  const parts: Uint8Array[] = [];
  let at = 0;
  const push = (bytes: Uint8Array, raw: number): Segment => {
    parts.push(bytes);
    const seg = { at, len: bytes.length, raw };
    at += bytes.length;
    return seg;
  };

  // Whole heads at full resolution, in layer order, while they fit with
  // everything after them still room for its reduced form.
  const fullSize = (scores: AttentionScores, h: number): Uint8Array | null => {
    const every = tq > 1024 ? 16 : 1;
    if (every > 1) {
      const estimate = deflate(fullMatrix(scores, h, every)).length * every;
      if (estimate > options.budget) return null;
    }
    return deflate(fullMatrix(scores, h));
  };
  let used = 0;
  let fullHeads = 0;
  let stopFull = false;
  const out: { layer: number; heads: HeadBlock[] }[] = [];
  let n = 0;
  for (const [li, layer] of layers.entries()) {
    const blocks: HeadBlock[] = [];
    const causal = options.causal?.[li] ?? true;
    for (let h = 0; h < heads; h++, n++) {
      const remainingReduced = (total - n - 1) * reducedCost * 1.1;
      if (!stopFull) {
        const full = fullSize(layer.scores, h);
        if (full && used + full.length + remainingReduced <= options.budget) {
          blocks.push({ head: h, full: push(full, tq * tk * 2) });
          used += full.length;
          fullHeads++;
          continue;
        }
        stopFull = true;
      }
      const r = reducedHead(
        layer.scores,
        h,
        rows,
        cols,
        topK,
        idxBytes,
        causal,
      );
      const p = deflate(r.pooled), i = deflate(r.idx), v = deflate(r.val);
      if (used + p.length + i.length + v.length > options.budget) {
        throw new RangeError(
          `Cannot explore this capture in ${options.budget} bytes: even the pooled overviews with the top ${topK} keys per row need more; raise maxBytes or lower topK`,
        );
      }
      blocks.push({
        head: h,
        pooled: push(p, r.pooled.byteLength),
        topIdx: push(i, r.idx.byteLength),
        topVal: push(v, r.val.byteLength),
      });
      used += p.length + i.length + v.length;
    }
    out.push({ layer: layer.layer, heads: blocks });
  }
  const blob = new Uint8Array(at);
  let o = 0;
  for (const p of parts) {
    blob.set(p, o);
    o += p.length;
  }
  return {
    blob,
    layers: out,
    pooled: { rows, cols },
    topK,
    idxBytes,
    fullHeads,
    reducedHeads: total - fullHeads,
  };
}
