import assert from "node:assert/strict";
import {
  attentionHeatmap,
  AttentionScores,
  JUPYTER_DISPLAY,
  TopAttendedTokens,
} from "../mod.ts";
import { syntheticAnalyzer, syntheticLayer } from "./charts_fixtures.ts";

const SVG_ROOT = /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/;

Deno.test("AttentionScores displays as a head-mean heatmap with its own summary", async () => {
  const scores = syntheticLayer({ tokens: 10, heads: 2 }).scores;
  const bundle = await scores[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(bundle).sort(), [
    "image/svg+xml",
    "text/html",
    "text/plain",
  ]);
  assert.equal(bundle["text/plain"], "AttentionScores [10, 2, 10] float32");
  assert.match(String(bundle["image/svg+xml"]), SVG_ROOT);
  assert.match(
    String(bundle["text/html"]),
    /<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/,
  );
  assert.match(String(bundle["text/html"]), />mean of 2 heads<\/text>/);
});

Deno.test("AttentionLayer displays its shape, token counts and a heatmap", async () => {
  const layer = syntheticLayer({
    tokens: 12,
    heads: 2,
    layer: 18,
    vision: [2, 5],
    promptLen: 9,
  });
  const bundle = await layer[JUPYTER_DISPLAY]();
  assert.equal(
    bundle["text/plain"],
    "Layer 18 of synthetic: T=12 H=2 prompt=9 (float32)\ntokens: 9 prompt (6 language, 3 vision) + 3 generated",
  );
  const html = String(bundle["text/html"]);
  assert.match(
    html,
    /Layer 18 of synthetic: T=12 H=2 prompt=9 \(float32\) · tokens: 9 prompt/,
  );
  assert.match(html, /<title>q 11 → k 0: /);
  assert.equal(
    bundle["image/svg+xml"],
    html.replace(/^<div[^>]*>|<\/div>$/g, ""),
  );
});

Deno.test("a large layer displays as a raster heatmap", async () => {
  const layer = syntheticLayer({ tokens: 400, heads: 1, layer: 2 });
  const bundle = await layer[JUPYTER_DISPLAY]();
  const svg = String(bundle["image/svg+xml"]);
  assert.match(svg, /<image [^>]*image-rendering="optimizeSpeed"/);
  assert.ok(svg.length < 300_000, `${svg.length} bytes`);
});

Deno.test("TopAttendedTokens displays as a bar chart and keeps its plain text", async () => {
  const analyzer = syntheticAnalyzer(syntheticLayer({ tokens: 20, heads: 2 }));
  const top = analyzer.topAttendedTokens(-1, { avgHeads: true, topK: 3 });
  const bundle = await top[JUPYTER_DISPLAY]();
  assert.match(String(bundle["image/svg+xml"]), SVG_ROOT);
  assert.match(String(bundle["text/html"]), /Top attended keys of query 19/);
  assert.equal(
    bundle["text/plain"],
    top.map((t) => `key ${t.index} (${t.type}): ${t.weight.toFixed(3)}`).join(
      "\n",
    ),
  );
  // An empty result has nothing to draw.
  const empty = await new TopAttendedTokens()[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(empty), ["text/plain"]);
});

Deno.test("a figure's bundle is synchronous, complete and shares one SVG", () => {
  const scores = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [
    2,
    1,
    2,
  ]);
  const figure = attentionHeatmap(scores);
  const bundle = figure[JUPYTER_DISPLAY]();
  assert.ok(!(bundle instanceof Promise));
  assert.equal(bundle["image/svg+xml"], figure.toSVG());
  assert.equal(bundle["text/html"], figure.toHTML());
  assert.equal(bundle["text/plain"], String(figure));
  // nbconvert's HTML cleaner keeps text/html whole: the chart must be there.
  assert.match(
    String(bundle["text/html"]),
    /<rect [^>]*fill="(rgb\(|#)[^>]*><title>q /,
  );
});
