/**
 * The demo model's forward pass: an attention-only decoder (as in the
 * induction-head papers) with causal multi-head softmax attention, scale
 * 1/sqrt(headDim), run one position at a time over a key/value cache. The
 * prompt and the generated tokens go through the same code, so the attention
 * a caller captures is exactly the attention that produced each token.
 *
 * @module
 */

import { SEGMENT } from "./segments.ts";
import { PositionTracker } from "./segments.ts";
import { addRowTimes, type DemoWeights, type SparseMatrix } from "./weights.ts";

/**
 * Attention weights below this are left out of the weighted sum of values
 * (their contribution is under 1e-12 per key, far below float16 resolution);
 * the returned rows still hold them.
 */
const NEGLIGIBLE_WEIGHT = 1e-12;
/** Below this, exp() rounds to zero in float32. */
const UNDERFLOW = -104;
/** Query components this much smaller than the largest are skipped. */
const NEGLIGIBLE_QUERY = 1e-12;

interface HeadPlan {
  /** Head-local dimensions where both queries and keys can be nonzero. */
  qk: Int32Array;
  /** Head-local dimensions where values can be nonzero and reach the output. */
  v: Int32Array;
}

function nonzeroColumns(m: SparseMatrix): Uint8Array {
  const used = new Uint8Array(m.cols);
  for (let e = 0; e < m.col.length; e++) {
    if (m.value[e] !== 0) used[m.col[e]] = 1;
  }
  return used;
}

function nonzeroRows(m: SparseMatrix): Uint8Array {
  const used = new Uint8Array(m.rows);
  for (let r = 0; r < m.rows; r++) {
    if (m.rowStart[r + 1] > m.rowStart[r]) used[r] = 1;
  }
  return used;
}

function planHeads(weights: DemoWeights): HeadPlan[][] {
  const { numHeads, headDim } = weights.config;
  return weights.layers.map((layer) => {
    const q = nonzeroColumns(layer.wq), k = nonzeroColumns(layer.wk);
    const v = nonzeroColumns(layer.wv), o = nonzeroRows(layer.wo);
    const heads: HeadPlan[] = [];
    for (let h = 0; h < numHeads; h++) {
      const qk: number[] = [], vd: number[] = [];
      for (let a = 0; a < headDim; a++) {
        const c = h * headDim + a;
        if (q[c] && k[c]) qk.push(a);
        if (v[c] && o[c]) vd.push(a);
      }
      heads.push({ qk: Int32Array.from(qk), v: Int32Array.from(vd) });
    }
    return heads;
  });
}

/** Keys stored by dimension (column-major), so a score pass reads memory in order. */
class KeyColumns {
  data: Float32Array;
  capacity: number;
  constructor(readonly width: number, capacity: number) {
    this.capacity = Math.max(1, capacity);
    this.data = new Float32Array(Math.max(1, width * this.capacity));
  }
  ensure(rows: number): void {
    if (rows <= this.capacity) return;
    const capacity = Math.max(rows, this.capacity * 2);
    const next = new Float32Array(Math.max(1, this.width * capacity));
    for (let a = 0; a < this.width; a++) {
      next.set(
        this.data.subarray(a * this.capacity, (a + 1) * this.capacity),
        a * capacity,
      );
    }
    this.data = next;
    this.capacity = capacity;
  }
}

class GrowingRows {
  data: Float32Array;
  constructor(readonly width: number, capacity: number) {
    this.data = new Float32Array(Math.max(1, width * capacity));
  }
  ensure(rows: number): void {
    if (rows * this.width <= this.data.length) return;
    const next = new Float32Array(
      Math.max(rows * this.width, this.data.length * 2),
    );
    next.set(this.data);
    this.data = next;
  }
}

/**
 * The attention rows of one captured layer, packed: the rows of positions
 * `first <= t < end` (all heads, keys 0..t), row t starting at
 * `heads * (t * (t + 1) / 2 - first * (first + 1) / 2)`. One buffer that
 * doubles as it grows, not one small array per row: a server running many
 * captures at once would otherwise fragment its heap with them. Positions
 * outside the range are not kept, so memory follows the rows asked for.
 */
class PackedRows {
  data: Float32Array;
  rows = 0;
  constructor(
    readonly heads: number,
    capacityRows: number,
    readonly first = 0,
    readonly end = Infinity,
  ) {
    this.data = new Float32Array(
      this.offset(Math.max(0, Math.min(capacityRows, end) - first)),
    );
  }
  /** Where stored row `i` (position `first + i`) starts. */
  offset(i: number): number {
    const t = this.first + i, f = this.first;
    return this.heads * (t * (t + 1) / 2 - f * (f + 1) / 2);
  }
  /** Room for position `t`'s row, returned as a view to fill; `undefined` outside the range. */
  next(t: number): Float32Array | undefined {
    if (t < this.first || t >= this.end) return undefined;
    const i = this.rows;
    const end = this.offset(i + 1);
    if (end > this.data.length) {
      const next = new Float32Array(
        Math.max(end, this.offset(2 * i + 2)),
      );
      next.set(this.data.subarray(0, this.offset(i)));
      this.data = next;
    }
    this.rows++;
    return this.data.subarray(this.offset(i), end);
  }
  views(): Float32Array[] {
    return Array.from(
      { length: this.rows },
      (_, i) => this.data.subarray(this.offset(i), this.offset(i + 1)),
    );
  }
}

const plans = new WeakMap<DemoWeights, HeadPlan[][]>();

/** Options for {@linkcode Sequence}. */
export interface SequenceOptions {
  /** Layers whose attention rows to keep. @default {[]} */
  captureLayers?: readonly number[];
  /**
   * Only the rows of these positions are kept, half-open.
   * @default {undefined} every row
   */
  captureRows?: { start: number; end: number };
  /**
   * Query heads `[layer, head]` whose outputs are zeroed before the output
   * projection (their attention is still computed and captured).
   * @default {[]}
   */
  ablateHeads?: readonly (readonly [number, number])[];
  /** Expected length, to size the caches. @default {256} */
  expectedLength?: number;
}

/**
 * One sequence being run through the model: push tokens one at a time, get
 * the next-token logits after each.
 *
 * @example
 * ```ts
 * import { Sequence } from "./forward.ts";
 * import { loadWeights } from "./weights.ts";
 * import { SPECIAL } from "./vocab.ts";
 * import assert from "node:assert/strict";
 * const seq = new Sequence(loadWeights(), { captureLayers: [0] });
 * seq.push(SPECIAL.bos);
 * seq.push(SPECIAL.startOfTurn);
 * const row = seq.attentionRows(0)[1]; // position 1, all heads, keys 0..1
 * assert.equal(row.length, 12 * 2);
 * assert.ok(Math.abs(row[0] + row[1] - 1) < 1e-6);
 * ```
 */
export class Sequence {
  readonly #w: DemoWeights;
  readonly #plans: HeadPlan[][];
  readonly #tracker = new PositionTracker();
  readonly #keys: KeyColumns[][];
  readonly #values: GrowingRows[][];
  readonly #capture: Map<number, PackedRows>;
  /** Per layer, 1 for each head whose output is zeroed. */
  readonly #ablated: Uint8Array[];
  readonly #x: Float32Array;
  readonly #q: Float32Array;
  readonly #k: Float32Array;
  readonly #v: Float32Array;
  readonly #o: Float32Array;
  #scores = new Float64Array(256);
  #length = 0;

  /**
   * @param weights Model weights.
   * @param options Capture and sizing.
   */
  constructor(weights: DemoWeights, options: SequenceOptions = {}) {
    this.#w = weights;
    let p = plans.get(weights);
    if (!p) plans.set(weights, p = planHeads(weights));
    this.#plans = p;
    const n = options.expectedLength ?? 256;
    this.#keys = p.map((heads) =>
      heads.map((h) => new KeyColumns(h.qk.length, n))
    );
    this.#values = p.map((heads) =>
      heads.map((h) => new GrowingRows(h.v.length, n))
    );
    const { dModel, numHeads, headDim } = weights.config;
    const rows = options.captureRows;
    this.#capture = new Map(
      (options.captureLayers ?? []).map((
        l,
      ) => [l, new PackedRows(numHeads, n, rows?.start, rows?.end)]),
    );
    this.#ablated = weights.layers.map(() => new Uint8Array(numHeads));
    for (const [l, h] of options.ablateHeads ?? []) this.#ablated[l][h] = 1;
    this.#x = new Float32Array(dModel);
    this.#q = new Float32Array(numHeads * headDim);
    this.#k = new Float32Array(numHeads * headDim);
    this.#v = new Float32Array(numHeads * headDim);
    this.#o = new Float32Array(numHeads * headDim);
  }

  /** Positions pushed so far. */
  get length(): number {
    return this.#length;
  }

  /**
   * Attention rows kept for a captured layer: the row of position t holds
   * `heads * (t + 1)` weights, head-major; with `captureRows`, the first
   * row is position `captureRows.start`.
   *
   * @param layer A layer passed in `captureLayers`.
   * @returns The rows so far (views into the sequence's buffer).
   */
  attentionRows(layer: number): Float32Array[] {
    const rows = this.#capture.get(layer);
    if (!rows) {
      throw new RangeError(
        `Cannot return attention of layer ${layer}: it was not captured; pass it in captureLayers`,
      );
    }
    return rows.views();
  }

  /**
   * Stops keeping a captured layer's rows and lets go of them (once they
   * have been read); later positions are not captured for it.
   *
   * @param layer A layer passed in `captureLayers`.
   */
  releaseAttention(layer: number): void {
    this.#capture.delete(layer);
  }

  /**
   * Runs one position through every layer.
   *
   * @param id Token id.
   * @param patch Image-patch features (mean red, green, blue in 0..1), for image-patch tokens.
   * @returns The residual stream after the last layer (length dModel; reused on the next call).
   */
  push(id: number, patch?: Float32Array): Float32Array {
    const w = this.#w;
    const {
      numHeads,
      headDim,
      positionSlot,
      linePositionSlot,
      positionFrequencies,
    } = w.config;
    const t = this.#length;
    const x = this.#x;
    x.fill(0);
    const { segment, clock, line } = this.#tracker.next(id);
    for (let e = w.embed.rowStart[id]; e < w.embed.rowStart[id + 1]; e++) {
      x[w.embed.col[e]] += w.embed.value[e];
    }
    for (
      let e = w.segment.rowStart[segment];
      e < w.segment.rowStart[segment + 1];
      e++
    ) {
      x[w.segment.col[e]] += w.segment.value[e];
    }
    for (let p = 0; p < positionFrequencies.length; p++) {
      x[positionSlot + 2 * p] += Math.cos(positionFrequencies[p] * clock);
      x[positionSlot + 2 * p + 1] += Math.sin(positionFrequencies[p] * clock);
      x[linePositionSlot + 2 * p] += Math.cos(positionFrequencies[p] * line);
      x[linePositionSlot + 2 * p + 1] += Math.sin(
        positionFrequencies[p] * line,
      );
    }
    if (segment === SEGMENT.vision) {
      if (!patch) {
        throw new TypeError(
          `Cannot run position ${t}: it is an image patch without features`,
        );
      }
      addRowTimes(patch, w.patch, x);
    }
    if (this.#scores.length < t + 1) {
      this.#scores = new Float64Array(Math.max(t + 1, this.#scores.length * 2));
    }
    const scores = this.#scores;
    const scale = 1 / Math.sqrt(headDim);
    const sigDim = new Int32Array(headDim);
    const sigValue = new Float64Array(headDim);

    for (let l = 0; l < w.layers.length; l++) {
      const layer = w.layers[l];
      const q = this.#q, k = this.#k, v = this.#v, o = this.#o;
      q.fill(0);
      k.fill(0);
      v.fill(0);
      o.fill(0);
      addRowTimes(x, layer.wq, q);
      addRowTimes(x, layer.wk, k);
      addRowTimes(x, layer.wv, v);
      const captured = this.#capture.get(l);
      const row = captured?.next(t);
      const ablated = this.#ablated[l];
      for (let h = 0; h < numHeads; h++) {
        const plan = this.#plans[l][h];
        const base = h * headDim;
        const na = plan.qk.length, nv = plan.v.length;
        const keys = this.#keys[l][h], values = this.#values[l][h];
        keys.ensure(t + 1);
        values.ensure(t + 1);
        const kd = keys.data, vd = values.data;
        const cap = keys.capacity;
        // Keys are sparse and the columns start zeroed: write only nonzeros
        // (each write touches its own cache line).
        for (let a = 0; a < na; a++) {
          const value = k[base + plan.qk[a]];
          if (value !== 0) kd[a * cap + t] = value;
        }
        for (let b = 0; b < nv; b++) vd[t * nv + b] = v[base + plan.v[b]];
        // The query's significant components (constructed queries are sparse).
        let largest = 0;
        for (let a = 0; a < na; a++) {
          largest = Math.max(largest, Math.abs(q[base + plan.qk[a]]));
        }
        let ns = 0;
        for (let a = 0; a < na; a++) {
          const value = q[base + plan.qk[a]];
          if (Math.abs(value) > largest * NEGLIGIBLE_QUERY) {
            sigDim[ns] = a;
            sigValue[ns++] = value * scale;
          }
        }
        scores.fill(0, 0, t + 1);
        for (let i = 0; i < ns; i++) {
          const qa = sigValue[i], col = sigDim[i] * cap;
          for (let j = 0; j <= t; j++) scores[j] += qa * kd[col + j];
        }
        let max = -Infinity;
        for (let j = 0; j <= t; j++) if (scores[j] > max) max = scores[j];
        let sum = 0;
        for (let j = 0; j <= t; j++) {
          const d = scores[j] - max;
          // exp(d) below e^-104 is 0 in the float32 rows returned, and adds
          // nothing to a float64 sum of at least 1: skip the call.
          const e = d < UNDERFLOW ? 0 : Math.exp(d);
          scores[j] = e;
          sum += e;
        }
        for (let j = 0; j <= t; j++) scores[j] /= sum;
        if (row) {
          for (let j = 0; j <= t; j++) row[h * (t + 1) + j] = scores[j];
        }
        // An ablated head's output stays zero: nothing it reads reaches wo.
        if (nv > 0 && !ablated[h]) {
          for (let j = 0; j <= t; j++) {
            const p = scores[j];
            if (p < NEGLIGIBLE_WEIGHT) continue;
            const off = j * nv;
            for (let b = 0; b < nv; b++) o[base + plan.v[b]] += p * vd[off + b];
          }
        }
      }
      addRowTimes(o, layer.wo, x);
    }
    this.#length++;
    return x;
  }

  /**
   * Next-token logits from a residual returned by {@linkcode Sequence.push}.
   *
   * @param residual The final residual stream of one position.
   * @param out Where to write them (a generation reuses one buffer);
   *   by default a new array.
   * @returns Logits over the vocabulary.
   */
  logits(
    residual: Float32Array,
    out: Float64Array = new Float64Array(this.#w.config.vocabSize),
  ): Float64Array {
    out.fill(0);
    addRowTimes(residual, this.#w.unembed, out);
    return out;
  }
}
