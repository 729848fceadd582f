/**
 * The reference {@linkcode MatmulBackend}: plain TypeScript on the calling
 * thread. It keeps every weight at its stored width (BF16 and F16 stay
 * 16-bit) and widens one weight row at a time into a float32 scratch row
 * while it multiplies, accumulating in float32 like the fast kernels must.
 * It is the correctness anchor the fast backends are tested against and
 * the fallback where they cannot run.
 *
 * @module
 */

import type {
  MatmulBackend,
  MatmulOp,
  MatrixWeight,
  WeightDtype,
  WeightHandle,
} from "./backend.ts";

/** A weight as the reference backend holds it. */
interface ReferenceWeight extends WeightHandle {
  data: Float32Array | Uint16Array | null;
  bias: Float32Array | null;
}

let f16Table: Float32Array | null = null;

/** Every float16 bit pattern's float32 value (256 KiB, built once). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exp = (bits >> 10) & 0x1f;
    const frac = bits & 0x3ff;
    table[bits] = exp === 0
      ? sign * frac * 2 ** -24
      : exp === 31
      ? (frac ? NaN : sign * Infinity)
      : sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  f16Table = table;
  return table;
}

/**
 * Widens `count` stored elements starting at `offset` into `out[0..count)`.
 *
 * @param data Stored elements (float32, or raw 16-bit patterns).
 * @param dtype How `data` is stored.
 * @param offset First element.
 * @param count Elements to widen.
 * @param out Float32 destination; its buffer is reused as bf16 bit scratch.
 * @param outBits A `Uint32Array` view of `out`'s buffer.
 *
 * @example
 * ```ts
 * import { widenInto } from "./reference.ts";
 * import assert from "node:assert/strict";
 *
 * const out = new Float32Array(2);
 * widenInto(new Uint16Array([0x3f80, 0xc000]), "bfloat16", 0, 2, out, new Uint32Array(out.buffer));
 * assert.deepEqual([...out], [1, -2]);
 * widenInto(new Uint16Array([0x3c00, 0x3800]), "float16", 0, 2, out, new Uint32Array(out.buffer));
 * assert.deepEqual([...out], [1, 0.5]);
 * ```
 */
export function widenInto(
  data: Float32Array | Uint16Array,
  dtype: WeightDtype,
  offset: number,
  count: number,
  out: Float32Array,
  outBits: Uint32Array,
): void {
  if (dtype === "float32") {
    out.set((data as Float32Array).subarray(offset, offset + count));
  } else if (dtype === "bfloat16") {
    for (let i = 0; i < count; i++) outBits[i] = data[offset + i] << 16;
  } else {
    const table = halfTable();
    for (let i = 0; i < count; i++) out[i] = table[data[offset + i]];
  }
}

/**
 * A plain TypeScript backend: correct, single-threaded, weights at their
 * stored width.
 *
 * @example y = x · Wᵀ + b, BF16 weight
 * ```ts
 * import { ReferenceBackend } from "./reference.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = new ReferenceBackend();
 * // W = [[1, 2], [3, 4], [-1, 0]] as bf16 bit patterns.
 * const w = backend.upload(
 *   { rows: 3, cols: 2, dtype: "bfloat16", data: new Uint16Array([0x3f80, 0x4000, 0x4040, 0x4080, 0xbf80, 0]) },
 *   new Float32Array([0.5, 0, 0]),
 * );
 * const y = backend.linear(new Float32Array([1, 1]), 1, w);
 * assert.deepEqual([...y], [3.5, 7, -1]);
 * assert.deepEqual([...backend.linear(new Float32Array([1, 1]), 1, w, undefined, [1, 3])], [7, -1]);
 * backend.close();
 * ```
 */
export class ReferenceBackend implements MatmulBackend {
  /** `"reference"`. */
  readonly name = "reference";
  #weights = new Set<ReferenceWeight>();
  #row = new Float32Array(0);
  #rowBits = new Uint32Array(0);

  /**
   * Keeps the weight's array as given (not copied, not widened).
   *
   * @param weight The weight, `rows * cols` elements.
   * @param bias `rows` float32 biases, or none.
   * @returns Its handle.
   * @throws {RangeError} When the data or bias length does not match the shape.
   *
   * @example
   * ```ts
   * import { ReferenceBackend } from "./reference.ts";
   * import assert from "node:assert/strict";
   *
   * const backend = new ReferenceBackend();
   * assert.throws(
   *   () => backend.upload({ rows: 2, cols: 2, dtype: "float32", data: new Float32Array(3) }),
   *   /needs 4 elements/,
   * );
   * ```
   */
  upload(weight: MatrixWeight, bias?: Float32Array | null): WeightHandle {
    const { rows, cols, dtype, data } = weight;
    if (data.length !== rows * cols) {
      throw new RangeError(
        `Cannot upload weight: a ${rows}x${cols} matrix needs ${
          rows * cols
        } elements but got ${data.length}; pass the whole matrix`,
      );
    }
    if ((dtype === "float32") !== (data instanceof Float32Array)) {
      throw new TypeError(
        `Cannot upload weight: dtype ${dtype} needs a ${
          dtype === "float32" ? "Float32Array" : "Uint16Array"
        }; pass the raw stored elements`,
      );
    }
    if (bias && bias.length !== rows) {
      throw new RangeError(
        `Cannot upload weight: bias has ${bias.length} values for ${rows} rows; pass one bias per output`,
      );
    }
    const handle: ReferenceWeight = {
      rows,
      cols,
      dtype,
      data,
      bias: bias ?? null,
    };
    this.#weights.add(handle);
    return handle;
  }

  /**
   * `out[m, rows] = x[m, cols] · Wᵀ + bias` in float32.
   *
   * @param x Activations, `m * cols`.
   * @param m Positions.
   * @param weight A handle from this backend.
   * @param out Destination, `m * (end - start)`; allocated when omitted.
   * @param rowRange Output features `[start, end)`.
   * @returns `out`.
   *
   * @example
   * ```ts
   * import { ReferenceBackend } from "./reference.ts";
   * import assert from "node:assert/strict";
   *
   * const backend = new ReferenceBackend();
   * const w = backend.upload({ rows: 1, cols: 2, dtype: "float32", data: new Float32Array([2, 3]) });
   * assert.deepEqual([...backend.linear(new Float32Array([1, 0, 0, 1]), 2, w)], [2, 3]);
   * ```
   */
  linear(
    x: Float32Array,
    m: number,
    weight: WeightHandle,
    out?: Float32Array,
    rowRange?: [number, number],
  ): Float32Array {
    const w = weight as ReferenceWeight;
    if (!this.#weights.has(w) || !w.data) {
      throw new TypeError(
        "Cannot multiply: the weight was not uploaded to this backend or was released; upload it first",
      );
    }
    const { cols, dtype, data, bias } = w;
    const [start, end] = rowRange ?? [0, w.rows];
    if (!(0 <= start && start <= end && end <= w.rows)) {
      throw new RangeError(
        `Cannot multiply: rowRange [${start}, ${end}) is outside the weight's ${w.rows} rows; pass a range inside it`,
      );
    }
    if (x.length < m * cols) {
      throw new RangeError(
        `Cannot multiply: x has ${x.length} values, fewer than ${m} rows of ${cols}; pass m * cols activations`,
      );
    }
    const n = end - start;
    const y = out ?? new Float32Array(m * n);
    if (y.length < m * n) {
      throw new RangeError(
        `Cannot multiply: out has ${y.length} values, fewer than ${m} rows of ${n}; pass a larger out`,
      );
    }
    if (this.#row.length < cols) {
      this.#row = new Float32Array(cols);
      this.#rowBits = new Uint32Array(this.#row.buffer);
    }
    const row = dtype === "float32" ? null : this.#row;
    for (let r = start; r < end; r++) {
      let wr: Float32Array;
      let wo = 0;
      if (row) {
        widenInto(data, dtype, r * cols, cols, row, this.#rowBits);
        wr = row;
      } else {
        wr = data as Float32Array;
        wo = r * cols;
      }
      const b = bias ? bias[r] : 0;
      const c = r - start;
      for (let i = 0; i < m; i++) {
        const xo = i * cols;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        let k = 0;
        for (; k + 3 < cols; k += 4) {
          s0 += x[xo + k] * wr[wo + k];
          s1 += x[xo + k + 1] * wr[wo + k + 1];
          s2 += x[xo + k + 2] * wr[wo + k + 2];
          s3 += x[xo + k + 3] * wr[wo + k + 3];
        }
        for (; k < cols; k++) s0 += x[xo + k] * wr[wo + k];
        y[i * n + c] = Math.fround(s0 + s1 + s2 + s3 + b);
      }
    }
    return y;
  }

  /**
   * `out = alpha · a · (transposeB ? bᵀ : b)` over strided float32 views,
   * accumulated per element.
   *
   * @param op The operands and shapes.
   *
   * @example Q · Kᵀ of one head
   * ```ts
   * import { ReferenceBackend } from "./reference.ts";
   * import assert from "node:assert/strict";
   *
   * const backend = new ReferenceBackend();
   * const q = new Float32Array([1, 2]); // 1 x 2
   * const k = new Float32Array([1, 0, 0, 1, 1, 1]); // 3 x 2
   * const out = new Float32Array(3);
   * backend.matmul({
   *   m: 1, n: 3, k: 2, transposeB: true, alpha: 0.5,
   *   a: { data: q, offset: 0, stride: 2 },
   *   b: { data: k, offset: 0, stride: 2 },
   *   out: { data: out, offset: 0, stride: 3 },
   * });
   * assert.deepEqual([...out], [0.5, 1, 1.5]);
   * ```
   */
  matmul(op: MatmulOp): void {
    const { m, n, k, a, b, out } = op;
    const alpha = op.alpha ?? 1;
    const ad = a.data, bd = b.data, od = out.data;
    if (op.transposeB) {
      for (let i = 0; i < m; i++) {
        const ao = a.offset + i * a.stride;
        const oo = out.offset + i * out.stride;
        for (let j = 0; j < n; j++) {
          const bo = b.offset + j * b.stride;
          let s0 = 0, s1 = 0;
          let p = 0;
          for (; p + 1 < k; p += 2) {
            s0 += ad[ao + p] * bd[bo + p];
            s1 += ad[ao + p + 1] * bd[bo + p + 1];
          }
          if (p < k) s0 += ad[ao + p] * bd[bo + p];
          od[oo + j] = alpha * (s0 + s1);
        }
      }
      return;
    }
    for (let i = 0; i < m; i++) {
      const ao = a.offset + i * a.stride;
      const oo = out.offset + i * out.stride;
      for (let j = 0; j < n; j++) od[oo + j] = 0;
      for (let p = 0; p < k; p++) {
        const av = ad[ao + p];
        if (av === 0) continue;
        const bo = b.offset + p * b.stride;
        for (let j = 0; j < n; j++) od[oo + j] += av * bd[bo + j];
      }
      if (alpha !== 1) { for (let j = 0; j < n; j++) od[oo + j] *= alpha; }
    }
  }

  /**
   * Copies row `row` of a weight, widened to float32, into `out`.
   *
   * @param weight A handle from this backend.
   * @param row The output feature.
   * @param out At least `cols` values.
   *
   * @example
   * ```ts
   * import { ReferenceBackend } from "./reference.ts";
   * import assert from "node:assert/strict";
   *
   * const backend = new ReferenceBackend();
   * const w = backend.upload({ rows: 2, cols: 2, dtype: "bfloat16", data: new Uint16Array([0x3f80, 0, 0xc000, 0x4000]) });
   * const out = new Float32Array(2);
   * backend.readRow(w, 1, out);
   * assert.deepEqual([...out], [-2, 2]);
   * ```
   */
  readRow(weight: WeightHandle, row: number, out: Float32Array): void {
    const w = weight as ReferenceWeight;
    if (!this.#weights.has(w) || !w.data) {
      throw new TypeError(
        "Cannot read a weight row: the weight was not uploaded to this backend or was released; upload it first",
      );
    }
    if (!Number.isInteger(row) || row < 0 || row >= w.rows) {
      throw new RangeError(
        `Cannot read a weight row: row ${row} is outside the weight's ${w.rows} rows; pass 0 <= row < rows`,
      );
    }
    widenInto(
      w.data,
      w.dtype,
      row * w.cols,
      w.cols,
      out,
      new Uint32Array(out.buffer, out.byteOffset, w.cols),
    );
  }

  /**
   * Drops a weight; using its handle afterwards throws.
   *
   * @param weight A handle from this backend.
   *
   * @example
   * ```ts
   * import { ReferenceBackend } from "./reference.ts";
   * import assert from "node:assert/strict";
   *
   * const backend = new ReferenceBackend();
   * const w = backend.upload({ rows: 1, cols: 1, dtype: "float32", data: new Float32Array([1]) });
   * backend.release(w);
   * assert.throws(() => backend.linear(new Float32Array([1]), 1, w), /released/);
   * ```
   */
  release(weight: WeightHandle): void {
    const w = weight as ReferenceWeight;
    w.data = null;
    w.bias = null;
    this.#weights.delete(w);
  }

  /**
   * Drops every weight.
   *
   * @example
   * ```ts
   * import { ReferenceBackend } from "./reference.ts";
   *
   * new ReferenceBackend().close();
   * ```
   */
  close(): void {
    for (const w of this.#weights) {
      w.data = null;
      w.bias = null;
    }
    this.#weights.clear();
  }
}

/**
 * A new {@linkcode ReferenceBackend}, typed as the interface.
 *
 * @returns The backend.
 *
 * @example
 * ```ts
 * import { createReferenceBackend } from "./reference.ts";
 * import assert from "node:assert/strict";
 *
 * const backend = createReferenceBackend();
 * assert.equal(backend.name, "reference");
 * backend.close();
 * ```
 */
export function createReferenceBackend(): MatmulBackend {
  return new ReferenceBackend();
}
