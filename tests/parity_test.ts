/**
 * Parity with the Python reference client: every number in
 * `fixtures/expected.json` (computed by the reference from the fixtures,
 * which Python encoded exactly as the server does) is reproduced through
 * `extractAttentionFromResponse` and `AttentionAnalyzer`, from every input
 * form and in both output dtypes.
 */

import assert from "node:assert/strict";
import { AttentionAnalyzer } from "../lib/analysis/analyzer.ts";
import {
  extractAttentionFromResponse,
  extractAttentionFromResponseSync,
} from "../lib/sources/vllm/extract.ts";
import { DecodePool } from "../lib/sources/vllm/decode.ts";
import type { AttentionCapture, AttentionLayer } from "../lib/data/layer.ts";
import type { AttentionScores } from "../lib/data/scores.ts";

type Top = [number, number, string][];
interface Expected {
  shape: [number, number, number];
  sum: number;
  row_sums_min: number;
  top5_avg_last: Top;
  top3_head0_last: Top;
  cross_modal_avg: number;
  cross_modal_head0: number;
  probe: [number, number, number, number][];
}

const fixtures = new URL("./fixtures/", import.meta.url);
const expected: Record<string, Record<string, Expected>> = JSON.parse(
  await Deno.readTextFile(new URL("expected.json", fixtures)),
);

/** Every way a caller can hand over a response. */
const inputs: Record<
  string,
  (file: string) => Promise<AttentionCapture | null>
> = {
  "bytes, float32": async (f) =>
    await extractAttentionFromResponse(await read(f)),
  "bytes, float16": async (f) =>
    await extractAttentionFromResponse(await read(f), { dtype: "float16" }),
  "bytes on 2 workers": async (f) =>
    await extractAttentionFromResponse(await read(f), { workers: 2 }),
  "bytes on a DecodePool (layers sent as the scan passes them)": async (f) => {
    using pool = new DecodePool(2);
    return await extractAttentionFromResponse(await read(f), { pool });
  },
  "ArrayBuffer": async (f) =>
    await extractAttentionFromResponse((await read(f)).buffer as ArrayBuffer),
  "string": async (f) =>
    await extractAttentionFromResponse(new TextDecoder().decode(await read(f))),
  "parsed object, sync": async (f) =>
    extractAttentionFromResponseSync(
      JSON.parse(new TextDecoder().decode(await read(f))),
    ),
  "parsed object, sync, float16": async (f) =>
    extractAttentionFromResponseSync(
      JSON.parse(new TextDecoder().decode(await read(f))),
      { dtype: "float16" },
    ),
};

async function read(file: string): Promise<Uint8Array<ArrayBuffer>> {
  return await Deno.readFile(new URL(file, fixtures));
}

/**
 * Float16 precision: numbers the reference rounded for expected.json
 * (to 3 to 6 decimals) are compared within that rounding plus float32
 * accumulation error.
 */
function close(actual: number, want: number, tolerance: number, what: string) {
  assert.ok(
    Math.abs(actual - want) <= tolerance,
    `${what}: got ${actual}, expected ${want} (tolerance ${tolerance})`,
  );
}

/**
 * Top-k as the reference would: same positions, types and weights; where
 * weights tie (equal within `tieTolerance`), the order among the tied keys,
 * and which tied key makes the cut, is numpy's argsort's choice, so only the
 * weights are compared there.
 */
function assertTop(
  actual: { index: number; weight: number; type: string }[],
  want: Top,
  weightOf: (index: number) => number,
  tieTolerance: number,
  what: string,
) {
  assert.equal(actual.length, want.length, `${what}: length`);
  want.forEach(([index, weight, type], i) => {
    const got = actual[i];
    close(got.weight, weight, 6e-6, `${what}[${i}] weight`);
    if (got.index !== index) {
      assert.ok(
        Math.abs(weightOf(got.index) - weightOf(index)) <= tieTolerance,
        `${what}[${i}]: key ${got.index} instead of ${index}, and they do not tie`,
      );
    } else {
      assert.equal(got.type, type, `${what}[${i}] type`);
    }
  });
}

function rowSumsMin(scores: AttentionScores): number {
  const [tq, h] = scores.shape;
  let min = Infinity;
  for (let q = 0; q < tq; q++) {
    for (let head = 0; head < h; head++) {
      const row = scores.row(q, head);
      let sum = 0;
      for (let k = 0; k < row.length; k++) sum += row[k];
      min = Math.min(min, sum);
    }
  }
  return min;
}

for (const [name, load] of Object.entries(inputs)) {
  for (const [file, layers] of Object.entries(expected)) {
    Deno.test(`extractAttentionFromResponse() + AttentionAnalyzer reproduce the reference on ${file} (${name})`, async () => {
      const capture = await load(file);
      assert.ok(capture, "capture");
      assert.deepEqual(
        Object.keys(capture).sort(),
        Object.keys(layers).sort(),
        "layer indices",
      );
      for (const [li, want] of Object.entries(layers)) {
        const layer: AttentionLayer = capture[Number(li)];
        const where = `${file} layer ${li}`;
        assert.equal(layer.layer, Number(li));
        assert.equal(layer.model, "synthetic-model");
        const s = layer.scores;
        assert.deepEqual([...s.shape], want.shape, `${where} shape`);
        let sum = 0;
        for (let i = 0; i < s.data.length; i++) sum += s.data[i];
        // expected sum is rounded to 3 decimals; numpy sums in float32.
        close(sum, want.sum, 2e-3, `${where} sum`);
        close(rowSumsMin(s), want.row_sums_min, 1e-4, `${where} row_sums_min`);
        for (const [q, h, k, v] of want.probe) {
          // Probes are float16 values: exact in both dtypes.
          assert.equal(s.get(q, h, k), v, `${where} probe (${q}, ${h}, ${k})`);
        }
        const analyzer = new AttentionAnalyzer(s, layer.tokenMeta);
        const mean = s.meanHeads(-1);
        assertTop(
          analyzer.topAttendedTokens(-1, { topK: 5, avgHeads: true }),
          want.top5_avg_last,
          (k) => mean[k],
          // numpy averages in float32: means that differ by less than its
          // rounding may tie there and not here.
          1e-6,
          `${where} top5_avg_last`,
        );
        const head0 = s.row(-1, 0);
        assertTop(
          analyzer.topAttendedTokens(-1, { topK: 3, headIdx: 0 }),
          want.top3_head0_last,
          (k) => head0[k],
          0,
          `${where} top3_head0_last`,
        );
        close(
          analyzer.crossModalAttention({ avgHeads: true }),
          want.cross_modal_avg,
          2e-6,
          `${where} cross_modal_avg`,
        );
        close(
          analyzer.crossModalAttention({ headIdx: 0 }),
          want.cross_modal_head0,
          2e-6,
          `${where} cross_modal_head0`,
        );
      }
    });
  }
}

Deno.test("parity covers a multimodal capture with nonzero cross-modal attention", () => {
  // Guards the fixture set itself: cross-modal parity is only meaningful if
  // some expected value is not 0.
  assert.ok(expected["multimodal.json"]["1"].cross_modal_avg > 0.1);
});
