/**
 * The query x key grid a heatmap draws: one head or the head mean, cut to a
 * window, optionally without the first-token sink, and reduced by maximum
 * when there are more tokens than pixels. Masked (future) cells are `NaN`.
 *
 * @module
 */

import type { AttentionScores } from "../data/scores.ts";
import { binMap, poolRowMax } from "./_scale.ts";

/** A half-open range of absolute positions `[start, end)`. */
export type PositionRange = readonly [start: number, end: number];

/** Which part of the scores a heatmap shows. */
export interface GridOptions {
  /**
   * A head index (negative counts from the end), or `"mean"` for the head
   * average.
   * @default {"mean"}
   */
  head?: number | "mean";
  /**
   * Absolute position ranges, half open (`[start, end)`), to zoom into.
   * @default {{}} every captured query and key
   */
  window?: { query?: PositionRange; key?: PositionRange };
  /**
   * Drop key position 0 (the attention sink most heads park weight on) and
   * renormalize each row over the remaining keys.
   * @default {false}
   */
  dropSink?: boolean;
  /**
   * Most rows to keep; above it rows are merged by maximum.
   * @default {Infinity}
   */
  maxRows?: number;
  /**
   * Most columns to keep; above it columns are merged by maximum.
   * @default {Infinity}
   */
  maxCols?: number;
}

/** A reduced query x key grid. */
export interface AttentionGrid {
  /** `rows * cols` values, row-major; `NaN` where every merged cell is masked. */
  values: Float32Array;
  /** Grid rows (query bins). */
  rows: number;
  /** Grid columns (key bins). */
  cols: number;
  /** Absolute query position of each scores row shown, in order. */
  queryPositions: Int32Array;
  /** Absolute key positions shown, `[start, end)`. */
  keyRange: PositionRange;
  /** Largest unmasked value (0 when none). */
  max: number;
  /** The head shown (index) or `"mean"`. */
  head: number | "mean";
  /** Whether rows or columns were merged. */
  reduced: boolean;
}

/** Which rows and key positions a grid covers. */
export interface GridExtent {
  /** Scores row indices shown, in order. */
  rows: number[];
  /** Absolute query position of each row shown. */
  queryPositions: Int32Array;
  /** Absolute key positions shown, `[start, end)`. */
  keyRange: PositionRange;
}

/**
 * The rows and key range a window selects, without reading any score.
 *
 * @param scores One layer's scores.
 * @param options Window and sink.
 * @returns The extent.
 * @throws {RangeError} When a window selects nothing.
 *
 * @example
 * ```ts
 * import { gridExtent } from "./_grid.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new AttentionScores(new Float32Array(16), [4, 1, 4]);
 * const e = gridExtent(s, { window: { query: [2, 9] }, dropSink: true });
 * assert.deepEqual([...e.queryPositions], [2, 3]);
 * assert.deepEqual(e.keyRange, [1, 4]);
 * ```
 */
export function gridExtent(
  scores: AttentionScores,
  options: Pick<GridOptions, "window" | "dropSink"> = {},
): GridExtent {
  const { window = {}, dropSink = false } = options;
  const tk = scores.keyLength;
  const keyOffset = scores.keyOffset;
  const [k0, k1] = clampRange(
    window.key,
    [keyOffset, keyOffset + tk],
    "key",
  );
  // The sink column is removed from the view, not only from the sums.
  const kStart = dropSink && keyOffset === 0 && k0 === 0 ? 1 : k0;
  if (kStart >= k1) {
    throw new RangeError(
      `Cannot draw keys ${k0} to ${
        k1 - 1
      }: nothing is left without the sink; widen window.key or drop dropSink`,
    );
  }
  const allRows = scores.queryPositions;
  let lo = Infinity, hi = -Infinity;
  for (const p of allRows) {
    lo = Math.min(lo, p);
    hi = Math.max(hi, p);
  }
  const [q0, q1] = clampRange(window.query, [lo, hi + 1], "query");
  const rows: number[] = [];
  for (let r = 0; r < allRows.length; r++) {
    if (allRows[r] >= q0 && allRows[r] < q1) rows.push(r);
  }
  if (rows.length === 0) {
    throw new RangeError(
      `Cannot draw queries ${q0} to ${
        q1 - 1
      }: no captured row is there; captured query positions are ${lo} to ${hi}`,
    );
  }
  return {
    rows,
    queryPositions: Int32Array.from(rows, (r) => allRows[r]),
    keyRange: [kStart, k1],
  };
}

/**
 * Builds the grid a heatmap draws.
 *
 * A cell is masked when its key lies after its query and its score is 0:
 * the causal mask, without hiding the bidirectional blocks (image tokens)
 * some models have.
 *
 * @param scores One layer's scores.
 * @param options Head, window, sink and size limits.
 * @returns The grid.
 * @throws {RangeError} When a window selects nothing.
 *
 * @example Head mean of a 2-token capture, masked upper cell
 * ```ts
 * import { attentionGrid } from "./_grid.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
 * const grid = attentionGrid(s);
 * assert.deepEqual([...grid.values], [1, NaN, 0.5, 0.5]);
 * ```
 */
export function attentionGrid(
  scores: AttentionScores,
  options: GridOptions = {},
): AttentionGrid {
  const {
    head = "mean",
    window,
    dropSink = false,
    maxRows = Infinity,
    maxCols = Infinity,
  } = options;
  const [, heads, tk] = scores.shape;
  const h = head === "mean" ? -1 : scores.headIndex(head);
  const keyOffset = scores.keyOffset;
  const extent = gridExtent(scores, { window, dropSink });
  const [kStart, k1] = extent.keyRange;
  const sinkCol = dropSink && keyOffset === 0 ? 0 : -1;
  const allRows = scores.queryPositions;
  const rowIndices = extent.rows;

  const nCols = k1 - kStart;
  const nRows = rowIndices.length;
  const cols = Math.max(1, Math.min(nCols, Math.floor(maxCols)));
  const rows = Math.max(1, Math.min(nRows, Math.floor(maxRows)));
  const values = new Float32Array(rows * cols).fill(NaN);
  // Column j of the view lands in bin colBin[j].
  const colBin = binMap(nCols, cols);

  // Float16Array element reads are slow in V8; a 64k-entry table indexed by
  // the raw bits is about twice as fast (as in the decoder's measurements).
  const half = scores.data instanceof Float16Array;
  const bits = half
    ? new Uint16Array(
      scores.data.buffer,
      scores.data.byteOffset,
      scores.data.length,
    )
    : null;
  const table = half ? float16Table() : null;
  const data = scores.data;
  const read = (start: number, out: Float64Array, add: boolean) => {
    if (bits && table) {
      if (add) {
        for (let k = 0; k < tk; k++) out[k] += table[bits[start + k]];
      } else for (let k = 0; k < tk; k++) out[k] = table[bits[start + k]];
    } else {
      const f32 = data as Float32Array;
      if (add) { for (let k = 0; k < tk; k++) out[k] += f32[start + k]; }
      else for (let k = 0; k < tk; k++) out[k] = f32[start + k];
    }
  };
  const row = new Float64Array(tk);
  let max = 0;
  for (let i = 0; i < nRows; i++) {
    const r = rowIndices[i];
    const qPos = allRows[r];
    const base = r * heads * tk;
    if (h >= 0) {
      read(base + h * tk, row, false);
    } else {
      read(base, row, false);
      for (let hh = 1; hh < heads; hh++) read(base + hh * tk, row, true);
      for (let k = 0; k < tk; k++) row[k] /= heads;
    }
    let scale = 1;
    if (sinkCol === 0) {
      let total = 0;
      for (let k = 1; k < tk; k++) total += row[k];
      // A row with all its weight on the sink has nothing left to show.
      scale = total > 0 ? 1 / total : NaN;
    }
    const outBase = Math.floor((i * rows) / nRows) * cols;
    const rowMax = poolRowMax(
      row,
      kStart - keyOffset,
      nCols,
      scale,
      values,
      outBase,
      colBin,
      qPos + 1 - kStart,
    );
    if (rowMax > max) max = rowMax;
  }
  return {
    values,
    rows,
    cols,
    queryPositions: Int32Array.from(rowIndices, (r) => allRows[r]),
    keyRange: [kStart, k1],
    max,
    head: h >= 0 ? h : "mean",
    reduced: rows < nRows || cols < nCols,
  };
}

function clampRange(
  range: PositionRange | undefined,
  [lo, hi]: PositionRange,
  what: string,
): PositionRange {
  if (range === undefined) return [lo, hi];
  const [a, b] = range;
  if (!Number.isInteger(a) || !Number.isInteger(b) || b <= a) {
    throw new RangeError(
      `Cannot zoom to window.${what} [${a}, ${b}]: expected integers [start, end) with start < end`,
    );
  }
  const start = Math.max(a, lo);
  const end = Math.min(b, hi);
  if (start >= end) {
    throw new RangeError(
      `Cannot zoom to window.${what} [${a}, ${b}]: captured ${what} positions are ${lo} to ${
        hi - 1
      }; pick a range that overlaps them`,
    );
  }
  return [start, end];
}

let float16Values: Float32Array | null = null;

/** Every float16 bit pattern's value, built once. */
function float16Table(): Float32Array {
  if (!float16Values) {
    const patterns = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) patterns[i] = i;
    float16Values = Float32Array.from(new Float16Array(patterns.buffer));
  }
  return float16Values;
}
