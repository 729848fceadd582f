/**
 * Head metrics: per layer and head, the scores interpretability papers use
 * to name what a head does (previous-token, duplicate-token and induction
 * heads, after TransformerLens' head detector), plus sink mass, entropy and
 * peakedness, and {@linkcode headSummary} to compute them all at once.
 *
 * @example
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { inductionScore, previousTokenScore } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new AttentionScores(new Float32Array([1, 0, 0, 1, 0, 0, 0, 1, 0]), [3, 1, 3]);
 * assert.equal(previousTokenScore(s, { excludeBos: true })[0], 1);
 * assert.equal(inductionScore(s, { tokens: ["x", "y", "x"] })[0], 1 / 3);
 * ```
 *
 * @module
 */

export type { QueryRange, RowOptions, TokenSequence } from "./_common.ts";
export {
  type DetectionOptions,
  duplicateTokenScore,
  type ErrorMeasure,
  inductionScore,
  previousTokenScore,
  type TokenDetectionOptions,
} from "./detection.ts";
export {
  attentionEntropy,
  type EntropyOptions,
  maxWeight,
  sinkMass,
  type SinkMassOptions,
} from "./row_stats.ts";
export * from "./head_summary.ts";
