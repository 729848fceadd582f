/**
 * The sweep runner: a study's grid of trials sent with bounded concurrency
 * over one or more servers, each capture reduced to its numbers on arrival,
 * each trial cached under a hash so an interrupted sweep resumes, and the
 * tidy tables `trials.jsonl` and `heads.jsonl` rewritten from the cache.
 *
 * @module
 */

import { captureAttention } from "../client/client.ts";
import { findSpan, findSpans } from "../analysis/span.ts";
import { writeFileAtomic } from "../atomic_write.ts";
import { progressReporter, type ProgressTarget } from "../progress.ts";
import { type HeadNumbers, reduceCapture, retrievalScores } from "./reduce.ts";
import { seededRandom } from "../random.ts";
import { warn } from "../warn.ts";
import {
  gridTrials,
  resolveGrid,
  STUDY_VERSION,
  type StudyName,
  type SweepGrid,
  type Trial,
  type TrialPrompt,
  trialPrompt,
} from "./trials.ts";

/** One line of `trials.jsonl`. */
export interface TrialRow {
  /** Study name. */
  study: string;
  /** Model the server named. */
  model: string;
  /** Target length (server tokens). */
  length: number;
  /** Needle depth, percent. */
  depth: number;
  /** Seed. */
  seed: number;
  /** `usage.prompt_tokens` of the request. */
  prompt_tokens: number | null;
  /** Needle record's first token (absolute). */
  needle_start: number | null;
  /** One past its last token. */
  needle_end: number | null;
  /** The answer's first token inside the needle. */
  answer_start: number | null;
  /** One past the answer's last token. */
  answer_end: number | null;
  /** Expected answer (values joined by `, `). */
  expected: string;
  /** The model's reply. */
  answer: string | null;
  /** Every expected value appears in the reply (case-insensitive). */
  correct: boolean | null;
  /** Share of expected values that appear. */
  score: number | null;
  /** Milliseconds for the trial's request(s). */
  latency_ms: number | null;
  /** Base URL that served it. */
  server: string;
  /** Ablated heads `[layer, head]` the server echoed, or null. */
  ablated: [number, number][] | null;
  /** The capture's provenance (a response's `provenance`), or null. */
  provenance: unknown;
  /** Why the trial failed, or null. */
  error: string | null;
}

/** One line of `heads.jsonl`. */
export interface HeadRow extends HeadNumbers {
  /** Study name. */
  study: string;
  /** Target length. */
  length: number;
  /** Depth. */
  depth: number;
  /** Seed. */
  seed: number;
}

/** Sweep progress, once per finished trial. */
export interface SweepProgress {
  /** Trials finished (cached ones included). */
  done: number;
  /** All trials. */
  total: number;
  /** Trials that failed. */
  failed: number;
  /** Trials taken from the cache. */
  cached: number;
}

/** Options for {@linkcode runSweep}. */
export interface RunSweepOptions {
  /** One server's OpenAI base URL. */
  baseUrl?: string;
  /** Several servers; trials are spread over them. */
  baseUrls?: readonly string[];
  /** The grid; missing parts from the study's default. */
  grid?: Partial<SweepGrid>;
  /** Requests in flight at once. @default {1} */
  concurrency?: number;
  /** Folder for the cache and tables; without it nothing is written. */
  out?: string;
  /** Stops the sweep. */
  signal?: AbortSignal;
  /** Called as trials finish. */
  onProgress?: (p: SweepProgress) => void;
  /** A progress bar (the capture's machinery). @default {"auto"} */
  progress?: boolean | ProgressTarget;
  /** Model name. @default {undefined} the server's first */
  model?: string;
  /** Layers to capture. @default {"all"} */
  layers?: string;
  /** Per-trial timeout in ms. @default {300000} */
  timeout?: number;
  /** Retries on 503. @default {5} */
  retries?: number;
  /** Heads to ablate in every trial (the causal test uses this). */
  ablateHeads?: readonly (readonly [number, number])[];
  /** Tag the cache with this (the causal test's arms). @default {""} */
  arm?: string;
  /** Most tokens to generate. @default {12} */
  maxTokens?: number;
  /**
   * `"top-retrieval"` reruns the grid with the top-k retrieval heads zeroed
   * and with k random other heads zeroed (`attn_ablate_heads`), where the
   * server echoes the field; elsewhere it is skipped, saying why.
   * @default {undefined} no causal test
   */
  causalTest?: "top-retrieval";
  /**
   * k for the causal test.
   * @default {undefined} the heads scoring above 0.1 (at least 1)
   */
  causalK?: number;
}

/** The causal test's outcome. */
export interface CausalTest {
  /** Whether it ran; when not, `reason` says why. */
  ran: boolean;
  /** Why it was skipped, or null. */
  reason: string | null;
  /** The top-k retrieval heads zeroed. */
  topHeads: [number, number][];
  /** The k random heads zeroed. */
  randomHeads: [number, number][];
  /** Accuracy (share correct) of the baseline and both arms. */
  accuracy: { baseline: number; top: number | null; random: number | null };
  /** The two arms' sweeps. */
  top: Sweep | null;
  /** The random arm. */
  random: Sweep | null;
}

/** A finished sweep. */
export interface Sweep {
  /** The study. */
  study: StudyName;
  /** The grid. */
  grid: SweepGrid;
  /** One row per trial. */
  trials: TrialRow[];
  /** One row per trial, layer and head. */
  heads: HeadRow[];
  /** The causal test, when asked for. */
  causal?: CausalTest;
}

interface ServerInfo {
  baseUrl: string;
  root: string;
  model: string;
  maxModelLen: number | null;
  tokenize: boolean;
  fingerprint: string;
}

async function serverInfo(
  baseUrl: string,
  model: string | undefined,
  signal?: AbortSignal,
): Promise<ServerInfo> {
  const base = baseUrl.replace(/\/+$/, "");
  const root = base.replace(/\/v1$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}/models`, { signal });
  } catch (error) {
    throw new Error(
      `Cannot run sweep: the server at ${base} cannot be reached (${
        (error as Error).message
      }); start one or fix --api-base`,
    );
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(
      `Cannot run sweep: ${base}/models answered ${res.status}; check --api-base`,
    );
  }
  const list = (await res.json()).data as {
    id: string;
    max_model_len?: number;
  }[];
  const entry = model === undefined
    ? list[0]
    : list.find((m) => m.id === model);
  if (!entry) {
    throw new Error(
      `Cannot run sweep: ${base} serves no model ${
        JSON.stringify(model)
      }; pick one of ${list.map((m) => m.id).join(", ")}`,
    );
  }
  let maxModelLen = entry.max_model_len ?? null;
  let tokenize = false;
  let fingerprint = "no-tokenize";
  const probe = await fetch(`${root}/tokenize`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: entry.id,
      prompt: "attnscope fingerprint: 1729 Omega",
    }),
    signal,
  }).catch(() => null);
  if (probe?.ok) {
    const body = await probe.json();
    tokenize = true;
    maxModelLen = body.max_model_len ?? maxModelLen;
    fingerprint = (body.tokens as number[]).join(",");
  } else await probe?.body?.cancel();
  return {
    baseUrl: base,
    root,
    model: entry.id,
    maxModelLen,
    tokenize,
    fingerprint,
  };
}

async function countTokens(
  info: ServerInfo,
  prompt: string,
  signal?: AbortSignal,
): Promise<number> {
  if (info.tokenize) {
    const res = await fetch(`${info.root}/tokenize`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: info.model,
        messages: [{ role: "user", content: prompt }],
        add_generation_prompt: true,
      }),
      signal,
    });
    if (res.ok) return (await res.json()).count;
    await res.body?.cancel();
  }
  const r = await captureAttention({
    baseUrl: info.baseUrl,
    model: info.model,
    prompt,
    capture: false,
    promptLogprobs: false,
    maxTokens: 1,
    progress: false,
    signal,
  });
  return (r.response.usage as { prompt_tokens: number }).prompt_tokens;
}

/** Finds how many records reach the trial's length within 10%. */
async function sizeTrial(
  info: ServerInfo,
  trial: Trial,
  grid: SweepGrid,
  signal?: AbortSignal,
): Promise<{ text: TrialPrompt; tokens: number }> {
  let records = Math.max(2, Math.round(trial.length / 8));
  let best: { text: TrialPrompt; tokens: number } | null = null;
  for (let i = 0; i < 6; i++) {
    const text = trialPrompt(trial, records, grid);
    const tokens = await countTokens(info, text.prompt, signal);
    if (
      best === null ||
      Math.abs(tokens - trial.length) < Math.abs(best.tokens - trial.length)
    ) best = { text, tokens };
    if (Math.abs(tokens - trial.length) <= 0.05 * trial.length) break;
    const per = tokens / records;
    records = Math.max(
      grid.keys,
      2,
      Math.round(records + (trial.length - tokens) / per),
    );
  }
  return best!;
}

async function sha(text: string): Promise<string> {
  const d = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0"))
    .join("").slice(0, 24);
}

function retryAfter(error: unknown): number | null {
  let e = error as { cause?: unknown; status?: number; headers?: unknown };
  for (let i = 0; i < 4 && e; i++) {
    if (e.status === 503) {
      const h = e.headers as Headers | Record<string, string> | undefined;
      const v = h instanceof Headers
        ? h.get("retry-after")
        : h?.["retry-after"];
      const s = Number(v);
      return Number.isFinite(s) && v !== null && v !== undefined
        ? s * 1000
        : 1000;
    }
    e = e.cause as typeof e;
  }
  return null;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

interface Cached {
  trial: TrialRow;
  heads: HeadRow[];
}

async function runTrial(
  info: ServerInfo,
  trial: Trial,
  grid: SweepGrid,
  options: RunSweepOptions,
): Promise<Cached> {
  const base: TrialRow = {
    study: trial.study,
    model: info.model,
    length: trial.length,
    depth: trial.depth,
    seed: trial.seed,
    prompt_tokens: null,
    needle_start: null,
    needle_end: null,
    answer_start: null,
    answer_end: null,
    expected: "",
    answer: null,
    correct: null,
    score: null,
    latency_ms: null,
    server: info.baseUrl,
    ablated: null,
    provenance: null,
    error: null,
  };
  const start = performance.now();
  const timeout = AbortSignal.timeout(options.timeout ?? 300_000);
  const signal = AbortSignal.any([
    timeout,
    ...(options.signal ? [options.signal] : []),
  ]);
  try {
    const { text, tokens } = await sizeTrial(info, trial, grid, signal);
    base.expected = text.answer;
    const rows = `${Math.max(tokens - 1, 0)}:`;
    for (let attempt = 0;; attempt++) {
      try {
        const capture = await captureAttention({
          baseUrl: info.baseUrl,
          model: info.model,
          prompt: text.prompt,
          layers: options.layers ?? "all",
          maxTokens: options.maxTokens ?? 12,
          capturePrefix: rows,
          ...(options.ablateHeads ? { ablateHeads: options.ablateHeads } : {}),
          progress: false,
          signal,
        });
        base.latency_ms = Math.round(performance.now() - start);
        base.prompt_tokens = capture.promptLen;
        base.answer = capture.text;
        const low = capture.text.toLowerCase();
        const found = text.expected.filter((v) =>
          low.includes(v.toLowerCase())
        );
        base.score = found.length / text.expected.length;
        base.correct = found.length === text.expected.length;
        base.ablated = capture.ablatedHeads;
        base.provenance = capture.response.provenance ?? null;
        // The needle's real positions, from the labels; never assumed.
        const prompt = capture.labels.slice(0, capture.promptLen);
        const needles = findSpans(prompt, text.needle);
        if (needles.length === 0) {
          findSpan(prompt, text.needle); // throws, naming the nearest text
        }
        const needle = needles[0];
        const inner = findSpan(
          capture.labels.slice(needle.start, needle.end),
          text.answer,
          { occurrence: -1 },
        );
        const answer = {
          start: needle.start + inner.start,
          end: needle.start + inner.end,
        };
        base.needle_start = needle.start;
        base.needle_end = needle.end;
        base.answer_start = answer.start;
        base.answer_end = answer.end;
        const heads = capture.attention
          ? reduceCapture(capture.attention, {
            promptLen: capture.promptLen,
            labels: capture.labels,
            needle,
            answer,
          })
          : [];
        return {
          trial: base,
          heads: heads.map((h) => ({
            study: trial.study,
            length: trial.length,
            depth: trial.depth,
            seed: trial.seed,
            ...h,
          })),
        };
      } catch (error) {
        const wait = retryAfter(error);
        if (wait === null || attempt >= (options.retries ?? 5)) throw error;
        await sleep(wait, signal);
      }
    }
  } catch (error) {
    if (options.signal?.aborted) throw error;
    base.latency_ms = Math.round(performance.now() - start);
    base.error = timeout.aborted
      ? `timeout after ${options.timeout ?? 300_000} ms`
      : (error as Error).message ?? String(error);
    return { trial: base, heads: [] };
  }
}

const jsonl = (rows: readonly unknown[]) =>
  rows.map((r) => JSON.stringify(r) + "\n").join("");

/**
 * Runs a study's grid against one or more servers.
 *
 * Trials go out `concurrency` at a time, spread over `baseUrls`; each is
 * sized to its length in the server's tokens (`/tokenize` where the server
 * has it, else `usage.prompt_tokens`), asks only the answer rows
 * (`attn_capture_prefix`; a server without it sends every row, reduced the
 * same way), retries on 503 after `Retry-After`, and is cached in
 * `out/cache/` before the next starts. A rerun with the same `out` takes
 * cached trials as they are; the tables are rewritten from the cache.
 *
 * @param study The study's name.
 * @param options Servers, grid, concurrency, output folder.
 * @returns The tables.
 * @throws {Error} `Cannot run sweep ...` for an unknown study, a malformed
 *   grid, a grid past the model's context, or an unreachable server.
 *
 * @example
 * ```ts
 * import { runSweep } from "./sweep.ts";
 * import { startDemoServer } from "../../server/serve.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const sweep = await runSweep("needle", {
 *   baseUrl: server.baseUrl, grid: { lengths: [48], depths: [0, 100] }, progress: false,
 * });
 * assert.equal(sweep.trials.length, 2);
 * assert.ok(sweep.trials.every((t) => t.correct && t.error === null));
 * ```
 */
export async function runSweep(
  study: string,
  options: RunSweepOptions,
): Promise<Sweep> {
  const grid = resolveGrid(study, options.grid ?? {});
  const urls = options.baseUrls ?? (options.baseUrl ? [options.baseUrl] : []);
  if (urls.length === 0) {
    throw new Error(
      `Cannot run sweep ${
        JSON.stringify(study)
      }: no server given; pass baseUrl or baseUrls (--api-base)`,
    );
  }
  const infos = await Promise.all(
    urls.map((u) => serverInfo(u, options.model, options.signal)),
  );
  const maxTokens = options.maxTokens ?? 12;
  const longest = Math.max(...grid.lengths);
  for (const info of infos) {
    if (
      info.maxModelLen !== null &&
      longest * 1.1 + maxTokens > info.maxModelLen
    ) {
      throw new Error(
        `Cannot run sweep ${
          JSON.stringify(study)
        }: the grid's longest length ${longest} (+10% and ${maxTokens} new tokens) is past ${info.model}'s context of ${info.maxModelLen} tokens at ${info.baseUrl}; drop the longer lengths`,
      );
    }
  }
  const trials = gridTrials(study as StudyName, grid);
  const identity = {
    version: STUDY_VERSION,
    grid: { keys: grid.keys, values: grid.values },
    model: infos[0].model,
    tokenizer: infos[0].fingerprint,
    layers: options.layers ?? "all",
    maxTokens,
    arm: options.arm ?? "",
    ablate: options.ablateHeads ?? null,
  };
  const cacheDir = options.out ? `${options.out}/cache` : null;
  if (cacheDir) await Deno.mkdir(cacheDir, { recursive: true });
  const results: (Cached | null)[] = new Array(trials.length).fill(null);
  const keys = await Promise.all(
    trials.map((t) => sha(JSON.stringify({ ...identity, trial: t }))),
  );
  const reporter = progressReporter(
    { progress: options.progress ?? "auto" },
    `sweep ${study}`,
  );
  const started = performance.now();
  const counts = { done: 0, total: trials.length, failed: 0, cached: 0 };
  const report = () => {
    reporter.onProgress({
      phase: counts.done === counts.total ? "done" : "decoding",
      bytes: 0,
      totalBytes: null,
      layers: counts.done,
      layersTotal: counts.total,
      elapsedMs: performance.now() - started,
    });
    options.onProgress?.({ ...counts });
  };
  const todo: number[] = [];
  for (let i = 0; i < trials.length; i++) {
    if (cacheDir) {
      try {
        const c = JSON.parse(
          await Deno.readTextFile(`${cacheDir}/${keys[i]}.json`),
        ) as Cached;
        results[i] = c;
        counts.done++;
        counts.cached++;
        if (c.trial.error !== null) counts.failed++;
        continue;
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) {
          // A damaged cache entry is run again.
        }
      }
    }
    todo.push(i);
  }
  report();
  let next = 0;
  const workers = Math.max(1, Math.min(options.concurrency ?? 1, todo.length));
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      const info = infos[w % infos.length];
      while (next < todo.length) {
        options.signal?.throwIfAborted();
        const i = todo[next++];
        const result = await runTrial(info, trials[i], grid, {
          ...options,
          maxTokens,
        });
        if (cacheDir) {
          await writeFileAtomic(
            `${cacheDir}/${keys[i]}.json`,
            JSON.stringify(result),
          );
        }
        results[i] = result;
        counts.done++;
        if (result.trial.error !== null) counts.failed++;
        report();
      }
    }),
  );
  reporter.finish(null);
  const done = results as Cached[];
  const sweep: Sweep = {
    study: study as StudyName,
    grid,
    trials: done.map((r) => r.trial),
    heads: done.flatMap((r) => r.heads),
  };
  if (options.out) {
    await writeFileAtomic(`${options.out}/trials.jsonl`, jsonl(sweep.trials));
    await writeFileAtomic(`${options.out}/heads.jsonl`, jsonl(sweep.heads));
    await writeFileAtomic(
      `${options.out}/sweep.json`,
      JSON.stringify({ study, grid }, null, 2),
    );
  }
  if (options.causalTest === "top-retrieval" && !options.arm) {
    sweep.causal = await causalTest(sweep, infos[0], options);
    if (options.out) {
      const { top: _t, random: _r, ...summary } = sweep.causal;
      await writeFileAtomic(
        `${options.out}/causal.json`,
        JSON.stringify(summary, null, 2),
      );
    }
  }
  return sweep;
}

const accuracy = (s: Sweep) =>
  s.trials.filter((t) => t.correct).length / Math.max(1, s.trials.length);

async function causalTest(
  baseline: Sweep,
  info: ServerInfo,
  options: RunSweepOptions,
): Promise<CausalTest> {
  const ranked = retrievalScores(baseline.trials, baseline.heads);
  const k = options.causalK ??
    Math.max(1, ranked.filter((r) => r.score > 0.1).length);
  const top = ranked.slice(0, k).map((r) =>
    [r.layer, r.head] as [number, number]
  );
  const others = ranked.slice(k);
  const rand = seededRandom(k * 7919 + 17);
  const pool = [...others];
  const randomHeads: [number, number][] = [];
  while (randomHeads.length < k && pool.length > 0) {
    const [r] = pool.splice(Math.floor(rand() * pool.length), 1);
    randomHeads.push([r.layer, r.head]);
  }
  const result: CausalTest = {
    ran: false,
    reason: null,
    topHeads: top,
    randomHeads,
    accuracy: { baseline: accuracy(baseline), top: null, random: null },
    top: null,
    random: null,
  };
  // Probe: does the server apply and echo attn_ablate_heads?
  let echoed: [number, number][] | null = null;
  try {
    const probe = await captureAttention({
      baseUrl: info.baseUrl,
      model: info.model,
      prompt: "a: 1\na:",
      capture: false,
      maxTokens: 1,
      ablateHeads: top.length ? [top[0]] : [[0, 0]],
      progress: false,
      signal: options.signal,
    });
    echoed = probe.ablatedHeads;
  } catch (error) {
    result.reason = `the probe request failed (${(error as Error).message})`;
  }
  if (echoed === null) {
    result.reason ??=
      `${info.baseUrl} does not echo attn_ablate_heads, so it does not support head ablation`;
    warn(
      `The causal test is skipped: ${result.reason}; use attnscope's server (deno task serve) or a server that supports attn_ablate_heads`,
    );
    return result;
  }
  const arm = async (name: string, heads: [number, number][]) =>
    await runSweep(baseline.study, {
      ...options,
      grid: baseline.grid,
      causalTest: undefined,
      arm: name,
      ablateHeads: heads,
      out: options.out ? `${options.out}/causal-${name}` : undefined,
    });
  result.top = await arm("top", top);
  result.random = await arm("random", randomHeads);
  result.ran = true;
  result.accuracy.top = accuracy(result.top);
  result.accuracy.random = accuracy(result.random);
  return result;
}

/**
 * Reads a sweep's tables back from its folder.
 *
 * @param dir The sweep's `out` folder.
 * @returns The tables.
 * @throws {Error} When the folder holds no sweep.
 *
 * @example
 * ```ts
 * import { loadSweep } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadSweep("/nonexistent"), /Cannot load sweep/);
 * ```
 */
export async function loadSweep(dir: string): Promise<Sweep> {
  const read = async (name: string) => {
    try {
      return await Deno.readTextFile(`${dir}/${name}`);
    } catch (error) {
      throw new Error(
        `Cannot load sweep from ${dir}: ${name} cannot be read (${
          (error as Error).message
        }); give the --out folder of a finished sweep`,
      );
    }
  };
  const meta = JSON.parse(await read("sweep.json"));
  const lines = (text: string) =>
    text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
  return {
    study: meta.study,
    grid: meta.grid,
    trials: lines(await read("trials.jsonl")),
    heads: lines(await read("heads.jsonl")),
  };
}
