import assert from "node:assert/strict";
import {
  attentionHeatmap,
  AttentionScores,
  JUPYTER_DISPLAY,
  TopAttendedTokens,
} from "../mod.ts";
import {
  findChromium,
  findJupyterPython,
  runNotebooks,
  temporaryJupyter,
} from "../scripts/jupyter_env.ts";
import { photographNotebook } from "../scripts/render_notebook.ts";
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
  // The HTML is the SVG in a scrolling wrapper whose CSS keeps raster
  // cells pixelated in browsers.
  assert.equal(
    bundle["image/svg+xml"],
    html.replace(/^<div[^>]*><style>[^<]*<\/style>|<\/div>$/g, ""),
  );
  assert.match(html, /image-rendering:pixelated/);
});

Deno.test("a large layer displays as a raster heatmap", async () => {
  const layer = syntheticLayer({ tokens: 400, heads: 1, layer: 2 });
  const bundle = await layer[JUPYTER_DISPLAY]();
  const svg = String(bundle["image/svg+xml"]);
  assert.match(svg, /<image [^>]*image-rendering="optimizeSpeed"/);
  // 80,000 SVG cells would take about 8 MB; the raster (noisy synthetic
  // data compresses poorly) plus row hover bands stays far below.
  assert.ok(svg.length < 600_000, `${svg.length} bytes`);
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

// The real thing: Deno's Jupyter kernel executes cells that evaluate a
// layer, a figure and the token text view; nbconvert's HTML export of the
// executed notebook is photographed in Chromium.
const python = await findJupyterPython();
const chromium = await findChromium();
const pythonPath = python.ok ? python.path : "";
const chromiumPath = chromium.ok ? chromium.path : "";

Deno.test({
  name:
    "Deno's Jupyter kernel shows layers and figures as charts that survive nbconvert and Chromium",
  ignore: !python.ok || !chromium.ok,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const root = new URL("../", import.meta.url).pathname;
  const dir = await Deno.makeTempDir({
    dir: `${root}tests`,
    prefix: ".display-kernel-",
  });
  const jupyter = await temporaryJupyter();
  try {
    const code = [
      `import { AttentionLayer, AttentionScores, TokenMeta, attentionHeatmap, tokenTextView } from "../../mod.ts";
const t = 24, h = 2;
const data = new Float32Array(t * h * t);
for (let q = 0; q < t; q++) for (let k = 0; k <= q; k++) for (let i = 0; i < h; i++) data[(q * h + i) * t + k] = 1 / (q + 1);
const layer = new AttentionLayer({ layer: 7, model: "kernel-test", scores: new AttentionScores(data, [t, h, t]), tokenMeta: TokenMeta.from({ prompt_len: 20, total_len: t, lang_ranges: [{ start: 0, end: 20 }] }) });
const labels = Array.from({ length: t }, (_, i) => i === 9 ? " needle" : " w" + i);`,
      "layer",
      `attentionHeatmap(layer, { render: "raster", labels, mark: [9] })`,
      `tokenTextView(layer, labels, { mark: [9] })`,
    ];
    const notebook = {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {
        kernelspec: {
          name: "deno",
          display_name: "Deno",
          language: "typescript",
        },
      },
      cells: code.map((source, i) => ({
        cell_type: "code",
        id: `c${i}`,
        metadata: {},
        execution_count: null,
        outputs: [],
        source,
      })),
    };
    const path = `${dir}/display.ipynb`;
    await Deno.writeTextFile(path, JSON.stringify(notebook));
    const result = await runNotebooks(pythonPath, [path], {
      env: jupyter.env,
      timeout: 120,
    });
    assert.ok(result.success, result.output);
    const executed = JSON.parse(await Deno.readTextFile(path));
    const data = (cell: number) => {
      const outputs = executed.cells[cell].outputs as {
        data?: Record<string, string | string[]>;
      }[];
      const out = outputs.find((o) => o.data?.["text/html"]);
      assert.ok(out, `cell ${cell} has no text/html output`);
      return Object.fromEntries(
        Object.entries(out.data!).map((
          [k, v],
        ) => [k, Array.isArray(v) ? v.join("") : v]),
      );
    };
    const layerOut = data(1);
    assert.match(
      layerOut["text/plain"],
      /^Layer 7 of kernel-test: T=24 H=2 prompt=20/,
    );
    assert.match(
      layerOut["text/html"],
      /<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/,
    );
    assert.ok(layerOut["image/svg+xml"]);
    const heatmapOut = data(2);
    assert.match(
      heatmapOut["text/html"],
      /<image [^>]*href="data:image\/png;base64,/,
    );
    const textOut = data(3);
    assert.equal(textOut["image/svg+xml"], undefined);
    assert.match(textOut["text/html"], /needle<\/span>/);

    const shot = await photographNotebook(path, `${dir}/shot`, {
      python: pythonPath,
      chromium: chromiumPath,
    });
    const cells = new Set(
      shot.charts.filter((c) => c.ink > 0.05).map((c) => c.cell),
    );
    // Both SVG charts keep their drawing through nbconvert's HTML export.
    assert.ok(cells.has(1) && cells.has(2), JSON.stringify(shot.charts));
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(jupyter.dir, { recursive: true });
  }
});
