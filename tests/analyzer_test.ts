import assert from "node:assert/strict";
import { AttentionAnalyzer, topIndices } from "../lib/analysis/analyzer.ts";
import { extractAttentionFromResponseSync } from "../lib/sources/vllm/extract.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { causalScores, layerEntry, response } from "./_captures.ts";

/** A 4-row, 2-head, 4-key capture with readable values. */
function small(): AttentionAnalyzer {
  const data = new Float32Array([
    // q0: h0, h1
    1,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    // q1
    0.5,
    0.5,
    0,
    0,
    0.25,
    0.75,
    0,
    0,
    // q2
    0.2,
    0.3,
    0.5,
    0,
    0.6,
    0.2,
    0.2,
    0,
    // q3
    0.1,
    0.2,
    0.3,
    0.4,
    0.4,
    0.3,
    0.2,
    0.1,
  ]);
  return new AttentionAnalyzer(
    new AttentionScores(data, [4, 2, 4]),
    TokenMeta.from({
      prompt_len: 3,
      total_len: 4,
      vision_ranges: [{ start: 1, end: 2 }],
      lang_ranges: [{ start: 0, end: 1 }, { start: 2, end: 3 }],
    }),
  );
}

Deno.test("AttentionAnalyzer counts negative query rows from the end, as numpy", () => {
  const a = small();
  assert.deepEqual(
    [...a.attentionForToken(-1, { headIdx: 0 }) as Float32Array],
    [...a.attentionForToken(3, { headIdx: 0 }) as Float32Array],
  );
  assert.deepEqual(
    a.topAttendedTokens(-4, { headIdx: 0, topK: 1 }).map((t) => t.index),
    [0],
  );
  assert.throws(
    () => a.attentionForToken(-5, { headIdx: 0 }),
    /^RangeError: Cannot index query row -5: valid values are -4 to 3$/,
  );
  assert.throws(() => a.attentionForToken(4, { headIdx: 0 }), RangeError);
});

Deno.test("AttentionAnalyzer refuses a head out of range and a missing head choice", () => {
  const a = small();
  assert.throws(
    () => a.topAttendedTokens(0, { headIdx: 2 }),
    /^RangeError: Cannot index head 2: valid values are -2 to 1$/,
  );
  assert.throws(() => a.attentionForToken(0, { headIdx: 1.5 }), RangeError);
  assert.throws(
    () => a.topAttendedTokens(0),
    /^TypeError: Cannot pick top attended tokens: no head chosen; pass \{ headIdx \} or \{ avgHeads: true \}$/,
  );
  assert.throws(
    () => a.crossModalAttention(),
    /^TypeError: Cannot measure cross-modal attention: no head chosen/,
  );
  assert.throws(
    () => a.topAttendedTokens(0, { headIdx: 0, topK: -1 }),
    RangeError,
  );
  // Negative heads count from the end.
  assert.deepEqual(
    [...a.attentionForToken(1, { headIdx: -1 }) as Float32Array],
    [0.25, 0.75, 0, 0],
  );
});

Deno.test("AttentionAnalyzer.attentionForToken() returns one head, the head mean, or every head", () => {
  const a = small();
  assert.deepEqual([
    ...a.attentionForToken(1, { avgHeads: true, headIdx: 0 }) as Float64Array,
  ], [0.375, 0.625, 0, 0]);
  const all = a.attentionForToken(1) as Float32Array[];
  assert.equal(all.length, 2);
  assert.deepEqual([...all[1]], [0.25, 0.75, 0, 0]);
});

Deno.test("AttentionAnalyzer.topAttendedTokens() handles topK 0, topK past Tk and ties as the reference", () => {
  const a = small();
  assert.equal(a.topAttendedTokens(3, { headIdx: 0, topK: 0 }).length, 0);
  const all = a.topAttendedTokens(3, { headIdx: 0, topK: 10 });
  assert.deepEqual(all.map((t) => t.index), [3, 2, 1, 0]);
  assert.deepEqual(all.map((t) => t.type), [
    "generated",
    "language",
    "vision",
    "language",
  ]);
  // Reversed stable argsort: among equal weights the later key comes first.
  assert.deepEqual(topIndices([0.2, 0.4, 0.2, 0.4, 0], 5), [3, 1, 2, 0, 4]);
  assert.equal(all.query, 3);
  assert.equal(all.head, 0);
  assert.equal(a.topAttendedTokens(3, { avgHeads: true }).head, "mean");
});

Deno.test("AttentionAnalyzer.crossModalAttention() matches the reference's vision -> language fraction", () => {
  const a = small();
  // Vision query row 1: head 0 gives 0.5 of 1 to language key 0; head 1 0.25.
  assert.equal(a.crossModalAttention({ headIdx: 0 }), 0.5);
  assert.equal(a.crossModalAttention({ headIdx: 1 }), 0.25);
  assert.equal(a.crossModalAttention({ avgHeads: true }), 0.375);
  const textOnly = new AttentionAnalyzer(
    small().scores,
    TokenMeta.from({ prompt_len: 3, lang_ranges: [{ start: 0, end: 3 }] }),
  );
  assert.equal(
    textOnly.crossModalAttention(),
    0,
    "no vision tokens: 0 without a head",
  );
});

Deno.test("AttentionAnalyzer reports absolute positions for offset and non-square captures", () => {
  // Rows for positions 7, 8, 9 of a window whose keys start at position 4.
  const tq = 3, tk = 6;
  const values = causalScores(tq, 2, tk, 3);
  const capture = extractAttentionFromResponseSync(response([
    layerEntry(2, [tq, 2, tk], {
      values,
      tokenMeta: {
        prompt_len: 8,
        total_len: 10,
        vision_ranges: [{ start: 5, end: 7 }],
        lang_ranges: [{ start: 0, end: 5 }, { start: 7, end: 8 }],
      },
    }),
  ]));
  const layer = capture![2];
  const a = new AttentionAnalyzer(layer.scores, layer.tokenMeta);
  assert.deepEqual([...layer.scores.queryPositions], [7, 8, 9]);
  const top = a.topAttendedTokens(-1, { headIdx: 1, topK: tk });
  assert.equal(top.query, 9);
  assert.deepEqual(top.map((t) => t.index).sort((x, y) => x - y), [
    4,
    5,
    6,
    7,
    8,
    9,
  ]);
  const row = layer.scores.row(-1, 1);
  for (const t of top) assert.equal(t.weight, row[t.index - 4]);
  for (const t of top) {
    if (t.index >= 8) assert.equal(t.type, "generated", `key ${t.index}`);
  }
  assert.equal(top.find((t) => t.index === 5)?.type, "vision");
  assert.equal(top.find((t) => t.index === 4)?.type, "language");
  // No captured row is a vision query (5 and 6 are not rows): 0, as the
  // reference would have nothing to average.
  assert.equal(a.crossModalAttention({ headIdx: 0 }), 0);
});

Deno.test("AttentionAnalyzer.crossModalAttention() reads vision rows by position in an offset capture", () => {
  // Square capture of positions 2..5 (total_len 6, T 4): row r is position r + 2.
  const data = new Float32Array(4 * 1 * 4);
  // Position 3 (row 1) is vision; it attends 0.25 to key position 2 (col 0,
  // language) and 0.75 to itself (col 1).
  data.set([1, 0, 0, 0], 0);
  data.set([0.25, 0.75, 0, 0], 4);
  data.set([0.3, 0.3, 0.4, 0], 8);
  data.set([0.1, 0.2, 0.3, 0.4], 12);
  const scores = new AttentionScores(data, [4, 1, 4], { keyOffset: 2 });
  const a = new AttentionAnalyzer(
    scores,
    TokenMeta.from({
      prompt_len: 5,
      total_len: 6,
      vision_ranges: [{ start: 3, end: 4 }],
      lang_ranges: [{ start: 0, end: 3 }, { start: 4, end: 5 }],
    }),
  );
  assert.equal(a.crossModalAttention({ headIdx: 0 }), 0.25);
});
