/**
 * Compare mode's Deno side: capture b, lined up with capture a by
 * `alignCaptures` (./_align.ts), packed as a second blob the page reads
 * beside a's.
 *
 * @module
 */

import type { AttentionLayer } from "../data/layer.ts";
import { colorTable } from "../charts/_colorize.ts";
import { packLayers, type PackOptions } from "./_payload.ts";
import type { ExplorerMeta } from "./_protocol.ts";

/**
 * Packs capture b for the page.
 *
 * @param layers b's layers (from `alignCaptures`).
 * @param options Budget, top-k and pooled size, as for capture a.
 * @param align The aligned window's label, when b was aligned by span.
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
 * const { spec, blob } = packCompare([layer], { budget: 1 << 20, topK: 32, pooledSize: 512 }, "a[1,3) b[0,2)");
 * assert.equal(spec.packing.layers.length, 1);
 * assert.equal(spec.align, "a[1,3) b[0,2)");
 * assert.ok(blob.length > 0);
 * ```
 */
export function packCompare(
  layers: AttentionLayer[],
  options: PackOptions,
  align?: string,
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
      ...(align ? { align } : {}),
    },
    blob: packed.blob.toBase64(),
  };
}
