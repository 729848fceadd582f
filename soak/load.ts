/**
 * The demo server under load, on a loopback port, as a separate process
 * (`deno task serve`), so its memory is its own:
 *
 * 1. alone: 50 concurrent all-layer captures of distinct random study
 *    prompts (needle and codename forms), each answered right;
 * 2. beside a long generation: 50 more while a generation that would run to
 *    the end of the context keeps the model busy;
 * 3. the issue's mix: 50 more, and at the same time 3 clients stalled
 *    mid-body, 1 long generation abandoned after 3 s, 300 garbage requests
 *    (each must get a 4xx JSON error, never a 5xx).
 *
 * Then the server must be healthy (its queues empty, a capture answered),
 * the model thread's buffers back to where they were, and the process's
 * resident memory within 10% of where it was before the mix (after phases
 * 1 and 2 have sized the allocator's arenas; the fresh figure is printed
 * too). Prints p50/p99
 * latency of the captures of each phase and the memory figures; exits 1 on
 * any failure.
 *
 * Usage: `deno run -A soak/load.ts [--seed N] [--captures 50]`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { captureAttention } from "../lib/client/client.ts";
import { loadDemoModel } from "../server/model/mod.ts";
import { seededRandom } from "../lib/random.ts";
import {
  codenamePrompt,
  needlePrompt,
  type RecallPrompt,
} from "../tests/model_prompts.ts";

const ROOT = new URL("../", import.meta.url);
const NEVER_ENDS = "xxxxxxxxxxxxxx";

// Not strict: `deno task soak` passes every part the same flags.
const { values: flags } = parseArgs({
  args: Deno.args,
  strict: false,
  options: {
    seed: { type: "string" },
    captures: { type: "string", default: "50" },
  },
});
const seed = typeof flags.seed === "string"
  ? Number(flags.seed)
  : Math.floor(Math.random() * 2 ** 31);
const CAPTURES = Number(flags.captures);
if (!Number.isInteger(seed) || !(Number.isInteger(CAPTURES) && CAPTURES > 0)) {
  console.error(
    `Cannot run soak/load.ts: --seed ${flags.seed} or --captures ${flags.captures} is not a whole number; pass e.g. --seed 7 --captures 50`,
  );
  Deno.exit(2);
}
const random = seededRandom(seed);
const failures: string[] = [];

function fail(what: string): void {
  failures.push(what);
  console.error(`  FAIL ${what}`);
}

/**
 * Starts the server as `deno task serve` does (its command read from
 * deno.json) on a free port; resolves with its URL and process.
 */
async function startServer() {
  const config = JSON.parse(
    await Deno.readTextFile(new URL("deno.json", ROOT)),
  );
  const [, ...serve] = (config.tasks.serve as string).split(/\s+/);
  const child = new Deno.Command(Deno.execPath(), {
    args: [...serve, "--port", "0", "--enable-attention-instrumentation"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/\/v1\b/.test(text)) {
    const { value, done } = await reader.read();
    if (done) {
      throw new Error(`Cannot start the demo server: it printed ${text}`);
    }
    text += value;
  }
  // Keep draining stdout so the server never blocks on it.
  (async () => {
    while (!(await reader.read()).done);
  })();
  const baseUrl = /(http:\/\/[^\s,]+\/v1)/.exec(text)![1];
  return { child, baseUrl, url: baseUrl.replace(/\/v1$/, "") };
}

/** Resident memory of a process in MiB (Linux), or NaN where unknown. */
function rssMiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
  } catch {
    return NaN;
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

/** A prompt with the reply the model gives it alone, on this thread. */
interface Case extends RecallPrompt {
  reply: string;
}

const model = loadDemoModel();
const seen = new Set<string>();
let modelMisses = 0;

/**
 * `n` distinct random study prompts (needle and codename forms, 4..23
 * records) that the model answers right when asked alone, with that reply:
 * under load the server must give exactly it. (The constructed model misses
 * a few random prompts; those are skipped and counted, as they say nothing
 * about the server.)
 */
function prompts(n: number): Case[] {
  const out: Case[] = [];
  while (out.length < n) {
    const records = 4 + Math.floor(random() * 20);
    const p = out.length % 2 === 0
      ? needlePrompt(random, records)
      : codenamePrompt(random, records);
    if (seen.has(p.text)) continue;
    seen.add(p.text);
    const input = model.renderChat([{
      role: "user",
      parts: [{ type: "text", text: p.text }],
    }]);
    const result = model.generate(input, { maxTokens: 24, temperature: 0 });
    const reply = model.decode(result.tokens);
    if (!reply.toLowerCase().includes(p.expected.toLowerCase())) {
      modelMisses++;
      continue;
    }
    out.push({ ...p, reply });
  }
  return out;
}

/** One capture, checked: the answer, both layers, and their shapes. */
async function capture(baseUrl: string, p: Case): Promise<number> {
  const start = performance.now();
  try {
    const r = await captureAttention({
      baseUrl,
      prompt: p.text,
      layers: "all",
      temperature: 0,
      maxTokens: 24,
    });
    const ms = performance.now() - start;
    if (r.text !== p.reply) {
      fail(
        `answered ${JSON.stringify(r.text)} under load, ${
          JSON.stringify(p.reply)
        } alone`,
      );
    }
    const usage = r.response.usage as { completion_tokens: number };
    const T = r.promptLen + usage.completion_tokens - 1;
    const layers = Object.keys(r.attention ?? {}).map(Number);
    if (layers.join() !== "0,1") fail(`layers ${layers} instead of 0,1`);
    for (const l of layers) {
      const { queryLength, keyLength } = r.attention![l].scores;
      if (queryLength !== T || keyLength !== T) {
        fail(`layer ${l} is ${queryLength}x${keyLength}, not ${T}x${T}`);
      }
    }
    return ms;
  } catch (error) {
    fail(`capture failed: ${(error as Error).message}`);
    return performance.now() - start;
  }
}

async function captureBatch(baseUrl: string, cases: Case[], label: string) {
  const start = performance.now();
  const ms = await Promise.all(cases.map((p) => capture(baseUrl, p)));
  const wall = performance.now() - start;
  const p50 = percentile(ms, 0.5), p99 = percentile(ms, 0.99);
  console.log(
    `  ${label}: ${CAPTURES} captures in ${
      (wall / 1000).toFixed(1)
    } s; latency p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`,
  );
  return { p50, p99, wall };
}

function longGeneration(baseUrl: string, signal: AbortSignal) {
  return fetch(`${baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "attnscope-demo",
      messages: [{ role: "user", content: NEVER_ENDS }],
      temperature: 0,
    }),
    signal,
  }).then(
    async (res) => {
      fail(
        `the long generation was answered (${res.status}) before it was abandoned`,
      );
      await res.body?.cancel();
    },
    () => {},
  );
}

async function gauges(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) =>
    Number(
      new RegExp(`^${name}(\\{[^}]*\\})? (\\d+)$`, "m").exec(text)?.[2],
    );
  return {
    running: read("vllm:num_requests_running"),
    waiting: read("vllm:num_requests_waiting"),
    queuedTokens: read("attnscope:queued_tokens"),
    externalMiB: read("attnscope:engine_external_bytes") / 2 ** 20,
    heapMiB: read("attnscope:engine_heap_used_bytes") / 2 ** 20,
  };
}

/** Sends headers and half a body, then says nothing more until closed. */
async function stalledClient(url: string): Promise<Deno.TcpConn> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await conn.write(new TextEncoder().encode(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: 4096\r\n\r\n{"model": "attnscope-demo", "messages": [{"role": "user", "content": "he`,
  ));
  return conn;
}

/** A seeded mix of malformed requests, each of which deserves a 4xx. */
function garbageRequest(url: string, i: number): Request {
  const chat = `${url}/v1/chat/completions`;
  const post = (body: string) =>
    new Request(chat, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
  const good = {
    model: "attnscope-demo",
    messages: [{ role: "user", content: "a: 1\na:" }],
  };
  const junk = () =>
    Array.from(
      { length: 1 + Math.floor(random() * 60) },
      () => String.fromCharCode(32 + Math.floor(random() * 95)),
    ).join("");
  const mutations: (() => Request)[] = [
    () => post(junk()),
    () => post(JSON.stringify(good).slice(0, 5 + Math.floor(random() * 40))),
    () => post(""),
    () => post(JSON.stringify([good])),
    () => post(String(random())),
    () => post(JSON.stringify({ ...good, model: junk() })),
    () => post(JSON.stringify({ ...good, messages: junk() })),
    () => post(JSON.stringify({ ...good, messages: [] })),
    () => post(JSON.stringify({ ...good, messages: [{ role: junk() }] })),
    () => post(JSON.stringify({ ...good, temperature: 3 + random() })),
    () =>
      post(JSON.stringify({ ...good, max_tokens: -Math.floor(random() * 9) })),
    () => post(JSON.stringify({ ...good, max_tokens: 1e9 })),
    () => post(JSON.stringify({ ...good, attn_capture: junk() })),
    () =>
      post(
        JSON.stringify({
          ...good,
          attn_capture: 1,
          attn_capture_layers: "0,9",
        }),
      ),
    () => post(JSON.stringify({ ...good, attn_capture_layers: [0, 1] })),
    () => post(JSON.stringify({ ...good, stop: 5 })),
    () => post(JSON.stringify({ ...good, n: 2 + Math.floor(random() * 5) })),
    () => post(JSON.stringify({ ...good, logprobs: junk() })),
    () => post(JSON.stringify({ ...good, top_logprobs: 50, logprobs: true })),
    () =>
      post(JSON.stringify({
        ...good,
        messages: [{
          role: "user",
          content: [{
            type: "image_url",
            image_url: { url: "https://x/y.png" },
          }],
        }],
      })),
    () => new Request(chat, { method: "GET" }),
    () => new Request(`${url}/v1/models`, { method: "POST", body: "{}" }),
    () => new Request(`${url}/v2/${encodeURIComponent(junk())}`),
    () => new Request(`${url}/health`, { method: "DELETE" }),
  ];
  return mutations[i % mutations.length]();
}

async function garbage(url: string, count: number): Promise<void> {
  const byStatus = new Map<number, number>();
  await Promise.all(Array.from({ length: count }, async (_, i) => {
    const request = garbageRequest(url, i);
    try {
      const res = await fetch(request);
      byStatus.set(res.status, (byStatus.get(res.status) ?? 0) + 1);
      const text = await res.text();
      let message = "";
      try {
        message = JSON.parse(text).error?.message ?? "";
      } catch { /* checked below */ }
      if (
        res.status < 400 || res.status >= 500 || !message.startsWith("Cannot ")
      ) {
        fail(
          `garbage ${request.method} ${
            new URL(request.url).pathname
          } #${i}: ${res.status} ${text.slice(0, 200)}`,
        );
      }
    } catch (error) {
      fail(`garbage #${i} got no answer: ${(error as Error).message}`);
    }
  }));
  console.log(
    `  ${count} garbage requests: ${
      [...byStatus].sort().map(([s, n]) => `${n} x ${s}`).join(", ")
    }`,
  );
}

async function waitIdle(url: string, ms: number) {
  const end = performance.now() + ms;
  while (true) {
    const g = await gauges(url);
    if (g.running === 0 && g.waiting === 0 && g.queuedTokens === 0) return g;
    if (performance.now() > end) return g;
    await new Promise((r) => setTimeout(r, 100));
  }
}

console.log(`soak/load: seed ${seed}, ${CAPTURES} captures a phase`);
// Every prompt and its reply alone, before the server starts.
const warmUp = prompts(2);
const [aloneCases, besideCases, mixCases, lastCases] = [
  prompts(CAPTURES),
  prompts(CAPTURES),
  prompts(CAPTURES),
  prompts(1),
];
console.log(
  `  ${
    4 + 3 * CAPTURES
  } prompts answered right alone (${modelMisses} the model misses skipped)`,
);
const server = await startServer();
try {
  const freshRss = rssMiB(server.child.pid);
  for (const p of warmUp) await capture(server.baseUrl, p); // compile
  const alone = await captureBatch(server.baseUrl, aloneCases, "alone");
  const beside = new AbortController();
  const besideLong = longGeneration(server.baseUrl, beside.signal);
  let busy = await gauges(server.url);
  for (let i = 0; i < 100 && busy.running < 1; i++) {
    await new Promise((r) => setTimeout(r, 50));
    busy = await gauges(server.url);
  }
  const withLong = await captureBatch(
    server.baseUrl,
    besideCases,
    "beside a long generation",
  );
  const stillRunning = (await gauges(server.url)).running;
  if (busy.running < 1 || stillRunning < 1) {
    fail("the long generation was not running throughout the captures");
  }
  beside.abort();
  await besideLong;

  // The starting point: after the two bursts above, so the allocator's
  // arenas have their working size (glibc keeps freed memory for reuse
  // rather than returning it to the system); growth past this through the
  // mix of abandoned, stalled and garbage requests is what a leak shows.
  await waitIdle(server.url, 5000);
  await new Promise((r) => setTimeout(r, 1000));
  const startRss = rssMiB(server.child.pid);
  const startEngine = await gauges(server.url);

  const stalled = await Promise.all(
    [0, 1, 2].map(() => stalledClient(server.url)),
  );
  const abandoned = longGeneration(server.baseUrl, AbortSignal.timeout(3000));
  const [mixed] = await Promise.all([
    captureBatch(
      server.baseUrl,
      mixCases,
      "with 3 stalled clients, a long generation abandoned after 3 s, 300 garbage requests",
    ),
    garbage(server.url, 300),
    abandoned,
  ]);
  for (const conn of stalled) conn.close();

  const idle = await waitIdle(server.url, 5000);
  if (idle.running || idle.waiting || idle.queuedTokens) {
    fail(`the server's queues did not empty: ${JSON.stringify(idle)}`);
  }
  const health = await fetch(`${server.url}/health`);
  await health.body?.cancel();
  if (health.status !== 200) fail(`/health answered ${health.status}`);
  await capture(server.baseUrl, lastCases[0]);

  // Memory: give the collector idle time, as a server between bursts has.
  let endRss = NaN;
  let endEngine = await gauges(server.url);
  for (let i = 0; i < 30; i++) {
    await new Promise((r) => setTimeout(r, 500));
    endRss = rssMiB(server.child.pid);
    endEngine = await gauges(server.url);
    if (
      endRss <= startRss * 1.1 &&
      endEngine.externalMiB <= startEngine.externalMiB * 1.1 + 1
    ) break;
  }
  const change = (endRss / startRss - 1) * 100;
  console.log(
    `  memory (RSS): ${freshRss.toFixed(0)} MiB fresh, ${
      startRss.toFixed(0)
    } MiB after the first two phases, ${endRss.toFixed(0)} MiB after the mix (${
      change >= 0 ? "+" : ""
    }${change.toFixed(1)}%)`,
  );
  console.log(
    `  model thread: heap ${startEngine.heapMiB.toFixed(1)} -> ${
      endEngine.heapMiB.toFixed(1)
    } MiB, buffers ${startEngine.externalMiB.toFixed(1)} -> ${
      endEngine.externalMiB.toFixed(1)
    } MiB`,
  );
  if (Number.isNaN(change)) {
    console.log("  (no /proc here: resident memory not checked)");
  } else if (change > 10) {
    fail(`memory ${change.toFixed(1)}% above the start, over 10%`);
  }
  if (endEngine.externalMiB > startEngine.externalMiB * 1.1 + 1) {
    fail(
      `the model thread still holds ${
        endEngine.externalMiB.toFixed(1)
      } MiB of buffers, ${startEngine.externalMiB.toFixed(1)} MiB at the start`,
    );
  }
  console.log(
    `  summary: p50/p99 ${alone.p50.toFixed(0)}/${
      alone.p99.toFixed(0)
    } ms alone, ${withLong.p50.toFixed(0)}/${
      withLong.p99.toFixed(0)
    } ms beside a long generation, ${mixed.p50.toFixed(0)}/${
      mixed.p99.toFixed(0)
    } ms in the mix`,
  );
} finally {
  server.child.kill("SIGTERM");
  await server.child.status;
}
if (failures.length) {
  console.error(`soak/load: ${failures.length} failures (seed ${seed})`);
  Deno.exit(1);
}
console.log("soak/load: passed");
