/**
 * findSpan() and spanAttention() on a real capture from the demo server:
 * spans across token boundaries, occurrences, whole lines, missing text, and
 * masses checked against sums computed directly from the scores.
 */

import assert from "node:assert/strict";
import { captureAttention } from "../lib/client/client.ts";
import {
  findSpan,
  SpanAttention,
  spanAttention,
} from "../lib/analysis/span.ts";
import { spanAttentionChart } from "../lib/charts/span.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { startDemoServer } from "../server/serve.ts";

// Keys the demo tokenizer does not know, so they split into several tokens.
const PROMPT = "zorbak: 4411\nalpha: 1729\nquindle: 9062\nzorbak: 77\nquindle:";

async function demoCapture() {
  await using server = await startDemoServer();
  const capture = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: PROMPT,
    layers: "all",
    temperature: 0,
  });
  const local = server.labelPrompt(PROMPT);
  capture.labels.splice(0, local.length, ...local);
  return capture;
}
const capture = await demoCapture();
const labels = capture.labels;

Deno.test("findSpan() locates text that crosses token boundaries", () => {
  const span = findSpan(labels, "quindle");
  assert.ok(span.end - span.start > 1, `one token: ${span.text}`);
  assert.equal(span.text, "quindle");
  assert.equal(labels.slice(span.start, span.end).join(""), "quindle");
  // A match that starts and ends inside tokens takes the whole tokens.
  const inner = findSpan(labels, "indle: 90");
  assert.ok(inner.start >= span.start && inner.start < span.end);
  assert.ok(inner.text.includes("indle: 90"));
  assert.equal(inner.text, labels.slice(inner.start, inner.end).join(""));
});

Deno.test("findSpan() picks an occurrence, counting from either end", () => {
  const first = findSpan(labels, "zorbak");
  const second = findSpan(labels, "zorbak", { occurrence: 1 });
  const last = findSpan(labels, "zorbak", { occurrence: -1 });
  assert.ok(second.start > first.end);
  assert.deepEqual(last, second);
  assert.equal(findSpan(labels, "quindle", { occurrence: -1 }).text, "quindle");
  assert.throws(
    () => findSpan(labels, "zorbak", { occurrence: 2 }),
    /Cannot find occurrence 2 of "zorbak": it occurs 2 time\(s\); pass an occurrence from 0 to 1, or -1 for the last/,
  );
});

Deno.test("findSpan() widens to whole lines, the line break included", () => {
  const line = findSpan(labels, "1729", { wholeLine: true });
  assert.equal(line.text, "alpha: 1729↵");
  assert.ok(labels[line.start - 1].includes("↵"));
  // Line breaks can be searched as \n or as the label's ↵.
  assert.deepEqual(
    findSpan(labels, "1729\nquindle"),
    findSpan(labels, "1729↵quindle"),
  );
  const two = findSpan(labels, "1729\nquin", { wholeLine: true });
  assert.equal(two.text, "alpha: 1729↵quindle: 9062↵");
});

Deno.test("findSpan() explains missing text with the nearest match", () => {
  assert.throws(
    () => findSpan(labels, "quindel"),
    /Cannot find "quindel" in the \d+ token labels: no run of tokens spells it; the nearest text is "[^"]*quind[^"]*" at positions \d+-\d+/,
  );
  assert.throws(
    () => findSpan(labels, "apha: 1729"),
    /nearest text is "[^"]*alpha: 1729[^"]*"/,
  );
  assert.throws(() => findSpan(labels, ""), /pass a non-empty string/);
});

Deno.test("spanAttention() equals the sums computed directly, for every layer and head", () => {
  const span = findSpan(labels, "alpha: 1729", { wholeLine: true });
  const query = capture.promptLen - 1;
  const result = spanAttention(capture, { span });
  assert.equal(result.query, query, "defaults to the last prompt token");
  const attention = capture.attention!;
  let count = 0;
  for (const layer of Object.values(attention)) {
    const { scores } = layer;
    const row = scores.rowForPosition(query);
    for (let h = 0; h < scores.numHeads; h++) {
      let direct = 0;
      for (let p = span.start; p < span.end; p++) {
        direct += scores.get(row, h, p - scores.keyOffset);
      }
      assert.ok(Math.abs(result.get(layer.layer, h) - direct) < 1e-9);
      count++;
    }
  }
  assert.equal(result.heads.length, count);
  for (let i = 1; i < result.heads.length; i++) {
    assert.ok(result.heads[i - 1].mass >= result.heads[i].mass, "sorted");
  }
  assert.deepEqual(result.top(3), result.heads.slice(0, 3));
  assert.equal(result.text, "alpha: 1729↵");
});

Deno.test("spanAttention() accepts a list of positions and another query row", () => {
  const query = capture.promptLen; // the first generated token's row
  const positions = [1, 5, 9];
  const result = spanAttention(capture, { span: positions, query });
  const { scores } = capture.attention![0];
  const row = scores.rowForPosition(query);
  const direct = positions.reduce((s, p) => s + scores.get(row, 3, p), 0);
  assert.ok(Math.abs(result.get(0, 3) - direct) < 1e-9);
  assert.deepEqual(result.positions, positions);
});

Deno.test("spanAttention() finds the demo's reading head on the answer's record", () => {
  const record = findSpan(labels, "quindle", { wholeLine: true });
  const [best] = spanAttention(capture, { span: record }).top(1);
  assert.equal(best.layer, 1);
  assert.ok(best.mass >= 0.5, `best head reads ${best.mass} of the record`);
  const other = findSpan(labels, "zorbak", { wholeLine: true });
  const elsewhere = spanAttention(capture, { span: other });
  assert.ok(elsewhere.get(best.layer, best.head) < 0.1, "it reads one record");
});

Deno.test("spanAttention() rejects a query without a row and a span outside the keys", () => {
  const span = findSpan(labels, "alpha");
  assert.throws(
    () => spanAttention(capture, { span, query: labels.length + 5 }),
    /Cannot measure attention from position \d+: layer 0 has no row for it/,
  );
  assert.throws(
    () =>
      spanAttention(capture, { span: { start: 0, end: labels.length + 3 } }),
    /Cannot measure attention on position \d+: layer 0 has keys 0-\d+; pass a span inside them/,
  );
  assert.throws(
    () => spanAttention(capture, { span: null as never }),
    /no span given/,
  );
});

Deno.test("spanAttentionChart() draws the layer x head grid and names the top heads", async () => {
  const result = spanAttention(capture, {
    span: findSpan(labels, "quindle", { wholeLine: true }),
  });
  const svg = spanAttentionChart(result, { top: 2 }).toSVG();
  assert.match(svg, /Which heads read &quot;quindle: 9062↵&quot;/);
  const [a, b] = result.top(2);
  assert.ok(
    svg.includes(`1. layer ${a.layer} · head ${a.head}`) &&
      svg.includes(`2. layer ${b.layer} · head ${b.head}`),
  );
  const cells = svg.match(/<title>layer \d+ · head \d+\n/g) ?? [];
  assert.equal(
    cells.length,
    result.heads.length,
    "one cell per layer and head",
  );
  const outlined = svg.match(/stroke="#e0115f"/g) ?? [];
  assert.ok(outlined.length >= 1);
  const bundle = await result[JUPYTER_DISPLAY]();
  assert.match(String(bundle["image/svg+xml"]), /Which heads read/);
  assert.ok(result instanceof SpanAttention);
});
