import assert from "node:assert/strict";
import * as Plot from "@observablehq/plot";
import { collectWarnings } from "../mod.ts";
import { CanvasStandIn, parseCssColor } from "../lib/canvas.ts";
import { crc32, encodePng } from "../lib/png.ts";
import { Figure, plotBlock, plotDocument } from "../lib/charts/_figure.ts";
import { rasterizeSvg } from "../lib/charts/_rasterize.ts";
import { decodePng } from "../scripts/_png.ts";
import { seededRandom } from "../lib/random.ts";
import { syntheticLayer } from "./charts_fixtures.ts";
import { attentionHeatmap } from "../mod.ts";

Deno.test("encodePng() round-trips random and striped pixels through a PNG decoder", () => {
  const random = seededRandom(3);
  for (const [w, h] of [[1, 1], [7, 5], [64, 33]]) {
    const rgba = new Uint8Array(w * h * 4);
    // Half noise (filter "none" wins), half gradients (sub/up win).
    for (let i = 0; i < rgba.length; i++) {
      rgba[i] = i < rgba.length / 2
        ? Math.floor(random() * 256)
        : (i * 7) & 255;
    }
    const png = encodePng(rgba, w, h);
    const decoded = decodePng(png);
    assert.equal(decoded.width, w);
    assert.equal(decoded.height, h);
    assert.deepEqual(decoded.rgba, rgba);
  }
});

Deno.test("encodePng() writes correct chunk CRCs", () => {
  const png = encodePng(new Uint8Array(16), 2, 2);
  const view = new DataView(png.buffer);
  let offset = 8;
  const types: string[] = [];
  while (offset < png.length) {
    const length = view.getUint32(offset);
    const body = png.subarray(offset + 4, offset + 8 + length);
    types.push(new TextDecoder().decode(body.subarray(0, 4)));
    assert.equal(view.getUint32(offset + 8 + length), crc32(body));
    offset += 12 + length;
  }
  assert.deepEqual(types, ["IHDR", "IDAT", "IEND"]);
  assert.throws(() => encodePng(new Uint8Array(15), 2, 2), RangeError);
});

Deno.test("CanvasStandIn warns about an unparsable color and draws black", () => {
  const canvas = new CanvasStandIn(1, 1);
  const context = canvas.getContext("2d")!;
  const { warnings } = collectWarnings(() => {
    context.fillStyle = "papayawhip";
  });
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /cannot parse the color "papayawhip"/);
  context.fillRect(0, 0, 1, 1);
  assert.deepEqual([...canvas.pixels], [0, 0, 0, 255]);
  assert.deepEqual(parseCssColor("rgba(10, 20, 30, 0.5)"), [10, 20, 30, 128]);
  assert.deepEqual(parseCssColor("#11223380"), [17, 34, 51, 128]);
});

Deno.test("Plot's raster mark and ramp legend render through the canvas stand-in", () => {
  const values = Array.from({ length: 12 }, (_, i) => i);
  const node = Plot.plot({
    document: plotDocument(),
    width: 200,
    height: 160,
    color: { scheme: "viridis" },
    marks: [
      Plot.raster(values, { width: 4, height: 3, imageRendering: "pixelated" }),
    ],
  });
  const svg = plotBlock(node).svg;
  const m = /href="data:image\/png;base64,([^"]+)"/.exec(svg)!;
  const image = decodePng(Uint8Array.fromBase64(m[1]));
  assert.deepEqual([image.width, image.height], [4, 3]);
  // First pixel: viridis at the domain's low end, rgb(68, 1, 84).
  assert.deepEqual([...image.rgba.subarray(0, 4)], [68, 1, 84, 255]);
  const legend = Plot.legend({
    document: plotDocument(),
    color: { type: "linear", domain: [0, 1], scheme: "blues" },
  } as never) as unknown as { outerHTML: string };
  const ramp = /href="data:image\/png;base64,([^"]+)"/.exec(legend.outerHTML)!;
  assert.equal(decodePng(Uint8Array.fromBase64(ramp[1])).width, 256);
});

Deno.test("rasterizeSvg() draws shapes and text with the system font", async () => {
  const svg =
    '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="20"><rect width="20" height="20" fill="#ff0000"/><text x="24" y="15" font-size="14" font-family="sans-serif">Ag</text></svg>';
  const png = decodePng(await rasterizeSvg(svg, { scale: 2 }));
  assert.deepEqual([png.width, png.height], [120, 40]);
  assert.deepEqual([...png.rgba.subarray(0, 4)], [255, 0, 0, 255]);
  // Text pixels: something dark right of the red square.
  let dark = 0;
  for (let y = 0; y < 40; y++) {
    for (let x = 50; x < 120; x++) {
      const i = (y * 120 + x) * 4;
      if (png.rgba[i] < 100 && png.rgba[i + 1] < 100) dark++;
    }
  }
  assert.ok(dark > 20, `${dark} dark pixels`);
  await assert.rejects(rasterizeSvg(svg, { scale: 0 }), RangeError);
});

Deno.test("Figure.save() writes SVG, standalone HTML and PNG", async () => {
  const figure = attentionHeatmap(syntheticLayer({ tokens: 8, heads: 1 }));
  const dir = await Deno.makeTempDir();
  await figure.save(`${dir}/f.svg`);
  await figure.save(`${dir}/f.html`);
  await figure.save(`${dir}/f.png`, { scale: 1 });
  const svg = await Deno.readTextFile(`${dir}/f.svg`);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  const html = await Deno.readTextFile(`${dir}/f.html`);
  assert.match(html, /^<!DOCTYPE html>[\s\S]*<svg xmlns=[\s\S]*<\/html>\n$/);
  const png = decodePng(await Deno.readFile(`${dir}/f.png`));
  const width = Number(/width="(\d+)"/.exec(svg)![1]);
  assert.equal(png.width, width);
  await assert.rejects(figure.save(`${dir}/f.jpg`), {
    name: "TypeError",
    message:
      `Cannot save heatmap to ${dir}/f.jpg: unknown extension; use .svg, .html or .png`,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("Figure composes a standalone SVG that browsers and resvg accept", async () => {
  const figure = new Figure({
    kind: "demo",
    summary: "demo",
    title: "T",
    subtitle: "S",
    caption: "line 1\nline 2",
    chart: {
      svg: '<svg width="10" height="10"><rect width="10" height="10"/></svg>',
      width: 10,
      height: 10,
    },
  });
  const svg = figure.toSVG();
  assert.equal((svg.match(/<text /g) ?? []).length, 4);
  assert.match(
    svg,
    /<svg x="0" y="\d+" xmlns="http:\/\/www.w3.org\/2000\/svg"/,
  );
  const png = decodePng(await figure.toPNG({ scale: 1 }));
  assert.ok(png.height > 10);
});
