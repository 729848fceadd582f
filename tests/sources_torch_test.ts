/**
 * Files written from real PyTorch tensors (np.save, np.savez,
 * np.savez_compressed, safetensors through docs/recipes/attnscope_save.py),
 * in every dtype and layout, load with every value equal to what PyTorch
 * produced; generate()'s per-step attentions become one capture with
 * generated rows. Skipped with the reason where torch is missing; under
 * CI=true that fails instead.
 */

import assert from "node:assert/strict";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { collectWarningsAsync } from "../lib/warn.ts";
import { CI, findTorchPython, runPython } from "./_torch.ts";

const torch = await findTorchPython();
if (!torch.ok) {
  console.log(`${CI ? "FAIL" : "Skipping"} torch tests: ${torch.reason}`);
}
const ignore = !CI && !torch.ok;
const here = new URL(".", import.meta.url).pathname;
const recipes = new URL("../docs/recipes/", import.meta.url).pathname;

interface Case {
  name: string;
  file: string;
  options: Record<string, unknown>;
  layers: Record<string, { file: string; shape: number[] }>;
  promptLen: number | null;
  tokens: string[] | null;
  f64: boolean;
}

/** Makes the files once, in a temporary directory. */
async function makeFixtures(): Promise<{ dir: string; cases: Case[] }> {
  if (!torch.ok) throw new Error(torch.reason);
  const dir = await Deno.makeTempDir({ prefix: "attnscope-torch-" });
  await runPython(torch.python, [`${here}sources_torch.py`, dir]);
  const cases = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  return { dir, cases };
}

let fixtures: Promise<{ dir: string; cases: Case[] }> | null = null;

Deno.test({
  name:
    "loadAttention() reads every PyTorch-written file with the values PyTorch produced",
  ignore,
  async fn(t) {
    fixtures ??= makeFixtures();
    const { dir, cases } = await fixtures;
    assert.ok(cases.length >= 20, `only ${cases.length} cases`);
    try {
      for (const c of cases) {
        await t.step(c.name, async () => {
          const { result: loaded } = await collectWarningsAsync(() =>
            loadAttention(`${dir}/${c.file}`, c.options)
          );
          assert.deepEqual(
            Object.keys(loaded.attention).map(Number),
            Object.keys(c.layers).map(Number),
          );
          for (const [layer, ref] of Object.entries(c.layers)) {
            const bytes = await Deno.readFile(`${dir}/${ref.file}`);
            const want = new Float64Array(bytes.buffer);
            const scores = loaded.attention[Number(layer)].scores;
            assert.deepEqual(scores.shape, ref.shape);
            assert.equal(scores.data.length, want.length);
            let mismatches = 0;
            let first = -1;
            for (let i = 0; i < want.length; i++) {
              // float32 output: exact for F16, BF16 and F32; F64 rounds once.
              const expected = c.f64 ? Math.fround(want[i]) : want[i];
              if (scores.data[i] !== expected) {
                mismatches++;
                if (first < 0) first = i;
              }
            }
            assert.equal(
              mismatches,
              0,
              `layer ${layer}: ${mismatches} values differ, first at ${first}: ${
                scores.data[first]
              } vs ${want[first]}`,
            );
          }
          if (c.tokens) assert.deepEqual(loaded.labels, c.tokens);
          if (c.promptLen !== null) {
            assert.equal(loaded.promptLen, c.promptLen);
            const meta = loaded.attention[Number(Object.keys(c.layers)[0])]
              .tokenMeta;
            assert.equal(meta.promptLen, c.promptLen);
            assert.equal(meta.tokenType(c.promptLen), "generated");
          }
          // Real softmax attention from a causal model checks clean.
          for (const findings of Object.values(loaded.findings)) {
            assert.deepEqual(findings.map((f) => f.kind), []);
          }
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "loadAttention() opens what docs/recipes/plain_pytorch.py writes, as written",
  ignore,
  async fn() {
    if (!torch.ok) throw new Error(torch.reason);
    const dir = await Deno.makeTempDir({ prefix: "attnscope-recipe-" });
    try {
      await runPython(torch.python, ["plain_pytorch.py", dir], recipes);
      const npz = await loadAttention(`${dir}/attn.npz`);
      const st = await loadAttention(`${dir}/attn.safetensors`);
      assert.deepEqual(Object.keys(npz.attention), ["0", "1"]);
      assert.deepEqual(
        npz.labels,
        Array.from({ length: 10 }, (_, i) => `t${i}`),
      );
      assert.deepEqual(st.labels, npz.labels);
      for (const layer of [0, 1]) {
        assert.deepEqual(npz.attention[layer].scores.shape, [10, 4, 10]);
        assert.deepEqual(
          st.attention[layer].scores.data,
          npz.attention[layer].scores.data,
        );
      }
      assert.deepEqual(npz.findings, { 0: [], 1: [] });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
