import assert from "node:assert/strict";
import * as Plot from "@observablehq/plot";
import {
  attentionHeatmap,
  encodePng,
  figureRow,
  imageFigure,
  JUPYTER_DISPLAY,
  plotFigure,
  tokenTextView,
} from "../mod.ts";
import { svgSize } from "../lib/charts/_figure.ts";
import { decodePng } from "../scripts/_png.ts";
import { syntheticLabels, syntheticLayer } from "./charts_fixtures.ts";

/** The root `<svg>`'s [width, height]. */
const rootSize = (svg: string) => {
  const { width, height } = svgSize(svg);
  return [width, height];
};

const rows = [
  { head: "h0", layer: "L0", w: 0.1 },
  { head: "h1", layer: "L0", w: 0.7 },
  { head: "h0", layer: "L1", w: 0.4 },
];

Deno.test("plotFigure() draws a Plot chart with title, subtitle, caption and summary in one SVG", () => {
  const figure = plotFigure({
    title: "Needle mass",
    subtitle: "per head",
    caption: "line one\nline two",
    width: 320,
    height: 200,
    marks: [Plot.cell(rows, { x: "head", y: "layer", fill: "w" })],
  });
  const svg = figure.toSVG();
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  for (const text of ["Needle mass", "per head", "line one", "line two"]) {
    assert.ok(svg.includes(`>${text}</text>`), `${text} missing`);
  }
  // Plot's own options pass through: the chart is 320 wide.
  assert.match(svg, /<svg x="0" y="\d+"[^>]* width="320"/);
  assert.equal(svg.match(/<rect [^>]*fill="rgb/g)?.length, rows.length);
  const bundle = figure[JUPYTER_DISPLAY]();
  assert.equal(bundle["text/plain"], "Needle mass");
  assert.match(String(bundle["text/html"]), /<svg/);
  assert.equal(
    String(plotFigure({ marks: [Plot.frame()] })),
    "Observable Plot chart",
  );
});

Deno.test("plotFigure() draws color legends as SVG: a ramp for continuous scales, swatches for categories, none unless asked", () => {
  const ramp = plotFigure({
    color: { legend: true, label: "weight" },
    marks: [Plot.cell(rows, { x: "head", y: "layer", fill: "w" })],
  }).toSVG();
  assert.match(ramp, /class="plot-[^"]*-ramp"/);
  assert.match(ramp, />weight<\/text>/);

  const swatches = plotFigure({
    color: { legend: true },
    marks: [Plot.barY(rows, { x: "layer", y: "w", fill: "head" })],
  }).toSVG();
  assert.match(swatches, />h0<\/text>/);
  assert.match(swatches, />h1<\/text>/);
  assert.doesNotMatch(swatches, /-ramp"/);

  const none = plotFigure({
    color: { scheme: "blues" },
    marks: [Plot.cell(rows, { x: "head", y: "layer", fill: "w" })],
  }).toSVG();
  assert.doesNotMatch(none, /-ramp"/);
});

Deno.test("plotFigure() explains a legend it cannot compose", () => {
  assert.throws(
    () =>
      plotFigure({
        symbol: { legend: true },
        marks: [Plot.dot(rows, { x: "head", y: "w", symbol: "layer" })],
      }),
    (error: Error) =>
      error instanceof TypeError &&
      /Cannot place a Plot chart: expected an <svg>/.test(error.message),
  );
});

Deno.test("figureRow() lays SVG figures side by side in one SVG that rasterizes", async () => {
  const layer = syntheticLayer({ tokens: 12, heads: 2, layer: 3 });
  const a = attentionHeatmap(layer, { width: 260 });
  const b = attentionHeatmap(layer, { width: 300, dropSink: true });
  const row = figureRow([a, b], { gap: 20 });
  const [wa, ha] = rootSize(a.toSVG());
  const [wb, hb] = rootSize(b.toSVG());
  assert.deepEqual(rootSize(row.toSVG()), [wa + 20 + wb, Math.max(ha, hb)]);
  assert.match(row.toSVG(), new RegExp(`<svg x="${wa + 20}" y="0"`));
  assert.equal(String(row), `${a}\n${b}`);
  const png = decodePng(await row.toPNG({ scale: 1 }));
  assert.deepEqual([png.width, png.height], rootSize(row.toSVG()));
});

Deno.test("figureRow() falls back to a wrapping HTML row when a figure is HTML only, and needs a figure", () => {
  const layer = syntheticLayer({ tokens: 12, heads: 2, layer: 3 });
  const text = tokenTextView(layer, syntheticLabels(12, 5), { head: 0 });
  const row = figureRow([attentionHeatmap(layer), text]);
  assert.equal(row.hasSvg, false);
  assert.match(
    row.toHTML(),
    /^<div style="display:flex;flex-wrap:wrap;gap:16px/,
  );
  assert.ok(row.toHTML().includes(text.toHTML()));
  assert.throws(() => figureRow([]), RangeError);
});

Deno.test("imageFigure() shows a PNG at a scale, nearest-neighbour, and refuses what is not a PNG", async () => {
  const png = encodePng(new Uint8Array([0, 0, 0, 255, 255, 255, 255, 255]), 2);
  const figure = imageFigure(png, { scale: 10, alt: "black, white" });
  assert.deepEqual(rootSize(figure.toSVG()), [20, 10]);
  assert.equal(String(figure), "black, white");
  const out = decodePng(await figure.toPNG({ scale: 1 }));
  // Crisp halves: no grey in between.
  const row = Array.from({ length: 20 }, (_, x) => out.rgba[(5 * 20 + x) * 4]);
  assert.deepEqual(row, [...Array(10).fill(0), ...Array(10).fill(255)]);
  assert.throws(
    () => imageFigure(new TextEncoder().encode("GIF89a, not a png file!!")),
    /Cannot show the image: the bytes are not a PNG file/,
  );
  assert.throws(() => imageFigure(png, { scale: 0 }), RangeError);
});
