/**
 * Compare mode's alignment (`lib/explorer/_align.ts`, `explore(a, { compare:
 * b, align })`): captures of other token sequences lined up on a common run
 * of tokens (or on a text found by `findSpan`) and cropped to it exactly,
 * not renormalized; clear refusals when no alignment exists. And the page's
 * overview of a - b (`lib/explorer/_browser/compare.ts`, run here in Deno),
 * pooled by the value of largest magnitude with its sign.
 */

import assert from "node:assert/strict";
import { alignCaptures } from "../lib/explorer/_align.ts";
import { explore } from "../lib/explorer/explorer.ts";
import { packLayers } from "../lib/explorer/_payload.ts";
import type { ExplorerMeta } from "../lib/explorer/_protocol.ts";
import { Capture } from "../lib/explorer/_browser/data.ts";
import { Compared } from "../lib/explorer/_browser/compare.ts";
import type { AttentionLayer } from "../lib/data/layer.ts";
import type { AttentionScores } from "../lib/data/scores.ts";
import { explorerCapture } from "./_explorer_fixtures.ts";

/** A capture's layers with distinct labels `w<offset+p>`, or `null` labels. */
function side(
  t: number,
  seed: number,
  labels: string[] | null,
  heads = 2,
): { layers: AttentionLayer[]; labels: string[] | null } {
  const c = explorerCapture(t, heads, 2, { seed });
  return { layers: Object.values(c.attention!), labels };
}

const words = (from: number, n: number) =>
  Array.from({ length: n }, (_, p) => `w${from + p}`);

/** Every value of the cropped scores equals the original's at the shift. */
function assertCropped(
  cropped: AttentionScores,
  original: AttentionScores,
  start: number,
  what: string,
) {
  const [tq, h, tk] = cropped.shape;
  for (let r = 0; r < tq; r++) {
    const row = original.rowForPosition(cropped.queryPositions[r] + start);
    assert.ok(row >= 0, `${what}: row ${r}`);
    for (let head = 0; head < h; head++) {
      for (let k = 0; k < tk; k++) {
        assert.equal(
          cropped.get(r, head, k),
          original.get(row, head, k + start - original.keyOffset),
          `${what}: (${r}, ${head}, ${k})`,
        );
      }
    }
  }
}

Deno.test("alignCaptures() crops a longer context to the shorter capture's tokens exactly, without renormalizing", () => {
  // b is tokens 5..16 of a's text, captured on its own.
  const a = side(20, 1, words(0, 20));
  const b = side(12, 2, words(5, 12));
  const got = alignCaptures(a, b, "span");
  assert.deepEqual(got.alignment, {
    a: { start: 5, end: 17 },
    b: { start: 0, end: 12 },
    text: words(5, 12).join(""),
    label: "a[5,17) b[0,12)",
  });
  assert.deepEqual(got.labels, words(5, 12));
  for (let l = 0; l < 2; l++) {
    assert.deepEqual(got.a[l].scores.shape, [12, 2, 12]);
    assert.deepEqual(
      [...got.a[l].scores.queryPositions],
      words(0, 12).map((_, i) => i),
    );
    assert.equal(got.a[l].scores.keyOffset, 0);
    assertCropped(got.a[l].scores, a.layers[l].scores, 5, `a layer ${l}`);
    assertCropped(got.b[l].scores, b.layers[l].scores, 0, `b layer ${l}`);
    assert.equal(got.a[l].layer, a.layers[l].layer);
  }
  // Not renormalized: a's rows also read keys 0..4, outside the window.
  const s = got.a[1].scores;
  let sum = 0;
  for (let k = 0; k < 12; k++) sum += s.get(11, 0, k);
  assert.ok(sum < 0.999, `row sum ${sum}`);
  // Prompt length follows the window: a's prompt is 16 tokens (0..15).
  assert.equal(got.a[0].tokenMeta.promptLen, 11);
  assert.equal(got.a[0].tokenMeta.totalLen, 12);
});

Deno.test("alignCaptures() lines up a corrupted prompt with extra tokens on the longest common run, ending last in a", () => {
  // b: 3 inserted tokens after a's first 2, then a's tokens 2..13.
  const la = words(0, 14);
  const lb = [...la.slice(0, 2), "x", "y", "z", ...la.slice(2)];
  const a = side(14, 3, la), b = side(17, 4, lb);
  const got = alignCaptures(a, b);
  assert.equal(got.alignment?.label, "a[2,14) b[5,17)");
  assertCropped(got.a[0].scores, a.layers[0].scores, 2, "a");
  assertCropped(got.b[0].scores, b.layers[0].scores, 5, "b");
  // Two equally long runs: the one ending last in a wins.
  const twice = alignCaptures(
    side(6, 1, ["p", "q", "r", "p", "q", "s"]),
    side(3, 2, ["p", "q", "t"]),
    "span",
  );
  assert.equal(twice.alignment?.label, "a[3,5) b[0,2)");
});

Deno.test("alignCaptures() with { text } aligns on the tokens findSpan finds in each", () => {
  const la = ["<bos>", "The", " Eif", "fel", " Tower", " is", " in"];
  const lb = ["<bos>", "The", " famous", " Eif", "fel", " Tower", " is", " in"];
  const a = side(7, 5, la), b = side(8, 6, lb);
  const got = alignCaptures(a, b, { text: "Eiffel Tower is" });
  assert.equal(got.alignment?.label, "a[2,6) b[3,7)");
  assert.deepEqual(got.labels, [" Eif", "fel", " Tower", " is"]);
  assertCropped(got.b[1].scores, b.layers[1].scores, 3, "b");
  assert.throws(
    () => alignCaptures(a, b, { text: "famous" }),
    /^TypeError: Cannot compare attention: capture a's labels do not hold "famous" \(Cannot find "famous".*\); pass align: \{ text \} that both captures spell$/,
  );
  assert.throws(
    () =>
      alignCaptures(
        a,
        side(7, 6, ["<bos>", "The", " Eiff", "el", " Tower", " is", " in"]),
        {
          text: "Eiffel",
        },
      ),
    /^TypeError: Cannot compare attention: "Eiffel" is tokens \[2,4\) \[" Eif","fel"\] in capture a but \[2,4\) \[" Eiff","el"\] in capture b; pass a text both captures tokenize the same way$/,
  );
});

Deno.test("alignCaptures() refuses what cannot be aligned, saying what differs and what to do", () => {
  const a = side(10, 1, words(0, 10));
  assert.throws(
    () => alignCaptures(a, side(12, 2, null)),
    /^TypeError: Cannot compare attention: layer 0 of capture b has shape \[12,2,12\] from position 0 but capture a has \[10,2,10\] from 0, and capture b has no token labels to align by; pass captures with labels \(captureAttention's result, or the labels and compareLabels options\), or compare captures of the same tokens$/,
  );
  assert.throws(
    () => alignCaptures(a, side(12, 2, words(50, 12))),
    /^TypeError: Cannot compare attention: layer 0 of capture b has shape \[12,2,12\] from position 0 but capture a has \[10,2,10\] from 0, and their token labels share no run of 2 or more tokens; compare captures of the same text \(or one holding the other\), or name the window with align: \{ text \}$/,
  );
  assert.throws(
    () => alignCaptures(a, side(12, 2, words(0, 12), 3), "span"),
    /^TypeError: Cannot compare attention: layer 0 has 2 heads in capture a but 3 in capture b; compare captures of the same model/,
  );
  assert.throws(
    () => alignCaptures(a, side(12, 2, words(0, 12)), "positions"),
    /^TypeError: Cannot compare attention: layer 0 of capture b has shape \[12,2,12\] from position 0 but capture a has \[10,2,10\] from 0; compare captures of the same tokens, or align them with align: "span"$/,
  );
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => alignCaptures(a, side(12, 2, words(0, 12)), "tokens" as any),
    /^TypeError: Cannot compare attention: align is "tokens"; pass "auto", "positions", "span" or \{ text \}$/,
  );
  // Same shapes and positions: by position, whatever the labels say.
  const same = alignCaptures(a, side(10, 2, words(40, 10)));
  assert.equal(same.alignment, null);
  assert.equal(same.b[0].scores.shape[0], 10);
});

Deno.test("explore() with compare of other tokens marks the aligned window on the root and in the header", async () => {
  const a = explorerCapture(20, 2, 2, { seed: 1 });
  const b = explorerCapture(12, 2, 2, { seed: 2 });
  a.labels = words(0, 20);
  b.labels = words(5, 12);
  const html = await explore(a, { compare: b }).toHTML();
  assert.match(
    html,
    /^<div class="attnscope-explorer"[^>]* data-compare="1" data-align="a\[5,17\) b\[0,12\)"/,
  );
  const meta = JSON.parse(
    html.match(
      /<script type="application\/json" class="ax-meta">(.*?)<\/script>/s,
    )![1],
  ) as ExplorerMeta;
  assert.equal(meta.compare?.align, "a[5,17) b[0,12)");
  assert.deepEqual(meta.labels, words(5, 12));
  assert.equal(meta.tq, 12);
  // query counts in a's positions.
  const q = await explore(a, { compare: b, query: 9 }).toHTML();
  assert.match(
    q,
    /<script type="application\/json" class="ax-meta">[^<]*"query":4[,}]/,
  );
  assert.throws(
    () => explore(a, { compare: { attention: b.attention } }),
    /capture b has no token labels to align by/,
  );
  const withLabels = await explore(a, {
    compare: { attention: b.attention },
    compareLabels: words(5, 12),
  }).toHTML();
  assert.match(withLabels, /data-align="a\[5,17\) b\[0,12\)"/);
  const same = await explore(a, {
    compare: explorerCapture(20, 2, 2, { seed: 3 }),
  }).toHTML();
  assert.doesNotMatch(same.match(/^<div[^>]*>/)![0], /data-align/);
});

/** A capture as the page holds it, its overview pooled to `side` x `side`. */
function pageCapture(layers: AttentionLayer[], side: number): Promise<Capture> {
  const packed = packLayers(layers, {
    budget: 1 << 20,
    topK: 8,
    pooledSize: side,
    causal: layers.map(() => true),
  });
  const s = layers[0].scores;
  const meta = {
    tq: s.shape[0],
    tk: s.shape[2],
    keyOffset: s.keyOffset,
    queryPositions: [...s.queryPositions],
    labels: Array.from({ length: s.shape[2] }, (_, p) => String(p)),
    layers: packed.layers,
    pooled: packed.pooled,
    topK: packed.topK,
    idxBytes: packed.idxBytes,
    arch: layers.map(() => ({ window: 0, kvHeads: 2, causal: true })),
  } as ExplorerMeta;
  return Capture.load(meta, packed.blob.toBase64());
}

Deno.test("Compared.pooledGrid() pools a - b by the value of largest magnitude, keeping its sign", async () => {
  const T = 24, BINS = 6, heads = [0, 1];
  const la = Object.values(explorerCapture(T, 2, 1, { seed: 5 }).attention!);
  const lb = Object.values(explorerCapture(T, 2, 1, { seed: 6 }).attention!);
  const compared = new Compared(
    await pageCapture(la, BINS),
    await pageCapture(lb, BINS),
  );
  assert.equal(compared.side, "diff");
  const grid = compared.pooledGrid(0, heads, "mean");
  const sa = la[0].scores, sb = lb[0].scores;
  const mean = (s: AttentionScores, r: number, k: number) =>
    (s.get(r, 0, k) + s.get(r, 1, k)) / 2;
  const bin = T / BINS;
  let hidden = 0;
  for (let br = 0; br < BINS; br++) {
    for (let bc = 0; bc < BINS; bc++) {
      const got = grid[br * BINS + bc];
      if (bc > br) {
        assert.ok(Number.isNaN(got), `bin ${br},${bc} is in the future`);
        continue;
      }
      let want = 0, maxA = 0, maxB = 0;
      for (let r = br * bin; r < (br + 1) * bin; r++) {
        for (let k = bc * bin; k < (bc + 1) * bin; k++) {
          const d = mean(sa, r, k) - mean(sb, r, k);
          if (Math.abs(d) > Math.abs(want)) want = d;
          maxA = Math.max(maxA, mean(sa, r, k));
          maxB = Math.max(maxB, mean(sb, r, k));
        }
      }
      assert.ok(
        Math.abs(got - want) <= 1e-4,
        `bin ${br},${bc}: ${got} vs ${want}`,
      );
      if (Math.abs(want - (maxA - maxB)) > 0.01) hidden++;
    }
  }
  assert.ok(
    grid.some((v) => v < -0.01) && grid.some((v) => v > 0.01),
    "signed both ways",
  );
  assert.ok(hidden > 0, "a max-pooled a - b would differ somewhere");
  // Sides a and b still show their own max-pooled overviews.
  compared.side = "a";
  assert.deepEqual(
    compared.pooledGrid(0, heads, "mean"),
    compared.a.pooledGrid(0, heads, "mean"),
  );
});
