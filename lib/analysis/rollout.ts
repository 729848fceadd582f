/**
 * Attention rollout (Abnar and Zuidema, 2020, "Quantifying Attention Flow in
 * Transformers"): how much each position at the top of a stack of layers
 * draws, through the residual stream, on each input position.
 *
 * Per layer `l`: `Â_l = norm(mean_h A_l[h] + I)`, the head-mean attention
 * with the identity added for the residual connection and every row
 * rescaled to sum to 1 (for rows that sum to 1 this is the paper's
 * `0.5 A + 0.5 I`). The rollout over layers `a..b` is the product
 * `R = Â_b · Â_{b-1} · ... · Â_a`; `R[q, k]` is the share of position `q`'s
 * representation after layer `b` that flows from input position `k`.
 *
 * @module
 */

import { type CaptureLike, normalizeCapture } from "../data/capture_input.ts";
import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import type { AttentionLayer } from "../data/layer.ts";
import { resolveIndex } from "../data/scores.ts";
import { warn } from "../warn.ts";
import {
  type ProgressOptions,
  progressReporter,
  ProgressTracker,
} from "../progress.ts";

/**
 * Options for {@linkcode attentionRollout}. Progress: `decoding` with layers
 * multiplied in of the layers in the range, then `done`; the Jupyter bar
 * shows only when the rollout takes over about a second.
 */
export interface RolloutOptions extends ProgressOptions {
  /**
   * First layer of the product (the one nearest the input).
   * @default {the lowest captured layer}
   */
  firstLayer?: number;
  /**
   * Last layer of the product.
   * @default {the highest captured layer}
   */
  lastLayer?: number;
  /**
   * Add the identity before normalizing (the residual connection). Without
   * it the product is plain attention multiplication.
   * @default {true}
   */
  addResidual?: boolean;
}

/**
 * A `[Tq, Tk]` float64 matrix with the absolute position of every row and
 * column, as {@linkcode attentionRollout} returns it. Rows and columns are
 * addressed by index (negative counts from the end), as in `AttentionScores`.
 *
 * @example
 * ```ts
 * import { AttentionMatrix } from "./rollout.ts";
 * import assert from "node:assert/strict";
 *
 * const m = new AttentionMatrix(new Float64Array([1, 0, 0.25, 0.75]), [2, 2], { layers: [0] });
 * assert.equal(m.get(1, 1), 0.75);
 * assert.deepEqual([...m.row(-1)], [0.25, 0.75]);
 * ```
 */
export class AttentionMatrix {
  /** Row-major values, index of (q, k) is `q * Tk + k`. */
  readonly data: Float64Array;
  /** `[Tq, Tk]`. */
  readonly shape: readonly [number, number];
  /** Absolute position of each row. */
  readonly queryPositions: Int32Array;
  /** Absolute position of column 0. */
  readonly keyOffset: number;
  /** The layers multiplied, lowest first. */
  readonly layers: readonly number[];

  /**
   * Wraps a matrix; the array is used, not copied.
   *
   * @param data Row-major values.
   * @param shape `[Tq, Tk]`.
   * @param options Positions and the layers it came from.
   * @throws {TypeError} When the shape does not match the data.
   *
   * @example
   * ```ts
   * import { AttentionMatrix } from "./rollout.ts";
   * import assert from "node:assert/strict";
   *
   * assert.throws(() => new AttentionMatrix(new Float64Array(3), [2, 2]), TypeError);
   * ```
   */
  constructor(
    data: Float64Array,
    shape: readonly [number, number],
    options: {
      queryPositions?: ArrayLike<number>;
      keyOffset?: number;
      layers?: readonly number[];
    } = {},
  ) {
    const [tq, tk] = shape;
    if (data.length !== tq * tk) {
      throw new TypeError(
        `Cannot create AttentionMatrix: shape [${tq}, ${tk}] needs ${
          tq * tk
        } values but the array has ${data.length}`,
      );
    }
    this.data = data;
    this.shape = Object.freeze([tq, tk]) as readonly [number, number];
    this.keyOffset = options.keyOffset ?? 0;
    this.queryPositions = options.queryPositions
      ? Int32Array.from(options.queryPositions)
      : Int32Array.from({ length: tq }, (_, i) => this.keyOffset + tk - tq + i);
    this.layers = Object.freeze([...(options.layers ?? [])]);
  }

  /**
   * One value.
   *
   * @param q Row index (negative counts from the end).
   * @param k Column index (negative counts from the end).
   * @returns The value.
   *
   * @example
   * ```ts
   * import { AttentionMatrix } from "./rollout.ts";
   * import assert from "node:assert/strict";
   *
   * const m = new AttentionMatrix(new Float64Array([1, 0, 0.5, 0.5]), [2, 2]);
   * assert.equal(m.get(-1, 0), 0.5);
   * ```
   */
  get(q: number, k: number): number {
    const [tq, tk] = this.shape;
    return this.data[
      resolveIndex(q, tq, "query row") * tk + resolveIndex(k, tk, "key column")
    ];
  }

  /**
   * One row as a view into {@linkcode data} (no copy).
   *
   * @param q Row index (negative counts from the end).
   * @returns `Tk` values.
   *
   * @example
   * ```ts
   * import { AttentionMatrix } from "./rollout.ts";
   * import assert from "node:assert/strict";
   *
   * const m = new AttentionMatrix(new Float64Array([1, 0, 0.5, 0.5]), [2, 2]);
   * assert.deepEqual([...m.row(0)], [1, 0]);
   * ```
   */
  row(q: number): Float64Array {
    const [tq, tk] = this.shape;
    const start = resolveIndex(q, tq, "query row") * tk;
    return this.data.subarray(start, start + tk);
  }

  /**
   * A one-line description.
   *
   * @returns E.g. `AttentionMatrix [138, 138] (rollout of layers 0-5)`.
   *
   * @example
   * ```ts
   * import { AttentionMatrix } from "./rollout.ts";
   * import assert from "node:assert/strict";
   *
   * const m = new AttentionMatrix(new Float64Array(4), [2, 2], { layers: [0, 1] });
   * assert.equal(m.toString(), "AttentionMatrix [2, 2] (rollout of layers 0-1)");
   * ```
   */
  toString(): string {
    const l = this.layers;
    const of = l.length === 0
      ? ""
      : l.length === 1
      ? ` (rollout of layer ${l[0]})`
      : ` (rollout of layers ${l[0]}-${l[l.length - 1]})`;
    return `AttentionMatrix [${this.shape.join(", ")}]${of}`;
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows: a heatmap once the chart
   * layer is loaded.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { AttentionMatrix } from "./rollout.ts";
   * import assert from "node:assert/strict";
   *
   * const m = new AttentionMatrix(new Float64Array([1]), [1, 1]);
   * assert.match(String((await m[JUPYTER_DISPLAY]())["text/plain"]), /AttentionMatrix \[1, 1\]/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("attention-matrix", this, this.toString());
  }
}

/**
 * Attention rollout through consecutive captured layers (Abnar and Zuidema,
 * 2020): `R = Â_b · ... · Â_a` with `Â_l = norm(mean_h A_l + I)`, see the
 * module doc.
 *
 * Every layer from `firstLayer` to `lastLayer` must be captured, over the
 * same key positions; all but the last must hold a query row for every key
 * position (a square capture). The last may hold only some rows; the result
 * then has those rows. A capture whose keys start after position 0 is rolled
 * out within its window (attention to earlier positions is unseen), with a
 * warning.
 *
 * @param capture What `extractAttentionFromResponse` or `captureAttention` returns.
 * @param options The layer range and whether to add the residual identity.
 * @returns `[Tq, Tk]` rollout matrix.
 * @throws {RangeError} When layers in the range are missing (naming them).
 * @throws {TypeError} When layers cover different positions or an inner layer lacks rows.
 *
 * @example Two layers that each look one back
 * ```ts
 * import { AttentionLayer } from "../data/layer.ts";
 * import { attentionRollout } from "./rollout.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const prev = new Float32Array([1, 0, 0, 1, 0, 0, 0, 1, 0]); // T=3, H=1
 * const layer = (i: number) =>
 *   new AttentionLayer({
 *     layer: i,
 *     model: null,
 *     scores: new AttentionScores(prev, [3, 1, 3]),
 *     tokenMeta: TokenMeta.from({}),
 *   });
 * const r = attentionRollout({ 0: layer(0), 1: layer(1) });
 * // Each layer: row 2 keeps 1/2 on itself, 1/2 on position 1; squared:
 * // 1/4 on 2, 1/2 on 1 (via both paths), 1/4 on 0.
 * assert.deepEqual([...r.row(2)], [0.25, 0.5, 0.25]);
 * assert.throws(() => attentionRollout({ 0: layer(0), 2: layer(2) }), /layer 1 is missing/);
 * ```
 */
export function attentionRollout(
  capture: CaptureLike,
  options: RolloutOptions = {},
): AttentionMatrix {
  const { layers: all } = normalizeCapture(
    capture,
    "compute attention rollout",
  );
  const first = options.firstLayer ?? all[0].layer;
  const last = options.lastLayer ?? all[all.length - 1].layer;
  const addResidual = options.addResidual ?? true;
  if (!Number.isInteger(first) || !Number.isInteger(last) || first > last) {
    throw new RangeError(
      `Cannot compute attention rollout: firstLayer ${first} and lastLayer ${last} are not integers with firstLayer <= lastLayer`,
    );
  }
  const byIndex = new Map(all.map((l) => [l.layer, l]));
  const missing: number[] = [];
  for (let l = first; l <= last; l++) if (!byIndex.has(l)) missing.push(l);
  if (missing.length > 0) {
    const list = missing.length === 1
      ? `layer ${missing[0]} is missing`
      : `layers ${missing.join(", ")} are missing`;
    throw new RangeError(
      `Cannot compute attention rollout from layer ${first} to ${last}: ${list} from the capture; capture every layer in the range (attn_capture_layers="${
        Array.from({ length: last - first + 1 }, (_, i) => first + i).join(",")
      }" or "all")`,
    );
  }
  const layers = Array.from(
    { length: last - first + 1 },
    (_, i) => byIndex.get(first + i)!,
  );
  checkAligned(layers);
  const top = layers[layers.length - 1].scores;
  const tk = top.keyLength;
  if (top.keyOffset > 0) {
    warn(
      `attentionRollout: the capture's keys start at position ${top.keyOffset}, so the rollout covers positions ${top.keyOffset} to ${
        top.keyOffset + tk - 1
      } only and renormalizes rows over them`,
    );
  }
  const reporter = progressReporter(options, "attentionRollout");
  const tracker = new ProgressTracker(reporter.onProgress, {
    phase: "decoding",
    layersTotal: layers.length,
  });
  let rollout: Float64Array | null = null;
  try {
    for (const [n, layer] of layers.entries()) {
      const hat = residualMean(layer, addResidual);
      rollout = n === 0
        ? hat
        : multiply(hat, rollout!, layer.scores.queryLength, tk);
      tracker.finished();
    }
  } catch (error) {
    reporter.finish(null);
    throw error;
  }
  tracker.done();
  reporter.finish("attentionRollout through");
  return new AttentionMatrix(rollout!, [top.queryLength, tk], {
    queryPositions: top.queryPositions,
    keyOffset: top.keyOffset,
    layers: layers.map((l) => l.layer),
  });
}

/** Refuses layers that cover different keys or inner layers missing rows. */
function checkAligned(layers: AttentionLayer[]): void {
  const top = layers[layers.length - 1].scores;
  for (const [n, layer] of layers.entries()) {
    const s = layer.scores;
    if (s.keyLength !== top.keyLength || s.keyOffset !== top.keyOffset) {
      throw new TypeError(
        `Cannot compute attention rollout: layer ${layer.layer} covers key positions ${s.keyOffset} to ${
          s.keyOffset + s.keyLength - 1
        } but layer ${
          layers[layers.length - 1].layer
        } covers ${top.keyOffset} to ${
          top.keyOffset + top.keyLength - 1
        }; use layers of one capture`,
      );
    }
    if (n === layers.length - 1) break;
    // An inner layer feeds every position of the next one, so it needs a
    // query row at each key position, in order.
    const full = s.queryLength === s.keyLength &&
      s.queryPositions.every((p, i) => p === s.keyOffset + i);
    if (!full) {
      throw new TypeError(
        `Cannot compute attention rollout: layer ${layer.layer} holds ${s.queryLength} query rows for ${s.keyLength} keys, but every layer below the last needs a row per key; capture without a query prefix (attn_capture_prefix) or start the rollout at layer ${
          layers[n + 1].layer
        }`,
      );
    }
  }
}

/** `norm(mean_h A + I)` for one layer, `[Tq, Tk]` row-major float64. */
function residualMean(
  layer: AttentionLayer,
  addResidual: boolean,
): Float64Array {
  const s = layer.scores;
  const [tq, heads, tk] = s.shape;
  const out = new Float64Array(tq * tk);
  for (let r = 0; r < tq; r++) {
    const row = out.subarray(r * tk, (r + 1) * tk);
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * tk;
      for (let k = 0; k < tk; k++) row[k] += s.data[base + k];
    }
    let sum = 0;
    for (let k = 0; k < tk; k++) sum += row[k] /= heads;
    const self = s.queryPositions[r] - s.keyOffset;
    if (addResidual && self >= 0 && self < tk) {
      row[self] += 1;
      sum += 1;
    }
    if (sum > 0) { for (let k = 0; k < tk; k++) row[k] /= sum; }
  }
  return out;
}

/**
 * `hat · below`, where `below` is `[Tk, Tk]` indexed by key position and
 * `hat` is `[rows, Tk]`. Zero entries of `hat` are skipped and each row of
 * `below` is only read up to its last non-zero entry, so causal (lower
 * triangular) inputs cost about a sixth of a dense product.
 */
function multiply(
  hat: Float64Array,
  below: Float64Array,
  rows: number,
  tk: number,
): Float64Array {
  const extent = new Int32Array(tk);
  for (let j = 0; j < tk; j++) {
    let end = tk;
    while (end > 0 && below[j * tk + end - 1] === 0) end--;
    extent[j] = end;
  }
  const out = new Float64Array(rows * tk);
  for (let q = 0; q < rows; q++) {
    const o = q * tk;
    for (let j = 0; j < tk; j++) {
      const w = hat[o + j];
      if (w === 0) continue;
      const b = j * tk;
      for (let k = 0, end = extent[j]; k < end; k++) {
        out[o + k] += w * below[b + k];
      }
    }
  }
  return out;
}
