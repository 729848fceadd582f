/**
 * loadAttention side by side: the formats researchers save (safetensors,
 * .npy, .npz stored and deflated) at H=8, 3 layers (T=512 for speed,
 * T=1024 for memory), the zip readers
 * it could use, and its peak memory.
 *
 * Speed: `deno bench -A bench/sources_bench.ts`
 * Peak memory (each format loaded from a file in a fresh process; the
 * growth of the peak resident set over the output's bytes):
 * `deno task bench:sources`
 */

import { Unzip, UnzipInflate, unzipSync, zipSync } from "fflate";
import { unzipRaw } from "unzipit";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { seededRandom } from "../lib/random.ts";

const H = 8;
const LAYERS = 3;
/** Tokens: large for the memory ratio, small for the (short) speed runs. */
const T = Deno.args[0] === "memory" || Deno.args[0] === "child" ? 1024 : 512;

/** A causal softmax layer, [1, H, T, T] (transformers' layout), float32. */
function layer(seed: number): Float32Array {
  const random = seededRandom(seed);
  const out = new Float32Array(H * T * T);
  for (let h = 0; h < H; h++) {
    for (let q = 0; q < T; q++) {
      const base = (h * T + q) * T;
      let total = 0;
      for (let k = 0; k <= q; k++) {
        // Peaked, as real attention is: most keys get almost nothing.
        const e = Math.exp(8 * random() ** 4);
        out[base + k] = e;
        total += e;
      }
      for (let k = 0; k <= q; k++) out[base + k] /= total;
    }
  }
  return out;
}

/** Writes the bench files once into a temp directory; returns their paths. */
async function makeFiles(): Promise<Record<string, string>> {
  const dir = await Deno.makeTempDir({ prefix: "attnscope-sources-bench-" });
  const layers = Array.from({ length: LAYERS }, (_, i) => layer(i + 1));
  const npys = Object.fromEntries(
    layers.map((
      data,
      i,
    ) => [`layers.${i}.npy`, toNpy({ data, shape: [1, H, T, T] })]),
  );
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (let i = 0; i < LAYERS; i++) {
    header[`layers.${i}`] = {
      dtype: "F32",
      shape: [1, H, T, T],
      data_offsets: [offset, offset + H * T * T * 4],
    };
    offset += H * T * T * 4;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const st = new Uint8Array(8 + json.length + offset);
  new DataView(st.buffer).setBigUint64(0, BigInt(json.length), true);
  st.set(json, 8);
  layers.forEach((l, i) =>
    st.set(new Uint8Array(l.buffer), 8 + json.length + i * H * T * T * 4)
  );
  const stacked = new Float32Array(LAYERS * H * T * T);
  layers.forEach((l, i) => stacked.set(l, i * H * T * T));
  const files: Record<string, Uint8Array> = {
    "safetensors": st,
    "npy": toNpy({ data: stacked, shape: [LAYERS, 1, H, T, T] }),
    "npz stored": zipSync(npys, { level: 0 }),
    "npz deflated": zipSync(npys, { level: 6 }),
  };
  const paths: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(files)) {
    paths[name] = `${dir}/${name.replace(" ", "_")}.${name.split(" ")[0]}`;
    await Deno.writeFile(paths[name], bytes);
  }
  return paths;
}

/** VmHWM (peak resident set) of this process, in bytes. */
function peakRss(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Resets VmHWM to the current resident set (Linux: write 5 to clear_refs). */
function resetPeak(): void {
  Deno.writeTextFileSync("/proc/self/clear_refs", "5");
}

const mode = Deno.args[0];
if (mode === "child") {
  // One load from a file, in a fresh process: the peak's growth over the
  // output's bytes.
  const path = Deno.args[1];
  const tiny = await Deno.makeTempFile({ suffix: ".npy" });
  await Deno.writeFile(
    tiny,
    toNpy({ data: new Float32Array([1]), shape: [1, 1, 1] }),
  );
  await loadAttention(tiny, { check: false }); // warm the code paths
  (globalThis as { gc?: () => void }).gc?.();
  resetPeak();
  const before = peakRss();
  const started = performance.now();
  const loaded = await loadAttention(path, { check: false });
  const ms = performance.now() - started;
  const after = peakRss();
  const output = Object.values(loaded.attention).reduce(
    (n, l) => n + l.scores.data.byteLength,
    0,
  );
  console.log(JSON.stringify({ growth: after - before, output, ms }));
} else if (mode === "memory") {
  const paths = await makeFiles();
  console.log(
    `loadAttention from a file, T=${T} H=${H} ${LAYERS} layers (float32 output)`,
  );
  console.log(
    "format        file MB  output MB  peak growth MB  ratio  time ms",
  );
  for (const [name, path] of Object.entries(paths)) {
    const { stdout } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--v8-flags=--expose-gc",
        new URL(import.meta.url).pathname,
        "child",
        path,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(stdout));
    const mb = (n: number) => (n / 2 ** 20).toFixed(1).padStart(7);
    console.log(
      `${name.padEnd(13)} ${mb((await Deno.stat(path)).size)}   ${
        mb(r.output)
      }    ${mb(r.growth)}        ${(r.growth / r.output).toFixed(2)}   ${
        r.ms.toFixed(0).padStart(6)
      }`,
    );
  }
  await Deno.remove(paths.npy.replace(/\/[^/]+$/, ""), { recursive: true });
} else {
  const paths = await makeFiles();
  const bytes = Object.fromEntries(
    await Promise.all(
      Object.entries(paths).map(async ([k, p]) => [k, await Deno.readFile(p)]),
    ),
  ) as Record<string, Uint8Array>;

  for (const name of Object.keys(paths)) {
    Deno.bench({
      name: `loadAttention ${name} (file)`,
      group: "load",
      baseline: name === "safetensors",
      n: 3,
      warmup: 1,
      async fn() {
        await loadAttention(paths[name], { check: false });
      },
    });
  }
  Deno.bench({
    name: "loadAttention safetensors + checkCapture",
    group: "load",
    n: 3,
    warmup: 1,
    async fn() {
      await loadAttention(paths.safetensors);
    },
  });

  for (const kind of ["npz stored", "npz deflated"]) {
    const zip = bytes[kind];
    Deno.bench({
      name: `fflate Unzip, streamed (${kind})`,
      group: `zip ${kind}`,
      baseline: true,
      n: 3,
      warmup: 1,
      fn() {
        const unzip = new Unzip();
        unzip.register(UnzipInflate);
        let n = 0;
        unzip.onfile = (file) => {
          file.ondata = (_, chunk) => (n += chunk.length);
          file.start();
        };
        const step = 4 << 20;
        for (let at = 0; at < zip.length; at += step) {
          unzip.push(zip.subarray(at, at + step), at + step >= zip.length);
        }
        if (n === 0) throw new Error("nothing read");
      },
    });
    Deno.bench({
      name: `fflate unzipSync, whole entries (${kind})`,
      group: `zip ${kind}`,
      n: 3,
      warmup: 1,
      fn() {
        unzipSync(zip);
      },
    });
    Deno.bench({
      name: `unzipit, whole entries (${kind})`,
      group: `zip ${kind}`,
      n: 3,
      warmup: 1,
      async fn() {
        const { entries } = await unzipRaw(zip);
        for (const e of entries) await e.arrayBuffer();
      },
    });
  }
  addEventListener("unload", () => {
    Deno.removeSync(paths.npy.replace(/\/[^/]+$/, ""), { recursive: true });
  });
}
