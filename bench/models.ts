/**
 * `deno task bench:models`: prefill of 256 tokens plus one generated token,
 * every layer captured, on random checkpoints shaped like SmolLM2-135M and
 * gemma-3-270m, side by side with PyTorch eager float32 (the test tree's
 * transcription, bench/models_torch.py) on the same weights and ids, 2
 * threads, interleaved, medians of several repetitions.
 *
 * Checkpoints are written once by tests/models/torch/make_checkpoint.py
 * into $ATTNSCOPE_BENCH_DIR (default /tmp/attnscope-bench). Run with the
 * OPENBLAS_* overrides unset (the task does that) and libopenblas0-pthread
 * installed, so torch uses OpenBLAS.
 *
 * @module
 */

import { loadModelFromFolder } from "../lib/models/load_model.ts";

const dir = Deno.env.get("ATTNSCOPE_BENCH_DIR") ?? "/tmp/attnscope-bench";
const reps = Number(Deno.env.get("BENCH_REPS") ?? 3);
const root = new URL("..", import.meta.url).pathname;

interface Shape {
  name: string;
  args: string[];
}
const SHAPES: Shape[] = [
  {
    name: "smollm2-135m",
    args: [
      "llama",
      "--tied",
      "--layers",
      "30",
      "--hidden",
      "576",
      "--heads",
      "9",
      "--kv-heads",
      "3",
      "--intermediate",
      "1536",
      "--vocab",
      "49152",
      "--max-positions",
      "8192",
    ],
  },
  {
    name: "gemma-3-270m",
    args: [
      "gemma3_text",
      "--layers",
      "18",
      "--hidden",
      "640",
      "--heads",
      "4",
      "--kv-heads",
      "1",
      "--head-dim",
      "256",
      "--intermediate",
      "2048",
      "--vocab",
      "262144",
      "--max-positions",
      "32768",
      "--sliding-window",
      "512",
      "--layer-types",
      "ssssssfssssssfssss",
      "--query-pre-attn-scalar",
      "256",
    ],
  },
];

async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    env,
    stdout: "piped",
    stderr: "piped",
    clearEnv: false,
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot run the bench: ${cmd} ${args.join(" ")} failed: ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return new TextDecoder().decode(out.stdout);
}

async function ensureCheckpoint(shape: Shape): Promise<string> {
  const path = `${dir}/${shape.name}`;
  try {
    await Deno.stat(`${path}/model.safetensors`);
  } catch {
    await Deno.mkdir(dir, { recursive: true });
    console.error(`writing ${path} ...`);
    await run("/usr/bin/python3", [
      `${root}tests/models/torch/make_checkpoint.py`,
      shape.args[0],
      path,
      "--dtype",
      "bf16",
      ...shape.args.slice(1),
    ]);
  }
  return path;
}

/** Torch's env: OPENBLAS_* overrides removed. */
function torchEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const k of Object.keys(env)) {
    if (k.startsWith("OPENBLAS_")) delete env[k];
  }
  return env;
}

async function torchSide(
  path: string,
): Promise<{ ids: number[]; prefill: number; head: number }> {
  // clearEnv so the removed OPENBLAS_* variables really are gone.
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      `${root}bench/models_torch.py`,
      path,
      "--prompt-len",
      "256",
      "--reps",
      "1",
    ],
    env: torchEnv(),
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot run the torch side: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const j = JSON.parse(new TextDecoder().decode(out.stdout));
  return { ids: j.ids, prefill: j.prefill_ms, head: j.head_ms };
}

const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows: string[] = [];
for (const shape of SHAPES) {
  const path = await ensureCheckpoint(shape);
  const model = await loadModelFromFolder(path, { threads: 2 });
  const torchMs: number[] = [],
    torchAdj: number[] = [],
    ours: number[] = [],
    decode: number[] = [];
  let ids: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = await torchSide(path);
    ids = t.ids;
    torchMs.push(t.prefill);
    torchAdj.push(t.prefill - t.head);
    if (r === 0) {
      await model.generate({
        inputIds: ids.slice(0, 16),
        maxTokens: 2,
        layers: "all",
        stopTokenIds: [],
      });
    }
    let t0 = performance.now();
    await model.generate({
      inputIds: ids,
      maxTokens: 2,
      layers: "all",
      stopTokenIds: [],
    });
    const two = performance.now() - t0;
    ours.push(two);
    t0 = performance.now();
    await model.generate({
      inputIds: ids.slice(0, 8),
      maxTokens: 9,
      layers: [],
      stopTokenIds: [],
    });
    const nine = performance.now() - t0;
    t0 = performance.now();
    await model.generate({
      inputIds: ids.slice(0, 8),
      maxTokens: 1,
      layers: [],
      stopTokenIds: [],
    });
    const one = performance.now() - t0;
    decode.push(nine > one ? 16000 / (nine - one) : NaN);
    console.error(
      `${shape.name} rep ${r + 1}: torch ${t.prefill.toFixed(0)} ms (head ${
        t.head.toFixed(0)
      }), attnscope ${two.toFixed(0)} ms`,
    );
  }
  model.close();
  const o = median(ours), tm = median(torchMs), ta = median(torchAdj);
  rows.push(
    `| ${shape.name} | ${o.toFixed(0)} | ${tm.toFixed(0)} | ${
      ta.toFixed(0)
    } | ${(o / tm).toFixed(2)}x | ${(o / ta).toFixed(2)}x | ${
      median(decode).toFixed(1)
    } |`,
  );
}
console.log(
  `\nPrefill 256 + 1 generated token, every layer captured, 2 threads, median of ${reps} interleaved runs (ms):\n`,
);
console.log(
  "| shape (bf16 weights) | attnscope wasm | torch eager f32 | torch minus its all-position vocab head | ratio | ratio vs adjusted | attnscope decode tok/s |",
);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
