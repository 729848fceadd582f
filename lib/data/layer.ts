/**
 * A decoded layer, as `extractAttentionFromResponse` returns it, and the
 * record of all layers of one response.
 *
 * @module
 */

import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import type { LayerMeta } from "./layer_meta.ts";
import type { AttentionScores } from "./scores.ts";
import type { TokenMeta } from "./token_meta.ts";

/**
 * One captured layer: its index, the model that produced it, the scores and
 * the token metadata.
 *
 * @example
 * ```ts
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 18,
 *   model: "demo",
 *   scores: new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 1, total_len: 2 }),
 * });
 * assert.equal(layer.toString(), "Layer 18 of demo: T=2 H=1 prompt=1 (float32)");
 * ```
 */
export class AttentionLayer {
  /** The decoder layer index the server reported (`layer_idx`). */
  readonly layer: number;
  /** The response's `model` field, or `null` when it had none. */
  readonly model: string | null;
  /** The attention probabilities. */
  readonly scores: AttentionScores;
  /** What each position is. */
  readonly tokenMeta: TokenMeta;
  /** The layer's architecture when the source says it (`layer_meta`), else `null`. */
  readonly layerMeta: LayerMeta | null;

  /**
   * Groups a layer's parts.
   *
   * @param parts The layer index, model, scores and metadata.
   *
   * @example
   * ```ts
   * import { AttentionLayer } from "./layer.ts";
   * import { AttentionScores } from "./scores.ts";
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * assert.equal(layer.scores.numHeads, 1);
   * ```
   */
  constructor(parts: {
    layer: number;
    model: string | null;
    scores: AttentionScores;
    tokenMeta: TokenMeta;
    layerMeta?: LayerMeta | null;
  }) {
    this.layer = parts.layer;
    this.model = parts.model;
    this.scores = parts.scores;
    this.tokenMeta = parts.tokenMeta;
    this.layerMeta = parts.layerMeta ?? null;
  }

  /**
   * A one-line description in the reference script's header terms.
   *
   * @returns E.g. `Layer 18 of gemma-3-4b-it: T=138 H=8 prompt=131 (float32)`.
   *
   * @example
   * ```ts
   * import { AttentionLayer } from "./layer.ts";
   * import { AttentionScores } from "./scores.ts";
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 2,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({ prompt_len: 1 }),
   * });
   * assert.match(layer.toString(), /^Layer 2: T=1 H=1 prompt=1/);
   * ```
   */
  toString(): string {
    const [tq, h, tk] = this.scores.shape;
    const t = tq === tk ? `T=${tq}` : `Tq=${tq} Tk=${tk}`;
    const of = this.model ? ` of ${this.model}` : "";
    return `Layer ${this.layer}${of}: ${t} H=${h} prompt=${this.tokenMeta.promptLen} (${this.scores.dtype})`;
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows: shape, token counts and a
   * head-averaged heatmap once the display layer is loaded.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { AttentionLayer } from "./layer.ts";
   * import { AttentionScores } from "./scores.ts";
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 2,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({ prompt_len: 1 }),
   * });
   * const bundle = await layer[JUPYTER_DISPLAY]();
   * assert.match(String(bundle["text/plain"]), /Layer 2/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("layer", this, this.toString());
  }
}

/** Every decoded layer of one response, keyed by layer index. */
export type AttentionCapture = Record<number, AttentionLayer>;
