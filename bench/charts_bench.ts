/**
 * Heatmap rendering at T = 138, 1024 and 4096 (8 heads, head mean and one
 * head), side by side in one run, with the size of each output. A 4096-token
 * heatmap should take about a second and stay under about 1 MB.
 *
 * Run: `deno bench -A bench/charts_bench.ts`
 */

import { attentionHeatmap, headsGrid } from "../mod.ts";
import { syntheticLayer } from "../tests/charts_fixtures.ts";

const HEADS = 8;
const sizes = [138, 1024, 4096];
const layers = new Map(
  sizes.map((t) => [t, syntheticLayer({ tokens: t, heads: HEADS, layer: 18 })]),
);

// Sizes are reported once, outside the timed loop.
for (const [t, layer] of layers) {
  for (const head of ["mean", 0] as const) {
    const figure = attentionHeatmap(layer, { head });
    const svg = figure.toSVG();
    console.log(
      `T=${t} head ${head}: ${(svg.length / 1024).toFixed(0)} KiB SVG ` +
        `(bundle ${
          ((figure.toHTML().length + svg.length) / 1024).toFixed(0)
        } KiB) — ${figure}`,
    );
  }
}

for (const [t, layer] of layers) {
  Deno.bench(`heatmap T=${t} head mean`, {
    group: "heatmap head mean",
    baseline: t === 138,
  }, () => {
    attentionHeatmap(layer).toSVG();
  });
  Deno.bench(`heatmap T=${t} one head`, {
    group: "heatmap one head",
    baseline: t === 138,
  }, () => {
    attentionHeatmap(layer, { head: 0 }).toSVG();
  });
}

// The model view at the needle study's size: 6 layers x 8 heads, T=138.
const grid = [0, 3, 6, 9, 12, 18].map((l, i) =>
  syntheticLayer({ tokens: 138, heads: HEADS, layer: l, seed: i + 1 })
);
console.log(
  `heads grid 6x8 T=138: ${
    (headsGrid(grid).toSVG().length / 1024).toFixed(0)
  } KiB SVG`,
);
Deno.bench("heads grid 6 layers x 8 heads, T=138", () => {
  headsGrid(grid).toSVG();
});
