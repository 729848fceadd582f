/**
 * `checkCapture` and non-causal attention: a capture declared non-causal
 * (by its layers' `layerMeta`, or the `causal` option) weighs later keys by
 * design, so no "future keys" finding is made for it; every other check
 * still runs.
 */

import assert from "node:assert/strict";
import { checkCapture } from "../lib/data/check_capture.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import type { LayerMeta } from "../lib/data/layer_meta.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";

/**
 * Bidirectional softmax rows: every query weighs all T keys, head h leaning
 * on key h (so heads differ).
 */
function bidirectional(
  T: number,
  H: number,
  layerMeta: LayerMeta | null,
  index = 0,
): AttentionLayer {
  const data = new Float32Array(T * H * T);
  for (let q = 0; q < T; q++) {
    for (let h = 0; h < H; h++) {
      const row = data.subarray((q * H + h) * T, (q * H + h + 1) * T);
      row.fill(0.5 / T);
      row[h % T] += 0.5;
    }
  }
  return new AttentionLayer({
    layer: index,
    model: null,
    scores: new AttentionScores(data, [T, H, T]),
    tokenMeta: TokenMeta.from({ prompt_len: T, total_len: T }),
    layerMeta,
  });
}

const ENCODER: LayerMeta = {
  attention: "full_attention",
  slidingWindow: null,
  numKeyValueHeads: 2,
  causal: false,
};

Deno.test("checkCapture() reports future keys for bidirectional rows of a layer with no meta", () => {
  const findings = checkCapture({ 3: bidirectional(5, 2, null, 3) });
  assert.deepEqual(findings[3].map((f) => f.kind), ["future-keys"]);
  assert.equal(findings[3][0].rows, 4 * 2); // every row but the last query's
});

Deno.test("checkCapture() makes no future-keys finding for a layer whose layerMeta says causal: false", () => {
  const findings = checkCapture({
    0: bidirectional(5, 2, ENCODER, 0),
    1: bidirectional(5, 2, { ...ENCODER, causal: true }, 1),
  });
  assert.deepEqual(findings[0], []);
  assert.deepEqual(findings[1].map((f) => f.kind), ["future-keys"]);
});

Deno.test("checkCapture() with causal: false skips the future-keys check on every layer; causal: true overrides the meta", () => {
  const capture = {
    0: bidirectional(4, 2, null, 0),
    1: bidirectional(4, 2, ENCODER, 1),
  };
  const off = checkCapture(capture, { causal: false });
  assert.deepEqual([off[0], off[1]], [[], []]);
  const on = checkCapture(capture, { causal: true });
  assert.deepEqual(on[1].map((f) => f.kind), ["future-keys"]);
});

Deno.test("checkCapture() on a non-causal layer still finds rows that do not sum to 1 and negative values", () => {
  const layer = bidirectional(3, 1, ENCODER);
  const data = layer.scores.data as Float32Array;
  data[2] = 0.9; // row 0 now sums to about 1.7, weight on a later key
  data[4] = -0.1; // row 1: a negative value
  const kinds = checkCapture({ 0: layer })[0].map((f) => f.kind);
  assert.deepEqual(kinds, ["negative", "row-sum"]);
});
