/**
 * A view of attention with the sink removed: most heads park spare attention
 * on the first token (the "attention sink", Xiao et al. 2023), which
 * dominates heatmaps and hides where the rest goes. Zeroing that column and
 * renormalizing each row shows the remainder as a distribution again.
 *
 * @module
 */

import { AttentionScores } from "../data/scores.ts";
import { warn } from "../warn.ts";

/** Options for {@linkcode withoutSink}. */
export interface WithoutSinkOptions {
  /**
   * The absolute key position removed.
   * @default {0} the first token
   */
  position?: number;
}

/**
 * Scores with one key column (the sink, position 0 by default) set to zero
 * and every row rescaled to sum to 1: `A'[i, j] = A[i, j] / (1 - A[i, p])`
 * for `j != p` (using the row's actual sum). The shape and positions stay
 * the same, so the view lines up with the original. Rows with nothing left
 * (the sink's own row, and rows at or before it) stay all zero; a later row
 * with nothing left is reported by a warning. The result is float32.
 *
 * @param scores One layer's attention.
 * @param options The position removed.
 * @returns New float32 scores.
 * @throws {RangeError} When the position is not a captured key.
 *
 * @example
 * ```ts
 * import { AttentionScores } from "../data/scores.ts";
 * import { withoutSink } from "./sink.ts";
 * import assert from "node:assert/strict";
 *
 * // Row 2 gives 0.5 to the sink, 0.25 each to positions 1 and 2.
 * const s = new AttentionScores(new Float32Array([1, 0, 0, 0.5, 0.5, 0, 0.5, 0.25, 0.25]), [3, 1, 3]);
 * const view = withoutSink(s);
 * assert.deepEqual([...view.row(2, 0)], [0, 0.5, 0.5]);
 * assert.deepEqual([...view.row(0, 0)], [0, 0, 0]);
 * ```
 */
export function withoutSink(
  scores: AttentionScores,
  options: WithoutSinkOptions = {},
): AttentionScores {
  const position = options.position ?? 0;
  const [tq, heads, tk] = scores.shape;
  const col = position - scores.keyOffset;
  if (!Number.isInteger(position) || col < 0 || col >= tk) {
    throw new RangeError(
      `Cannot remove the sink at position ${position}: the capture's keys cover ${scores.keyOffset} to ${
        scores.keyOffset + tk - 1
      }; pass options.position within that range`,
    );
  }
  const out = Float32Array.from(scores.data);
  let emptied = 0;
  for (let r = 0; r < tq; r++) {
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * tk;
      out[base + col] = 0;
      let sum = 0;
      for (let k = base; k < base + tk; k++) sum += out[k];
      if (sum > 0) {
        const scale = 1 / sum;
        for (let k = base; k < base + tk; k++) out[k] *= scale;
      } else if (scores.queryPositions[r] > position) emptied++;
    }
  }
  if (emptied > 0) {
    warn(
      `withoutSink: ${emptied} row(s) after position ${position} attended only to it and are all zero in the view`,
    );
  }
  return new AttentionScores(out, scores.shape, {
    queryPositions: scores.queryPositions,
    keyOffset: scores.keyOffset,
  });
}
