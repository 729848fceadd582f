/**
 * `deno task bench:models-4b`: a gemma-3-4b-shaped random bf16 checkpoint
 * with 2 of its 34 layers, run at the needle prompt's size (150 tokens + 5
 * generated, every layer captured), 2 threads, and extrapolated by layers
 * to the whole model (an upper bound: the embedding and head are counted
 * once per pair of layers). Writes the 1.5 GB checkpoint once into
 * $ATTNSCOPE_BENCH_DIR (default /tmp/attnscope-bench).
 *
 * @module
 */

import { loadModelFromFolder } from "../lib/models/load_model.ts";

const dir = Deno.env.get("ATTNSCOPE_BENCH_DIR") ?? "/tmp/attnscope-bench";
const path = `${dir}/gemma-3-4b-2layers`;
const root = new URL("..", import.meta.url).pathname;
try {
  await Deno.stat(`${path}/model.safetensors`);
} catch {
  await Deno.mkdir(dir, { recursive: true });
  const args = [
    "gemma3_text",
    path,
    "--dtype",
    "bf16",
    "--layers",
    "2",
    "--hidden",
    "2560",
    "--heads",
    "8",
    "--kv-heads",
    "4",
    "--head-dim",
    "256",
    "--intermediate",
    "10240",
    "--vocab",
    "262144",
    "--max-positions",
    "131072",
    "--sliding-window",
    "1024",
    "--layer-types",
    "sf",
    "--query-pre-attn-scalar",
    "256",
  ];
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [`${root}tests/models/torch/make_checkpoint.py`, ...args],
  }).output();
  if (!out.success) {
    throw new Error(
      "Cannot write the gemma-3-4b-shaped checkpoint; is /usr/bin/python3 with torch installed?",
    );
  }
}
const model = await loadModelFromFolder(path, { threads: 2 });
const ids = Array.from({ length: 150 }, (_, i) => (i * 7919) % 262144);
const ts: number[] = [];
for (let r = 0; r < Number(Deno.env.get("BENCH_REPS") ?? 2); r++) {
  const t = performance.now();
  await model.generate({
    inputIds: ids,
    maxTokens: 5,
    layers: "all",
    stopTokenIds: [],
  });
  ts.push(performance.now() - t);
}
model.close();
const med = [...ts].sort((a, b) => a - b)[Math.floor(ts.length / 2)];
console.log(
  `gemma-3-4b shape, 2 layers, 150 + 5 tokens: ${
    ts.map((t) => (t / 1000).toFixed(1)).join(", ")
  } s; extrapolated to 34 layers: ${
    (med * 17 / 1000).toFixed(0)
  } s (goal < 60 s)`,
);
