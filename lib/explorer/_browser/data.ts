/// <reference lib="dom" />
/**
 * The page side of the payload: decodes the blob's segments and answers the
 * view's questions (a row, a column, one cell, a pooled grid) for any set of
 * heads combined by mean or max.
 *
 * @module
 */

import { inflateSync } from "npm:fflate@^0.8.3";
import { binMap, poolRowMax } from "../../charts/_scale.ts";
import type { ExplorerMeta, Segment } from "../_protocol.ts";
import { QUANT, TOP_QUANT } from "../_protocol.ts";

/** How selected heads combine. */
export type Combine = "mean" | "max";

/** One head's decoded arrays. */
interface Head {
  full?: Uint16Array;
  /** In `TOP_QUANT` steps. */
  pooled?: Uint16Array;
  topIdx?: Uint16Array | Uint32Array;
  topVal?: Uint16Array;
}

/** `TOP_QUANT` steps back on the `QUANT` scale, in place. */
function rescaleTop(a: Uint16Array): Uint16Array {
  const f = QUANT / TOP_QUANT;
  for (let i = 0; i < a.length; i++) a[i] = Math.round(a[i] * f);
  return a;
}

function base64Bytes(text: string): Uint8Array {
  const fromBase64 = (Uint8Array as unknown as {
    fromBase64?: (s: string) => Uint8Array;
  }).fromBase64;
  if (fromBase64) return fromBase64(text);
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** 16-bit values from their two byte planes (high bytes, then low). */
function joinPlanes(buffer: ArrayBuffer): Uint16Array {
  const bytes = new Uint8Array(buffer);
  const n = bytes.length >> 1;
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = (bytes[i] << 8) | bytes[n + i];
  return out;
}

/**
 * One segment inflated, synchronously, into a buffer of its known size
 * (fflate): Chromium's `DecompressionStream` took over a second for the 25
 * MB of a T = 4,096 page, chunk by chunk through promises.
 */
function inflate(blob: Uint8Array, seg: Segment): ArrayBuffer {
  const out = new Uint8Array(seg.raw);
  inflateSync(blob.subarray(seg.at, seg.at + seg.len), { out });
  return out.buffer;
}

/** The capture as the page holds it. */
export class Capture {
  readonly meta: ExplorerMeta;
  /** Row index of each absolute position, -1 when not a captured query. */
  readonly rowOf: Int32Array;
  #blob: Uint8Array;
  #heads: (Head | undefined)[][];
  #pooledFull = new Map<string, Float32Array>();

  private constructor(meta: ExplorerMeta, blob: Uint8Array) {
    this.meta = meta;
    this.#blob = blob;
    this.#heads = meta.layers.map((l) => new Array(l.heads.length));
    this.rowOf = new Int32Array(meta.labels.length).fill(-1);
    meta.queryPositions.forEach((p, r) => {
      if (p < this.rowOf.length) this.rowOf[p] = r;
    });
  }

  /**
   * Reads the header and blob of one explorer. Heads are inflated when
   * first used, so the first paint waits only for the layer it shows
   * (a T = 4,096 page holds some 25 MB inflated).
   */
  static load(meta: ExplorerMeta, blobText: string): Promise<Capture> {
    return Promise.resolve(new Capture(meta, base64Bytes(blobText.trim())));
  }

  /** One head's arrays, inflated on first use. */
  head(layer: number, h: number): Head {
    const done = this.#heads[layer][h];
    if (done) return done;
    const blob = this.#blob;
    const b = this.meta.layers[layer].heads[h];
    const u16 = (seg: Segment) => joinPlanes(inflate(blob, seg));
    const k = this.meta.topK;
    const head: Head = {};
    if (b.full) head.full = u16(b.full);
    // Reduced heads' weights come in `TOP_QUANT` steps: the top-k ones go
    // on the full heads' scale (rows mix both); the overview stays.
    if (b.pooled) head.pooled = u16(b.pooled);
    if (b.topVal) head.topVal = rescaleTop(u16(b.topVal));
    if (b.topIdx) {
      const idx = this.meta.idxBytes === 2
        ? u16(b.topIdx)
        : new Uint32Array(inflate(blob, b.topIdx));
      // Each row's indices were stored as differences: sum them back.
      for (let base = 0; base < idx.length; base += k) {
        for (let j = 1; j < k; j++) idx[base + j] += idx[base + j - 1];
      }
      head.topIdx = idx;
    }
    this.#heads[layer][h] = head;
    return head;
  }

  /** Whether every one of these heads of the layer is at full resolution. */
  allFull(layer: number, heads: readonly number[]): boolean {
    return heads.every((h) =>
      this.meta.layers[layer].heads[h].full !== undefined
    );
  }

  /** One head's weight at (row, column); `null` when not embedded. */
  cell(layer: number, h: number, r: number, c: number): number | null {
    const head = this.head(layer, h);
    const tk = this.meta.tk;
    if (head.full) return head.full[r * tk + c] / QUANT;
    const k = this.meta.topK;
    const idx = head.topIdx!;
    let lo = r * k, hi = lo + k - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (idx[mid] === c) return head.topVal![mid] / QUANT;
      if (idx[mid] < c) lo = mid + 1;
      else hi = mid - 1;
    }
    return null;
  }

  /**
   * Combined weights of row `r` over key columns `[c0, c1)` into `out`
   * (length `c1 - c0`); keys a reduced head did not keep count as 0.
   */
  row(
    layer: number,
    heads: readonly number[],
    combine: Combine,
    r: number,
    out: Float64Array,
    c0 = 0,
    c1 = this.meta.tk,
  ): Float64Array {
    out.fill(0);
    const tk = this.meta.tk, k = this.meta.topK;
    for (const h of heads) {
      const head = this.head(layer, h);
      if (head.full) {
        const base = r * tk;
        const d = head.full;
        if (combine === "mean") {
          for (let c = c0; c < c1; c++) out[c - c0] += d[base + c];
        } else {
          for (let c = c0; c < c1; c++) {
            if (d[base + c] > out[c - c0]) out[c - c0] = d[base + c];
          }
        }
      } else {
        const idx = head.topIdx!, val = head.topVal!;
        for (let j = r * k; j < r * k + k; j++) {
          const c = idx[j];
          if (c < c0 || c >= c1) continue;
          if (combine === "mean") out[c - c0] += val[j];
          else if (val[j] > out[c - c0]) out[c - c0] = val[j];
        }
      }
    }
    const scale = combine === "mean" ? 1 / (QUANT * heads.length) : 1 / QUANT;
    for (let i = 0; i < out.length; i++) out[i] *= scale;
    return out;
  }

  /** Combined weights of key column `c` for every row into `out` (length Tq). */
  column(
    layer: number,
    heads: readonly number[],
    combine: Combine,
    c: number,
    out: Float64Array,
  ): Float64Array {
    out.fill(0);
    for (let r = 0; r < this.meta.tq; r++) {
      let acc = 0;
      for (const h of heads) {
        const v = this.cell(layer, h, r, c) ?? 0;
        acc = combine === "mean" ? acc + v : Math.max(acc, v);
      }
      out[r] = combine === "mean" ? acc / heads.length : acc;
    }
    return out;
  }

  /** A full-resolution head max-pooled to the overview size (cached). */
  #pooledOfFull(layer: number, h: number): Float32Array {
    const key = `${layer}/${h}`;
    let grid = this.#pooledFull.get(key);
    if (grid) return grid;
    const { tq, tk, keyOffset, queryPositions, pooled } = this.meta;
    grid = new Float32Array(pooled.rows * pooled.cols).fill(NaN);
    const colBin = binMap(tk, pooled.cols);
    const full = this.head(layer, h).full!;
    const { causal } = this.arch(layer);
    for (let r = 0; r < tq; r++) {
      poolRowMax(
        full,
        r * tk,
        tk,
        1 / QUANT,
        grid,
        Math.floor((r * pooled.rows) / tq) * pooled.cols,
        colBin,
        causal ? queryPositions[r] + 1 - keyOffset : Infinity,
      );
    }
    this.#pooledFull.set(key, grid);
    return grid;
  }

  /** The layer's sliding window (0: none) and whether it is causal. */
  arch(layer: number): { window: number; causal: boolean } {
    return this.meta.arch?.[layer] ?? { window: 0, causal: true };
  }

  /**
   * Whether every (query, key) pair of an overview bin is masked for the
   * layer: all in the future of a causal layer, or all outside its sliding
   * window, as the main matrix masks single cells.
   */
  binMasked(layer: number, br: number, bc: number): boolean {
    const { tq, tk, keyOffset, queryPositions, pooled } = this.meta;
    const { window, causal } = this.arch(layer);
    const { rows, cols } = pooled;
    const firstRow = Math.floor((br * tq) / rows);
    const lastRow = Math.min(tq - 1, Math.ceil(((br + 1) * tq) / rows) - 1);
    const firstKey = keyOffset + Math.ceil((bc * tk) / cols);
    const lastKey = keyOffset + Math.ceil(((bc + 1) * tk) / cols) - 1;
    if (causal && firstKey > queryPositions[lastRow]) return true;
    return window > 0 && lastKey <= queryPositions[firstRow] - window;
  }

  /**
   * The whole layer as the overview grid: each head max-pooled, then the
   * heads combined cell by cell. `NaN` marks masked bins (entirely in the
   * future, or outside the sliding window), never zero attention.
   */
  pooledGrid(
    layer: number,
    heads: readonly number[],
    combine: Combine,
  ): Float32Array {
    const { rows, cols } = this.meta.pooled;
    const out = new Float32Array(rows * cols);
    const grids = heads.map((h) => {
      const head = this.head(layer, h);
      if (head.full) return this.#pooledOfFull(layer, h);
      const g = new Float32Array(rows * cols);
      const p = head.pooled!;
      for (let i = 0; i < g.length; i++) g[i] = p[i] / TOP_QUANT;
      return g;
    });
    for (let br = 0; br < rows; br++) {
      for (let bc = 0; bc < cols; bc++) {
        const i = br * cols + bc;
        if (this.binMasked(layer, br, bc)) {
          out[i] = NaN;
          continue;
        }
        let acc = 0;
        for (const g of grids) {
          const v = Number.isNaN(g[i]) ? 0 : g[i];
          acc = combine === "mean" ? acc + v : Math.max(acc, v);
        }
        out[i] = combine === "mean" ? acc / grids.length : acc;
      }
    }
    return out;
  }
}
