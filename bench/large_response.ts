/**
 * Opt-in scale check (GBs of memory, not part of the test suite): a response
 * larger than 512 MiB (T=4096, H=8, 9 layers) decodes from its bytes, where
 * making the body one string (`TextDecoder` / `JSON.parse` /
 * `Response.json()`) fails. Prints the time and the peak memory (VmHWM),
 * measured in a fresh process per dtype so each peak is its own.
 *
 *   deno run -A bench/large_response.ts [--python]
 *
 * `--python` also times the Python reference client on the same body.
 *
 * @module
 */

import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { benchCapture } from "./_data.ts";

const [mode, file, dtype] = Deno.args;

/** Peak resident memory of this process, from /proc. */
async function peakMiB(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

if (mode === "--child") {
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
  for (const dtype of ["float32", "float16"]) {
    const { stdout, success, stderr } = await new Deno.Command(
      Deno.execPath(),
      {
        args: [
          "run",
          "-A",
          new URL(import.meta.url).pathname,
          "--child",
          path,
          dtype,
        ],
        stdout: "piped",
        stderr: "piped",
      },
    ).output();
    if (!success) throw new Error(new TextDecoder().decode(stderr));
    const r = JSON.parse(new TextDecoder().decode(stdout));
    console.error(`string path: ${r.string_path}`);
    console.log(
      `| attnscope, bytes | ${dtype} | ${(r.ms / 1000).toFixed(1)} s | ${
        (r.peak_mib / 1024).toFixed(1)
      } GiB |`,
    );
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
