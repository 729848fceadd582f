/**
 * `AttentionScores`: one layer's softmax attention, `[Tq, H, Tk]`
 * (query x head x key), in one flat typed array, with the absolute position
 * of every query row and key column.
 *
 * @module
 */

import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";

/** Element type of the flat score array. */
export type ScoresDType = "float32" | "float16";

/** The flat array types scores may be held in. */
export type ScoresArray = Float32Array | Float16Array;

/** Shape of a capture: `[Tq, H, Tk]`, query rows x heads x key columns. */
export type ScoresShape = readonly [number, number, number];

/** Options for {@linkcode AttentionScores}. */
export interface AttentionScoresOptions {
  /**
   * Absolute position of each query row (length `Tq`), e.g. from
   * `token_meta.token_idx`.
   * @default {[keyOffset + Tk - Tq, ..., keyOffset + Tk - 1]} the last Tq key positions
   */
  queryPositions?: ArrayLike<number>;
  /**
   * Absolute position of key column 0; key column `k` is position
   * `k + keyOffset`.
   * @default {0}
   */
  keyOffset?: number;
}

/**
 * Attention probabilities of one layer.
 *
 * Rows are addressed by row index (`0..Tq-1`, negative counts from the end as
 * in numpy); {@linkcode AttentionScores.queryPositions} maps rows to absolute
 * token positions, which differ when a capture is offset or non-square.
 *
 * @example Reading values
 * ```ts
 * import { AttentionScores } from "./scores.ts";
 * import assert from "node:assert/strict";
 *
 * // T=2, H=1: row 0 attends only to itself, row 1 splits 0.25 / 0.75.
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * assert.equal(scores.get(1, 0, 1), 0.75);
 * assert.equal(scores.get(-1, 0, 0), 0.25);
 * assert.deepEqual([...scores.row(1, 0)], [0.25, 0.75]);
 * ```
 */
export class AttentionScores {
  /** The flat scores; index of (q, h, k) is `(q * H + h) * Tk + k`. */
  readonly data: ScoresArray;
  /** `[Tq, H, Tk]`. */
  readonly shape: ScoresShape;
  /** Absolute position of each query row. */
  readonly queryPositions: Int32Array;
  /** Absolute position of key column 0. */
  readonly keyOffset: number;

  /**
   * Wraps a flat array; the array is used, not copied.
   *
   * @param data Flat scores in C order.
   * @param shape `[Tq, H, Tk]`, positive integers whose product is `data.length`.
   * @param options Row and column positions.
   * @throws {TypeError} When the shape is not three positive integers or does not match the data.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * assert.throws(() => new AttentionScores(new Float32Array(3), [2, 1, 2]), TypeError);
   * ```
   */
  constructor(
    data: ScoresArray,
    shape: ScoresShape,
    options: AttentionScoresOptions = {},
  ) {
    if (
      !Array.isArray(shape) || shape.length !== 3 ||
      !shape.every((n) => Number.isInteger(n) && n > 0)
    ) {
      throw new TypeError(
        `Cannot create AttentionScores: shape ${
          JSON.stringify(shape)
        } is not three positive integers [Tq, H, Tk]`,
      );
    }
    const [tq, h, tk] = shape;
    if (data.length !== tq * h * tk) {
      throw new TypeError(
        `Cannot create AttentionScores: shape [${tq}, ${h}, ${tk}] needs ${
          tq * h * tk
        } values but the array has ${data.length}`,
      );
    }
    const keyOffset = options.keyOffset ?? 0;
    if (!Number.isInteger(keyOffset) || keyOffset < 0) {
      throw new RangeError(
        `Cannot create AttentionScores: keyOffset ${keyOffset} is not a non-negative integer`,
      );
    }
    let positions: Int32Array;
    if (options.queryPositions) {
      if (options.queryPositions.length !== tq) {
        throw new TypeError(
          `Cannot create AttentionScores: ${options.queryPositions.length} query positions given for ${tq} rows`,
        );
      }
      positions = Int32Array.from(options.queryPositions);
    } else {
      // Missing rows are a leading prefix: the rows are the last Tq keys.
      positions = new Int32Array(tq);
      const first = keyOffset + tk - tq;
      for (let i = 0; i < tq; i++) positions[i] = first + i;
    }
    this.data = data;
    this.shape = Object.freeze([tq, h, tk]) as ScoresShape;
    this.queryPositions = positions;
    this.keyOffset = keyOffset;
  }

  /** Number of query rows, `Tq`. */
  get queryLength(): number {
    return this.shape[0];
  }

  /** Number of heads, `H`. */
  get numHeads(): number {
    return this.shape[1];
  }

  /** Number of key columns, `Tk`. */
  get keyLength(): number {
    return this.shape[2];
  }

  /** `"float16"` or `"float32"`, the element type of {@linkcode data}. */
  get dtype(): ScoresDType {
    return this.data instanceof Float32Array ? "float32" : "float16";
  }

  /**
   * Resolves a row index, negative counting from the end.
   *
   * @param q Row index in `[-Tq, Tq)`.
   * @returns The row index in `[0, Tq)`.
   * @throws {RangeError} When out of range.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array(9), [3, 1, 3]);
   * assert.equal(s.rowIndex(-1), 2);
   * assert.throws(() => s.rowIndex(3), RangeError);
   * ```
   */
  rowIndex(q: number): number {
    return resolveIndex(q, this.shape[0], "query row");
  }

  /**
   * Resolves a head index, negative counting from the end.
   *
   * @param h Head index in `[-H, H)`.
   * @returns The head index in `[0, H)`.
   * @throws {RangeError} When out of range.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array(8), [2, 2, 2]);
   * assert.equal(s.headIndex(-1), 1);
   * ```
   */
  headIndex(h: number): number {
    return resolveIndex(h, this.shape[1], "head");
  }

  /**
   * One score.
   *
   * @param q Query row (negative counts from the end).
   * @param h Head (negative counts from the end).
   * @param k Key column (negative counts from the end).
   * @returns The attention probability.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
   * assert.equal(s.get(1, 0, -1), 0.5);
   * ```
   */
  get(q: number, h: number, k: number): number {
    const [, heads, tk] = this.shape;
    const kk = resolveIndex(k, tk, "key column");
    return this.data[(this.rowIndex(q) * heads + this.headIndex(h)) * tk + kk];
  }

  /**
   * One head's attention row as a view into {@linkcode data} (no copy).
   *
   * @param q Query row (negative counts from the end).
   * @param h Head (negative counts from the end).
   * @returns `Tk` probabilities.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
   * const row = s.row(0, 0);
   * assert.equal(row.buffer, s.data.buffer);
   * assert.deepEqual([...row], [1, 0]);
   * ```
   */
  row(q: number, h: number): ScoresArray {
    const [, heads, tk] = this.shape;
    const start = (this.rowIndex(q) * heads + this.headIndex(h)) * tk;
    return this.data.subarray(start, start + tk);
  }

  /**
   * The head-averaged attention row of one query.
   *
   * @param q Query row (negative counts from the end).
   * @returns `Tk` probabilities, averaged over heads.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * // One query row, two heads that disagree.
   * const s = new AttentionScores(new Float32Array([1, 0, 0, 1]), [1, 2, 2]);
   * assert.deepEqual([...s.meanHeads(0)], [0.5, 0.5]);
   * ```
   */
  meanHeads(q: number): Float64Array {
    const [, heads, tk] = this.shape;
    const out = new Float64Array(tk);
    const base = this.rowIndex(q) * heads * tk;
    for (let h = 0; h < heads; h++) {
      const start = base + h * tk;
      for (let k = 0; k < tk; k++) out[k] += this.data[start + k];
    }
    for (let k = 0; k < tk; k++) out[k] /= heads;
    return out;
  }

  /**
   * The row that holds an absolute position's query, or -1 if none does.
   *
   * @param position Absolute token position.
   * @returns The row index, or -1.
   *
   * @example An offset capture
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array(4), [2, 1, 2], { keyOffset: 5 });
   * assert.deepEqual([...s.queryPositions], [5, 6]);
   * assert.equal(s.rowForPosition(6), 1);
   * assert.equal(s.rowForPosition(0), -1);
   * ```
   */
  rowForPosition(position: number): number {
    return this.queryPositions.indexOf(position);
  }

  /**
   * Absolute position of a key column.
   *
   * @param k Key column (negative counts from the end).
   * @returns The absolute position.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array(4), [2, 1, 2], { keyOffset: 5 });
   * assert.equal(s.keyPosition(-1), 6);
   * ```
   */
  keyPosition(k: number): number {
    return resolveIndex(k, this.shape[2], "key column") + this.keyOffset;
  }

  /**
   * The scores as float32 (the same object when already float32).
   *
   * @returns Float32 scores with the same positions.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float16Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
   * assert.equal(s.toFloat32().dtype, "float32");
   * assert.equal(s.toFloat32().get(1, 0, 0), 0.5);
   * ```
   */
  toFloat32(): AttentionScores {
    if (this.data instanceof Float32Array) return this;
    return new AttentionScores(Float32Array.from(this.data), this.shape, {
      queryPositions: this.queryPositions,
      keyOffset: this.keyOffset,
    });
  }

  /**
   * A one-line description.
   *
   * @returns E.g. `AttentionScores [138, 8, 138] float32`.
   *
   * @example
   * ```ts
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array(4), [2, 1, 2]);
   * assert.equal(s.toString(), "AttentionScores [2, 1, 2] float32");
   * ```
   */
  toString(): string {
    return `AttentionScores [${this.shape.join(", ")}] ${this.dtype}`;
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows for these scores: a
   * head-averaged heatmap once the display layer is loaded.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { AttentionScores } from "./scores.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
   * const bundle = await s[JUPYTER_DISPLAY]();
   * assert.match(String(bundle["text/plain"]), /AttentionScores \[2, 1, 2\]/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("scores", this, this.toString());
  }
}

/**
 * Resolves a possibly negative index against a length, numpy style.
 *
 * @param index The index; negative counts from the end.
 * @param length The axis length.
 * @param what The axis name for the error message.
 * @returns The index in `[0, length)`.
 * @throws {RangeError} When out of range.
 *
 * @example
 * ```ts
 * import { resolveIndex } from "./scores.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(resolveIndex(-1, 5, "row"), 4);
 * assert.throws(() => resolveIndex(5, 5, "row"), RangeError);
 * ```
 */
export function resolveIndex(
  index: number,
  length: number,
  what: string,
): number {
  if (!Number.isInteger(index) || index < -length || index >= length) {
    throw new RangeError(
      `Cannot index ${what} ${index}: valid values are ${-length} to ${
        length - 1
      }`,
    );
  }
  return index < 0 ? index + length : index;
}
