/**
 * Shared pieces of the head metrics: which query rows count, and reading
 * token identities per absolute position. Private to lib/metrics/.
 *
 * @module
 */

import type { AttentionScores } from "../../data/scores.ts";
import { warn } from "../../warn.ts";

/** A half-open range of absolute query positions, `start <= i < end`. */
export interface QueryRange {
  /** First position counted. @default {0} */
  start?: number;
  /** One past the last position counted. @default {Infinity} */
  end?: number;
}

/** Options every head metric takes. */
export interface RowOptions {
  /**
   * Only query rows whose absolute position lies in this half-open range are
   * averaged, e.g. the second repeat of an induction probe.
   * @default {every captured row}
   */
  queryRange?: QueryRange;
}

/** One token id or label per absolute position. */
export type TokenSequence = ArrayLike<string | number>;

/**
 * The rows of a capture whose query position lies in the range.
 * @internal
 */
export function selectRows(
  scores: AttentionScores,
  range: QueryRange | undefined,
  metric: string,
): number[] {
  const start = range?.start ?? 0;
  const end = range?.end ?? Infinity;
  if (Number.isNaN(start) || Number.isNaN(end)) {
    throw new RangeError(
      `Cannot compute ${metric}: queryRange {start: ${start}, end: ${end}} is not numeric; pass absolute positions`,
    );
  }
  const rows: number[] = [];
  const positions = scores.queryPositions;
  for (let r = 0; r < positions.length; r++) {
    if (positions[r] >= start && positions[r] < end) rows.push(r);
  }
  return rows;
}

/**
 * Checks that `tokens` covers every query and key position of the scores.
 * @internal
 */
export function requireTokens(
  scores: AttentionScores,
  tokens: TokenSequence | undefined,
  metric: string,
): TokenSequence {
  if (tokens === undefined || tokens === null) {
    throw new TypeError(
      `Cannot compute ${metric}: it compares token identities but options.tokens is missing; pass one token id or label per absolute position (captureAttention's labels, or the prompt's token ids)`,
    );
  }
  if (typeof tokens.length !== "number") {
    throw new TypeError(
      `Cannot compute ${metric}: options.tokens is not an array; pass one token id or label per absolute position`,
    );
  }
  const needed = lastPosition(scores) + 1;
  if (tokens.length < needed) {
    throw new RangeError(
      `Cannot compute ${metric}: options.tokens has ${tokens.length} entries but the capture reaches position ${
        needed - 1
      }; pass one token per absolute position, prompt and generated`,
    );
  }
  return tokens;
}

/** The highest absolute position any row or column of the scores holds. */
export function lastPosition(scores: AttentionScores): number {
  let last = scores.keyOffset + scores.keyLength - 1;
  for (const p of scores.queryPositions) if (p > last) last = p;
  return last;
}

/**
 * Divides per-head sums by counts, warning (once) where a count is zero.
 * @internal
 */
export function divideOrNaN(
  sums: Float64Array,
  counts: Float64Array | number,
  metric: string,
  why: string,
): Float64Array {
  let empty = false;
  for (let h = 0; h < sums.length; h++) {
    const c = typeof counts === "number" ? counts : counts[h];
    if (c === 0) {
      sums[h] = NaN;
      empty = true;
    } else sums[h] /= c;
  }
  if (empty) warn(`${metric} is NaN for some heads: ${why}`);
  return sums;
}

/**
 * Token identities from capture labels. `captureAttention` labels a position
 * it has no text for with its own index ("0", "1", ...); such placeholders
 * must not match a real token "5" elsewhere, so each becomes a unique marker.
 * Returns `null` when every label is a placeholder.
 * @internal
 */
export function tokensFromLabels(
  labels: readonly string[],
): TokenSequence | null {
  const out = labels.slice();
  let placeholders = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== String(i)) continue;
    out[i] = `\u0000unlabelled position ${i}`;
    // Position 0 has no prompt logprob on vLLM; a BOS token is unique anyway.
    if (i > 0) placeholders++;
  }
  if (placeholders >= labels.length - 1) return null;
  if (placeholders > 0) {
    warn(
      `${placeholders} of ${labels.length} token labels are position placeholders (the server sent no text for them, e.g. no prompt_logprobs); token-identity scores treat them as distinct unknown tokens; pass options.tokens (e.g. from labelGemmaPrompt) for exact scores`,
    );
  }
  return out;
}
