/**
 * Peak memory of loadModel + generate: peak RSS (VmHWM) minus RSS before
 * loading, against the checkpoint's size on disk, on random BF16
 * checkpoints shaped like gemma-3-270m and gemma-3-4b (a few of its 34
 * layers; the rest extrapolates per layer). Each measurement runs in a
 * fresh Deno process so the high-water mark is its own.
 *
 *     deno task bench:models-memory [--layers-4b N] [--skip-4b] [--whole] [--both]
 *
 * `--whole` also measures the default (wasm) backend with whole-tensor
 * uploads (the load path before streaming); `--both` also the reference
 * backend, which keeps the arrays it is given.
 *
 * @module
 */

import { join } from "node:path";
import { createReferenceBackend } from "../lib/models/kernels/reference.ts";
import { loadModel } from "../lib/models/load_model.ts";
import type { MatmulBackend } from "../lib/models/kernels/backend.ts";
import { createWasmBackend } from "../lib/models/kernels/wasm/backend.ts";

const TORCH = new URL("../tests/models/torch/", import.meta.url).pathname;

function rssKiB(field: "VmRSS" | "VmHWM"): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(status.match(new RegExp(`${field}:\\s+(\\d+)`))![1]);
}

/**
 * The same backend without `uploadStreamed`, so the engine reads each
 * tensor whole into an array and `upload`s it: the load path before
 * streamed uploads, measured beside the current one.
 */
function wholeTensorUploads(backend: MatmulBackend): MatmulBackend {
  return new Proxy(backend, {
    get(target, key) {
      if (key === "uploadStreamed") return undefined;
      const v = Reflect.get(target, key, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

if (Deno.args[0] === "--child") {
  const [, dir, prompt, gen, which] = Deno.args;
  const before = rssKiB("VmRSS");
  const t0 = performance.now();
  const model = await loadModel(
    dir,
    which === "reference"
      ? { backend: createReferenceBackend() }
      : which === "wasm-whole"
      ? { backend: wholeTensorUploads(await createWasmBackend()) }
      : {},
  );
  const loaded = rssKiB("VmHWM");
  const ids = Array.from(
    { length: Number(prompt) },
    (_, i) => (i * 7919 + 2) % 262144,
  );
  const r = await model.generate({
    inputIds: ids,
    maxTokens: Number(gen),
    layers: "all",
    stopTokenIds: [],
  });
  const peak = rssKiB("VmHWM");
  let capture = 0;
  for (const l of Object.values(r.attention)) {
    capture += l.scores.data.byteLength;
  }
  console.log(JSON.stringify({
    backend: which || "default",
    beforeMiB: before / 1024,
    loadPeakMiB: (loaded - before) / 1024,
    peakMiB: (peak - before) / 1024,
    checkpointMiB: model.info.checkpointBytes / 2 ** 20,
    captureMiB: capture / 2 ** 20,
    seconds: (performance.now() - t0) / 1000,
  }));
  model.close();
  Deno.exit(0);
}

const args = Deno.args;
const backends = args.includes("--reference") ? ["reference"] : [
  "default",
  ...(args.includes("--whole") ? ["wasm-whole"] : []),
  ...(args.includes("--both") ? ["reference"] : []),
];
const layers4b = Number(args[args.indexOf("--layers-4b") + 1] || 0) || 2;
const root = await Deno.makeTempDir({ prefix: "attnscope-memory-" });
const shapes = [
  {
    name: "gemma-3-270m",
    args: [
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
      "--sliding-window",
      "512",
      "--max-positions",
      "32768",
    ],
    prompt: 32,
    gen: 2,
    fullLayers: 18,
  },
  ...(args.includes("--skip-4b") ? [] : [{
    name: `gemma-3-4b (${layers4b} of 34 layers)`,
    args: [
      "--layers",
      String(layers4b),
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
      "262208",
      "--sliding-window",
      "1024",
      "--max-positions",
      "131072",
      "--scale",
      "0.02",
    ],
    prompt: 8,
    gen: 2,
    fullLayers: 34,
  }]),
];
try {
  for (const s of shapes) {
    const dir = join(root, s.name.split(" ")[0]);
    const made = await new Deno.Command("/usr/bin/python3", {
      args: [
        join(TORCH, "make_checkpoint.py"),
        "gemma3_text",
        dir,
        "--dtype",
        "bf16",
        ...s.args,
      ],
      cwd: TORCH,
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (!made.success) {
      throw new Error(`make_checkpoint.py failed for ${s.name}`);
    }
    for (const backend of backends) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL(import.meta.url).pathname,
          "--child",
          dir,
          String(s.prompt),
          String(s.gen),
          backend,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      const m = JSON.parse(
        new TextDecoder().decode(out.stdout).trim().split("\n").pop()!,
      );
      const ratio = m.peakMiB / m.checkpointMiB;
      console.log(
        `${s.name} [${m.backend} backend]: checkpoint ${
          m.checkpointMiB.toFixed(0)
        } MiB, peak RSS - before ${m.peakMiB.toFixed(0)} MiB ` +
          `(${ratio.toFixed(2)}x; load alone ${
            (m.loadPeakMiB / m.checkpointMiB).toFixed(2)
          }x), capture ${m.captureMiB.toFixed(2)} MiB, ` +
          `prompt ${s.prompt} + ${s.gen}, ${m.seconds.toFixed(1)} s`,
      );
    }
    await Deno.remove(dir, { recursive: true });
  }
} finally {
  await Deno.remove(root, { recursive: true });
}
