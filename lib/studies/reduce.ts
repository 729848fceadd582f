/**
 * Reduces one capture to a sweep's numbers per layer and head, the moment it
 * is decoded, and scores retrieval heads (Wu et al. 2024) from them.
 *
 * @module
 */

import type { AttentionCapture } from "../data/layer.ts";

/** The numbers of one layer and head in one trial. */
export interface HeadNumbers {
  /** Decoder layer. */
  layer: number;
  /** Query head. */
  head: number;
  /** The answer rows' attention on the needle span, averaged over those rows. */
  needle_mass: number;
  /** Copy events: generated steps whose row's argmax lies in the answer span on the token generated. */
  retrieval_hits: number;
  /** Attention on position 0, averaged over the answer rows. */
  sink_mass: number;
  /** Row entropy normalized by log(keys), averaged over the answer rows. */
  entropy: number;
}

/** Where to look in a capture. */
export interface ReduceSpans {
  /** Prompt tokens. */
  promptLen: number;
  /** Labels for every position (prompt then generated). */
  labels: readonly string[];
  /** The needle span, absolute, half-open. */
  needle: { start: number; end: number };
  /** The answer span inside the needle, absolute, half-open. */
  answer: { start: number; end: number };
}

/**
 * Reduces a capture. The answer rows are the last prompt row and the rows
 * of the generated tokens that predict a further token (row p-1 predicts
 * position p); rows the capture lacks are skipped.
 *
 * @param attention The decoded layers (full or only the answer rows).
 * @param spans The prompt length, labels and spans.
 * @returns One entry per captured layer and head.
 *
 * @example
 * ```ts
 * import { reduceCapture } from "./reduce.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * // 3 rows over 3 keys, 1 head: row 1 (the last prompt row) reads key 1, row 2 too.
 * const s = new AttentionScores(new Float32Array([1, 0, 0, 0, 1, 0, 0, 1, 0]), [3, 1, 3]);
 * const layer = new AttentionLayer({ layer: 0, model: null, scores: s, tokenMeta: TokenMeta.from({}) });
 * const [h] = reduceCapture({ 0: layer }, {
 *   promptLen: 2, labels: ["<bos>", "7", "7", "x"],
 *   needle: { start: 1, end: 2 }, answer: { start: 1, end: 2 },
 * });
 * assert.equal(h.needle_mass, 1);
 * assert.equal(h.retrieval_hits, 1); // row 1 copies "7" at step 2; row 2 argmax 1 but "x" ≠ "7"
 * ```
 */
export function reduceCapture(
  attention: AttentionCapture,
  spans: ReduceSpans,
): HeadNumbers[] {
  const out: HeadNumbers[] = [];
  const last = spans.labels.length - 2;
  for (const key of Object.keys(attention).map(Number).sort((a, b) => a - b)) {
    const { scores } = attention[key];
    const [, heads, tk] = scores.shape;
    const rows: number[] = [];
    for (let p = spans.promptLen - 1; p <= last; p++) {
      const r = scores.rowForPosition(p);
      if (r >= 0) rows.push(p);
    }
    for (let h = 0; h < heads; h++) {
      let mass = 0, hits = 0, sink = 0, ent = 0;
      for (const p of rows) {
        const row = scores.row(scores.rowForPosition(p), h);
        let m = 0, best = -1, bestJ = -1, e = 0;
        for (let k = 0; k < tk; k++) {
          const j = k + scores.keyOffset;
          const a = row[k];
          if (j >= spans.needle.start && j < spans.needle.end) m += a;
          if (a > best) {
            best = a;
            bestJ = j;
          }
          if (a > 0) e -= a * Math.log(a);
        }
        mass += m;
        sink += scores.keyOffset === 0 ? row[0] : 0;
        ent += p > 0 ? e / Math.log(p + 1) : 0;
        if (
          bestJ >= spans.answer.start && bestJ < spans.answer.end &&
          spans.labels[p + 1] === spans.labels[bestJ]
        ) hits++;
      }
      const n = Math.max(rows.length, 1);
      out.push({
        layer: attention[key].layer,
        head: h,
        needle_mass: mass / n,
        retrieval_hits: hits,
        sink_mass: sink / n,
        entropy: ent / n,
      });
    }
  }
  return out;
}

/** A head's retrieval score. */
export interface RetrievalScore {
  /** Layer. */
  layer: number;
  /** Head. */
  head: number;
  /** Mean of copies / answer span length over correct trials. */
  score: number;
}

/** A heads.jsonl row with what scoring needs. */
export interface ScoredHeadRow {
  /** Trial identity. */
  length: number;
  /** Trial identity. */
  depth: number;
  /** Trial identity. */
  seed: number;
  /** Layer. */
  layer: number;
  /** Head. */
  head: number;
  /** Copy events. */
  retrieval_hits: number;
}

/** A trials.jsonl row with what scoring needs. */
export interface ScoredTrialRow {
  /** Trial identity. */
  length: number;
  /** Trial identity. */
  depth: number;
  /** Trial identity. */
  seed: number;
  /** Whether the answer was right. */
  correct: boolean | null;
  /** Answer span start. */
  answer_start: number | null;
  /** Answer span end. */
  answer_end: number | null;
}

/**
 * Wu et al.'s retrieval score: each copy event adds 1/|answer span|; a
 * head's score is the mean over the trials answered correctly. Ranked,
 * highest first.
 *
 * @param trials Trials (only correct ones count).
 * @param heads Heads rows.
 * @param seeds Only these seeds (for stability across seeds).
 * @returns Scores, highest first.
 *
 * @example
 * ```ts
 * import { retrievalScores } from "./reduce.ts";
 * import assert from "node:assert/strict";
 *
 * const t = (seed: number, correct: boolean) => ({ length: 8, depth: 0, seed, correct, answer_start: 1, answer_end: 5 });
 * const h = (seed: number, head: number, hits: number) => ({ length: 8, depth: 0, seed, layer: 0, head, retrieval_hits: hits });
 * const s = retrievalScores([t(0, true), t(1, true), t(2, false)], [h(0, 0, 4), h(1, 0, 2), h(2, 0, 4), h(0, 1, 0), h(1, 1, 1)]);
 * assert.deepEqual(s, [{ layer: 0, head: 0, score: 0.75 }, { layer: 0, head: 1, score: 0.125 }]);
 * ```
 */
export function retrievalScores(
  trials: readonly ScoredTrialRow[],
  heads: readonly ScoredHeadRow[],
  seeds?: readonly number[],
): RetrievalScore[] {
  const id = (r: { length: number; depth: number; seed: number }) =>
    `${r.length}|${r.depth}|${r.seed}`;
  const span = new Map<string, number>();
  for (const t of trials) {
    if (
      t.correct === true && t.answer_start !== null && t.answer_end !== null &&
      (seeds === undefined || seeds.includes(t.seed))
    ) span.set(id(t), t.answer_end - t.answer_start);
  }
  const sums = new Map<string, { layer: number; head: number; sum: number }>();
  for (const h of heads) {
    const len = span.get(id(h));
    if (len === undefined) continue;
    const k = `${h.layer}|${h.head}`;
    const e = sums.get(k) ?? { layer: h.layer, head: h.head, sum: 0 };
    e.sum += h.retrieval_hits / len;
    sums.set(k, e);
  }
  return [...sums.values()]
    .map(({ layer, head, sum }) => ({ layer, head, score: sum / span.size }))
    .sort((a, b) => b.score - a.score || a.layer - b.layer || a.head - b.head);
}

/**
 * Top-k overlap of two rankings: the share of the first's top k in the second's.
 *
 * @example
 * ```ts
 * import { topKOverlap } from "./reduce.ts";
 * import assert from "node:assert/strict";
 *
 * const r = (...hs: number[]) => hs.map((head) => ({ layer: 0, head, score: 0 }));
 * assert.equal(topKOverlap(r(1, 2, 3), r(2, 1, 4), 2), 1);
 * assert.equal(topKOverlap(r(1, 2, 3), r(2, 4, 1), 2), 0.5);
 * ```
 */
export function topKOverlap(
  a: readonly RetrievalScore[],
  b: readonly RetrievalScore[],
  k: number,
): number {
  const top = (r: readonly RetrievalScore[]) =>
    new Set(r.slice(0, k).map((x) => `${x.layer}|${x.head}`));
  const ta = top(a), tb = top(b);
  let n = 0;
  for (const x of ta) if (tb.has(x)) n++;
  return ta.size === 0 ? 0 : n / ta.size;
}
