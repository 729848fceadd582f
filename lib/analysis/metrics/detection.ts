/**
 * Detection-pattern head scores, as TransformerLens defines them
 * (`transformer_lens/head_detector.py`): previous-token, duplicate-token and
 * induction heads.
 *
 * A detection pattern `P` is a 0/1 lower-triangular `[T, T]` matrix of the
 * attention a head of that kind is expected to show. With `A` a head's
 * attention pattern (`A[i, j]`, query position i, key position j):
 *
 * - previous token: `P[i, j] = 1` iff `j = i - 1`;
 * - duplicate token: `P[i, j] = 1` iff `j < i` and `tok[j] = tok[i]`;
 * - induction: `P[i, j] = 1` iff `1 <= j <= i` and `tok[j - 1] = tok[i]`
 *   (the duplicate pattern shifted one column right: attend to the token
 *   after an earlier occurrence of the current one).
 *
 * `excludeBos` sets column 0 of `A` (and, for `abs`, of the error) to zero,
 * `excludeCurrentToken` its diagonal. The scores:
 *
 * - `mul` (default): `sum(A ∘ P) / sum(A)`, the fraction of the head's
 *   attention that lands where the pattern expects; in `[0, 1]`.
 * - `abs`: `1 - sum|A - P| / T` (TransformerLens: `1 - mean|A - P| * T`,
 *   rounded to 3 decimals; here not rounded); `T` is the number of query rows
 *   counted, so the score lies in `[-1, 1]`, 1 a perfect match.
 *
 * Positions are absolute: for a non-square or offset capture, `i` is a row's
 * query position and `j` a key column's position; only captured rows count,
 * and pattern entries on keys the capture does not hold are left out.
 *
 * @module
 */

import type { AttentionScores } from "../../data/scores.ts";
import { type RowPass, rowPass } from "./_row_pass.ts";
import {
  divideOrNaN,
  requireTokens,
  type RowOptions,
  selectRows,
  type TokenSequence,
} from "./_common.ts";

/** How a detection pattern is compared with a head's attention. */
export type ErrorMeasure = "mul" | "abs";

/** Options of the detection-pattern scores. */
export interface DetectionOptions extends RowOptions {
  /**
   * `"mul"`: fraction of attention on the pattern; `"abs"`: one minus the
   * mean absolute row error.
   * @default {"mul"}
   */
  errorMeasure?: ErrorMeasure;
  /**
   * Leave attention to absolute position 0 (the beginning-of-sequence token)
   * out of the comparison.
   * @default {false}
   */
  excludeBos?: boolean;
  /**
   * Leave each query's attention to itself out of the comparison.
   * @default {false}
   */
  excludeCurrentToken?: boolean;
}

/** Options of the token-identity scores (duplicate token, induction). */
export interface TokenDetectionOptions extends DetectionOptions {
  /**
   * One token id or label per absolute position (prompt and generated), at
   * least up to the capture's last position. Labels compare as strings, so
   * two ids that decode to the same text count as the same token.
   */
  tokens?: TokenSequence;
}

/**
 * The keys (absolute positions) a pattern marks for query position `i`.
 * Each call may reuse the output array.
 */
type PatternKeys = (i: number, out: number[]) => number[];

/**
 * Previous-token score per head: how much each query attends to the position
 * just before it. `P[i, j] = 1` iff `j = i - 1`; scored by `mul`
 * (`sum(A ∘ P) / sum(A)`) or `abs` (`1 - sum|A - P| / T`), see the module doc.
 * Needs no tokens.
 *
 * @param scores One layer's attention.
 * @param options Error measure, exclusions, rows counted.
 * @returns One score per head.
 *
 * @example A head that always looks one back
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { previousTokenScore } from "./detection.ts";
 * import assert from "node:assert/strict";
 *
 * // T=3, H=1: row 0 can only see itself; rows 1 and 2 put all weight on i-1.
 * const s = new AttentionScores(new Float32Array([1, 0, 0, 1, 0, 0, 0, 1, 0]), [3, 1, 3]);
 * assert.equal(previousTokenScore(s)[0], 2 / 3); // row 0's mass is off-pattern
 * // Without position 0, only row 2's attention is left, all of it on i-1.
 * assert.equal(previousTokenScore(s, { excludeBos: true })[0], 1);
 * assert.equal(previousTokenScore(s, { errorMeasure: "abs" })[0], 1 - 1 / 3); // row 0 misses by 1
 * ```
 */
export function previousTokenScore(
  scores: AttentionScores,
  options: DetectionOptions = {},
): Float64Array {
  const pattern: PatternKeys = (i, out) => {
    out.length = 0;
    if (i >= 1) out.push(i - 1);
    return out;
  };
  return patternScore(scores, pattern, options, "previousTokenScore");
}

/**
 * Duplicate-token score per head: attention to earlier occurrences of the
 * query's own token. `P[i, j] = 1` iff `j < i` and `tok[j] = tok[i]`; scored
 * by `mul` or `abs`, see the module doc.
 *
 * @param scores One layer's attention.
 * @param options `tokens` (required), error measure, exclusions, rows counted.
 * @returns One score per head.
 * @throws {TypeError} When `options.tokens` is missing.
 * @throws {RangeError} When `options.tokens` does not cover every position.
 *
 * @example
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { duplicateTokenScore } from "./detection.ts";
 * import assert from "node:assert/strict";
 *
 * // Tokens a b a: row 2 (second "a") puts 0.5 on position 0 (first "a").
 * const s = new AttentionScores(
 *   new Float32Array([1, 0, 0, 0.5, 0.5, 0, 0.5, 0.25, 0.25]),
 *   [3, 1, 3],
 * );
 * assert.equal(duplicateTokenScore(s, { tokens: ["a", "b", "a"] })[0], 0.5 / 3);
 * assert.throws(() => duplicateTokenScore(s), /options\.tokens is missing/);
 * ```
 */
export function duplicateTokenScore(
  scores: AttentionScores,
  options: TokenDetectionOptions = {},
): Float64Array {
  const name = "duplicateTokenScore";
  const earlier = occurrencesBefore(
    requireTokens(scores, options.tokens, name),
  );
  return patternScore(scores, (i, out) => earlier(i, 0, out), options, name);
}

/**
 * Induction score per head: attention to the token right after an earlier
 * occurrence of the query's token (`[A][B] ... [A] -> [B]`, Olsson et al.
 * 2022). `P[i, j] = 1` iff `1 <= j <= i` and `tok[j - 1] = tok[i]`; scored
 * by `mul` or `abs`, see the module doc. On a random sequence repeated twice,
 * restrict `queryRange` to the second repeat for Olsson's score.
 *
 * @param scores One layer's attention.
 * @param options `tokens` (required), error measure, exclusions, rows counted.
 * @returns One score per head.
 * @throws {TypeError} When `options.tokens` is missing.
 * @throws {RangeError} When `options.tokens` does not cover every position.
 *
 * @example Tokens a b a: row 2 should look at position 1 ("b")
 * ```ts
 * import { AttentionScores } from "../../data/scores.ts";
 * import { inductionScore } from "./detection.ts";
 * import assert from "node:assert/strict";
 *
 * const s = new AttentionScores(
 *   new Float32Array([1, 0, 0, 0.5, 0.5, 0, 0, 1, 0]),
 *   [3, 1, 3],
 * );
 * const tokens = [7, 8, 7];
 * assert.equal(inductionScore(s, { tokens })[0], 1 / 3);
 * assert.equal(inductionScore(s, { tokens, queryRange: { start: 2 } })[0], 1);
 * ```
 */
export function inductionScore(
  scores: AttentionScores,
  options: TokenDetectionOptions = {},
): Float64Array {
  const name = "inductionScore";
  const earlier = occurrencesBefore(
    requireTokens(scores, options.tokens, name),
  );
  return patternScore(scores, (i, out) => earlier(i, 1, out), options, name);
}

/** The three detection scores of one layer from one shared row pass. */
export function detectionScores(
  scores: AttentionScores,
  options: TokenDetectionOptions,
  shared: RowPass,
): {
  previousToken: Float64Array;
  duplicateToken?: Float64Array;
  induction?: Float64Array;
} {
  const previous: PatternKeys = (i, out) => {
    out.length = 0;
    if (i >= 1) out.push(i - 1);
    return out;
  };
  const out: ReturnType<typeof detectionScores> = {
    previousToken: patternScore(
      scores,
      previous,
      options,
      "previousTokenScore",
      shared,
    ),
  };
  if (options.tokens) {
    const earlier = occurrencesBefore(
      requireTokens(scores, options.tokens, "inductionScore"),
    );
    out.duplicateToken = patternScore(
      scores,
      (i, o) => earlier(i, 0, o),
      options,
      "duplicateTokenScore",
      shared,
    );
    out.induction = patternScore(
      scores,
      (i, o) => earlier(i, 1, o),
      options,
      "inductionScore",
      shared,
    );
  }
  return out;
}

/**
 * For position i, the earlier positions holding the same token, each plus
 * `shift`. Built once per call: a map from token to its positions.
 */
function occurrencesBefore(
  tokens: TokenSequence,
): (i: number, shift: number, out: number[]) => number[] {
  const byToken = new Map<string | number, number[]>();
  const rank = new Int32Array(tokens.length); // index of i in its token's list
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    let list = byToken.get(t);
    if (!list) byToken.set(t, list = []);
    rank[i] = list.length;
    list.push(i);
  }
  return (i, shift, out) => {
    out.length = 0;
    const list = byToken.get(tokens[i])!;
    for (let n = 0; n < rank[i]; n++) out.push(list[n] + shift);
    return out;
  };
}

/** Scores every head of a layer against a pattern given as key lists. */
function patternScore(
  scores: AttentionScores,
  pattern: PatternKeys,
  options: DetectionOptions,
  metric: string,
  shared?: RowPass,
): Float64Array {
  const measure = options.errorMeasure ?? "mul";
  if (measure !== "mul" && measure !== "abs") {
    throw new TypeError(
      `Cannot compute ${metric}: errorMeasure ${
        JSON.stringify(measure)
      } is not "mul" or "abs"`,
    );
  }
  const excludeBos = options.excludeBos ?? false;
  const excludeCurrent = options.excludeCurrentToken ?? false;
  const [, heads, tk] = scores.shape;
  const data = scores.data;
  const offset = scores.keyOffset;
  const rows = shared?.rows ?? selectRows(scores, options.queryRange, metric);
  const sums = (shared ?? rowPass(scores, rows)).sum;
  const onPattern = new Float64Array(heads); // sum of A over pattern entries
  const total = new Float64Array(heads); // sum of A (mul) or of |A - P| (abs)
  const keys: number[] = [];
  const bosCol = -offset; // column of absolute position 0, if captured
  for (const [n, r] of rows.entries()) {
    const i = scores.queryPositions[r];
    const cols = pattern(i, keys)
      .map((j) => j - offset)
      .filter((c) =>
        c >= 0 && c < tk && !(excludeBos && c === bosCol) &&
        !(excludeCurrent && c === i - offset)
      );
    const curCol = i - offset;
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * tk;
      let sum = sums[n * heads + h];
      if (excludeBos && bosCol >= 0 && bosCol < tk) sum -= data[base + bosCol];
      if (
        excludeCurrent && curCol >= 0 && curCol < tk &&
        !(excludeBos && curCol === bosCol)
      ) sum -= data[base + curCol];
      let hit = 0;
      let miss = 0; // sum over pattern entries of |A - 1|
      for (const c of cols) {
        const a = data[base + c];
        hit += a;
        miss += Math.abs(1 - a);
      }
      onPattern[h] += hit;
      // sum_k |A - P| = (sum of A off the pattern) + (sum of |A - 1| on it).
      total[h] += measure === "mul" ? sum : sum - hit + miss;
    }
  }
  if (measure === "mul") {
    return divideOrNaN(
      onPattern,
      total,
      metric,
      "the counted rows carry no attention (no rows selected, or all excluded)",
    );
  }
  const out = divideOrNaN(
    total,
    rows.length,
    metric,
    "no query row lies in queryRange",
  );
  for (let h = 0; h < heads; h++) out[h] = 1 - out[h];
  return out;
}
