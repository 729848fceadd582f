/**
 * Compare mode's Deno side: capture b checked against capture a (same
 * layers, shapes and positions, so the same tokens) and packed as a second
 * blob the page reads beside a's.
 *
 * @module
 */

import { AttentionLayer } from "../data/layer.ts";
import { type CaptureLike, normalizeCapture } from "../data/capture_input.ts";
import { colorTable } from "../charts/_colorize.ts";
import { packLayers, type PackOptions } from "./_payload.ts";
import type { ExplorerMeta } from "./_protocol.ts";

/**
 * Capture b's layers, in a's order, after checking that they line up.
 *
 * @param a Capture a's layers.
 * @param source Capture b, in any shape `explore` takes.
 * @returns b's layers, one per layer of a.
 * @throws {TypeError} When b lacks one of a's layers or differs in shape.
 *
 * @example
 * ```ts
 * import { compareLayers } from "./_compare.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = (t: number) => new AttentionLayer({
 *   layer: 0,
 *   model: null,
 *   scores: new AttentionScores(new Float32Array(t * t).fill(1 / t), [t, 1, t]),
 *   tokenMeta: TokenMeta.from({}),
 * });
 * assert.equal(compareLayers([layer(2)], layer(2)).length, 1);
 * assert.throws(() => compareLayers([layer(2)], layer(3)), /has shape \[3,1,3\]/);
 * ```
 */
export function compareLayers(
  a: readonly AttentionLayer[],
  source: CaptureLike | AttentionLayer,
): AttentionLayer[] {
  const b = source instanceof AttentionLayer
    ? [source]
    : normalizeCapture(source, "compare attention").layers;
  return a.map((la) => {
    const lb = b.find((l) => l.layer === la.layer);
    if (!lb) {
      throw new TypeError(
        `Cannot compare attention: capture b has no layer ${la.layer} (it holds ${
          b.map((l) => l.layer).join(", ")
        }); capture the same layers in both`,
      );
    }
    const sa = la.scores, sb = lb.scores;
    if (
      String(sa.shape) !== String(sb.shape) || sa.keyOffset !== sb.keyOffset ||
      String(sa.queryPositions) !== String(sb.queryPositions)
    ) {
      throw new TypeError(
        `Cannot compare attention: layer ${la.layer} of capture b has shape [${sb.shape}] from position ${sb.keyOffset} but capture a has [${sa.shape}] from ${sa.keyOffset}; compare captures of the same tokens`,
      );
    }
    return lb;
  });
}

/**
 * Packs capture b for the page.
 *
 * @param layers b's layers (from {@linkcode compareLayers}).
 * @param options Budget, top-k and pooled size, as for capture a.
 * @returns The header part and the base64 blob.
 *
 * @example
 * ```ts
 * import { packCompare } from "./_compare.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 0,
 *   model: null,
 *   scores: new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({}),
 * });
 * const { spec, blob } = packCompare([layer], { budget: 1 << 20, topK: 32, pooledSize: 512 });
 * assert.equal(spec.packing.layers.length, 1);
 * assert.ok(blob.length > 0);
 * ```
 */
export function packCompare(
  layers: AttentionLayer[],
  options: PackOptions,
): { spec: NonNullable<ExplorerMeta["compare"]>; blob: string } {
  const packed = packLayers(layers, options);
  return {
    spec: {
      packing: {
        layers: packed.layers,
        pooled: packed.pooled,
        topK: packed.topK,
        idxBytes: packed.idxBytes,
      },
      names: { a: "a", b: "b" },
      lut: colorTable({ type: "linear", scheme: "rdbu", domain: [-1, 1] }).lut
        .toBase64(),
    },
    blob: packed.blob.toBase64(),
  };
}
