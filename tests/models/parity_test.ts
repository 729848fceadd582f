/**
 * The engine against the eager PyTorch transcription (tests/models/torch):
 * tiny random checkpoints of each family, greedy tokens equal, every
 * layer's attention within 1e-5 (prompt and generated rows, the reference's
 * from one full forward so prefill + decode is checked against it), logits
 * within 1e-4. Skipped with a message when no Python has torch (never on CI).
 */

import assert from "node:assert/strict";
import { loadModel } from "../../lib/models/load_model.ts";
import type { ModelGenerateOptions } from "../../lib/models/types.ts";
import {
  ignoreParity as ignore,
  makeCheckpoint,
  maxDiff,
  runReference,
} from "./_parity.ts";

const PROMPT = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

interface Case {
  name: string;
  family: string;
  args: string[];
  prompt?: number[];
  maxTokens?: number;
  ablate?: [number, number][];
  check?: (info: Awaited<ReturnType<typeof loadModel>>["info"]) => void;
}

const CASES: Case[] = [
  {
    name:
      "gemma3_text BF16 tied, 4 sliding + 1 full, window 4 < prompt, query_pre_attn_scalar 12 != head_dim 16, linear rope scaling on full layers",
    family: "gemma3_text",
    args: [
      "--dtype",
      "bf16",
      "--layers",
      "5",
      "--layer-types",
      "ssfss",
      "--heads",
      "4",
      "--kv-heads",
      "2",
      "--head-dim",
      "16",
      "--query-pre-attn-scalar",
      "12",
      "--sliding-window",
      "4",
      "--rope-scaling",
      "linear:8",
    ],
    check: (info) => {
      assert.deepEqual(info.layerMeta.map((m) => m.slidingWindow), [
        4,
        4,
        null,
        4,
        4,
      ]);
    },
  },
  {
    name:
      "gemma3_text F32 untied with soft-capping, default layer_types (every 6th full), 1 KV head",
    family: "gemma3_text",
    args: [
      "--dtype",
      "f32",
      "--untied",
      "--layers",
      "7",
      "--heads",
      "2",
      "--kv-heads",
      "1",
      "--head-dim",
      "8",
      "--sliding-window",
      "3",
      "--softcap-attn",
      "2",
      "--softcap-final",
      "3",
    ],
    check: (info) => {
      assert.deepEqual(info.layerMeta.map((m) => m.attention[0]), [
        "s",
        "s",
        "s",
        "s",
        "s",
        "f",
        "s",
      ]);
    },
  },
  {
    name: "gemma3 multimodal layout language_model.model. (BF16)",
    family: "gemma3_text",
    args: [
      "--dtype",
      "bf16",
      "--layout",
      "mm-old",
      "--layers",
      "2",
      "--kv-heads",
      "1",
      "--layer-types",
      "sf",
    ],
    check: (info) => assert.equal(info.family, "gemma3_text"),
  },
  {
    name: "gemma3 multimodal layout model.language_model., untied (F32)",
    family: "gemma3_text",
    args: [
      "--dtype",
      "f32",
      "--layout",
      "mm-new",
      "--untied",
      "--layers",
      "2",
      "--kv-heads",
      "2",
      "--layer-types",
      "fs",
    ],
  },
  {
    name: "llama F32 untied, GQA 4 heads on 1 KV head",
    family: "llama",
    args: ["--dtype", "f32", "--untied", "--kv-heads", "1", "--layers", "3"],
  },
  {
    name:
      "llama BF16 tied, 2 KV heads, llama3 rope scaling, sharded in 3 files",
    family: "llama",
    args: [
      "--dtype",
      "bf16",
      "--tied",
      "--kv-heads",
      "2",
      "--rope-scaling",
      "llama3:8",
      "--rope-theta",
      "500000",
      "--shards",
      "3",
    ],
  },
  {
    name: "llama F16, head ablation matches the reference's",
    family: "llama",
    args: ["--dtype", "f16", "--kv-heads", "2"],
    ablate: [[0, 1], [1, 3]],
  },
  {
    name: "llama F32, a 140-token prompt (two prefill chunks)",
    family: "llama",
    args: [
      "--dtype",
      "f32",
      "--kv-heads",
      "2",
      "--vocab",
      "200",
      "--max-positions",
      "256",
    ],
    prompt: Array.from({ length: 140 }, (_, i) => (i * 37 + 5) % 200),
    maxTokens: 3,
  },
  {
    name: "qwen2 BF16 with non-zero q/k/v biases, 2 KV heads, untied",
    family: "qwen2",
    args: ["--dtype", "bf16", "--kv-heads", "2", "--layers", "3"],
  },
  {
    name:
      "qwen2 F32 tied, no GQA, sliding window on layers >= max_window_layers",
    family: "qwen2",
    args: [
      "--dtype",
      "f32",
      "--tied",
      "--kv-heads",
      "4",
      "--sliding-window",
      "5",
      "--layers",
      "3",
    ],
    check: (info) => {
      assert.deepEqual(info.layerMeta.map((m) => m.slidingWindow), [
        null,
        5,
        5,
      ]);
    },
  },
  {
    name: "gpt2 F32 without the transformer. prefix, attn.bias buffers ignored",
    family: "gpt2",
    args: ["--dtype", "f32", "--layers", "3"],
  },
  {
    name: "gpt2 BF16 with the transformer. prefix",
    family: "gpt2",
    args: ["--dtype", "bf16", "--layout", "transformer"],
  },
];

for (const c of CASES) {
  Deno.test({
    name: `loadModel + generate match PyTorch: ${c.name}`,
    ignore,
    sanitizeResources: false,
    async fn() {
      const root = await Deno.makeTempDir({ prefix: "attnscope-parity-" });
      try {
        const dir = await makeCheckpoint(root, "ckpt", c.family, c.args);
        const prompt = c.prompt ?? PROMPT;
        const maxTokens = c.maxTokens ?? 5;
        const ref = await runReference(
          dir,
          prompt,
          maxTokens,
          c.ablate
            ? ["--ablate", ...c.ablate.map(([l, h]) => `${l}:${h}`)]
            : [],
        );
        const model = await loadModel(dir);
        try {
          c.check?.(model.info);
          const options: ModelGenerateOptions = {
            inputIds: prompt,
            maxTokens,
            layers: "all",
            logits: true,
            stopTokenIds: [],
            ablateHeads: c.ablate,
          };
          const r = await model.generate(options);
          assert.deepEqual(r.tokens, ref.tokens, "greedy tokens");
          assert.equal(r.logits!.length, ref.logits.length);
          r.logits!.forEach((l, i) => {
            const diff = maxDiff(l, ref.logits[i]);
            assert.ok(diff < 1e-4, `step ${i} logits differ by ${diff}`);
          });
          const t = prompt.length + maxTokens - 1;
          assert.equal(Object.keys(r.attention).length, model.info.numLayers);
          ref.attention.forEach((a, l) => {
            const layer = r.attention[l];
            assert.deepEqual(layer.scores.shape, a.shape);
            assert.deepEqual([...layer.scores.shape], [
              t,
              model.info.numHeads,
              t,
            ]);
            const diff = maxDiff(layer.scores.data, a.data);
            assert.ok(diff < 1e-5, `layer ${l} attention differs by ${diff}`);
            assert.equal(layer.tokenMeta.promptLen, prompt.length);
            assert.deepEqual(layer.layerMeta, model.info.layerMeta[l]);
          });
          assert.deepEqual(r.ablatedHeads, c.ablate ?? []);
        } finally {
          model.close();
        }
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}
