/**
 * `AttentionAnalyzer`: the reference client's analysis API, in TypeScript
 * idiom, with the same semantics (a head or head-averaging must be chosen).
 *
 * @module
 */

import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import type { AttentionScores, ScoresArray } from "../data/scores.ts";
import type { TokenMeta, TokenType } from "../data/token_meta.ts";

/** Which attention to read: one head, or the mean over heads. */
export interface HeadChoice {
  /** The head to read (negative counts from the end). */
  headIdx?: number;
  /**
   * Average over heads instead of reading one; takes precedence over
   * `headIdx`, as in the reference client.
   * @default {false}
   */
  avgHeads?: boolean;
}

/** Options for {@linkcode AttentionAnalyzer.topAttendedTokens}. */
export interface TopAttendedOptions extends HeadChoice {
  /**
   * How many keys to return.
   * @default {5}
   */
  topK?: number;
}

/** One attended key. */
export interface AttendedToken {
  /** Absolute position of the key. */
  index: number;
  /** Attention probability. */
  weight: number;
  /** The key's token type. */
  type: TokenType;
}

/**
 * The keys one query attends to most, with the query they belong to; shows
 * itself as a bar chart in Jupyter once the display layer is loaded.
 * {@linkcode AttentionAnalyzer.topAttendedTokens} makes it.
 *
 * @example
 * ```ts
 * import { AttentionAnalyzer, AttentionScores, TokenMeta } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * const top = new AttentionAnalyzer(scores, TokenMeta.from({ prompt_len: 2, total_len: 2 }))
 *   .topAttendedTokens(-1, { headIdx: 0, topK: 2 });
 * assert.deepEqual([top.query, top.head], [1, 0]);
 * assert.deepEqual(top.map((t) => t.index), [1, 0]);
 * ```
 */
export class TopAttendedTokens extends Array<AttendedToken> {
  /** Absolute position of the query. */
  query: number = -1;
  /** The head read, or `"mean"` for the head average. */
  head: number | "mean" = "mean";

  /**
   * The MIME bundle Deno's Jupyter kernel shows.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { TopAttendedTokens } from "./analyzer.ts";
   * import assert from "node:assert/strict";
   *
   * const top = new TopAttendedTokens();
   * top.push({ index: 0, weight: 1, type: "language" });
   * const bundle = await top[JUPYTER_DISPLAY]();
   * assert.match(String(bundle["text/plain"]), /0 \(language\): 1\.000/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    const text = this.map((t) =>
      `key ${t.index} (${t.type}): ${t.weight.toFixed(3)}`
    ).join("\n");
    return displayBundle("top-attended", this, text);
  }

  /**
   * Array methods (`map`, `filter`, `slice`) build plain arrays, not this
   * class, so derived arrays do not pretend to be top-k results.
   *
   * @returns `Array`.
   *
   * @example
   * ```ts
   * import { TopAttendedTokens } from "./analyzer.ts";
   * import assert from "node:assert/strict";
   *
   * const top = new TopAttendedTokens();
   * top.push({ index: 0, weight: 1, type: "language" });
   * assert.equal(top.map((t) => t.index).constructor, Array);
   * ```
   */
  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
}

/**
 * Attention scores of one layer with token-type context.
 *
 * Query arguments are row indices of the scores, negative counting from the
 * end (`-1` is the last row, as in the reference). Returned key indices are
 * absolute positions.
 *
 * @example Top keys of the last query
 * ```ts
 * import { AttentionAnalyzer } from "./analyzer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(
 *   new Float32Array([1, 0, 0, 1, 0, 0, 0.2, 0.8, 0, 0.6, 0.4, 0, 0.1, 0.3, 0.6, 0.5, 0.1, 0.4]),
 *   [3, 2, 3],
 * );
 * const analyzer = new AttentionAnalyzer(scores, TokenMeta.from({ prompt_len: 2, total_len: 3 }));
 * const top = analyzer.topAttendedTokens(-1, { avgHeads: true, topK: 2 });
 * assert.deepEqual(top.map((t) => t.index), [2, 0]);
 * assert.equal(top[0].type, "generated");
 * ```
 */
export class AttentionAnalyzer {
  /** The scores analyzed. */
  readonly scores: AttentionScores;
  /** What each position is. */
  readonly tokenMeta: TokenMeta;

  /**
   * Wraps one layer's scores and metadata.
   *
   * @param scores The layer's scores.
   * @param tokenMeta The layer's metadata.
   *
   * @example
   * ```ts
   * import { AttentionAnalyzer } from "./analyzer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const a = new AttentionAnalyzer(new AttentionScores(new Float32Array([1]), [1, 1, 1]), TokenMeta.from({}));
   * assert.equal(a.scores.numHeads, 1);
   * ```
   */
  constructor(scores: AttentionScores, tokenMeta: TokenMeta) {
    this.scores = scores;
    this.tokenMeta = tokenMeta;
  }

  /**
   * Attention weights of one query: one head's row, the head mean, or with
   * neither chosen every head's row (`[H][Tk]`), as the reference returns.
   *
   * @param q Query row (negative counts from the end).
   * @param options The head choice.
   * @returns `Tk` weights, or `H` rows of `Tk` weights.
   *
   * @example
   * ```ts
   * import { AttentionAnalyzer } from "./analyzer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const a = new AttentionAnalyzer(
   *   new AttentionScores(new Float32Array([1, 0, 0, 1]), [1, 2, 2]),
   *   TokenMeta.from({}),
   * );
   * assert.deepEqual([...a.attentionForToken(0, { headIdx: 1 }) as Float32Array], [0, 1]);
   * assert.deepEqual([...a.attentionForToken(0, { avgHeads: true }) as Float64Array], [0.5, 0.5]);
   * assert.equal((a.attentionForToken(0) as unknown[]).length, 2);
   * ```
   */
  attentionForToken(
    q: number,
    options: HeadChoice = {},
  ): ScoresArray | Float64Array | ScoresArray[] {
    if (options.avgHeads) return this.scores.meanHeads(q);
    if (options.headIdx !== undefined) {
      return this.scores.row(q, options.headIdx);
    }
    return Array.from(
      { length: this.scores.numHeads },
      (_, h) => this.scores.row(q, h),
    );
  }

  /**
   * The keys one query attends to most, heaviest first; ties keep the
   * later position first, as the reference's reversed stable argsort does.
   *
   * @param q Query row (negative counts from the end).
   * @param options Head choice and `topK`.
   * @returns Up to `topK` keys with weight and type.
   * @throws {TypeError} When neither `headIdx` nor `avgHeads` is given.
   *
   * @example
   * ```ts
   * import { AttentionAnalyzer } from "./analyzer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const a = new AttentionAnalyzer(
   *   new AttentionScores(new Float32Array([0.2, 0.5, 0.3]), [1, 1, 3]),
   *   TokenMeta.from({ prompt_len: 3, lang_ranges: [{ start: 0, end: 3 }] }),
   * );
   * const top = a.topAttendedTokens(0, { headIdx: 0, topK: 2 });
   * assert.deepEqual(top.map((t) => [t.index, t.type]), [[1, "language"], [2, "language"]]);
   * assert.throws(() => a.topAttendedTokens(0), TypeError);
   * ```
   */
  topAttendedTokens(
    q: number,
    options: TopAttendedOptions = {},
  ): TopAttendedTokens {
    const { headIdx, avgHeads = false, topK = 5 } = options;
    if (!avgHeads && headIdx === undefined) {
      throw new TypeError(
        "Cannot pick top attended tokens: no head chosen; pass { headIdx } or { avgHeads: true }",
      );
    }
    if (!Number.isInteger(topK) || topK < 0) {
      throw new RangeError(
        `Cannot pick top attended tokens: topK ${topK} is not a non-negative integer`,
      );
    }
    const weights = avgHeads
      ? this.scores.meanHeads(q)
      : this.scores.row(q, headIdx!);
    const out = new TopAttendedTokens();
    for (const k of topIndices(weights, topK)) {
      const index = this.scores.keyPosition(k);
      out.push({
        index,
        weight: weights[k],
        type: this.tokenMeta.tokenType(index),
      });
    }
    out.query = this.scores.queryPositions[this.scores.rowIndex(q)];
    out.head = avgHeads ? "mean" : this.scores.headIndex(headIdx!);
    return out;
  }

  /**
   * Fraction of the attention that vision-token queries give to language
   * keys; 0 when the capture has no vision or no language tokens.
   *
   * @param options The head choice.
   * @returns A fraction in `[0, 1]`.
   * @throws {TypeError} When there are both kinds of token but no head is chosen.
   *
   * @example
   * ```ts
   * import { AttentionAnalyzer } from "./analyzer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * // Position 0 is language, 1 is vision; the vision query gives 0.25 to language.
   * const a = new AttentionAnalyzer(
   *   new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]),
   *   TokenMeta.from({ prompt_len: 2, lang_ranges: [{ start: 0, end: 1 }], vision_ranges: [{ start: 1, end: 2 }] }),
   * );
   * assert.equal(a.crossModalAttention({ headIdx: 0 }), 0.25);
   * ```
   */
  crossModalAttention(options: HeadChoice = {}): number {
    const { headIdx, avgHeads = false } = options;
    const s = this.scores;
    const visionRows = this.tokenMeta.visionTokens()
      .map((p) => s.rowForPosition(p)).filter((r) => r >= 0);
    const langKeys = this.tokenMeta.langTokens()
      .map((p) => p - s.keyOffset).filter((k) => k >= 0 && k < s.keyLength);
    if (visionRows.length === 0 || langKeys.length === 0) return 0;
    if (!avgHeads && headIdx === undefined) {
      throw new TypeError(
        "Cannot measure cross-modal attention: no head chosen; pass { headIdx } or { avgHeads: true }",
      );
    }
    const heads = avgHeads
      ? Array.from({ length: s.numHeads }, (_, h) => h)
      : [s.headIndex(headIdx!)];
    let total = 0;
    let toLanguage = 0;
    for (const r of visionRows) {
      for (const h of heads) {
        const row = s.row(r, h);
        for (let k = 0; k < row.length; k++) total += row[k];
        for (const k of langKeys) toLanguage += row[k];
      }
    }
    // Averaging over heads scales both sums alike, so it cancels out.
    return total ? toLanguage / total : 0;
  }
}

/**
 * Indices of the `k` largest values, largest first; equal values keep the
 * higher index first (numpy's `argsort(w)[::-1]` on a stable sort).
 *
 * @param values The values.
 * @param k How many indices.
 * @returns Up to `k` indices.
 *
 * @example
 * ```ts
 * import { topIndices } from "./analyzer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(topIndices([0.1, 0.5, 0.5, 0.2], 3), [2, 1, 3]);
 * ```
 */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const n = values.length;
  k = Math.min(k, n);
  if (k <= 0) return [];
  // A small sorted buffer beats a full sort when k << n (rows of 4,096 keys).
  const best: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (best.length === k && !(v >= values[best[k - 1]])) continue;
    let pos = best.length;
    while (pos > 0 && v >= values[best[pos - 1]]) pos--;
    best.splice(pos, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}
