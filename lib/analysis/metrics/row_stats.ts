/**
 * Head metrics that read each attention row on its own: how much goes to a
 * sink position, how spread out a row is, how peaked.
 *
 * @module
 */

import type { AttentionScores } from "../../data/scores.ts";
import { divideOrNaN, type RowOptions, selectRows } from "./_common.ts";
import { type RowPass, rowPass } from "./_row_pass.ts";

/** Options for {@linkcode sinkMass}. */
export interface SinkMassOptions extends RowOptions {
  /**
   * The absolute key position whose received attention is measured.
   * @default {0} the first token (the usual attention sink)
   */
  position?: number;
}

/** Options for {@linkcode attentionEntropy}. */
export interface EntropyOptions extends RowOptions {
  /**
   * Divide each row's entropy by `ln(i + 1)`, its maximum under a causal mask
   * (query position `i` sees `i + 1` keys), so that 1 means uniform; rows at
   * position 0 have no spread to measure and are skipped.
   * @default {false}
   */
  normalize?: boolean;
}

/**
 * Sink mass per head: mean attention that query rows after `position` give
 * to key `position`,
 * `mean_{i > p} A[i, p]` (rows at or before `p` are skipped: they cannot
 * attend to it, or, at `p` itself, trivially do).
 *
 * @param scores One layer's attention.
 * @param options The sink position and the rows counted.
 * @returns One value per head in `[0, 1]`; NaN (with a warning) where no row comes after the position.
 * @throws {RangeError} When `position` is not one of the capture's key positions.
 *
 * @example
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { sinkMass } from "./row_stats.ts";
 * import assert from "node:assert/strict";
 *
 * // T=3, H=1: rows 1 and 2 give 0.5 and 0.25 to position 0.
 * const s = new AttentionScores(new Float32Array([1, 0, 0, 0.5, 0.5, 0, 0.25, 0.25, 0.5]), [3, 1, 3]);
 * assert.equal(sinkMass(s)[0], (0.5 + 0.25) / 2);
 * assert.equal(sinkMass(s, { position: 1 })[0], 0.25);
 * ```
 */
export function sinkMass(
  scores: AttentionScores,
  options: SinkMassOptions = {},
): Float64Array {
  const position = options.position ?? 0;
  const [, heads, tk] = scores.shape;
  const col = position - scores.keyOffset;
  if (!Number.isInteger(position) || col < 0 || col >= tk) {
    throw new RangeError(
      `Cannot compute sinkMass: position ${position} is not a captured key (keys cover ${scores.keyOffset} to ${
        scores.keyOffset + tk - 1
      }); pass options.position within that range`,
    );
  }
  const sums = new Float64Array(heads);
  let count = 0;
  for (const r of selectRows(scores, options.queryRange, "sinkMass")) {
    if (scores.queryPositions[r] <= position) continue;
    count++;
    for (let h = 0; h < heads; h++) {
      sums[h] += scores.data[(r * heads + h) * tk + col];
    }
  }
  return divideOrNaN(
    sums,
    count,
    "sinkMass",
    `no counted query row comes after position ${position}`,
  );
}

/**
 * Attention entropy per head: mean over rows of `-sum_j A[i, j] ln A[i, j]`
 * in nats (`0 ln 0 = 0`); with `normalize`, each row divided by `ln(i + 1)`.
 * Low entropy is a focused head, high a diffuse one.
 *
 * @param scores One layer's attention.
 * @param options Normalization and the rows counted.
 * @returns One value per head.
 *
 * @example
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { attentionEntropy } from "./row_stats.ts";
 * import assert from "node:assert/strict";
 *
 * // Row 0 is certain (entropy 0), row 1 uniform over two keys (ln 2).
 * const s = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
 * assert.equal(attentionEntropy(s)[0], Math.LN2 / 2);
 * assert.equal(attentionEntropy(s, { normalize: true })[0], 1); // row 0 skipped
 * ```
 */
export function attentionEntropy(
  scores: AttentionScores,
  options: EntropyOptions = {},
): Float64Array {
  const rows = selectRows(scores, options.queryRange, "attentionEntropy");
  return entropyFromPass(
    scores,
    rowPass(scores, rows, { entropy: true }),
    options.normalize ?? false,
  );
}

/** Mean row entropy from a row pass that computed entropies. */
export function entropyFromPass(
  scores: AttentionScores,
  pass: RowPass,
  normalize: boolean,
): Float64Array {
  const heads = scores.numHeads;
  const sums = new Float64Array(heads);
  let count = 0;
  pass.rows.forEach((r, n) => {
    const i = scores.queryPositions[r];
    if (normalize && i === 0) return;
    const scale = normalize ? 1 / Math.log(i + 1) : 1;
    count++;
    for (let h = 0; h < heads; h++) {
      sums[h] += pass.entropy![n * heads + h] * scale;
    }
  });
  return divideOrNaN(
    sums,
    count,
    "attentionEntropy",
    "no query row is counted (queryRange empty, or only position 0 when normalizing)",
  );
}

/**
 * Mean maximum weight per head: `mean_i max_j A[i, j]`, how peaked the rows
 * are (1 when every row attends to a single key).
 *
 * @param scores One layer's attention.
 * @param options The rows counted.
 * @returns One value per head in `[0, 1]`.
 *
 * @example
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { maxWeight } from "./row_stats.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * assert.equal(maxWeight(s)[0], (1 + 0.75) / 2);
 * assert.equal(maxWeight(s, { queryRange: { start: 1 } })[0], 0.75);
 * ```
 */
export function maxWeight(
  scores: AttentionScores,
  options: RowOptions = {},
): Float64Array {
  const rows = selectRows(scores, options.queryRange, "maxWeight");
  return maxWeightFromPass(scores, rowPass(scores, rows, { max: true }));
}

/** Mean row maximum from a row pass that computed maxima. */
export function maxWeightFromPass(
  scores: AttentionScores,
  pass: RowPass,
): Float64Array {
  const heads = scores.numHeads;
  const sums = new Float64Array(heads);
  for (let k = 0; k < pass.max!.length; k++) sums[k % heads] += pass.max![k];
  return divideOrNaN(
    sums,
    pass.rows.length,
    "maxWeight",
    "no query row is counted",
  );
}
