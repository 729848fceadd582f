import assert from "node:assert/strict";
import {
  attentionEntropy,
  duplicateTokenScore,
  headSummary,
  inductionScore,
  maxWeight,
  previousTokenScore,
  sinkMass,
} from "../lib/analysis/metrics/mod.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { collectWarnings } from "../lib/warn.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { randomCausalAttention, runNumpy } from "./_numpy.ts";
import { seededRandom } from "../lib/random.ts";
import { assertAllClose } from "./_assert.ts";
import { promptLayer } from "./_captures.ts";

const close = (
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance = 1e-9,
) => assertAllClose(actual, expected, tolerance);

// ---------------------------------------------------------------- by hand

// T=4, H=2. Head 0 is a previous-token head; head 1 puts half on position 0
// and half on itself. Tokens: a b a b.
const HAND = new AttentionScores(
  new Float32Array([
    // q0: h0, h1
    1,
    0,
    0,
    0,
    /**/ 1,
    0,
    0,
    0,
    // q1
    1,
    0,
    0,
    0,
    /**/ 0.5,
    0.5,
    0,
    0,
    // q2
    0,
    1,
    0,
    0,
    /**/ 0.5,
    0,
    0.5,
    0,
    // q3
    0,
    0,
    1,
    0,
    /**/ 0.5,
    0,
    0,
    0.5,
  ]),
  [4, 2, 4],
);
const HAND_TOKENS = ["a", "b", "a", "b"];

Deno.test("previousTokenScore() matches hand-computed mul and abs scores", () => {
  // mul: head 0 has 3 of 4 units on i-1 (row 0 is off-pattern).
  close(previousTokenScore(HAND), [3 / 4, 0.5 / 4]);
  // excludeBos drops column 0: head 0 keeps rows 2,3 (2 units, all on i-1);
  // head 1 keeps 0.5 + 0.5 + 0.5, none on i-1.
  close(previousTokenScore(HAND, { excludeBos: true }), [1, 0]);
  // excludeCurrentToken: head 0 row 0's self-attention leaves the sum.
  close(previousTokenScore(HAND, { excludeCurrentToken: true }), [
    1,
    0.5 / 1.5,
  ]);
  // abs: head 0 row errors 1,0,0,0 -> 1 - 1/4; head 1 rows: 1, 0.5+0.5=... row1:
  // |0.5-1| + 0.5 = 1, row2: 0.5 + |0-1| + 0.5 = 2, row3: 0.5 + 1 + 0.5 = 2.
  close(previousTokenScore(HAND, { errorMeasure: "abs" }), [
    1 - 1 / 4,
    1 - 6 / 4,
  ]);
});

Deno.test("duplicateTokenScore() and inductionScore() match hand-computed scores", () => {
  // Duplicates: row 2 ("a") -> 0, row 3 ("b") -> 1.
  // head 0: row 2 puts 0 on pos 0, row 3 puts 0 on pos 1 -> 0.
  // head 1: row 2 puts 0.5 on pos 0, row 3 puts 0 on pos 1 -> 0.5 / 4.
  close(duplicateTokenScore(HAND, { tokens: HAND_TOKENS }), [0, 0.5 / 4]);
  // Induction: row 2 ("a") -> pos 1, row 3 ("b") -> pos 2.
  // head 0: row 2 puts 1 on pos 1, row 3 puts 1 on pos 2 -> 2 / 4.
  close(inductionScore(HAND, { tokens: HAND_TOKENS }), [2 / 4, 0]);
  close(
    inductionScore(HAND, { tokens: HAND_TOKENS, queryRange: { start: 2 } }),
    [1, 0],
  );
  // Token ids work the same as labels.
  close(inductionScore(HAND, { tokens: [5, 6, 5, 6] }), [2 / 4, 0]);
  // abs on head 0, second half only: perfect match.
  close(
    inductionScore(HAND, {
      tokens: HAND_TOKENS,
      errorMeasure: "abs",
      queryRange: { start: 2 },
    }),
    [1, 1 - (0.5 + 1 + 0.5 + 0.5 + 1 + 0.5) / 2],
  );
});

Deno.test("sinkMass(), attentionEntropy() and maxWeight() match hand-computed values", () => {
  close(sinkMass(HAND), [1 / 3, 0.5]);
  close(sinkMass(HAND, { position: 1 }), [0.5, 0]);
  const ln2 = Math.LN2;
  close(attentionEntropy(HAND), [0, (3 * ln2) / 4]);
  close(
    attentionEntropy(HAND, { normalize: true }),
    [0, (ln2 / ln2 + ln2 / Math.log(3) + ln2 / Math.log(4)) / 3],
  );
  close(maxWeight(HAND), [1, (1 + 0.5 * 3) / 4]);
});

Deno.test("token-identity metrics refuse missing or short tokens", () => {
  assert.throws(
    () => inductionScore(HAND),
    (e: Error) =>
      e instanceof TypeError &&
      /^Cannot compute inductionScore: .*options\.tokens is missing/.test(
        e.message,
      ),
  );
  assert.throws(
    () => duplicateTokenScore(HAND, { tokens: ["a", "b"] }),
    (e: Error) =>
      e instanceof RangeError &&
      /options\.tokens has 2 entries but the capture reaches position 3/.test(
        e.message,
      ),
  );
  assert.throws(
    () => previousTokenScore(HAND, { errorMeasure: "max" as "mul" }),
    /errorMeasure "max" is not "mul" or "abs"/,
  );
});

Deno.test("sinkMass() refuses a position the capture does not hold", () => {
  assert.throws(() => sinkMass(HAND, { position: 4 }), RangeError);
  const offset = new AttentionScores(new Float32Array(8), [2, 1, 4], {
    keyOffset: 3,
  });
  assert.throws(
    () => sinkMass(offset),
    /position 0 is not a captured key \(keys cover 3 to 6\)/,
  );
});

Deno.test("metrics warn and give NaN when no row is counted", () => {
  const { result, warnings } = collectWarnings(() =>
    maxWeight(HAND, { queryRange: { start: 10 } })
  );
  assert.ok(Number.isNaN(result[0]) && Number.isNaN(result[1]));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /maxWeight is NaN/);
});

Deno.test("metrics use absolute positions on an offset, non-square capture", () => {
  // Rows 2 and 3 of HAND only, keys 0..3: same values as queryRange {start: 2}.
  const rows = new AttentionScores(HAND.data.slice(2 * 2 * 4), [2, 2, 4]);
  assert.deepEqual([...rows.queryPositions], [2, 3]);
  close(
    inductionScore(rows, { tokens: HAND_TOKENS }),
    inductionScore(HAND, { tokens: HAND_TOKENS, queryRange: { start: 2 } }),
  );
  close(
    previousTokenScore(rows),
    previousTokenScore(HAND, { queryRange: { start: 2 } }),
  );
});

// ---------------------------------------------------------- against numpy

const NUMPY_REFERENCE = `
# Independent reference: TransformerLens' head_detector.py, in numpy.
A_all = A.astype(np.float64)              # [Tq, H, T]
T = A_all.shape[2]
qpos = qpos.astype(np.int64)              # absolute position of each row
tok = tok.astype(np.int64)
def pat_prev(n):
    p = np.zeros((n, n)); p[1:, :-1] = np.eye(n - 1); return np.tril(p)
def pat_dup(t):
    n = len(t); tp = np.tile(t, (n, 1)); eq = (tp == tp.T).astype(int)
    np.fill_diagonal(eq, 0); return np.tril(eq.astype(float))
def pat_ind(t):
    d = pat_dup(t); sh = np.roll(d, 1, axis=1); sh[:, 0] = 0; return np.tril(sh)
def score(a, p, bos, cur, measure):
    # a, p: [rows, T]; rows are absolute positions qpos.
    a = a.copy()
    if measure == "mul":
        if bos: a[:, 0] = 0
        if cur: a[np.arange(len(a)), qpos] = 0
        return float((a * p).sum() / a.sum())
    d = np.abs(a - p)
    if bos: d[:, 0] = 0
    if cur: d[np.arange(len(d)), qpos] = 0
    return float(1 - d.sum() / len(d))
pats = {"prev": pat_prev(T)[qpos], "dup": pat_dup(tok[:T])[qpos], "ind": pat_ind(tok[:T])[qpos]}
out = {}
for name, p in pats.items():
    for measure in ("mul", "abs"):
        for bos in (False, True):
            for cur in (False, True):
                key = f"{name}/{measure}/{int(bos)}{int(cur)}"
                out[key] = [score(A_all[:, h, :], p, bos, cur, measure) for h in range(A_all.shape[1])]
after = qpos > 0
out["sink"] = A_all[after, :, 0].mean(axis=0).tolist()
with np.errstate(divide="ignore", invalid="ignore"):
    plogp = np.where(A_all > 0, A_all * np.log(np.where(A_all > 0, A_all, 1)), 0)
ent = -plogp.sum(axis=2)                  # [rows, H]
out["entropy"] = ent.mean(axis=0).tolist()
norm = ent[after] / np.log(qpos[after] + 1)[:, None]
out["entropyNorm"] = norm.mean(axis=0).tolist()
out["max"] = A_all.max(axis=2).mean(axis=0).tolist()
print(json.dumps(out))
`;

function metricsInJs(
  scores: AttentionScores,
  tokens: number[],
): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const fns = {
    prev: previousTokenScore,
    dup: duplicateTokenScore,
    ind: inductionScore,
  };
  for (const [name, fn] of Object.entries(fns)) {
    for (const errorMeasure of ["mul", "abs"] as const) {
      for (const excludeBos of [false, true]) {
        for (const excludeCurrentToken of [false, true]) {
          const key =
            `${name}/${errorMeasure}/${+excludeBos}${+excludeCurrentToken}`;
          out[key] = [
            ...fn(scores, {
              tokens,
              errorMeasure,
              excludeBos,
              excludeCurrentToken,
            }),
          ];
        }
      }
    }
  }
  out.sink = [...sinkMass(scores)];
  out.entropy = [...attentionEntropy(scores)];
  out.entropyNorm = [...attentionEntropy(scores, { normalize: true })];
  out.max = [...maxWeight(scores)];
  return out;
}

const T = 48;
const H = 4;
const RAND = seededRandom(7);
const TOKENS = Array.from({ length: T }, () => Math.floor(RAND() * 6));

for (const dtype of ["float32", "float16"] as const) {
  Deno.test(`every metric agrees with an independent numpy computation (${dtype})`, async () => {
    const f32 = randomCausalAttention(T, H, 11);
    const data = dtype === "float32" ? f32 : Float16Array.from(f32);
    const scores = new AttentionScores(data, [T, H, T]);
    const expected = await runNumpy(NUMPY_REFERENCE, {
      A: scores,
      qpos: { data: Float64Array.from(scores.queryPositions), shape: [T] },
      tok: { data: Float64Array.from(TOKENS), shape: [T] },
    }) as Record<string, number[]>;
    const actual = metricsInJs(scores, TOKENS);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
    for (const key of Object.keys(expected)) {
      close(actual[key], expected[key], 1e-9);
    }
    // The fixture is not degenerate: scores differ between heads.
    assert.notEqual(actual["ind/mul/00"][0], actual["ind/mul/00"][3]);
  });
}

Deno.test("metrics on a row-sliced capture agree with numpy on the same rows", async () => {
  const full = randomCausalAttention(T, H, 23);
  const first = 17;
  const scores = new AttentionScores(full.slice(first * H * T), [
    T - first,
    H,
    T,
  ]);
  const expected = await runNumpy(NUMPY_REFERENCE, {
    A: scores,
    qpos: {
      data: Float64Array.from(scores.queryPositions),
      shape: [T - first],
    },
    tok: { data: Float64Array.from(TOKENS), shape: [T] },
  }) as Record<string, number[]>;
  const actual = metricsInJs(scores, TOKENS);
  for (const key of Object.keys(expected)) {
    close(actual[key], expected[key], 1e-9);
  }
});

// ------------------------------------------------------------ headSummary

Deno.test("headSummary() computes every metric per layer and head", () => {
  const l0 = promptLayer(0, HAND);
  const l2 = promptLayer(
    2,
    new AttentionScores(randomCausalAttention(4, 2, 3), [4, 2, 4]),
  );
  const summary = headSummary({
    attention: { 2: l2, 0: l0 },
    labels: HAND_TOKENS,
  });
  assert.deepEqual(summary.layers, [0, 2]);
  assert.equal(summary.numHeads, 2);
  assert.deepEqual(summary.metricNames(), [
    "previousToken",
    "duplicateToken",
    "induction",
    "sinkMass",
    "entropy",
    "maxWeight",
  ]);
  close([summary.get("induction", 0, 0)], [0.5]);
  close([summary.get("previousToken", 2, 1)], [
    previousTokenScore(l2.scores)[1],
  ]);
  assert.deepEqual(summary.top("previousToken", 1)[0], {
    layer: 0,
    head: 0,
    value: 0.75,
  });
  assert.throws(
    () => summary.get("induction", 1, 0),
    /layer 1 is not in the summary/,
  );
});

Deno.test("headSummary() without labels leaves token-identity metrics out and warns", () => {
  const { result, warnings } = collectWarnings(() =>
    headSummary({ 0: promptLayer(0, HAND) })
  );
  assert.deepEqual(result.metricNames(), [
    "previousToken",
    "sinkMass",
    "entropy",
    "maxWeight",
  ]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /no token labels/);
  assert.throws(
    () => result.get("induction", 0, 0),
    /token-identity metrics need options\.tokens/,
  );
});

Deno.test("headSummary() averages several captures and refuses mismatched layers", () => {
  const other = new AttentionScores(randomCausalAttention(4, 2, 5), [4, 2, 4]);
  const a = { attention: { 0: promptLayer(0, HAND) }, labels: HAND_TOKENS };
  const b = {
    attention: { 0: promptLayer(0, other) },
    labels: ["x", "x", "y", "x"],
  };
  const mean = headSummary([a, b]);
  assert.equal(mean.captureCount, 2);
  const expected = (inductionScore(HAND, { tokens: HAND_TOKENS })[1] +
    inductionScore(other, { tokens: b.labels })[1]) / 2;
  close([mean.get("induction", 0, 1)], [expected]);
  assert.throws(
    () =>
      headSummary([a, {
        attention: { 1: promptLayer(1, HAND) },
        labels: HAND_TOKENS,
      }]),
    /capture 1 holds layers \[1\] but capture 0 holds \[0\]/,
  );
});

Deno.test("HeadSummary displays itself with a text summary of the top heads", async () => {
  const summary = headSummary({
    attention: { 0: promptLayer(0, HAND) },
    labels: HAND_TOKENS,
  });
  const bundle = await summary[JUPYTER_DISPLAY]();
  assert.match(String(bundle["text/plain"]), /previousToken: L0H0 0\.750/);
  const one = summary.headScores(0, 1);
  assert.deepEqual(one.shape, [4, 1, 4]);
  assert.deepEqual([...one.row(1, 0)], [0.5, 0.5, 0, 0]);
});

Deno.test("headSummary() treats captureAttention's position placeholders as unknown tokens", () => {
  // Positions 1 and 3 unlabelled ("1", "3"); "3" must not match a real "3".
  const labels = ["<bos>", "1", "3", "3"];
  const { result, warnings } = collectWarnings(() =>
    headSummary({ attention: { 0: promptLayer(0, HAND) }, labels })
  );
  assert.match(warnings[0], /2 of 4 token labels are position placeholders/);
  // Only real duplicates count: none here, so head 1's duplicate score is 0.
  close([result.get("duplicateToken", 0, 1)], [0]);
  const all = collectWarnings(() =>
    headSummary({
      attention: { 0: promptLayer(0, HAND) },
      labels: ["0", "1", "2", "3"],
    })
  );
  assert.deepEqual(all.result.metricNames(), [
    "previousToken",
    "sinkMass",
    "entropy",
    "maxWeight",
  ]);
  assert.match(all.warnings[0], /only position placeholders/);
});

Deno.test("HeadSummary shows one heatmap per metric and the focus head once charts are loaded", async () => {
  await import("../lib/charts/metrics.ts");
  const summary = headSummary(
    { attention: { 0: promptLayer(0, HAND) }, labels: HAND_TOKENS },
    { focus: { layer: 0, head: 1 } },
  );
  const bundle = await summary[JUPYTER_DISPLAY]();
  const html = String(bundle["text/html"]);
  for (
    const title of [
      "previous-token score",
      "induction score",
      "sink mass",
      "attention entropy (nats)",
    ]
  ) {
    assert.ok(html.includes(`>${title}</text>`), title);
  }
  // Each cell carries hover text with its value; the focus heatmap follows.
  assert.match(
    html,
    /<title>layer 0 · head 0\nprevious-token score 0\.750<\/title>/,
  );
  assert.match(html, /Layer 0 · head 1/);
  assert.match(
    String(bundle["image/svg+xml"]),
    /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/,
  );
});
