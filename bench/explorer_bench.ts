/**
 * Building the explorer's output in Deno at T = 138, 1024 and 4096 (8 heads,
 * 3 layers), next to the static heatmap of one layer, with each output's
 * size and what the byte budget reduced.
 *
 * Run: `deno bench -A bench/explorer_bench.ts`
 */

import { attentionHeatmap, explore } from "../mod.ts";
import type { AttentionLayer } from "../lib/data/layer.ts";
import { syntheticLayer } from "../tests/charts_fixtures.ts";

const HEADS = 8;
const sizes = [138, 1024, 4096];
const captures = new Map<number, Record<number, AttentionLayer>>(
  sizes.map((t) => [
    t,
    Object.fromEntries(
      [2, 18, 27].map((layer, i) => [
        layer,
        syntheticLayer({ tokens: t, heads: HEADS, layer, seed: i + 1 }),
      ]),
    ),
  ]),
);

// Sizes and one cold build each, reported once outside the timed loops.
for (const [t, capture] of captures) {
  const start = performance.now();
  const view = explore(capture);
  const stats = await view.stats();
  console.log(
    `explorer T=${t} (${HEADS} heads x 3 layers): ${
      (stats.bytes / 1024).toFixed(0)
    } KiB in ${
      (performance.now() - start).toFixed(0)
    } ms (cold), ${stats.fullHeads} heads full, ${stats.reducedHeads} reduced`,
  );
}

for (const [t, capture] of captures) {
  const opts = t === 4096 ? { n: 3, warmup: 1 } : {};
  Deno.bench(`explorer output T=${t}`, {
    group: `explorer vs heatmap T=${t}`,
    ...opts,
  }, async () => {
    await explore(capture).toHTML();
  });
  Deno.bench(`static heatmap T=${t} (one layer, head mean)`, {
    group: `explorer vs heatmap T=${t}`,
    baseline: true,
    ...opts,
  }, () => {
    attentionHeatmap(capture[27]).toSVG();
  });
}
