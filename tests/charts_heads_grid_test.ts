import assert from "node:assert/strict";
import { headsGrid, JUPYTER_DISPLAY } from "../mod.ts";
import type { AttentionCapture } from "../mod.ts";
import { assertGolden } from "./charts_golden.ts";
import { syntheticLayer } from "./charts_fixtures.ts";

const capture = (layers: number[], heads = 2, tokens = 8): AttentionCapture =>
  Object.fromEntries(
    layers.map((l, i) => [
      l,
      syntheticLayer({ tokens, heads, layer: l, seed: i + 1 }),
    ]),
  );

const tileTitles = (svg: string) =>
  [...svg.matchAll(/<title>(layer [^<]*)<\/title>/g)].map((m) => m[1]);

Deno.test("headsGrid() matches its golden", async () => {
  const figure = headsGrid(capture([2, 5]), { includeMean: true });
  await assertGolden("heads-grid.svg", figure.toSVG());
});

Deno.test("headsGrid() draws one tile per layer and head, in layer order", () => {
  const svg = headsGrid(capture([9, 1, 4], 3)).toSVG();
  const titles = tileTitles(svg).map((t) => t.split("\n")[0]);
  assert.deepEqual(titles, [
    "layer 1 · head 0",
    "layer 1 · head 1",
    "layer 1 · head 2",
    "layer 4 · head 0",
    "layer 4 · head 1",
    "layer 4 · head 2",
    "layer 9 · head 0",
    "layer 9 · head 1",
    "layer 9 · head 2",
  ]);
  assert.equal((svg.match(/<image /g) ?? []).length, 9 + 1); // + the legend ramp
});

Deno.test("headsGrid() is readable at 6 layers x 8 heads: tiles of at least 48 px", () => {
  const figure = headsGrid(capture([0, 3, 6, 9, 12, 18], 8, 138));
  const svg = figure.toSVG();
  const sizes = [...svg.matchAll(/<image [^>]*>/g)]
    .map((m) => m[0])
    .filter((tag) => tag.includes('image-rendering="optimizeSpeed"'))
    .map((tag) => Number(/ width="([\d.]+)"/.exec(tag)![1]));
  assert.equal(sizes.length, 48);
  assert.ok(sizes.every((w) => w >= 48), `tile widths ${sizes[0]}`);
  assert.equal(String(figure), "Heads grid: 6 layers x 8 heads, T=138");
});

Deno.test("headsGrid() hover text gives each tile's own maximum", () => {
  const layer = syntheticLayer({ tokens: 8, heads: 2, layer: 7 });
  const svg = headsGrid([layer], { normalize: "tile" }).toSVG();
  const max1 = Math.max(
    ...layer.scores.data.filter((_, i) => Math.floor(i / 8) % 2 === 1),
  );
  assert.ok(
    tileTitles(svg).includes(`layer 7 · head 1\nmax ${max1.toFixed(3)}`),
  );
});

Deno.test("headsGrid() picks layers and heads, and names a missing layer", () => {
  const svg = headsGrid(capture([1, 2, 3], 4), { layers: [3, 1], heads: [2] })
    .toSVG();
  assert.deepEqual(tileTitles(svg).map((t) => t.split("\n")[0]), [
    "layer 3 · head 2",
    "layer 1 · head 2",
  ]);
  assert.throws(() => headsGrid(capture([1, 2]), { layers: [5] }), {
    name: "RangeError",
    message:
      "Cannot draw layer 5 in the heads grid: it was not captured; captured layers are 1, 2",
  });
  assert.throws(() => headsGrid([]), TypeError);
  assert.throws(
    () => headsGrid(capture([1]), { normalize: "rows" as never }),
    TypeError,
  );
});

Deno.test("headsGrid() figure displays itself", () => {
  const bundle = headsGrid(capture([0]))[JUPYTER_DISPLAY]();
  assert.match(String(bundle["text/html"]), /<svg xmlns=/);
  assert.match(String(bundle["image/svg+xml"]), /^<svg xmlns=/);
  assert.equal(bundle["text/plain"], "Heads grid: 1 layer x 2 heads, T=8");
});
