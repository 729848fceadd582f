/**
 * Rotary position embeddings as HF's `modeling_rope_utils.py` computes them
 * (default, linear and llama3 frequencies), in float32 steps, and the
 * rotate-half application.
 *
 * @module
 */

import type { RopeSpec } from "./config.ts";

const f = Math.fround;

/**
 * The inverse frequencies of a head of width `dim`.
 *
 * @param dim Head width (even).
 * @param spec Base and scaling.
 * @returns `dim / 2` float32 frequencies.
 *
 * @example
 * ```ts
 * import { inverseFrequencies } from "./rope.ts";
 * import assert from "node:assert/strict";
 *
 * const inv = inverseFrequencies(4, { theta: 10000, scaling: { type: "linear", factor: 2 } });
 * assert.equal(inv[0], 0.5);
 * assert.ok(Math.abs(inv[1] - 0.005) < 1e-9);
 * ```
 */
export function inverseFrequencies(dim: number, spec: RopeSpec): Float32Array {
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    inv[i] = f(1 / f(Math.pow(spec.theta, f((2 * i) / dim))));
  }
  const s = spec.scaling;
  if (s.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = f(inv[i] / s.factor);
  } else if (s.type === "llama3") {
    const lowWl = s.originalMaxPositions / s.lowFreqFactor;
    const highWl = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const fr = inv[i];
      const wavelen = f((2 * Math.PI) / fr);
      const ll = wavelen > lowWl ? f(fr / s.factor) : fr;
      const smooth = f(
        (f(s.originalMaxPositions / wavelen) - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor),
      );
      const smoothed = f(
        f(f((1 - smooth) * ll) / s.factor) + f(smooth * ll),
      );
      const medium = !(wavelen < highWl) && !(wavelen > lowWl);
      inv[i] = medium ? smoothed : ll;
    }
  }
  return inv;
}

/** Cos/sin of every position up to a length, for one frequency set. */
export class RopeTable {
  /** `positions * half` cosines. */
  cos: Float32Array;
  /** `positions * half` sines. */
  sin: Float32Array;
  /** Positions covered. */
  length = 0;
  readonly #inv: Float32Array;

  /**
   * @param inv The inverse frequencies.
   */
  constructor(inv: Float32Array) {
    this.#inv = inv;
    this.cos = new Float32Array(0);
    this.sin = new Float32Array(0);
  }

  /**
   * Makes sure positions `[0, n)` are tabulated.
   *
   * @param n Positions needed.
   */
  ensure(n: number): void {
    if (n <= this.length) return;
    const half = this.#inv.length;
    const cos = new Float32Array(n * half);
    const sin = new Float32Array(n * half);
    cos.set(this.cos);
    sin.set(this.sin);
    for (let p = this.length; p < n; p++) {
      for (let i = 0; i < half; i++) {
        const a = f(p * this.#inv[i]);
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.length = n;
  }

  /**
   * Rotates `heads` heads of width `2 * half` in place: row `r` of `x`
   * (at `offset + r * stride`) is position `p0 + r`.
   *
   * @param x The projections.
   * @param offset Index of row 0's first head.
   * @param stride Elements per row.
   * @param rows Positions.
   * @param heads Heads per row.
   * @param p0 Position of row 0.
   *
   * @example Position 0 is the identity
   * ```ts
   * import { RopeTable } from "./rope.ts";
   * import assert from "node:assert/strict";
   *
   * const table = new RopeTable(new Float32Array([1]));
   * table.ensure(2);
   * const x = new Float32Array([1, 2]);
   * table.apply(x, 0, 2, 1, 1, 0);
   * assert.deepEqual([...x], [1, 2]);
   * ```
   */
  apply(
    x: Float32Array,
    offset: number,
    stride: number,
    rows: number,
    heads: number,
    p0: number,
  ): void {
    const half = this.#inv.length;
    const dim = 2 * half;
    const { cos, sin } = this;
    for (let r = 0; r < rows; r++) {
      const t = (p0 + r) * half;
      for (let h = 0; h < heads; h++) {
        const o = offset + r * stride + h * dim;
        for (let i = 0; i < half; i++) {
          const a = x[o + i], b = x[o + i + half];
          const c = cos[t + i], s = sin[t + i];
          x[o + i] = a * c - b * s;
          x[o + i + half] = b * c + a * s;
        }
      }
    }
  }
}
