/**
 * Loads the demo model's weights file into sparse row-major matrices.
 *
 * The constructed weights are almost all zeros, so the file stores each
 * tensor as the flat indices and values of its nonzero entries, and the
 * forward pass multiplies with compressed rows: the same products as a dense
 * matrix multiply, without the zeros.
 *
 * @module
 */

import weightsFile from "./weights.json" with { type: "json" };

/** Model hyperparameters from the weights file. */
export interface ModelConfig {
  /** Served model name. */
  name: string;
  /** Residual-stream width. */
  dModel: number;
  /** Decoder layers. */
  numLayers: number;
  /** Heads per layer. */
  numHeads: number;
  /** Width of each head's query, key and value. */
  headDim: number;
  /** Vocabulary size. */
  vocabSize: number;
  /** Longest sequence. */
  maxPositions: number;
  /** First residual dimension of the sinusoidal position code. */
  positionSlot: number;
  /** First residual dimension of the sinusoidal line-number code. */
  linePositionSlot: number;
  /** Angular frequency of each sinusoid pair. */
  positionFrequencies: number[];
}

/** A matrix stored by compressed rows. */
export interface SparseMatrix {
  /** Rows (input width). */
  rows: number;
  /** Columns (output width). */
  cols: number;
  /** `rowStart[r]..rowStart[r + 1]` index the entries of row r. */
  rowStart: Int32Array;
  /** Column of each entry. */
  col: Int32Array;
  /** Value of each entry. */
  value: Float32Array;
  /**
   * The rows that hold entries, ascending: products skip the rest without
   * reading them (most of the wide head dimensions feed nothing).
   */
  filledRows?: Int32Array;
}

/** One decoder layer's attention projections. */
export interface LayerWeights {
  /** Residual -> queries of all heads (`[dModel, heads * headDim]`). */
  wq: SparseMatrix;
  /** Residual -> keys. */
  wk: SparseMatrix;
  /** Residual -> values. */
  wv: SparseMatrix;
  /** Concatenated head outputs -> residual (`[heads * headDim, dModel]`). */
  wo: SparseMatrix;
}

/** Everything the forward pass needs. */
export interface DemoWeights {
  /** Hyperparameters. */
  config: ModelConfig;
  /** Token strings by id. */
  vocab: string[];
  /** Token embedding `[vocab, dModel]`. */
  embed: SparseMatrix;
  /** Segment embedding `[4, dModel]` (text, frame, vision, bos). */
  segment: SparseMatrix;
  /** Image-patch feature projection `[3, dModel]`. */
  patch: SparseMatrix;
  /** Decoder layers. */
  layers: LayerWeights[];
  /** Unembedding `[dModel, vocab]`. */
  unembed: SparseMatrix;
}

interface StoredTensor {
  shape: number[];
  index: number[];
  value: number[];
}

/**
 * Builds a compressed-row matrix from a stored tensor.
 *
 * @param stored Shape, flat indices (ascending) and values.
 * @returns The sparse matrix.
 *
 * @example
 * ```ts
 * import { toSparse } from "./weights.ts";
 * import assert from "node:assert/strict";
 * const m = toSparse({ shape: [2, 3], index: [1, 3], value: [5, 7] });
 * assert.deepEqual([...m.rowStart], [0, 1, 2]);
 * assert.deepEqual([...m.col], [1, 0]);
 * ```
 */
export function toSparse(stored: StoredTensor): SparseMatrix {
  const [rows, cols] = stored.shape;
  const n = stored.index.length;
  const rowStart = new Int32Array(rows + 1);
  const col = new Int32Array(n);
  const value = new Float32Array(n);
  let previous = -1;
  for (let e = 0; e < n; e++) {
    const flat = stored.index[e];
    if (!(flat > previous) || flat >= rows * cols) {
      throw new RangeError(
        `Cannot load weights: entry ${e} has index ${flat} (out of order or outside ${rows}x${cols}); rebuild with deno task build-weights`,
      );
    }
    previous = flat;
    rowStart[Math.floor(flat / cols) + 1]++;
    col[e] = flat % cols;
    value[e] = stored.value[e];
  }
  const filled: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (rowStart[r + 1] > 0) filled.push(r);
    rowStart[r + 1] += rowStart[r];
  }
  return {
    rows,
    cols,
    rowStart,
    col,
    value,
    filledRows: Int32Array.from(filled),
  };
}

/**
 * Adds `scale * x · m` into `out` (x a row vector of length `m.rows`).
 *
 * @param x Input row.
 * @param m Matrix.
 * @param out Output row of length `m.cols`, accumulated into.
 * @param scale Multiplier. @default {1}
 *
 * @example
 * ```ts
 * import { addRowTimes, toSparse } from "./weights.ts";
 * import assert from "node:assert/strict";
 * const m = toSparse({ shape: [2, 2], index: [0, 3], value: [2, 3] });
 * const out = new Float32Array(2);
 * addRowTimes(new Float32Array([1, 1]), m, out);
 * assert.deepEqual([...out], [2, 3]);
 * ```
 */
export function addRowTimes(
  x: ArrayLike<number>,
  m: SparseMatrix,
  out: Float32Array | Float64Array,
  scale = 1,
): void {
  const { rowStart, col, value } = m;
  const filled = m.filledRows;
  const n = filled ? filled.length : m.rows;
  for (let i = 0; i < n; i++) {
    const r = filled ? filled[i] : i;
    const xr = x[r];
    if (xr === 0) continue;
    const s = xr * scale;
    for (let e = rowStart[r], end = rowStart[r + 1]; e < end; e++) {
      out[col[e]] += s * value[e];
    }
  }
}

/**
 * Expands a sparse matrix to a dense row-major array (for tests and
 * inspection).
 *
 * @param m Matrix.
 * @returns `m.rows * m.cols` values.
 *
 * @example
 * ```ts
 * import { toDense, toSparse } from "./weights.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([...toDense(toSparse({ shape: [1, 2], index: [1], value: [4] }))], [0, 4]);
 * ```
 */
export function toDense(m: SparseMatrix): Float32Array {
  const dense = new Float32Array(m.rows * m.cols);
  for (let r = 0; r < m.rows; r++) {
    for (let e = m.rowStart[r]; e < m.rowStart[r + 1]; e++) {
      dense[r * m.cols + m.col[e]] = m.value[e];
    }
  }
  return dense;
}

let cached: DemoWeights | undefined;

/**
 * The committed weights (`server/model/weights.json`), parsed once.
 *
 * @returns The weights.
 *
 * @example
 * ```ts
 * import { loadWeights } from "./weights.ts";
 * import assert from "node:assert/strict";
 * const w = loadWeights();
 * assert.equal(w.layers.length, w.config.numLayers);
 * ```
 */
export function loadWeights(): DemoWeights {
  if (cached) return cached;
  const file = weightsFile as unknown as {
    format: string;
    config: ModelConfig;
    vocab: string[];
    tensors: Record<string, StoredTensor>;
  };
  if (file.format !== "attnscope-demo-weights/1") {
    throw new TypeError(
      `Cannot load weights: format is ${file.format}, expected attnscope-demo-weights/1; rebuild with deno task build-weights`,
    );
  }
  const t = (name: string) => {
    const stored = file.tensors[name];
    if (!stored) {
      throw new TypeError(
        `Cannot load weights: tensor ${name} is missing; rebuild with deno task build-weights`,
      );
    }
    return toSparse(stored);
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < file.config.numLayers; l++) {
    layers.push({
      wq: t(`layers.${l}.wq`),
      wk: t(`layers.${l}.wk`),
      wv: t(`layers.${l}.wv`),
      wo: t(`layers.${l}.wo`),
    });
  }
  cached = {
    config: file.config,
    vocab: file.vocab,
    embed: t("embed"),
    segment: t("segment"),
    patch: t("patch"),
    layers,
    unembed: t("unembed"),
  };
  return cached;
}
