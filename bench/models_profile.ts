/**
 * A timing harness (not a test, not a bench table): where a prefill of 256
 * tokens plus one generated token, every layer captured, spends its time on
 * the bench:models checkpoints. It wraps the matrix backend to time every
 * `linear` (by weight shape) and `matmul` (Q·Kᵀ vs probs·V), and reports the
 * rest of the run (norms, RoPE, softmax, the capture copy, elementwise work,
 * allocation) as the difference. Run after `deno task bench:models` has
 * written the checkpoints:
 *
 *     deno run --allow-all bench/models_profile.ts [smollm2-135m|gemma-3-270m]
 *
 * @module
 */

import { loadModelFromFolder } from "../lib/models/load_model.ts";
import type {
  AttentionOp,
  MatmulBackend,
  MatmulOp,
  WeightHandle,
} from "../lib/models/kernels/backend.ts";
import { createMatmulBackend } from "../lib/models/kernels/select.ts";

const dir = Deno.env.get("ATTNSCOPE_BENCH_DIR") ?? "/tmp/attnscope-bench";
const names = Deno.args.length ? Deno.args : ["smollm2-135m", "gemma-3-270m"];
const reps = Number(Deno.env.get("BENCH_REPS") ?? 3);

const times = new Map<string, number>();
const add = (k: string, t: number) => times.set(k, (times.get(k) ?? 0) + t);

function wrap(be: MatmulBackend): MatmulBackend {
  const linear = be.linear.bind(be);
  const matmul = be.matmul.bind(be);
  return Object.assign(Object.create(be), {
    name: be.name,
    upload: be.upload.bind(be),
    uploadStreamed: be.uploadStreamed?.bind(be),
    release: be.release.bind(be),
    close: be.close.bind(be),
    readRow: be.readRow && ((w: WeightHandle, r: number, o: Float32Array) => {
      const t = performance.now();
      be.readRow!(w, r, o);
      add("readRow (tied embedding)", performance.now() - t);
    }),
    attention: be.attention && ((op: AttentionOp) => {
      const t = performance.now();
      const r = be.attention!(op);
      add(`attention m=${op.m > 1 ? "T" : "1"}`, performance.now() - t);
      return r;
    }),
    activate: be.activate &&
      ((
        g: Float32Array,
        u: Float32Array | null,
        n: number,
        k: "silu" | "gelu_tanh",
      ) => {
        const t = performance.now();
        be.activate!(g, u, n, k);
        add(`activate ${k}`, performance.now() - t);
      }),
    softmaxRows: be.softmaxRows &&
      ((
        s: Float32Array,
        m: number,
        n: number,
        p0: number,
        w: number | null,
      ) => {
        const t = performance.now();
        be.softmaxRows!(s, m, n, p0, w);
        add(`softmax m=${m > 1 ? "T" : "1"}`, performance.now() - t);
      }),
    linear(
      x: Float32Array,
      m: number,
      w: WeightHandle,
      out?: Float32Array,
      range?: [number, number],
    ) {
      const t = performance.now();
      const r = linear(x, m, w, out, range);
      const label = `linear m=${m > 1 ? "T" : "1"} ${
        range ? range[1] - range[0] : w.rows
      }x${w.cols}`;
      add(label, performance.now() - t);
      return r;
    },
    matmul(op: MatmulOp) {
      const t = performance.now();
      matmul(op);
      add(
        op.transposeB
          ? `attn QK^T m=${op.m > 1 ? "T" : "1"}`
          : `attn PV m=${op.m > 1 ? "T" : "1"}`,
        performance.now() - t,
      );
    },
  }) as MatmulBackend;
}

for (const name of names) {
  const backend = wrap(await createMatmulBackend({ threads: 2 }));
  const model = await loadModelFromFolder(`${dir}/${name}`, {
    threads: 2,
    backend,
  });
  const ids = Array.from({ length: 256 }, (_, i) => (i * 7919 + 13) % 1000);
  await model.generate({
    inputIds: ids.slice(0, 16),
    maxTokens: 2,
    layers: "all",
    stopTokenIds: [],
  });
  const totals: number[] = [];
  let best: Map<string, number> | null = null;
  for (let r = 0; r < reps; r++) {
    times.clear();
    const t0 = performance.now();
    await model.generate({
      inputIds: ids,
      maxTokens: 2,
      layers: "all",
      stopTokenIds: [],
    });
    const total = performance.now() - t0;
    if (!best || total < Math.min(...totals)) best = new Map(times);
    totals.push(total);
  }
  model.close();
  const total = Math.min(...totals);
  let kernels = 0;
  console.log(
    `\n${name}: best of ${reps} runs ${total.toFixed(0)} ms (all: ${
      totals.map((t) => t.toFixed(0)).join(", ")
    })`,
  );
  for (const [k, v] of [...best!].sort((a, b) => b[1] - a[1])) {
    kernels += v;
    console.log(
      `  ${k.padEnd(28)} ${v.toFixed(1).padStart(8)} ms ${
        (100 * v / total).toFixed(1).padStart(5)
      }%`,
    );
  }
  console.log(
    `  ${"rest (JS: norms, rope, softmax, capture, elementwise)".padEnd(28)} ${
      (total - kernels).toFixed(1).padStart(8)
    } ms ${(100 * (total - kernels) / total).toFixed(1).padStart(5)}%`,
  );
}
