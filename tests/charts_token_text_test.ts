import assert from "node:assert/strict";
import { JUPYTER_DISPLAY, tokenTextView } from "../mod.ts";
import { assertGolden } from "./charts_golden.ts";
import { syntheticLabels, syntheticLayer } from "./charts_fixtures.ts";

const layer = syntheticLayer({ tokens: 24, heads: 3, layer: 4, needle: 9 });
const labels = syntheticLabels(24, 9);

/** Each span's hover text and background, in order. */
const spans = (html: string) =>
  [...html.matchAll(/<span title="([^"]*)" style="([^"]*)">/g)].map((m) => ({
    title: m[1],
    background: /background:rgb\((\d+),(\d+),(\d+)\)/.exec(m[2]),
    style: m[2],
  }));

Deno.test("tokenTextView() matches its golden", async () => {
  const view = tokenTextView(layer, labels, { query: 20, head: 2, mark: [9] });
  await assertGolden("token-text.html", view.toHTML());
});

Deno.test("tokenTextView() shows every token, heavier attention darker", () => {
  const view = tokenTextView(layer, labels, { query: 20, head: 2 });
  const s = spans(view.toHTML());
  assert.equal(s.length, 24);
  // Light-to-dark scheme: darker means a smaller channel sum.
  const darkness = (i: number) => {
    const b = s[i].background!;
    return 765 - (Number(b[1]) + Number(b[2]) + Number(b[3]));
  };
  const row = layer.scores.row(20, 2);
  const order = [...Array(21).keys()].slice(1).sort((a, b) => row[b] - row[a]);
  assert.equal(order[0], 9);
  assert.ok(darkness(9) > darkness(order[order.length - 1]));
  assert.ok(s[9].title.startsWith("9 ·  PINEAPPLE · language · "), s[9].title);
  assert.ok(s[9].title.endsWith(`attention ${row[9].toFixed(3)}`));
});

Deno.test("tokenTextView() greys tokens after the query and outlines the query", () => {
  const s = spans(tokenTextView(layer, labels, { query: 20 }).toHTML());
  assert.ok(s[20].style.includes("outline:2px solid"));
  for (const later of s.slice(21)) {
    assert.equal(later.background, null);
    assert.ok(later.title.endsWith("after the query"));
  }
});

Deno.test("tokenTextView() dropSink leaves the sink unshaded and renormalizes", () => {
  const s = spans(
    tokenTextView(layer, labels, { query: -1, dropSink: true, head: 0 })
      .toHTML(),
  );
  assert.equal(s[0].background, null);
  assert.ok(s[0].title.endsWith("sink (dropped)"));
  const row = layer.scores.row(-1, 0);
  const w = row[5] / (1 - row[0]);
  assert.ok(s[5].title.endsWith(`attention ${w.toFixed(3)}`));
});

Deno.test("tokenTextView() is HTML only and says so when asked for SVG", async () => {
  const view = tokenTextView(layer, labels);
  const bundle = view[JUPYTER_DISPLAY]();
  assert.deepEqual(Object.keys(bundle).sort(), ["text/html", "text/plain"]);
  assert.throws(() => view.toSVG(), /Cannot make SVG of this token text view/);
  await assert.rejects(view.save("x.png"), TypeError);
  const path = await Deno.makeTempFile({ suffix: ".html" });
  await view.save(path);
  assert.match(
    await Deno.readTextFile(path),
    /^<!DOCTYPE html>[\s\S]*PINEAPPLE/,
  );
  await Deno.remove(path);
});

Deno.test("tokenTextView() escapes token text and requires labels", () => {
  const html = tokenTextView(layer, ["<b>", ...labels.slice(1)]).toHTML();
  assert.match(html, />&lt;b&gt;<\/span>/);
  assert.throws(
    () => tokenTextView(layer, undefined as never),
    /^TypeError: Cannot draw the token text view: no labels/,
  );
});
