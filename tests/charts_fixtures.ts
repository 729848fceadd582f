/**
 * Deterministic attention for chart tests and benchmarks: causal softmax
 * rows built from a seeded generator, with the patterns real heads show (a
 * first-token sink, a previous-token head, a head that finds a "needle"),
 * so charts are exercised on realistic shapes without a server.
 *
 * @module
 */

import {
  AttentionAnalyzer,
  AttentionLayer,
  AttentionScores,
  TokenMeta,
} from "../mod.ts";
import { seededRandom } from "../lib/random.ts";

/** Options for {@linkcode syntheticLayer}. */
export interface SyntheticOptions {
  /** Tokens. */
  tokens: number;
  /** Heads. @default {4} */
  heads?: number;
  /** Layer index. @default {0} */
  layer?: number;
  /** Seed. @default {1} */
  seed?: number;
  /** Position the "needle" head attends to from late queries. @default {tokens / 3} */
  needle?: number;
  /** Prompt length (the rest is generated). @default {tokens - 4} */
  promptLen?: number;
  /** Vision range in the prompt, if any. */
  vision?: [number, number];
}

/**
 * A causal layer: head 0 sinks on token 0, head 1 looks at the previous
 * token, head 2 finds the needle from queries past it, other heads are
 * noisy; every row is a softmax (sums to 1, exact zeros above the diagonal).
 */
export function syntheticLayer(options: SyntheticOptions): AttentionLayer {
  const t = options.tokens;
  const heads = options.heads ?? 4;
  const random = seededRandom(options.seed ?? 1);
  const needle = options.needle ?? Math.floor(t / 3);
  const promptLen = options.promptLen ?? Math.max(1, t - 4);
  const data = new Float32Array(t * heads * t);
  const logits = new Float64Array(t);
  for (let q = 0; q < t; q++) {
    for (let h = 0; h < heads; h++) {
      for (let k = 0; k <= q; k++) {
        let z = random() * 1.5;
        if (k === 0) z += h === 0 ? 6 : 3;
        if (h === 1 && k === q - 1) z += 5;
        if (h === 2 && k === needle && q > needle) z += 7;
        if (h >= 3 && (q - k) % 7 === 0) z += 1.5;
        logits[k] = z;
      }
      let max = -Infinity;
      for (let k = 0; k <= q; k++) max = Math.max(max, logits[k]);
      let sum = 0;
      for (let k = 0; k <= q; k++) sum += Math.exp(logits[k] - max);
      const base = (q * heads + h) * t;
      for (let k = 0; k <= q; k++) {
        data[base + k] = Math.exp(logits[k] - max) / sum;
      }
    }
  }
  const vision = options.vision;
  const lang = vision
    ? [{ start: 0, end: vision[0] }, { start: vision[1], end: promptLen }]
    : [{ start: 0, end: promptLen }];
  return new AttentionLayer({
    layer: options.layer ?? 0,
    model: "synthetic",
    scores: new AttentionScores(data, [t, heads, t]),
    tokenMeta: TokenMeta.from({
      prompt_len: promptLen,
      total_len: t,
      lang_ranges: lang,
      vision_ranges: vision ? [{ start: vision[0], end: vision[1] }] : [],
    }),
  });
}

const WORDS = [
  " the",
  " secret",
  " code",
  " is",
  " hidden",
  " in",
  " a",
  " long",
  " passage",
  " about",
  " gardens",
  ",",
  ".",
  " and",
  " rivers",
  "\n",
];

/** Token text for every position: a seeded word salad with a needle word. */
export function syntheticLabels(
  tokens: number,
  needle = Math.floor(tokens / 3),
): string[] {
  const random = seededRandom(7);
  return Array.from(
    { length: tokens },
    (_, i) =>
      i === 0
        ? "<bos>"
        : i === needle
        ? " PINEAPPLE"
        : WORDS[Math.floor(random() * WORDS.length)],
  );
}

/** An analyzer over a synthetic layer. */
export function syntheticAnalyzer(layer: AttentionLayer): AttentionAnalyzer {
  return new AttentionAnalyzer(layer.scores, layer.tokenMeta);
}
