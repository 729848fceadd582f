/**
 * Test helpers for the explorer: seeded causal captures with labels,
 * newlines, an image block and generated tokens, and the expected weights.
 */

import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import type { CaptureRecord } from "../lib/data/capture_input.ts";
import { causalScores } from "./_captures.ts";

/** A record capture: `layers` layers of `heads` heads over `t` tokens. */
export function explorerCapture(
  t: number,
  heads: number,
  layers: number,
  options: { seed?: number; vision?: [number, number]; labels?: boolean } = {},
): CaptureRecord {
  const { seed = 1, vision, labels = true } = options;
  const promptLen = Math.max(1, t - 4);
  const meta = TokenMeta.from({
    prompt_len: promptLen,
    total_len: t,
    vision_ranges: vision ? [{ start: vision[0], end: vision[1] }] : [],
    lang_ranges: vision
      ? [{ start: 0, end: vision[0] }, { start: vision[1], end: promptLen }]
      : [{ start: 0, end: promptLen }],
  });
  const attention: Record<number, AttentionLayer> = {};
  for (let l = 0; l < layers; l++) {
    const data = Float32Array.from(causalScores(t, heads, t, seed * 10 + l));
    attention[l * 3] = new AttentionLayer({
      layer: l * 3,
      model: "test",
      scores: new AttentionScores(data, [t, heads, t]),
      tokenMeta: meta,
    });
  }
  const words = ["The", " cat", " sat", "\n", " on", " a", " mat", "."];
  return {
    attention,
    labels: labels
      ? Array.from({ length: t }, (_, p) => words[p % words.length])
      : null,
  };
}

/** Combined weights of one query row over the given heads. */
export function expectedRow(
  scores: AttentionScores,
  row: number,
  heads: readonly number[],
  combine: "mean" | "max",
): number[] {
  const tk = scores.keyLength;
  return Array.from({ length: tk }, (_, k) => {
    const v = heads.map((h) => scores.get(row, h, k));
    return combine === "mean"
      ? v.reduce((a, b) => a + b, 0) / v.length
      : Math.max(...v);
  });
}
