import assert from "node:assert/strict";
import {
  attentionByTokenType,
  AttentionScores,
  JUPYTER_DISPLAY,
  tokenTypeChart,
} from "../mod.ts";
import { assertGolden } from "./charts_golden.ts";
import { syntheticLayer } from "./charts_fixtures.ts";

const layer = syntheticLayer({
  tokens: 30,
  heads: 3,
  layer: 6,
  vision: [3, 15],
  promptLen: 26,
});

Deno.test("tokenTypeChart() matches its golden", async () => {
  await assertGolden("token-types.svg", tokenTypeChart(layer).toSVG());
});

Deno.test("attentionByTokenType() shares of softmax rows sum to 1 per head and query type", () => {
  const rows = attentionByTokenType(layer.scores, layer.tokenMeta);
  const sums = new Map<string, number>();
  for (const r of rows) {
    const key = `${r.head}/${r.query}`;
    sums.set(key, (sums.get(key) ?? 0) + r.weight);
  }
  assert.equal(sums.size, 4 * 3); // 3 heads + mean, 3 query types
  for (const [key, sum] of sums) {
    assert.ok(Math.abs(sum - 1) < 1e-5, `${key}: ${sum}`);
  }
});

Deno.test("attentionByTokenType() matches a direct computation", () => {
  const s = layer.scores;
  const meta = layer.tokenMeta;
  let total = 0;
  let n = 0;
  for (let q = 0; q < s.queryLength; q++) {
    if (meta.tokenType(q) !== "vision") continue;
    n++;
    for (let k = 0; k < s.keyLength; k++) {
      if (meta.tokenType(k) === "language") total += s.get(q, 1, k);
    }
  }
  const row = attentionByTokenType(s, meta).find((r) =>
    r.head === 1 && r.query === "vision" && r.key === "language"
  )!;
  assert.equal(row.queries, n);
  assert.ok(Math.abs(row.weight - total / n) < 1e-9);
});

Deno.test("tokenTypeChart() hover text and summary name the cross-modal share", () => {
  const figure = tokenTypeChart(layer);
  const svg = figure.toSVG();
  assert.match(
    svg,
    /<title>head 2 · vision queries → language keys\n0\.\d{3} \(over 12 queries\)/,
  );
  assert.match(
    String(figure),
    /^Attention by token type in layer 6: vision, language, generated queries x 3 heads; vision→language \(head mean\) 0\.\d{3}$/,
  );
  assert.match(String(figure[JUPYTER_DISPLAY]()["text/html"]), /<svg xmlns=/);
});

Deno.test("tokenTypeChart() needs token metadata for bare scores", () => {
  const scores = new AttentionScores(new Float32Array([1]), [1, 1, 1]);
  assert.throws(() => tokenTypeChart(scores), {
    name: "TypeError",
    message:
      "Cannot draw attention by token type: no token metadata; pass a decoded layer or { tokenMeta }",
  });
});
