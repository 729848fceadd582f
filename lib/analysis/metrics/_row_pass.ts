/**
 * One pass over a layer's rows computing, per (row, head), the row sum and
 * optionally the entropy and maximum: the only full reads of the scores the
 * metrics need. `headSummary` computes it once per layer and shares it.
 * Private to lib/metrics/.
 *
 * @module
 */

import type { AttentionScores } from "../../data/scores.ts";

/** Per-(row, head) statistics; index `n * H + h` for the n-th selected row. */
export interface RowPass {
  /** The selected rows (row indices), in order. */
  rows: readonly number[];
  /** Sum of each row. */
  sum: Float64Array;
  /** `-sum a ln a` of each row (nats), when asked for. */
  entropy: Float64Array | null;
  /** Largest value of each row, when asked for. */
  max: Float64Array | null;
}

/**
 * Reads every selected row once.
 * @internal
 */
export function rowPass(
  scores: AttentionScores,
  rows: readonly number[],
  want: { entropy?: boolean; max?: boolean } = {},
): RowPass {
  const [, heads, tk] = scores.shape;
  const data = scores.data;
  const sum = new Float64Array(rows.length * heads);
  const entropy = want.entropy ? new Float64Array(rows.length * heads) : null;
  const max = want.max ? new Float64Array(rows.length * heads) : null;
  rows.forEach((r, n) => {
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * tk;
      const end = base + tk;
      let s = 0;
      let e = 0;
      let m = -Infinity;
      // Separate loops per need keep the common case (sum only) tight.
      if (entropy && max) {
        for (let c = base; c < end; c++) {
          const a = data[c];
          s += a;
          if (a > m) m = a;
          if (a > 0) e -= a * Math.log(a);
        }
      } else if (entropy) {
        for (let c = base; c < end; c++) {
          const a = data[c];
          s += a;
          if (a > 0) e -= a * Math.log(a);
        }
      } else if (max) {
        for (let c = base; c < end; c++) {
          const a = data[c];
          s += a;
          if (a > m) m = a;
        }
      } else {
        for (let c = base; c < end; c++) s += data[c];
      }
      const k = n * heads + h;
      sum[k] = s;
      if (entropy) entropy[k] = e;
      if (max) max[k] = m;
    }
  });
  return { rows, sum, entropy, max };
}
