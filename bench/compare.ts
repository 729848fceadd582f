/**
 * Side-by-side: attnscope's decoder against the Python reference client, in
 * one run, on the same response bodies (T = 512, 2048, 4096; H = 8; 3
 * layers; gzip level 9), from the body bytes already in memory to per-layer
 * arrays, with float32 and with float16 output. Prints a markdown table of
 * min and median times and the Python / attnscope ratios.
 *
 * Runs alternate between the two clients so drift on a shared machine hits
 * both alike. Usage:
 *
 *   deno run -A bench/compare.ts [--sizes=512,2048,4096] [--runs=5]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { benchCapture } from "./_data.ts";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "512,2048,4096" },
    runs: { type: "string", default: "5" },
  },
});
const sizes = values.sizes.split(",").map(Number);
const runs = Number(values.runs);
const reference = new URL("reference_client.py", import.meta.url).pathname;

type DType = "float32" | "float16";

/** One timed Python run (it loads the file, then times json.loads + extract). */
async function python(
  path: string,
  dtype: DType,
): Promise<{ ms: number; checksum: number }> {
  const { success, stdout, stderr } = await new Deno.Command("python3", {
    args: [reference, path, dtype, "1"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(
      `Cannot run the Python reference client: ${
        new TextDecoder().decode(stderr).trim()
      }; it needs python3 with numpy`,
    );
  }
  const out = JSON.parse(new TextDecoder().decode(stdout));
  return { ms: out.runs_ms[0], checksum: out.checksum };
}

/** One timed attnscope run, from the bytes in memory. */
async function attnscope(
  body: Uint8Array,
  dtype: DType,
): Promise<{ ms: number; checksum: number }> {
  const t0 = performance.now();
  const capture = await extractAttentionFromResponse(body, { dtype });
  const ms = performance.now() - t0;
  // The same check the Python side computes: sum of the last row of head 0.
  let checksum = 0;
  for (const layer of Object.values(capture!)) {
    for (const v of layer.scores.row(-1, 0)) checksum += v;
  }
  return { ms, checksum };
}

const min = (xs: number[]) => Math.min(...xs);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2
    ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (xs: number[]) =>
  `${min(xs).toFixed(0)} (${median(xs).toFixed(0)})`;

const rows: string[] = [];
for (const t of sizes) {
  const path = await benchCapture(t);
  const body = await Deno.readFile(path);
  for (const dtype of ["float32", "float16"] as const) {
    // Warm-up: JIT, worker module cache, first touch of memory.
    await attnscope(body, dtype);
    const py: number[] = [];
    const ours: number[] = [];
    for (let i = 0; i < runs; i++) {
      const p = await python(path, dtype);
      py.push(p.ms);
      const a = await attnscope(body, dtype);
      ours.push(a.ms);
      if (Math.abs(p.checksum - a.checksum) > 1e-3) {
        throw new Error(
          `Cannot compare: checksums differ (${p.checksum} vs ${a.checksum})`,
        );
      }
    }
    const row = `| ${t} | ${(body.length / 1e6).toFixed(0)} MB | ${dtype} | ${
      fmt(py)
    } | ${fmt(ours)} | ${(min(py) / min(ours)).toFixed(2)}x | ${
      (median(py) / median(ours)).toFixed(2)
    }x |`;
    console.error(row);
    rows.push(row);
  }
}

console.log(
  `\nDecode from body bytes to per-layer arrays, H=8, 3 layers, gzip level 9; ${runs} alternating runs each, min (median) ms, on ${navigator.hardwareConcurrency} cores.\n`,
);
console.log(
  "| T | body | output | Python reference | attnscope | ratio (min) | ratio (median) |",
);
console.log("|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
