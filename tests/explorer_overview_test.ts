/**
 * The explorer page's data layer (`lib/explorer/_browser/data.ts`, run here
 * in Deno, which has the same `DecompressionStream`): reduced heads decode
 * to their kept weights, and the overview masks what the main matrix masks
 * (the future of a causal layer, keys outside a sliding window) instead of
 * showing it as zero attention.
 */

import assert from "node:assert/strict";
import { packLayers } from "../lib/explorer/_payload.ts";
import type { ExplorerMeta } from "../lib/explorer/_protocol.ts";
import { Capture } from "../lib/explorer/_browser/data.ts";
import type { AttentionLayer } from "../lib/data/layer.ts";
import { explorerCapture } from "./_explorer_fixtures.ts";

const T = 48;

/** The capture as a page would hold it, packed into `budget` bytes. */
async function pageCapture(
  layers: AttentionLayer[],
  budget: number,
  arch: ExplorerMeta["arch"],
): Promise<Capture> {
  const packed = packLayers(layers, {
    budget,
    topK: 8,
    pooledSize: 512,
    causal: arch.map((a) => a.causal),
  });
  const s = layers[0].scores;
  const meta = {
    tq: s.shape[0],
    tk: s.shape[2],
    keyOffset: s.keyOffset,
    queryPositions: [...s.queryPositions],
    labels: Array.from({ length: s.shape[2] }, (_, p) => String(p)),
    layers: packed.layers,
    pooled: packed.pooled,
    topK: packed.topK,
    idxBytes: packed.idxBytes,
    arch,
  } as ExplorerMeta;
  return await Capture.load(meta, packed.blob.toBase64());
}

const layersOf = (seed: number) =>
  Object.values(explorerCapture(T, 2, 2, { seed }).attention!);

const ARCH: ExplorerMeta["arch"] = [
  { window: 5, kvHeads: 2, causal: true },
  { window: 0, kvHeads: 2, causal: false },
];

Deno.test("Capture.pooledGrid() of reduced heads masks the future and keys outside the sliding window, as full heads do", async () => {
  const layers = layersOf(4);
  const full = await pageCapture(layers, 1 << 20, ARCH);
  const reduced = await pageCapture(layers, 8000, ARCH);
  assert.ok(full.allFull(0, [0, 1]));
  assert.ok(!reduced.allFull(0, [0]) && !reduced.allFull(1, [0]));
  for (const cap of [full, reduced]) {
    for (const h of [0, 1]) {
      const g = cap.pooledGrid(0, [h], "mean");
      const masked = Array.from(g, (v) => Number.isNaN(v));
      // T = 48 pools to 48 x 48: one bin per cell. Row r sees keys r-4..r.
      const expected = Array.from(
        g,
        (_, i) => i % T > Math.floor(i / T) || i % T <= Math.floor(i / T) - 5,
      );
      assert.deepEqual(masked, expected, `head ${h}`);
      // Bidirectional: nothing masked (the future shows as its values, 0).
      assert.ok(!cap.pooledGrid(1, [h], "mean").some(Number.isNaN));
    }
  }
});

Deno.test("Capture.cell() returns a reduced head's kept top-k weights within 5e-4 (plus the page scale's 1/131070)", async () => {
  const layers = layersOf(7);
  const cap = await pageCapture(layers, 8000, ARCH);
  const s = layers[1].scores;
  let kept = 0;
  for (let r = 0; r < T; r++) {
    for (let k = 0; k < T; k++) {
      const v = cap.cell(1, 1, r, k);
      if (v === null) continue;
      kept++;
      assert.ok(
        Math.abs(v - s.get(r, 1, k)) <= 5.1e-4,
        `(${r}, ${k}): ${v} vs ${s.get(r, 1, k)}`,
      );
    }
  }
  assert.equal(kept, T * cap.meta.topK);
});

Deno.test("packLayers() keeps 32 keys per row at the T=4,096 page's bytes per row (61), where 16-bit weights kept 16", async () => {
  // The 8 MiB page at T = 4,096 holds 24 heads in about 6 MB of blob:
  // 61 bytes per head and query row. Here: 8 heads of T = 1,024.
  const { syntheticLayer } = await import("./charts_fixtures.ts");
  const layer = syntheticLayer({ tokens: 1024, heads: 8, layer: 2, seed: 1 });
  const packed = packLayers([layer], {
    budget: 1024 * 8 * 61,
    topK: 32,
    pooledSize: 512,
  });
  assert.equal(packed.reducedHeads, 8);
  assert.equal(packed.topK, 32);
  // The first paint inflates one layer's overviews: at most 2^19 cells.
  assert.ok(8 * packed.pooled.rows * packed.pooled.cols <= 1 << 19);
  assert.ok(packed.blob.length <= 1024 * 8 * 61, `${packed.blob.length}`);
});
