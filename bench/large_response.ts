/**
 * Opt-in scale check (GBs of memory, not part of the test suite): a response
 * larger than 512 MiB (T=4096, H=8, 9 layers) decodes from its bytes, where
 * making the body one string (`TextDecoder` / `JSON.parse` /
 * `Response.json()`) fails. Then the same body end to end over loopback from
 * the replay server (`server/replay.ts`), side by side: buffered (the whole
 * body, then decode: the client before streaming) against streaming
 * (`readAttentionStream`: each layer decoded as it arrives). Prints the time
 * to the first and the last layer and the peak memory (VmHWM), each
 * measured in a fresh process so each peak is its own.
 *
 *   deno task bench:large [--python]
 *
 * `--python` also times the Python reference client on the same body.
 *
 * @module
 */

import {
  extractAttentionFromResponse,
  readAttentionStream,
} from "../lib/sources/vllm/extract.ts";
import { startReplayServer } from "../server/replay.ts";
import { benchCapture } from "./_data.ts";

const [mode, file, dtype] = Deno.args;

/** Peak resident memory of this process, from /proc. */
async function peakMiB(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

if (mode === "--buffered" || mode === "--streaming") {
  // One capture from the replay server at `file` (its base URL).
  const t0 = performance.now();
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
    peak_mib: await peakMiB(),
    string_path: stringPath,
  }));
} else {
  const path = await benchCapture(4096, 8, 9);
  const size = (await Deno.stat(path)).size;
  console.log(
    `body: ${(size / 2 ** 20).toFixed(0)} MiB (JS string limit: ${
      ((2 ** 29 - 24) / 2 ** 20).toFixed(0)
    } Mi characters)`,
  );
  console.log("| client | output | time | peak memory |");
  console.log("|---|---|---|---|");
  const decodeMs: Record<string, number> = {};
  for (const dtype of ["float32", "float16"]) {
    const r = await child(["--child", path, dtype]);
    decodeMs[dtype] = r.ms;
    console.error(`string path: ${r.string_path}`);
    console.log(
      `| attnscope, bytes | ${dtype} | ${(r.ms / 1000).toFixed(1)} s | ${
        (r.peak_mib / 1024).toFixed(1)
      } GiB |`,
    );
  }
  // End to end over loopback: the replay server in this process, each
  // client in its own.
  await using replay = await startReplayServer({ files: [path] });
  const outputMiB = (dtype: string) =>
    4096 * 8 * 4096 * 9 * (dtype === "float32" ? 4 : 2) / 2 ** 20;
  console.log("");
  console.log(
    "| end to end (loopback) | output | first layer | last layer | vs decode alone | peak memory | peak / output |",
  );
  console.log("|---|---|---|---|---|---|---|");
  for (const dtype of ["float32", "float16"]) {
    for (const how of ["--buffered", "--streaming"]) {
      const r = await child([how, replay.baseUrl, dtype]);
      console.log(
        `| ${how.slice(2)} | ${dtype} | ${(r.first_ms / 1000).toFixed(1)} s | ${
          (r.ms / 1000).toFixed(1)
        } s | ${(r.ms / decodeMs[dtype]).toFixed(2)}x | ${
          (r.peak_mib / 1024).toFixed(2)
        } GiB | ${(r.peak_mib / outputMiB(dtype)).toFixed(2)}x |`,
      );
    }
  }
  if (Deno.args.includes("--python")) {
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
      `| Python reference | float32 | ${(r.ms / 1000).toFixed(1)} s | ${
        (r.peak_kib / 2 ** 20).toFixed(1)
      } GiB |`,
    );
  }
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
