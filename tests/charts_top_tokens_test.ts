import assert from "node:assert/strict";
import { JUPYTER_DISPLAY, TOKEN_TYPE_COLORS, topTokensChart } from "../mod.ts";
import { assertGolden } from "./charts_golden.ts";
import {
  syntheticAnalyzer,
  syntheticLabels,
  syntheticLayer,
} from "./charts_fixtures.ts";

const layer = syntheticLayer({
  tokens: 40,
  heads: 3,
  layer: 18,
  vision: [2, 8],
  needle: 13,
});
const labels = syntheticLabels(40, 13);
const analyzer = syntheticAnalyzer(layer);
const mean = analyzer.topAttendedTokens(-1, { avgHeads: true, topK: 5 });
const perHead = [0, 1, 2].map((h) =>
  analyzer.topAttendedTokens(-1, { headIdx: h, topK: 5 })
);

const barTitles = (svg: string) =>
  [...svg.matchAll(/<title>([^<]*rank[^<]*)<\/title>/g)].map((m) => m[1]);

Deno.test("topTokensChart() matches its golden: head mean and every head", async () => {
  const figure = topTokensChart([mean, ...perHead], {
    labels,
    mark: [13],
    layer: 18,
  });
  await assertGolden("top-tokens.svg", figure.toSVG());
});

Deno.test("topTokensChart() labels bars with token text, index and weight, heaviest first", () => {
  const svg = topTokensChart(mean, { labels }).toSVG();
  const titles = barTitles(svg);
  assert.equal(titles.length, 5);
  mean.forEach((t, i) => {
    assert.ok(
      titles[i].includes(`rank ${i + 1}`) &&
        titles[i].includes(`${t.index} (${t.type})`) &&
        titles[i].includes(t.weight.toFixed(3)),
      titles[i],
    );
  });
});

Deno.test("topTokensChart() colors bars by token type and outlines marked tokens", () => {
  const top = perHead[2]; // the needle head
  assert.equal(top[0].index, 13);
  const svg = topTokensChart(top, { labels, mark: [13] }).toSVG();
  for (const t of top) {
    assert.match(svg, new RegExp(`fill="${TOKEN_TYPE_COLORS[t.type]}"`));
  }
  assert.match(svg, /stroke="#e0115f"/);
  assert.match(
    svg,
    /font-weight="bold"[^>]*><text[^>]*>·PINEAPPLE 13 · /,
  );
  assert.match(svg, />marked<\/text>/);
});

Deno.test("topTokensChart() plain text is the compact view's row", () => {
  const figure = topTokensChart(perHead[2], { labels, mark: [13] });
  assert.match(
    String(figure),
    /^Top 5 keys of query 39, head 2: PINEAPPLE\(13\)=0\.\d\d◀ /,
  );
  const bare = topTokensChart(perHead[2]);
  assert.match(String(bare), /^Top 5 keys of query 39, head 2: 13=0\.\d{3} /);
});

Deno.test("topTokensChart() lays several results out as panels", () => {
  const svg = topTokensChart([mean, ...perHead], { columns: 2 }).toSVG();
  for (const name of ["head mean", "head 0", "head 1", "head 2"]) {
    assert.match(svg, new RegExp(`>${name}</text>`));
  }
  assert.equal(barTitles(svg).length, 20);
});

Deno.test("topTokensChart() rejects empty input and displays itself", () => {
  assert.throws(() => topTokensChart([]), TypeError);
  const bundle = topTokensChart(mean)[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(bundle).sort(), [
    "image/svg+xml",
    "text/html",
    "text/plain",
  ]);
});
