import assert from "node:assert/strict";
import {
  attentionDifference,
  compareCaptures,
} from "../lib/analysis/compare.ts";
import { inductionScore, sinkMass } from "../lib/analysis/metrics/mod.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { withoutSink } from "../lib/analysis/sink.ts";
import { collectWarnings } from "../lib/warn.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { randomCausalAttention, runNumpy } from "./_numpy.ts";
import { assertAllClose } from "./_assert.ts";
import { promptLayer } from "./_captures.ts";

const close = (
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = 1e-7,
) => assertAllClose(actual, expected, tolerance);

const T = 16;
const H = 3;
const A = new AttentionScores(randomCausalAttention(T, H, 31), [T, H, T]);
const B = new AttentionScores(randomCausalAttention(T, H, 32), [T, H, T]);
const TOKENS = Array.from({ length: T }, (_, i) => `t${i % 5}`);

Deno.test("attentionDifference() is b - a per head and for the head mean, as numpy computes it", async () => {
  const expected = await runNumpy(
    `print(json.dumps({"mean": (b.astype(np.float64).mean(1) - a.astype(np.float64).mean(1)).ravel().tolist(),
                      "h2": (b.astype(np.float64)[:, 2] - a.astype(np.float64)[:, 2]).ravel().tolist()}))`,
    { a: A, b: B },
  ) as { mean: number[]; h2: number[] };
  close(attentionDifference(A, B).data, expected.mean, 1e-12);
  close(attentionDifference(A, B, { head: -1 }).data, expected.h2, 1e-12);
  // By hand: identical inputs differ by zero.
  assert.ok(attentionDifference(A, A).data.every((v) => v === 0));
});

Deno.test("attentionDifference() refuses different shapes or positions", () => {
  const short = new AttentionScores(randomCausalAttention(T - 1, H, 1), [
    T - 1,
    H,
    T - 1,
  ]);
  assert.throws(
    () => attentionDifference(A, short),
    (e: Error) =>
      e instanceof TypeError &&
      e.message.startsWith("Cannot compare attention: a is [16, 3, 16]") &&
      e.message.includes("b is [15, 3, 15]"),
  );
  const moved = new AttentionScores(A.data, [T, H, T], { keyOffset: 2 });
  assert.throws(() => attentionDifference(A, moved), /keys from 2/);
});

Deno.test("compareCaptures() gives per-head metric deltas b - a", () => {
  const c = compareCaptures(
    {
      attention: { 0: promptLayer(0, A), 1: promptLayer(1, B) },
      labels: TOKENS,
    },
    {
      attention: { 0: promptLayer(0, B), 1: promptLayer(1, A) },
      labels: TOKENS,
    },
  );
  assert.deepEqual(c.layers, [0, 1]);
  const sinkA = sinkMass(A);
  const sinkB = sinkMass(B);
  for (let h = 0; h < H; h++) {
    close([c.deltas.get("sinkMass", 0, h)], [sinkB[h] - sinkA[h]], 1e-12);
    close([c.deltas.get("sinkMass", 1, h)], [sinkA[h] - sinkB[h]], 1e-12);
  }
  const indA = inductionScore(A, { tokens: TOKENS });
  const indB = inductionScore(B, { tokens: TOKENS });
  close([c.deltas.get("induction", 0, 1)], [indB[1] - indA[1]], 1e-12);
  close(
    c.difference(0, { head: 1 }).data,
    attentionDifference(A, B, { head: 1 }).data,
    0,
  );
  assert.deepEqual(c.difference(1).layers, [1]);
  assert.throws(() => c.difference(7), /share layers 0, 1/);
});

Deno.test("compareCaptures() leaves out unshared layers with a warning and refuses disjoint ones", () => {
  const { result, warnings } = collectWarnings(() =>
    compareCaptures(
      {
        attention: { 0: promptLayer(0, A), 4: promptLayer(4, A) },
        labels: TOKENS,
      },
      { attention: { 0: promptLayer(0, B) }, labels: TOKENS },
    )
  );
  assert.deepEqual(result.layers, [0]);
  assert.deepEqual(warnings, [
    "compareCaptures: layers 4 are in only one capture and are left out",
  ]);
  assert.throws(
    () => compareCaptures({ 0: promptLayer(0, A) }, { 1: promptLayer(1, B) }),
    /capture a holds layers \[0\] and capture b \[1\], none in common/,
  );
  const short = new AttentionScores(randomCausalAttention(8, H, 1), [8, H, 8]);
  assert.throws(
    () =>
      compareCaptures({ 0: promptLayer(0, A) }, { 0: promptLayer(0, short) }),
    /Cannot compare layer 0: a is \[16, 3, 16\]/,
  );
});

Deno.test("compareCaptures() compares two layers of one capture through layerPairs, indexed by a's layer", () => {
  const capture = {
    attention: { 0: promptLayer(0, A), 5: promptLayer(5, B) },
    labels: TOKENS,
  };
  const c = compareCaptures(capture, capture, { layerPairs: [[0, 5]] });
  assert.deepEqual(c.layers, [0]);
  const sinkA = sinkMass(A);
  const sinkB = sinkMass(B);
  for (let h = 0; h < H; h++) {
    close([c.deltas.get("sinkMass", 0, h)], [sinkB[h] - sinkA[h]], 1e-12);
  }
  close(c.difference(0).data, attentionDifference(A, B).data, 0);
  assert.throws(
    () => compareCaptures(capture, capture, { layerPairs: [[0, 9]] }),
    /capture b holds layers \[0,5\], not layer 9/,
  );
  assert.throws(
    () => compareCaptures(capture, capture, { layerPairs: [[0, 5], [0, 0]] }),
    /layer 0 of a is paired twice/,
  );
  assert.throws(
    () => compareCaptures(capture, capture, { layerPairs: [] }),
    /layerPairs is empty/,
  );
});

Deno.test("CaptureComparison displays the largest changes", async () => {
  const c = compareCaptures(
    { attention: { 0: promptLayer(0, A) }, labels: TOKENS },
    { attention: { 0: promptLayer(0, B) }, labels: TOKENS },
  );
  const text = String((await c[JUPYTER_DISPLAY]())["text/plain"]);
  assert.match(text, /^CaptureComparison \(b - a\): 1 layer/);
  assert.match(text, /sinkMass: L0H\d [+-]0\.\d{3}/);
});

Deno.test("withoutSink() zeroes the sink column and renormalizes rows, as numpy does", async () => {
  const expected = await runNumpy(
    `x = a.astype(np.float64); x[:, :, 0] = 0
s = x.sum(axis=2, keepdims=True)
x = np.where(s > 0, x / np.where(s > 0, s, 1), 0)
print(json.dumps(x.ravel().tolist()))`,
    { a: A },
  ) as number[];
  const view = withoutSink(A);
  assert.equal(view.dtype, "float32");
  assert.deepEqual(view.shape, A.shape);
  close(view.data, expected, 1e-6);
  // Rows after the sink sum to 1 again; row 0 is empty.
  for (let h = 0; h < H; h++) {
    close([[...view.row(5, h)].reduce((x, y) => x + y, 0)], [1], 1e-6);
    assert.ok(view.row(0, h).every((v) => v === 0));
  }
});

Deno.test("withoutSink() warns about rows that attended only to the sink, and refuses uncaptured positions", () => {
  const s = new AttentionScores(new Float32Array([1, 0, 1, 0]), [2, 1, 2]);
  const { result, warnings } = collectWarnings(() => withoutSink(s));
  assert.deepEqual([...result.data], [0, 0, 0, 0]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /1 row\(s\) after position 0 attended only to it/);
  assert.throws(
    () => withoutSink(s, { position: 5 }),
    /Cannot remove the sink at position 5: the capture's keys cover 0 to 1/,
  );
  const shifted = withoutSink(A, { position: 3 });
  assert.ok(shifted.row(7, 0)[3] === 0 && shifted.row(7, 0)[0] > 0);
});
