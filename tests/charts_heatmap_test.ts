import assert from "node:assert/strict";
import * as Plot from "@observablehq/plot";
import { inflate } from "pako";
import { attentionHeatmap, AttentionScores, JUPYTER_DISPLAY } from "../mod.ts";
import { attentionGrid } from "../lib/charts/_grid.ts";
import { decodePng } from "../scripts/_png.ts";
import { assertGolden } from "./charts_golden.ts";
import { syntheticLabels, syntheticLayer } from "./charts_fixtures.ts";

const titles = (svg: string) =>
  [...svg.matchAll(/<title>([^<]*)<\/title>/g)].map((m) => m[1]);

/** The bytes of the heatmap's raster (the legend's ramp is a PNG too). */
function rasterBytes(svg: string): Uint8Array {
  const image = [...svg.matchAll(/<image [^>]*>/g)].map((m) => m[0])
    .find((tag) => tag.includes('image-rendering="optimizeSpeed"'));
  assert.ok(image, "no raster image");
  const m = /href="data:image\/png;base64,([^"]+)"/.exec(image);
  assert.ok(m, "the raster image has no PNG");
  return Uint8Array.fromBase64(m[1]);
}

function embeddedPng(svg: string) {
  return decodePng(rasterBytes(svg));
}

Deno.test("attentionHeatmap() matches its golden: SVG cells with labels and a mark", async () => {
  const layer = syntheticLayer({ tokens: 12, heads: 2, layer: 5 });
  const figure = attentionHeatmap(layer, {
    labels: syntheticLabels(12, 4),
    mark: [4],
  });
  await assertGolden("heatmap-cells.svg", figure.toSVG());
});

Deno.test("attentionHeatmap() matches its golden: raster with sink dropped", async () => {
  const layer = syntheticLayer({ tokens: 12, heads: 2, layer: 5 });
  const figure = attentionHeatmap(layer, {
    render: "raster",
    dropSink: true,
    head: 1,
  });
  await assertGolden("heatmap-raster.svg", figure.toSVG());
});

Deno.test("attentionHeatmap() draws only unmasked cells, and keeps non-causal weight", () => {
  const layer = syntheticLayer({ tokens: 12, heads: 1 });
  const svg = attentionHeatmap(layer).toSVG();
  // Lower triangle with diagonal: 12 * 13 / 2 cells, one hover title each.
  assert.equal(titles(svg).filter((t) => t.startsWith("q ")).length, 78);

  // A bidirectional block (query 0 sees key 1) is not hidden as "future".
  const scores = new AttentionScores(
    new Float32Array([0.6, 0.4, 0.5, 0.5]),
    [2, 1, 2],
  );
  const cells = titles(attentionHeatmap(scores).toSVG());
  assert.ok(cells.includes("q 0 → k 1: 0.400"));
  assert.equal(cells.filter((t) => t.startsWith("q ")).length, 4);
});

Deno.test("attentionHeatmap() hover text carries token text and the exact weight", () => {
  const layer = syntheticLayer({ tokens: 6, heads: 2 });
  const labels = ["<bos>", " a", " b", " c", " d", " e"];
  const svg = attentionHeatmap(layer, { labels, head: 1 }).toSVG();
  const w = layer.scores.get(5, 1, 2);
  assert.ok(
    titles(svg).includes(
      `q ·e 5 → k ·b 2: ${w.toFixed(3)}`,
    ),
  );
});

Deno.test("attentionHeatmap() dropSink removes key 0 and renormalizes rows", () => {
  const layer = syntheticLayer({ tokens: 8, heads: 1 });
  const svg = attentionHeatmap(layer, { dropSink: true, head: 0 }).toSVG();
  const cells = titles(svg).filter((t) => t.startsWith("q "));
  assert.ok(cells.every((t) => !/ → k 0:/.test(t)));
  const s = layer.scores;
  const expected = s.get(7, 0, 3) / (1 - s.get(7, 0, 0));
  assert.ok(cells.includes(`q 7 → k 3: ${expected.toFixed(3)}`));
  // Query 0 attends only to the sink: nothing is left to draw in its row.
  assert.ok(cells.every((t) => !t.startsWith("q 0 →")));
});

Deno.test("attentionHeatmap() window zooms to absolute position ranges", () => {
  const layer = syntheticLayer({ tokens: 20, heads: 1 });
  const figure = attentionHeatmap(layer, {
    window: { query: [10, 14], key: [5, 12] },
  });
  const cells = titles(figure.toSVG()).filter((t) => t.startsWith("q "));
  const queries = new Set(cells.map((t) => Number(/^q (\d+)/.exec(t)![1])));
  const keys = new Set(cells.map((t) => Number(/ k (\d+)/.exec(t)![1])));
  assert.deepEqual([...queries].sort((a, b) => a - b), [10, 11, 12, 13]);
  assert.deepEqual(
    [...keys].sort((a, b) => a - b),
    [5, 6, 7, 8, 9, 10, 11],
  );
  assert.match(String(figure), /queries 10-13 x keys 5-11/);
  assert.throws(
    () => attentionHeatmap(layer, { window: { query: [40, 50] } }),
    (e: unknown) =>
      e instanceof RangeError &&
      /^Cannot zoom to window.query \[40, 50\]: captured query positions are 0 to 19/
        .test(e.message),
  );
});

Deno.test("attentionGrid() reduces by maximum, so one sharp cell survives", () => {
  // One row of 2,000 keys with a single spike: a mean over 8 keys would give
  // 1/8, the maximum keeps 1.
  const t = 2000;
  const data = new Float32Array(t);
  data[1234] = 1;
  const scores = new AttentionScores(data, [1, 1, t], {
    queryPositions: [t - 1],
  });
  const grid = attentionGrid(scores, { maxCols: 250 });
  assert.equal(grid.cols, 250);
  assert.equal(grid.reduced, true);
  assert.equal(Math.max(...grid.values), 1);
  assert.equal(grid.values[Math.floor((1234 * 250) / 2000)], 1);
});

Deno.test("attentionHeatmap() raster keeps a single spike visible at the top color", () => {
  const t = 3000;
  const data = new Float32Array(t * t);
  for (let q = 0; q < t; q++) {
    // Uniform causal rows, except one query that puts all weight on key 777.
    for (let k = 0; k <= q; k++) data[q * t + k] = 1 / (q + 1);
  }
  data.fill(0, 2500 * t, 2501 * t);
  data[2500 * t + 777] = 1;
  const scores = new AttentionScores(data, [t, 1, t]);
  const figure = attentionHeatmap(scores, { saturate: 1 });
  assert.match(String(figure), /raster \d+x\d+/);
  const png = embeddedPng(figure.toSVG());
  assert.ok(png.width < t && png.height < t);
  // viridis at the top of the domain is #fde725.
  let found = 0;
  for (let i = 0; i < png.rgba.length; i += 4) {
    if (
      png.rgba[i] === 0xfd && png.rgba[i + 1] === 0xe7 &&
      png.rgba[i + 2] === 0x25
    ) found++;
  }
  assert.ok(found >= 1, "the spike pixel is missing");
});

Deno.test("attentionHeatmap() switches from cells to raster above cellLimit", () => {
  const layer = syntheticLayer({ tokens: 30, heads: 1 });
  assert.match(String(attentionHeatmap(layer)), /SVG cells/);
  const raster = attentionHeatmap(layer, { cellLimit: 100 });
  assert.match(String(raster), /raster 30x30/);
  // No per-cell rectangles: one hover band per raster row instead.
  const rowTitles = titles(raster.toSVG()).filter((t) => t.startsWith("q "));
  assert.equal(rowTitles.length, 30);
  assert.ok(rowTitles.every((t) => / → strongest /.test(t)), rowTitles[0]);
  assert.match(raster.toSVG(), /image-rendering="optimizeSpeed"/);
});

Deno.test("attentionHeatmap() at T=4096 is a raster under 1 MB", () => {
  const t = 4096;
  const data = new Float32Array(t * t);
  for (let q = 0; q < t; q++) {
    data[q * t] = 0.5;
    for (let k = 1; k <= q; k++) data[q * t + k] = 0.5 / q;
    if (q === 0) data[0] = 1;
  }
  const scores = new AttentionScores(data, [t, 1, t]);
  const svg = attentionHeatmap(scores).toSVG();
  assert.ok(svg.length < 1_000_000, `${svg.length} bytes`);
  assert.match(svg, /<image /);
});

Deno.test("attentionHeatmap() thins crowded axis labels but keeps marked ones", () => {
  const t = 300;
  const layer = syntheticLayer({ tokens: t, heads: 1 });
  const labels = syntheticLabels(t, 123);
  const svg = attentionHeatmap(layer, { labels, mark: [123] }).toSVG();
  const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) =>
    m[1]
  );
  const xLabels = texts.filter((s) => / \d+$/.test(s));
  assert.ok(xLabels.length < 120, `${xLabels.length} labels`);
  assert.ok(xLabels.includes("·PINEAPPLE 123"));
});

Deno.test("attentionHeatmap() passes Plot options through", () => {
  const layer = syntheticLayer({ tokens: 10, heads: 1 });
  const figure = attentionHeatmap(layer, {
    width: 420,
    color: { scheme: "magma" },
    marks: [Plot.ruleX([5], { stroke: "red" })],
    title: "Custom",
  });
  const svg = figure.toSVG();
  assert.match(svg, /<svg x="0" y="\d+"[^>]* width="420"/);
  assert.match(svg, /aria-label="rule"/);
  assert.match(svg, />Custom<\/text>/);
  // magma's low end is near black, viridis's is purple (68, 1, 84).
  assert.doesNotMatch(svg, /fill="rgb\(68, 1, 84\)"/);
});

Deno.test("attentionHeatmap() rejects bad input with a clear message", () => {
  const layer = syntheticLayer({ tokens: 4, heads: 2 });
  assert.throws(() => attentionHeatmap(layer, { head: 2 }), {
    name: "RangeError",
    message: "Cannot index head 2: valid values are -2 to 1",
  });
  assert.throws(
    () => attentionHeatmap({} as never),
    /^TypeError: Cannot draw a heatmap: expected an AttentionLayer or AttentionScores/,
  );
  assert.throws(() => attentionHeatmap(layer, { mark: [1.5] }), TypeError);
  assert.throws(() => attentionHeatmap(layer, { saturate: 0 }), RangeError);
});

Deno.test("attentionHeatmap() figure displays itself with html, svg and plain text", () => {
  const layer = syntheticLayer({ tokens: 6, heads: 2, layer: 3 });
  const bundle = attentionHeatmap(layer)[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(bundle).sort(), [
    "image/svg+xml",
    "text/html",
    "text/plain",
  ]);
  assert.match(
    String(bundle["image/svg+xml"]),
    /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/,
  );
  assert.equal(
    bundle["text/plain"],
    "Heatmap of layer 3, head mean: queries 0-5 x keys 0-5 (SVG cells), max 1.000",
  );
});

Deno.test("attentionHeatmap() embeds a valid PNG in raster mode", () => {
  const layer = syntheticLayer({ tokens: 40, heads: 1 });
  const svg = attentionHeatmap(layer, { render: "raster" }).toSVG();
  const bytes = rasterBytes(svg);
  // Independent check of the zlib stream: pako inflates it to rows + filters.
  const view = new DataView(bytes.buffer);
  const idatLength = view.getUint32(33);
  const raw = inflate(bytes.subarray(41, 41 + idatLength));
  assert.equal(raw.length, 40 * (40 * 4 + 1));
  const png = decodePng(bytes);
  // Masked (future) cells are transparent, so the hatching shows through.
  assert.equal(png.rgba[(0 * 40 + 39) * 4 + 3], 0);
  assert.equal(png.rgba[(39 * 40 + 0) * 4 + 3], 255);
});

Deno.test("attentionHeatmap() draws float16 scores like float32 ones", () => {
  const layer = syntheticLayer({ tokens: 9, heads: 2 });
  const half = new AttentionScores(
    Float16Array.from(layer.scores.data),
    layer.scores.shape,
  );
  const a = titles(attentionHeatmap(half.toFloat32()).toSVG());
  const b = titles(attentionHeatmap(half).toSVG());
  assert.deepEqual(b, a);
});

Deno.test("attentionHeatmap() handles captures with fewer query rows than keys", () => {
  // Two decode rows (positions 3 and 4) over five keys, as vLLM sends them.
  const scores = new AttentionScores(
    new Float32Array([0.1, 0.2, 0.3, 0.4, 0, 0.2, 0.2, 0.2, 0.2, 0.2]),
    [2, 1, 5],
  );
  const figure = attentionHeatmap(scores);
  assert.match(String(figure), /queries 3-4 x keys 0-4/);
  const cells = titles(figure.toSVG()).filter((t) => t.startsWith("q "));
  assert.equal(cells.length, 9); // (3, 4) is masked
  assert.ok(cells.includes("q 3 → k 3: 0.400"));
  assert.ok(!cells.some((t) => t.startsWith("q 3 → k 4")));
});

Deno.test("attentionHeatmap() raster rows carry hover text with their strongest key", () => {
  // Query 5 puts everything on key 2; rows are not reduced at T=8.
  const t = 8;
  const data = new Float32Array(t * t);
  for (let q = 0; q < t; q++) data[q * t + q] = 1;
  data.fill(0, 5 * t, 6 * t);
  data[5 * t + 2] = 1;
  const labels = Array.from({ length: t }, (_, i) => `w${i}`);
  const svg = attentionHeatmap(new AttentionScores(data, [t, 1, t]), {
    render: "raster",
    labels,
  }).toSVG();
  assert.ok(titles(svg).includes("q w5 5 → strongest w2 2: 1.000"));
  // Reduced rows name ranges.
  const big = syntheticLayer({ tokens: 1200, heads: 1 });
  const bands = titles(attentionHeatmap(big).toSVG()).filter((x) =>
    x.startsWith("q ")
  );
  assert.ok(bands.length < 1200);
  assert.match(bands[bands.length - 1], /^q \d+–1199 → strongest /);
});
