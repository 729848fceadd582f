/**
 * What a chart can be given: a decoded layer (scores, metadata, layer index)
 * or bare scores (with metadata passed in options).
 *
 * @module
 */

import { AttentionScores } from "../data/scores.ts";
import type { AttentionLayer } from "../data/layer.ts";
import type { TokenMeta } from "../data/token_meta.ts";

/** A decoded layer, or one layer's scores alone. */
export type AttentionSource = AttentionLayer | AttentionScores;

/** A source taken apart. */
export interface ResolvedSource {
  /** The scores. */
  scores: AttentionScores;
  /** Metadata from the layer or the options, if any. */
  tokenMeta: TokenMeta | null;
  /** The layer index, when known. */
  layer: number | null;
  /** The model name, when known. */
  model: string | null;
}

/**
 * Takes a chart's source apart.
 *
 * @param source A layer or scores.
 * @param tokenMeta Metadata to use when the source has none.
 * @param what The chart, for the error message.
 * @returns Scores, metadata, layer and model.
 * @throws {TypeError} When the source is neither.
 *
 * @example
 * ```ts
 * import { resolveSource } from "./_source.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1]), [1, 1, 1]);
 * assert.equal(resolveSource(scores, undefined, "heatmap").layer, null);
 * assert.throws(() => resolveSource({} as never, undefined, "heatmap"), TypeError);
 * ```
 */
export function resolveSource(
  source: AttentionSource,
  tokenMeta: TokenMeta | undefined,
  what: string,
): ResolvedSource {
  if (source instanceof AttentionScores) {
    return {
      scores: source,
      tokenMeta: tokenMeta ?? null,
      layer: null,
      model: null,
    };
  }
  const layer = source as Partial<AttentionLayer> | null;
  if (layer && layer.scores instanceof AttentionScores) {
    return {
      scores: layer.scores,
      tokenMeta: tokenMeta ?? layer.tokenMeta ?? null,
      layer: typeof layer.layer === "number" ? layer.layer : null,
      model: layer.model ?? null,
    };
  }
  throw new TypeError(
    `Cannot draw ${what}: expected an AttentionLayer or AttentionScores, got ${
      source === null ? "null" : typeof source
    }; pass a decoded layer (capture[layer]) or its .scores`,
  );
}
