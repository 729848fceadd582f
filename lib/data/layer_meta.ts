/**
 * What a layer's attention was, architecturally: full or sliding-window,
 * how many KV heads its query heads share, and whether it is causal. Servers
 * that know it (attnscope's own) send it as the wire entry's optional
 * `layer_meta`; other sources leave it `null` or take it as an option.
 *
 * @module
 */

/**
 * One layer's architecture, as `AttentionLayer.layerMeta` carries it.
 *
 * @example
 * ```ts
 * import type { LayerMeta } from "./layer_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const sliding: LayerMeta = {
 *   attention: "sliding_attention",
 *   slidingWindow: 512,
 *   numKeyValueHeads: 1,
 *   causal: true,
 * };
 * assert.equal(sliding.slidingWindow, 512);
 * ```
 */
export interface LayerMeta {
  /** `"sliding_attention"` (keys limited to a window) or `"full_attention"`. */
  attention: "sliding_attention" | "full_attention";
  /**
   * How many keys a query sees on a sliding layer, itself included
   * (key k is visible from query q when `q - window < k <= q`); `null` on
   * full layers.
   */
  slidingWindow: number | null;
  /**
   * KV heads: query head h reads KV head `floor(h / (H / numKeyValueHeads))`,
   * as HF's `repeat_kv` orders them.
   */
  numKeyValueHeads: number;
  /** `false` for bidirectional attention (encoders, image blocks). */
  causal: boolean;
}
