/**
 * The explorer's view of a layer's architecture: from the layer itself, else
 * from `explore(..., { layerMeta })`, checked against the heads it has.
 *
 * @module
 */

import type { AttentionLayer } from "../data/layer.ts";
import type { LayerMeta } from "../data/layer_meta.ts";

/**
 * Each layer's architecture: its own `layerMeta`, else the option's (one for
 * all, or one per layer), else `null` (unknown: drawn as full and causal).
 *
 * @param layers The capture's layers, in order.
 * @param given The `layerMeta` option.
 * @returns One entry per layer.
 * @throws {RangeError} When the option's count or KV heads do not fit.
 *
 * @example
 * ```ts
 * import { resolveLayerMeta } from "./_layer_meta.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 0,
 *   model: null,
 *   scores: new AttentionScores(new Float32Array(8), [2, 2, 2]),
 *   tokenMeta: TokenMeta.from({}),
 * });
 * const meta = { attention: "full_attention", slidingWindow: null, numKeyValueHeads: 1, causal: false } as const;
 * assert.deepEqual(resolveLayerMeta([layer], meta), [meta]);
 * assert.deepEqual(resolveLayerMeta([layer], undefined), [null]);
 * assert.throws(() => resolveLayerMeta([layer], { ...meta, numKeyValueHeads: 3 }), RangeError);
 * ```
 */
export function resolveLayerMeta(
  layers: readonly AttentionLayer[],
  given: LayerMeta | readonly LayerMeta[] | undefined,
): (LayerMeta | null)[] {
  if (Array.isArray(given) && given.length !== layers.length) {
    throw new RangeError(
      `Cannot explore with layerMeta: it has ${given.length} entries for ${layers.length} layers; pass one per layer or a single one`,
    );
  }
  return layers.map((l, i) => {
    const m = l.layerMeta ??
      (Array.isArray(given) ? given[i] : given as LayerMeta | undefined) ??
      null;
    if (m === null) return null;
    const heads = l.scores.numHeads;
    if (
      !Number.isInteger(m.numKeyValueHeads) || m.numKeyValueHeads < 1 ||
      heads % m.numKeyValueHeads !== 0
    ) {
      throw new RangeError(
        `Cannot explore layer ${l.layer}: numKeyValueHeads is ${m.numKeyValueHeads} but the layer has ${heads} query heads; pass a divisor of ${heads}`,
      );
    }
    if (
      m.attention === "sliding_attention" &&
      !(Number.isInteger(m.slidingWindow) && m.slidingWindow! >= 1)
    ) {
      throw new RangeError(
        `Cannot explore layer ${l.layer}: a sliding_attention layer needs a slidingWindow of at least 1, got ${m.slidingWindow}; pass the window or "full_attention"`,
      );
    }
    return m;
  });
}
