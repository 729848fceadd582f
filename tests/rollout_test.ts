import assert from "node:assert/strict";
import { attentionRollout } from "../lib/analysis/rollout.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { collectWarnings } from "../lib/warn.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { randomCausalAttention, runNumpy } from "./_numpy.ts";
import { assertAllClose } from "./_assert.ts";
import { promptLayer } from "./_captures.ts";

const close = (
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = 1e-12,
) => assertAllClose(actual, expected, tolerance);

Deno.test("attentionRollout() matches a hand-computed two-layer, two-head case", () => {
  // T=2, H=2. Layer 0: heads [1,0 | .5,.5] on row 1 -> mean [.75,.25];
  // with I: [.75, 1.25] / 2 = [.375, .625]. Row 0 is [1, 0] throughout.
  const l0 = new AttentionScores(
    new Float32Array([1, 0, 1, 0, 1, 0, 0.5, 0.5]),
    [2, 2, 2],
  );
  // Layer 1: row 1 mean [0, 1] + I -> [0, 2] / 2 = [0, 1].
  const l1 = new AttentionScores(new Float32Array([1, 0, 1, 0, 0, 1, 0, 1]), [
    2,
    2,
    2,
  ]);
  const r = attentionRollout({ 0: promptLayer(0, l0), 1: promptLayer(1, l1) });
  assert.deepEqual(r.shape, [2, 2]);
  assert.deepEqual(r.layers, [0, 1]);
  close(r.row(0), [1, 0]);
  close(r.row(1), [0.375, 0.625]); // [0, 1] · layer 0
  // Only layer 0:
  close(
    attentionRollout({ 0: promptLayer(0, l0), 1: promptLayer(1, l1) }, {
      lastLayer: 0,
    })
      .row(1),
    [0.375, 0.625],
  );
  // Without the residual: plain product of head means.
  const plain = attentionRollout({
    0: promptLayer(0, l0),
    1: promptLayer(1, l1),
  }, {
    addResidual: false,
  });
  close(plain.row(1), [0.75, 0.25]);
  assert.equal(r.get(-1, -1), r.row(1)[1]);
});

async function numpyRollout(
  layers: AttentionScores[],
  residual: boolean,
): Promise<number[][]> {
  const inputs: Record<string, AttentionScores> = {};
  layers.forEach((s, i) => inputs[`L${i}`] = s);
  const tq = layers[layers.length - 1].queryLength;
  const t = layers[0].keyLength;
  const qpos = [...layers[layers.length - 1].queryPositions];
  const script = `
layers_list = [${layers.map((_, i) => `L${i}`).join(", ")}]
qpos_top = np.array(${JSON.stringify(qpos)})
R = None
for n, A in enumerate(layers_list):
    a = A.astype(np.float64).mean(axis=1)          # [rows, T]
    rows = qpos_top if n == len(layers_list) - 1 else np.arange(${t})
    if ${residual ? "True" : "False"}:
        a[np.arange(len(rows)), rows] += 1
    a = a / a.sum(axis=1, keepdims=True)
    R = a if R is None else a @ R
assert R.shape == (${tq}, ${t})
print(json.dumps(R.tolist()))
`;
  return await runNumpy(script, inputs) as number[][];
}

for (const residual of [true, false]) {
  Deno.test(`attentionRollout() agrees with numpy over four layers (residual ${residual})`, async () => {
    const T = 24;
    const layers = [0, 1, 2, 3].map((i) =>
      new AttentionScores(randomCausalAttention(T, 3, 100 + i), [T, 3, T])
    );
    const capture = Object.fromEntries(
      layers.map((s, i) => [i, promptLayer(i, s)]),
    );
    const r = attentionRollout(capture, { addResidual: residual });
    const expected = await numpyRollout(layers, residual);
    for (let q = 0; q < T; q++) close(r.row(q), expected[q]);
    // Rows of a product of row-stochastic matrices sum to 1.
    for (let q = 0; q < T; q++) {
      close([r.row(q).reduce((a, b) => a + b)], [1], 1e-9);
    }
  });
}

Deno.test("attentionRollout() accepts a row-sliced top layer and agrees with numpy", async () => {
  const T = 20;
  const inner = [0, 1].map((i) =>
    new AttentionScores(randomCausalAttention(T, 2, 200 + i), [T, 2, T])
  );
  const full = randomCausalAttention(T, 2, 202);
  const first = 12;
  const top = new AttentionScores(full.slice(first * 2 * T), [T - first, 2, T]);
  const r = attentionRollout({
    0: promptLayer(0, inner[0]),
    1: promptLayer(1, inner[1]),
    2: promptLayer(2, top),
  });
  assert.deepEqual(r.shape, [T - first, T]);
  assert.deepEqual(
    [...r.queryPositions],
    Array.from({ length: T - first }, (_, i) => first + i),
  );
  const expected = await numpyRollout([...inner, top], true);
  for (let q = 0; q < T - first; q++) close(r.row(q), expected[q]);
});

Deno.test("attentionRollout() refuses missing layers, naming them", () => {
  const s = new AttentionScores(randomCausalAttention(4, 1, 1), [4, 1, 4]);
  const capture = {
    0: promptLayer(0, s),
    3: promptLayer(3, s),
    5: promptLayer(5, s),
  };
  assert.throws(
    () => attentionRollout(capture),
    (e: Error) =>
      e instanceof RangeError &&
      e.message.startsWith(
        "Cannot compute attention rollout from layer 0 to 5: layers 1, 2, 4 are missing",
      ) &&
      e.message.includes('attn_capture_layers="0,1,2,3,4,5"'),
  );
  assert.throws(
    () => attentionRollout(capture, { firstLayer: 3 }),
    /layer 4 is missing/,
  );
  // A range inside what was captured works.
  assert.deepEqual(attentionRollout(capture, { firstLayer: 5 }).layers, [5]);
  assert.throws(
    () => attentionRollout(capture, { firstLayer: 5, lastLayer: 3 }),
    /firstLayer <= lastLayer/,
  );
  assert.throws(() => attentionRollout({}), /the capture holds no layers/);
});

Deno.test("attentionRollout() refuses an inner layer without every row, and mismatched keys", () => {
  const full = new AttentionScores(randomCausalAttention(6, 1, 4), [6, 1, 6]);
  const sliced = new AttentionScores(full.data.slice(2 * 6), [4, 1, 6]);
  assert.throws(
    () =>
      attentionRollout({ 0: promptLayer(0, sliced), 1: promptLayer(1, full) }),
    /layer 0 holds 4 query rows for 6 keys, but every layer below the last needs a row per key/,
  );
  const shorter = new AttentionScores(randomCausalAttention(5, 1, 4), [
    5,
    1,
    5,
  ]);
  assert.throws(
    () =>
      attentionRollout({ 0: promptLayer(0, shorter), 1: promptLayer(1, full) }),
    /layer 0 covers key positions 0 to 4 but layer 1 covers 0 to 5/,
  );
});

Deno.test("attentionRollout() on an offset capture warns and stays within its window", () => {
  const s = new AttentionScores(randomCausalAttention(4, 1, 9), [4, 1, 4], {
    keyOffset: 10,
  });
  const { result, warnings } = collectWarnings(() =>
    attentionRollout({ 0: promptLayer(0, s), 1: promptLayer(1, s) })
  );
  assert.deepEqual([...result.queryPositions], [10, 11, 12, 13]);
  assert.equal(result.keyOffset, 10);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /keys start at position 10/);
});

Deno.test("AttentionMatrix displays itself", async () => {
  const s = new AttentionScores(randomCausalAttention(3, 1, 2), [3, 1, 3]);
  const r = attentionRollout({ attention: { 4: promptLayer(4, s) } });
  const bundle = await r[JUPYTER_DISPLAY]();
  assert.equal(
    bundle["text/plain"],
    "AttentionMatrix [3, 3] (rollout of layer 4)",
  );
});
