/**
 * Sweep memory: peak RSS of a sweep process for 10 and for 200 trials of the
 * same length (128 tokens, every layer), against a demo server in a separate
 * process, so only the sweep's own memory counts. Each capture is reduced as
 * it is decoded, so the two peaks should be within 10% of each other.
 *
 *   deno run -A bench/sweep_memory.ts [--small=10] [--large=200] [--length=128]
 *
 * Exits 1 when the large run's peak is more than 10% above the small one's.
 *
 * @module
 */

import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    small: { type: "string", default: "10" },
    large: { type: "string", default: "200" },
    length: { type: "string", default: "128" },
    child: { type: "string" },
    "api-base": { type: "string" },
  },
});

function peakRssKiB(): number {
  const status = Deno.readTextFileSync("/proc/self/status");
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

if (values.child !== undefined) {
  const { runSweep } = await import("../lib/studies/sweep.ts");
  const n = Number(values.child);
  const depths = [0, 25, 50, 75, 100];
  const sweep = await runSweep("needle", {
    baseUrl: values["api-base"]!,
    grid: {
      lengths: [Number(values.length)],
      depths,
      seeds: n / depths.length,
    },
    concurrency: 2,
    progress: false,
    // A full collection after each trial, so the peak is what the sweep
    // holds, not how long V8 waited to collect.
    onProgress: () => (globalThis as { gc?: () => void }).gc?.(),
  });
  const failed = sweep.trials.filter((t) => t.error !== null).length;
  console.log(
    JSON.stringify({
      trials: sweep.trials.length,
      failed,
      peakKiB: peakRssKiB(),
    }),
  );
  Deno.exit(0);
}

// The server runs in its own process: a child that serves until killed.
const serverScript = `import { startDemoServer } from ${
  JSON.stringify(new URL("../server/serve.ts", import.meta.url).href)
};
const s = await startDemoServer(); console.log(s.baseUrl);`;
const server = new Deno.Command(Deno.execPath(), {
  args: ["eval", serverScript],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
let baseUrl = "";
while (!baseUrl.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) {
    throw new Error(
      "Cannot run the sweep memory bench: the demo server exited",
    );
  }
  baseUrl += value;
}
baseUrl = baseUrl.trim();

async function run(n: number) {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      // A fixed 16 MiB young generation in both runs: V8 otherwise grows
      // its nursery with the allocation rate over the first few dozen
      // trials (about 10 MiB here), which a 10-trial run never reaches, and
      // the comparison would measure that rather than what the sweep holds.
      "--v8-flags=--expose-gc,--min-semi-space-size=16,--max-semi-space-size=16",
      new URL(import.meta.url).pathname,
      `--child=${n}`,
      `--api-base=${baseUrl}`,
      `--length=${values.length}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const r = JSON.parse(
    new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!,
  );
  return { ...r, seconds: (performance.now() - t0) / 1000 };
}

try {
  const small = await run(Number(values.small));
  const large = await run(Number(values.large));
  const ratio = large.peakKiB / small.peakKiB;
  console.log(
    `\n## Sweep memory (needle, ${values.length} tokens, all layers, concurrency 2)\n`,
  );
  console.log("| trials | failed | peak RSS (MiB) | time (s) |");
  console.log("| -----: | -----: | -------------: | -------: |");
  for (const r of [small, large]) {
    console.log(
      `| ${r.trials} | ${r.failed} | ${(r.peakKiB / 1024).toFixed(1)} | ${
        r.seconds.toFixed(1)
      } |`,
    );
  }
  console.log(
    `\npeak RSS ${values.large} / ${values.small} trials: ${
      ratio.toFixed(3)
    }x (must be <= 1.10)`,
  );
  if (ratio > 1.1) Deno.exitCode = 1;
} finally {
  server.kill("SIGTERM");
  await server.status;
}
