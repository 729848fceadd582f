/**
 * Head metrics, rollout and capture files, side by side in one run.
 *
 * Metrics run on one layer of the T=4096, H=8 bench capture (the wire
 * format's synthetic but realistically peaked attention, see
 * `make_bench_data.py`), as float16 (the wire's values) and float32.
 * Capture files are compared with decoding the same capture's JSON body.
 *
 * Run: `deno bench -A bench/analysis_bench.ts`
 */

import { benchCapture } from "./_data.ts";
import {
  decodeCapture,
  encodeCapture,
  loadCapture,
  saveCapture,
} from "../lib/sources/files/capture_file.ts";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import {
  attentionEntropy,
  headSummary,
  inductionScore,
  maxWeight,
  previousTokenScore,
  sinkMass,
} from "../lib/analysis/metrics/mod.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { attentionRollout } from "../lib/analysis/rollout.ts";

const big = await Deno.readFile(await benchCapture(4096));
const half = (await extractAttentionFromResponse(big, {
  dtype: "float16",
  layers: [0],
}))!;
const layer16 = Object.values(half)[0];
const scores16 = layer16.scores;
const scores32 = scores16.toFloat32();
const T = scores16.keyLength;
// Token ids with repeats, so the duplicate/induction patterns are not empty.
const tokens = Array.from({ length: T }, (_, i) => (i * 7919) % 1000);

Deno.bench(
  "previousTokenScore, T=4096 H=8, float16",
  { group: "metrics" },
  () => {
    previousTokenScore(scores16);
  },
);
Deno.bench("previousTokenScore, T=4096 H=8, float32", {
  group: "metrics",
  baseline: true,
}, () => {
  previousTokenScore(scores32);
});
Deno.bench("inductionScore, T=4096 H=8, float32", { group: "metrics" }, () => {
  inductionScore(scores32, { tokens });
});
Deno.bench("sinkMass, T=4096 H=8, float32", { group: "metrics" }, () => {
  sinkMass(scores32);
});
Deno.bench(
  "attentionEntropy, T=4096 H=8, float32",
  { group: "metrics" },
  () => {
    attentionEntropy(scores32);
  },
);
Deno.bench("maxWeight, T=4096 H=8, float32", { group: "metrics" }, () => {
  maxWeight(scores32);
});
Deno.bench(
  "headSummary (all six metrics), T=4096 H=8, float16",
  { group: "metrics" },
  () => {
    headSummary({ attention: { 0: layer16 }, labels: tokens.map(String) });
  },
);

const small = await Deno.readFile(await benchCapture(512));
// The bench capture's layers are not consecutive; the rollout only needs
// three consecutive layers' worth of scores.
const captured = Object.values((await extractAttentionFromResponse(small))!);
const three = Object.fromEntries(
  captured.map((l, i) => [i, new AttentionLayer({ ...l, layer: i })]),
);
Deno.bench("attentionRollout, 3 layers T=512 H=8", { group: "rollout" }, () => {
  attentionRollout(three);
});

const mid = await Deno.readFile(await benchCapture(2048));
const midCapture =
  (await extractAttentionFromResponse(mid, { dtype: "float16" }))!;
const file = encodeCapture(midCapture);
const filePath = await Deno.makeTempFile({ suffix: ".attn" });
await saveCapture(filePath, midCapture);
Deno.bench("decode the JSON body (3 layers T=2048, float16)", {
  group: "load",
  baseline: true,
}, async () => {
  await extractAttentionFromResponse(mid, { dtype: "float16", workers: 0 });
});
Deno.bench("decodeCapture (same capture, file)", { group: "load" }, () => {
  decodeCapture(file);
});
Deno.bench(
  "loadCapture, calling thread (same capture)",
  { group: "load" },
  async () => {
    await loadCapture(filePath, { workers: 0 });
  },
);
Deno.bench(
  "loadCapture, 2 workers (same capture)",
  { group: "load" },
  async () => {
    await loadCapture(filePath, { workers: 2 });
  },
);
Deno.bench("encodeCapture level 6 (3 layers T=2048)", {
  group: "save",
  baseline: true,
}, () => {
  encodeCapture(midCapture);
});
Deno.bench("encodeCapture level 1", { group: "save" }, () => {
  encodeCapture(midCapture, { level: 1 });
});
Deno.bench("encodeCapture uncompressed", { group: "save" }, () => {
  encodeCapture(midCapture, { compression: "none" });
});
