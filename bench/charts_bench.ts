/**
 * Heatmap rendering at T = 138, 1024 and 4096 (8 heads, head mean and one
 * head), side by side in one run, with the size of each output. A 4096-token
 * heatmap should take about a second and stay under about 1 MB.
 *
 * Run: `deno bench -A bench/charts_bench.ts`
 */

import { deflate } from "pako";
import { deflateSync } from "node:zlib";
import { attentionHeatmap, AttentionScores, headsGrid } from "../mod.ts";
import { attentionGrid } from "../lib/charts/_grid.ts";
import { colorizer } from "../lib/charts/_colorize.ts";
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

// At the study size, SVG cells (hover per cell) against the default raster.
Deno.bench("heatmap T=138 head mean, SVG cells", {
  group: "heatmap head mean",
}, () => {
  attentionHeatmap(layers.get(138)!, { render: "cells" }).toSVG();
});
console.log(
  `T=138 head mean as SVG cells: ${
    (attentionHeatmap(layers.get(138)!, { render: "cells" }).toSVG().length /
      1024).toFixed(0)
  } KiB SVG`,
);

// Decoders may keep scores as float16 (half the memory); reading them is
// the part of the work that changes.
const half = layers.get(4096)!;
const halfScores = new AttentionScores(
  Float16Array.from(half.scores.data),
  half.scores.shape,
);
Deno.bench("heatmap T=4096 head mean, float16 scores", {
  group: "heatmap head mean",
}, () => {
  attentionHeatmap(halfScores).toSVG();
});

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

// Which deflate lib/png.ts uses: the filtered rows of a T=1024 raster.
const raster = attentionGrid(layers.get(1024)!.scores, {
  maxRows: 582,
  maxCols: 582,
});
const colors = colorizer({ scheme: "viridis", domain: [0, 0.1], clamp: true });
const stride = raster.cols * 4 + 1;
const rows = new Uint8Array(raster.rows * stride);
for (let r = 0; r < raster.rows; r++) {
  for (let c = 0; c < raster.cols; c++) {
    const v = raster.values[r * raster.cols + c];
    if (!Number.isNaN(v)) colors.put(v, rows, r * stride + 1 + c * 4);
  }
}
console.log(
  `deflate of ${rows.length} bytes: pako ${deflate(rows).length} B, node:zlib ${
    deflateSync(rows).length
  } B`,
);
Deno.bench("deflate raster rows: pako level 6", {
  group: "png deflate",
  baseline: true,
}, () => {
  deflate(rows, { level: 6 });
});
Deno.bench("deflate raster rows: node:zlib level 6", {
  group: "png deflate",
}, () => {
  deflateSync(rows, { level: 6 });
});
