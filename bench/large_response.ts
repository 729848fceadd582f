/**
 * Opt-in scale check (GBs of memory, not part of the test suite): two large
 * responses, the 373 MB body (T=4096, H=8, 3 layers of dense softmax, gzip
 * 6: a compressed layer is a third of its float16 output) and the 561 MiB
 * body (T=4096, H=8, 9 layers, which `JSON.parse` cannot take), to float16
 * and float32. For each, side by side in fresh processes: decode alone
 * (the body already in memory, `extractAttentionFromResponse` on its
 * bytes) and streaming end to end over loopback from the replay server
 * (`server/replay.ts`, in this process) with `readAttentionStream`. Prints
 * the time to the first and the last layer, the output bytes, the client's
 * peak resident memory (VmHWM from /proc/self/status) and the bound,
 * 1.25 x output + 150 MB.
 *
 *   deno task bench:large [--runs N] [--buffered] [--python]
 *
 * Each row's times are medians of N interleaved pairs (3 by default).
 * `--buffered` also times the whole body then decode over loopback (the
 * client before streaming); `--python` times the Python reference client on
 * the 561 MiB body.
 *
 * @module
 */

import {
  extractAttentionFromResponse,
  readAttentionStream,
} from "../lib/sources/vllm/extract.ts";
import { startReplayServer } from "../server/replay.ts";
import { benchCapture } from "./_data.ts";
import { gzipSync } from "node:zlib";
import process from "node:process";

const [mode, file, dtype] = Deno.args;
/** Interleaved runs per row (`--runs N`). */
const RUNS = Deno.args.includes("--runs")
  ? Math.max(1, Number(Deno.args[Deno.args.indexOf("--runs") + 1]) || 1)
  : 3;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** CPU time of this process (all its threads, user and system). */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** Peak resident memory of this process, from /proc. */
async function peakMiB(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

if (mode === "--buffered" || mode === "--streaming") {
  // One capture from the replay server at `file` (its base URL).
  const t0 = performance.now();
  const cpu0 = cpuMs();
  let first = 0;
  let bytes = 0;
  let layers: { scores: { row(q: number, h: number): ArrayLike<number> } }[];
  const response = await fetch(`${file}/chat/completions`, {
    method: "POST",
    body: "{}",
  });
  if (mode === "--buffered") {
    const body = new Uint8Array(await response.arrayBuffer());
    bytes = body.length;
    const capture = await extractAttentionFromResponse(body, {
      dtype: dtype as "float32" | "float16",
    });
    first = performance.now() - t0;
    layers = Object.values(capture!);
  } else {
    const { attention } = await readAttentionStream(response, {
      dtype: dtype as "float32" | "float16",
      onProgress: (e) => {
        bytes = e.bytes;
        if (e.layers === 1 && first === 0) first = performance.now() - t0;
      },
    });
    layers = Object.values(attention!);
  }
  const ms = performance.now() - t0;
  for (const l of layers) {
    let sum = 0;
    for (const v of Array.from(l.scores.row(-1, 0))) sum += v;
    if (Math.abs(sum - 1) > 0.01) throw new Error(`last row sums to ${sum}`);
  }
  console.log(JSON.stringify({
    bytes,
    layers: layers.length,
    first_ms: first,
    ms,
    cpu_ms: cpuMs() - cpu0,
    peak_mib: await peakMiB(),
  }));
} else if (mode === "--child") {
  // One decode, in a process of its own.
  const body = await Deno.readFile(file);
  let stringPath = "";
  try {
    JSON.parse(new TextDecoder().decode(body));
    stringPath = "decoded (body under the string limit?)";
  } catch (error) {
    stringPath = `fails: ${(error as Error).message}`;
  }
  const t0 = performance.now();
  const cpu0 = cpuMs();
  const capture = await extractAttentionFromResponse(body, {
    dtype: dtype as "float32" | "float16",
  });
  const ms = performance.now() - t0;
  const layers = Object.values(capture!);
  for (const l of layers) {
    let sum = 0;
    for (const v of l.scores.row(-1, 0)) sum += v;
    if (Math.abs(sum - 1) > 0.01) {
      throw new Error(`layer ${l.layer}: last row sums to ${sum}`);
    }
  }
  console.log(JSON.stringify({
    body_mib: body.length / 2 ** 20,
    layers: layers.length,
    shape: layers[0].scores.shape,
    ms,
    output_bytes: layers.reduce((n, l) => n + l.scores.data.byteLength, 0),
    cpu_ms: cpuMs() - cpu0,
    peak_mib: await peakMiB(),
    string_path: stringPath,
  }));
} else {
  const bodies = [
    { name: "T=4096 x 3, dense", path: await denseCapture() },
    { name: "T=4096 x 9", path: await benchCapture(4096, 8, 9) },
  ];
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
  console.log(`load average at the start: ${load}`);
  console.log(
    "peak = VmHWM of the client process (peak RSS); bound = 1.25 x output + 150 MB",
  );
  console.log(
    `times: medians of ${RUNS} interleaved runs (decode alone, streaming); peak: the largest of the streaming runs`,
  );
  console.log("");
  console.log(
    "| body | dtype | decode alone (bytes) | streaming end to end | vs decode alone | first layer | output | peak RSS | bound | peak / output | within bound |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|---|---|");
  const cpuRows: string[] = [];
  for (const body of bodies) {
    const size = (await Deno.stat(body.path)).size;
    // The replay server in this process, each client in its own.
    await using replay = await startReplayServer({ files: [body.path] });
    for (const dtype of ["float16", "float32"]) {
      // Interleaved pairs, medians of each: one pair on a noisy machine
      // was seen anywhere from 0.96x to 1.25x.
      const alones = [], streams = [];
      for (let i = 0; i < RUNS; i++) {
        alones.push(await child(["--child", body.path, dtype]));
        const before = cpuMs();
        const run = await child(["--streaming", replay.baseUrl, dtype]);
        streams.push({ ...run, server_cpu_ms: cpuMs() - before });
      }
      const alone = { ...alones[0], ms: median(alones.map((a) => a.ms)) };
      const r = {
        ms: median(streams.map((a) => a.ms)),
        first_ms: median(streams.map((a) => a.first_ms)),
        peak_mib: Math.max(...streams.map((a) => a.peak_mib)),
        cpu_ms: median(streams.map((a) => a.cpu_ms)),
        server_cpu_ms: median(streams.map((a) => a.server_cpu_ms)),
      };
      alone.cpu_ms = median(alones.map((a) => a.cpu_ms));
      cpuRows.push(
        `| ${body.name} | ${dtype} | ${(alone.cpu_ms / 1000).toFixed(1)} s | ${
          (r.cpu_ms / 1000).toFixed(1)
        } s | ${(r.server_cpu_ms / 1000).toFixed(1)} s | ${
          ((r.cpu_ms + r.server_cpu_ms) / alone.cpu_ms).toFixed(2)
        }x |`,
      );
      const outMiB = alone.output_bytes / 2 ** 20;
      const bound = 1.25 * outMiB + 150e6 / 2 ** 20;
      console.log(
        `| ${body.name}, ${(size / 1e6).toFixed(0)} MB (${
          (size / 2 ** 20).toFixed(0)
        } MiB) | ${dtype} | ${(alone.ms / 1000).toFixed(1)} s | ${
          (r.ms / 1000).toFixed(1)
        } s | ${(r.ms / alone.ms).toFixed(2)}x | ${
          (r.first_ms / 1000).toFixed(1)
        } s | ${outMiB.toFixed(0)} MiB | ${r.peak_mib.toFixed(0)} MiB | ${
          bound.toFixed(0)
        } MiB | ${(r.peak_mib / outMiB).toFixed(2)}x | ${
          r.peak_mib <= bound ? "yes" : "NO"
        } |`,
      );
    }
  }
  console.log("");
  console.log(
    "CPU time over the timed part (medians, all threads): decode alone; streaming, the client and the replay server (this process) while it served; their sum over decode alone's",
  );
  console.log("");
  console.log(
    "| body | dtype | decode alone CPU | streaming client CPU | replay server CPU | (client + server) / alone |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const row of cpuRows) console.log(row);
  if (Deno.args.includes("--buffered")) {
    console.log("");
    console.log(
      "| buffered (whole body, then decode) | output | time | peak RSS |",
    );
    console.log("|---|---|---|---|");
    for (const body of bodies) {
      await using replay = await startReplayServer({ files: [body.path] });
      for (const dtype of ["float16", "float32"]) {
        const r = await child(["--buffered", replay.baseUrl, dtype]);
        console.log(
          `| ${body.name} | ${dtype} | ${(r.ms / 1000).toFixed(1)} s | ${
            r.peak_mib.toFixed(0)
          } MiB |`,
        );
      }
    }
  }
  if (Deno.args.includes("--python")) {
    const path = bodies[1].path;
    const script = `
import sys, time, json, resource
sys.path.insert(0, ${JSON.stringify(new URL(".", import.meta.url).pathname)})
from reference_client import extract_attention_from_response
body = open(${JSON.stringify(path)}, "rb").read()
t = time.perf_counter()
out = extract_attention_from_response(json.loads(body))
print(json.dumps({"ms": (time.perf_counter() - t) * 1000, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
`;
    const { stdout, success, stderr } = await new Deno.Command("python3", {
      args: ["-c", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!success) throw new Error(new TextDecoder().decode(stderr));
    const r = JSON.parse(new TextDecoder().decode(stdout));
    console.log(
      `| Python reference, 561 MiB | float32 | ${
        (r.ms / 1000).toFixed(1)
      } s | ${(r.peak_kib / 2 ** 20).toFixed(1)} GiB |`,
    );
  }
}

/**
 * The 373 MB body (the issue's "363 MB" mid-sized body): T=4096, 8 heads, 3 layers of causal softmax over noisy
 * logits, so fewer values round to 0 than in `make_bench_data.py`'s peaked
 * rows and the gzip (level 6) is about 2.9x rather than 5.5x: the
 * mid-sized body of the issue, where a compressed layer is a third of its
 * float16 output. Generated once into `bench/.data/`.
 */
async function denseCapture(): Promise<string> {
  const t = 4096, h = 8, layers = 3;
  const path = new URL(".data/capture-dense-T4096-H8-L3.json", import.meta.url)
    .pathname;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    // Not generated yet.
  }
  console.error(`generating ${path} ...`);
  // A fresh clone has no bench/.data yet.
  await Deno.mkdir(new URL(".data/", import.meta.url), { recursive: true });
  const file = await Deno.open(path + ".tmp", {
    write: true,
    create: true,
    truncate: true,
  });
  const write = async (text: string) => {
    const bytes = new TextEncoder().encode(text);
    for (let n = 0; n < bytes.length;) n += await file.write(bytes.subarray(n));
  };
  await write(
    `{"id": "chatcmpl-dense", "object": "chat.completion", "model": "bench-model", "choices": [{"index": 0, "message": {"role": "assistant", "content": "1729"}, "finish_reason": "stop"}], "attn_capture_data": [`,
  );
  let s = 12345;
  const random = () => {
    s = (s + 0x6d2b79f5) | 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const row = new Float64Array(t);
  for (let layer = 0; layer < layers; layer++) {
    const scores = new Float16Array(t * h * t);
    for (let q = 0; q < t; q++) {
      for (let head = 0; head < h; head++) {
        let sum = 0;
        for (let k = 0; k <= q; k++) {
          const v = Math.exp(3.2 * (random() - 0.5) * 4 - 0.002 * (q - k));
          row[k] = v;
          sum += v;
        }
        const o = (q * h + head) * t;
        for (let k = 0; k <= q; k++) scores[o + k] = row[k] / sum;
      }
    }
    const data = gzipSync(new Uint8Array(scores.buffer), { level: 6 })
      .toBase64();
    const meta = { prompt_len: t - 8, total_len: t };
    await write(
      `${
        layer ? ", " : ""
      }{"layer_idx": ${layer}, "data": "${data}", "shape": [${t}, ${h}, ${t}], "dtype": "torch.float16", "token_meta": ${
        JSON.stringify(meta)
      }}`,
    );
  }
  await write(`]}`);
  file.close();
  await Deno.rename(path + ".tmp", path);
  return path;
}

/** Runs this file in a fresh process with `args`; its one JSON line. */
async function child(args: string[]) {
  const { stdout, success, stderr } = await new Deno.Command(
    Deno.execPath(),
    {
      args: ["run", "-A", new URL(import.meta.url).pathname, ...args],
      stdout: "piped",
      stderr: "piped",
    },
  ).output();
  if (!success) throw new Error(new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}
