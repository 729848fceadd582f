/**
 * checkCapture(): each planted defect is caught, real captures are silent
 * (every kind of capture the demo server makes, through the vLLM decoder),
 * loading warns once per kind, and a chart of a capture with findings says
 * so in its caption.
 */

import assert from "node:assert/strict";
import {
  type CaptureFindings,
  checkCapture,
  type FindingKind,
} from "../lib/data/check_capture.ts";
import { captureAttention } from "../lib/client/client.ts";
import { CODENAME_STUDY, NEEDLE_STUDY } from "../lib/client/studies.ts";
import { attentionHeatmap } from "../lib/charts/heatmap.ts";
import { headsGrid } from "../lib/charts/heads_grid.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { encodePng, pngDataUrl } from "../lib/png.ts";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { collectWarningsAsync } from "../lib/warn.ts";
import { startDemoServer } from "../server/mod.ts";
import { causalScores, layerEntry, response } from "./_captures.ts";
import { zip } from "./_attention_files.ts";

const T = 6;
const H = 3;

function layerOf(values: Float32Array, layer = 0): AttentionLayer {
  return new AttentionLayer({
    layer,
    model: null,
    scores: new AttentionScores(values, [T, H, T]),
    tokenMeta: TokenMeta.from({ prompt_len: T, total_len: T }),
  });
}

function clean(seed = 1): Float32Array {
  return Float32Array.from(causalScores(T, H, T, seed));
}

const at = (q: number, h: number, k: number) => (q * H + h) * T + k;

/** Each defect, planted in row 4 of head 2 (or across the layer). */
const PLANTS: Record<FindingKind, (v: Float32Array) => void> = {
  "row-sum": (v) => {
    for (let k = 0; k <= 4; k++) v[at(4, 2, k)] *= 0.5;
  },
  "future-keys": (v) => {
    // Moved weight: the row still sums to 1.
    v[at(4, 2, 5)] = v[at(4, 2, 0)];
    v[at(4, 2, 0)] = 0;
  },
  nan: (v) => {
    v[at(4, 2, 1)] = NaN;
  },
  // Planted in the test itself (it needs a balancing value).
  negative: () => {},
  "zero-rows": (v) => {
    for (let k = 0; k < T; k++) v[at(4, 2, k)] = 0;
  },
  "identical-heads": (v) => {
    for (let q = 0; q < T; q++) {
      for (let h = 1; h < H; h++) {
        v.copyWithin(at(q, h, 0), at(q, 0, 0), at(q, 0, T));
      }
    }
  },
};

Deno.test("checkCapture() is silent on true causal softmax rows", () => {
  assert.deepEqual(checkCapture({ 0: layerOf(clean()) }), { 0: [] });
});

for (const [kind, plant] of Object.entries(PLANTS)) {
  Deno.test(`checkCapture() catches a planted defect: ${kind}`, () => {
    const values = clean();
    if (kind === "negative") {
      // A value below zero balanced by another, so only the sign is wrong.
      values[at(4, 2, 0)] += 0.3;
      values[at(4, 2, 1)] = values[at(4, 2, 1)] - 0.3;
      assert.ok(values[at(4, 2, 1)] < 0);
    } else {
      plant(values);
    }
    const findings = checkCapture({
      0: layerOf(clean(7), 0),
      5: layerOf(values, 5),
    });
    assert.deepEqual(findings[0], [], "the clean layer stays silent");
    assert.deepEqual(findings[5].map((f) => f.kind), [kind]);
    const [f] = findings[5];
    assert.equal(f.layer, 5);
    assert.match(f.message, /^Layer 5: /);
    if (kind === "identical-heads") {
      assert.equal(f.rows, T * H);
    } else {
      assert.deepEqual(f.first, { row: 4, head: 2 });
      assert.equal(f.rows, 1);
    }
  });
}

Deno.test("loadAttention() warns once per kind of finding, naming every layer", async () => {
  const layers: Record<string, Uint8Array> = {};
  for (const l of [0, 1, 2]) {
    const values = clean(l + 1);
    if (l > 0) PLANTS["row-sum"](values);
    if (l === 2) values[at(5, 0, 2)] = NaN;
    layers[`layers.${l}.npy`] = toNpy({ data: values, shape: [T, H, T] });
  }
  const { result, warnings } = await collectWarningsAsync(() =>
    loadAttention(zip(layers), {
      name: "planted.npz",
      layout: "query head key",
    })
  );
  assert.deepEqual(
    Object.fromEntries(
      Object.entries(result.findings).map((
        [l, f],
      ) => [l, f.map((x) => x.kind)]),
    ),
    { 0: [], 1: ["row-sum"], 2: ["nan", "row-sum"] },
  );
  assert.equal(warnings.length, 2);
  assert.match(
    warnings[0],
    /^planted\.npz: rows that do not sum to 1 in layers 1, 2 \(1 of 18 rows; first: row 4 of head 2\); /,
  );
  assert.match(warnings[1], /^planted\.npz: NaN values in layer 2 /);
});

Deno.test("attentionHeatmap() and headsGrid() say in the caption when the capture has findings", async () => {
  const bad = clean();
  PLANTS["future-keys"](bad);
  const layers: Record<string, Uint8Array> = {
    "layers.0.npy": toNpy({ data: clean(), shape: [T, H, T] }),
    "layers.1.npy": toNpy({ data: bad, shape: [T, H, T] }),
  };
  const { result } = await collectWarningsAsync(() =>
    loadAttention(zip(layers), { layout: "query head key" })
  );
  const note =
    "Check: weight on future keys (no causal mask applied) (see checkCapture).";
  assert.ok(attentionHeatmap(result.attention[1]).toSVG().includes(note));
  assert.ok(!attentionHeatmap(result.attention[0]).toSVG().includes("Check:"));
  assert.ok(headsGrid(result.attention).toSVG().includes(`Layer 1: ${note}`));
});

Deno.test("extractAttentionFromResponse() runs the check on the vLLM decoder's output", async () => {
  const values = causalScores(6, 2, 6);
  values[(3 * 2 + 1) * 6 + 5] = 0.25; // row 3 of head 1 attends to key 5
  const { result, warnings } = await collectWarningsAsync(() =>
    extractAttentionFromResponse(
      response([layerEntry(4, [6, 2, 6], { values })]),
    )
  );
  assert.ok(result?.[4]);
  assert.ok(
    warnings.some((w) =>
      /^response: weight on future keys \(no causal mask applied\) in layer 4 \(1 of \d+ rows; first: row 3 of head 1\)/
        .test(w)
    ),
    warnings.join("\n"),
  );
});

function kinds(findings: CaptureFindings): string[] {
  return Object.values(findings).flat().map((f) =>
    `layer ${f.layer}: ${f.message}`
  );
}

Deno.test("checkCapture() is silent on every kind of capture the demo server makes", async () => {
  await using server = await startDemoServer();
  const size = 32;
  const rgba = new Uint8Array(size * size * 4).map((_, i) =>
    i % 4 === 3 ? 255 : (i * 37) % 256
  );
  const requests = [
    { prompt: NEEDLE_STUDY.prompt, maxTokens: 8 },
    { prompt: CODENAME_STUDY.prompt, maxTokens: 16 },
    {
      prompt: "one two three one two three one two",
      maxTokens: 12,
      temperature: 1,
    },
    {
      messages: [{
        role: "user" as const,
        content: [
          {
            type: "image_url" as const,
            image_url: { url: pngDataUrl(encodePng(rgba, size)) },
          },
          {
            type: "text" as const,
            text: "Which color is in the top left corner?",
          },
        ],
      }],
      maxTokens: 6,
    },
  ];
  for (const request of requests) {
    const { result, warnings } = await collectWarningsAsync(() =>
      captureAttention({ baseUrl: server.baseUrl, layers: "all", ...request })
    );
    assert.deepEqual(warnings.filter((w) => w.startsWith("response:")), []);
    const findings = checkCapture(result);
    assert.ok(Object.keys(findings).length >= 2);
    assert.deepEqual(kinds(findings), []);
  }
});
