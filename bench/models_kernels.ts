/**
 * The kernels alone against torch's F.linear (float32, OpenBLAS, 2 threads)
 * on the real models' shapes, interleaved, medians: the numbers behind the
 * engine decision. Part of `deno task bench:models`.
 *
 * @module
 */

import { createWasmBackend } from "../lib/models/kernels/wasm/backend.ts";

const SHAPES: [string, number, number, number][] = [
  ["smollm2 q/o", 256, 576, 576],
  ["smollm2 gate/up", 256, 1536, 576],
  ["smollm2 down", 256, 576, 1536],
  ["smollm2 head (decode)", 1, 49152, 576],
  ["gemma-270m gate/up", 256, 2048, 640],
  ["gemma-270m down", 256, 640, 2048],
  ["gemma-270m head (decode)", 1, 262144, 640],
  ["gemma-4b q", 256, 2048, 2560],
  ["gemma-4b gate (decode)", 1, 10240, 2560],
];
const reps = Number(Deno.env.get("BENCH_REPS") ?? 3);
const root = new URL("..", import.meta.url).pathname;
const median = (xs: number[]) =>
  [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const env = Deno.env.toObject();
for (const k of Object.keys(env)) if (k.startsWith("OPENBLAS_")) delete env[k];

const backend = await createWasmBackend({ threads: 2 });
const results = SHAPES.map(() => ({
  torch: [] as number[],
  bf16: [] as number[],
  f32: [] as number[],
}));
const handles = SHAPES.map(([, , n, k]) => {
  const f = new Float32Array(n * k);
  const b = new Uint16Array(n * k);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < f.length; i++) {
    f[i] = Math.random() - 0.5;
    b[i] = u[i] >>> 16;
  }
  return {
    f32: backend.upload({ rows: n, cols: k, dtype: "float32", data: f }),
    bf16: backend.upload({ rows: n, cols: k, dtype: "bfloat16", data: b }),
  };
});
for (let r = 0; r < reps; r++) {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      `${root}bench/models_kernels_torch.py`,
      ...SHAPES.map(([, m, n, k]) => `${m},${n},${k}`),
    ],
    env,
    clearEnv: true,
    stdout: "piped",
  }).output();
  const torch = JSON.parse(new TextDecoder().decode(out.stdout));
  SHAPES.forEach(([, m, n, k], i) => {
    results[i].torch.push(torch[`${m},${n},${k}`]);
    const x = new Float32Array(m * k).fill(0.5);
    const y = new Float32Array(m * n);
    for (const dt of ["bf16", "f32"] as const) {
      backend.linear(x, m, handles[i][dt], y);
      const ts = [];
      for (let j = 0; j < 5; j++) {
        const t = performance.now();
        backend.linear(x, m, handles[i][dt], y);
        ts.push(performance.now() - t);
      }
      results[i][dt].push(median(ts));
    }
  });
}
backend.close();
console.log(
  `\nKernels vs torch F.linear (f32, 2 threads), median ms of ${reps} interleaved rounds:\n`,
);
console.log(
  "| shape | m x n x k | torch f32 | wasm bf16 | wasm f32 | ratio bf16 | wasm bf16 GFLOP/s |",
);
console.log("|---|---|---|---|---|---|---|");
SHAPES.forEach(([name, m, n, k], i) => {
  const t = median(results[i].torch),
    b = median(results[i].bf16),
    f = median(results[i].f32);
  console.log(
    `| ${name} | ${m}x${n}x${k} | ${t.toFixed(2)} | ${b.toFixed(2)} | ${
      f.toFixed(2)
    } | ${(b / t).toFixed(2)}x | ${(2 * m * n * k / b / 1e6).toFixed(1)} |`,
  );
});
