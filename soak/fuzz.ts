/**
 * The decoder fuzz soak: seeded mutations of real capture bodies, over every
 * mutation class in `_mutations.ts`, in all four input forms (parsed
 * object, body string, body bytes, and the body bytes as a `ReadableStream`
 * cut into seeded chunks of 1 byte to 64 KiB, as `captureAttention` reads
 * them), on every decode path (the calling thread, sync and async; worker
 * threads for bodies over the worker threshold; a shared `DecodePool`,
 * which streams a byte body's layers to workers while scanning).
 *
 * A case passes when it decodes to arrays of exactly the declared size (the
 * layers the input really declares, each once, in the dtype asked for) or
 * fails with a `Cannot ...` error, within 5 s, with no unhandled rejection
 * and no decode worker left running. Anything else is a failure: an
 * internal error, a hang, a silent `null`, a wrong-sized array. A streamed
 * case must also agree with the whole-body decode of the same bytes: both
 * decode to equal layers, or both refuse.
 *
 * ```sh
 * deno run --allow-all soak/fuzz.ts [--seed N] [--cases 10000] [--case I]
 * ```
 * `--case I` reruns one case of a seed and prints what it did.
 *
 * @module
 */

import {
  extractAttentionFromResponse,
  extractAttentionFromResponseSync,
  extractAttentionFromStream,
  type ResponseInput,
} from "../lib/sources/vllm/extract.ts";
import { DecodePool } from "../lib/sources/vllm/decode.ts";
import type { AttentionCapture } from "../lib/data/layer.ts";
import type { ScoresDType } from "../lib/data/scores.ts";
import { seededRandom } from "../lib/random.ts";
import { setWarningHandler } from "../lib/warn.ts";
import { type Base, loadBases } from "./_bases.ts";
import { cloneResponse, Dice, type Mutated, MUTATIONS } from "./_mutations.ts";

/** The mutation classes, in the order cases take them. */
export const MUTATION_CLASSES: readonly string[] = Object.keys(MUTATIONS);

/** Options for {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Seed of the whole run; case `i` draws from its own stream of it. */
  seed: number;
  /** Number of cases. */
  cases: number;
  /** Index of the first case (to rerun a slice). */
  first?: number;
  /** Longest a case may take. */
  timeoutMs?: number;
  /** Called after each case with the count done. */
  onProgress?: (done: number) => void;
}

/** Outcomes of one mutation class. */
export interface ClassCounts {
  cases: number;
  decoded: number;
  refused: number;
  failed: number;
}

/** One case that did not pass. */
export interface FuzzFailure {
  index: number;
  mutation: string;
  base: string;
  form: string;
  path: string;
  /** The decode options, as JSON. */
  options: string;
  problem: string;
}

/** What {@linkcode runFuzz} found. */
export interface FuzzReport {
  seed: number;
  cases: number;
  classes: Record<string, ClassCounts>;
  forms: Record<string, number>;
  paths: Record<string, number>;
  /** Outcomes by input form and decode path, e.g. `"stream, shared pool"`. */
  byFormAndPath: Record<string, ClassCounts>;
  /**
   * Cases decoded on worker threads: the shared pool, or default workers
   * for a body over the 16 MiB threshold.
   */
  onWorkers: number;
  failures: FuzzFailure[];
  elapsedMs: number;
  slowestMs: number;
}

/** How a case is decoded. */
type Path =
  | "sync"
  | "async, this thread"
  | "async, default workers"
  | "async, shared pool";

/** How the input is given. */
type Form = "object" | "string" | "bytes" | "stream";

/** One case, fully drawn before it runs. */
interface Case {
  index: number;
  mutation: string;
  base: Base;
  form: Form;
  path: Path;
  /** For the stream form, the body bytes the stream carries. */
  input: ResponseInput;
  dtype: ScoresDType;
  layers?: number[];
  maxBytes?: number;
  /** Stream form: chunk sizes are drawn from 1 to this, with `chunkSeed`. */
  chunkMax?: number;
  chunkSeed?: number;
}

/** Largest chunk a streamed case is cut into. */
const MAX_CHUNK = 64 << 10;
/**
 * About the most chunks a streamed body is cut into: a 1.7 MiB body in
 * 1-byte chunks would take minutes, so a long body's smallest chunk cap
 * grows with it (short bodies still get 1-byte chunks).
 */
const MAX_CHUNKS = 20_000;

/** Bases weighted by how often cases draw them (the large one is slowest). */
const BASE_WEIGHTS = [0.3, 0.25, 0.3, 0.15];

/**
 * Runs the fuzz cases.
 *
 * @param options Seed, number of cases, timeout.
 * @returns Counts by class, form and path, and every failure.
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const bases = await loadBases();
  const timeoutMs = options.timeoutMs ?? 5000;
  const first = options.first ?? 0;
  const report: FuzzReport = {
    seed: options.seed,
    cases: options.cases,
    classes: Object.fromEntries(
      MUTATION_CLASSES.map((
        c,
      ) => [c, { cases: 0, decoded: 0, refused: 0, failed: 0 }]),
    ),
    forms: {},
    paths: {},
    byFormAndPath: {},
    onWorkers: 0,
    failures: [],
    elapsedMs: 0,
    slowestMs: 0,
  };
  let current: Case | undefined;
  const stray: string[] = [];
  const onRejection = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    stray.push(`unhandled rejection: ${describeError(event.reason)}`);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  const previous = setWarningHandler(() => {});
  const pool = new DecodePool(2);
  // Every worker but the shared pool's must have ended after each case.
  const baseWorkers = DecodePool.liveWorkers;
  const started = performance.now();
  try {
    for (let n = 0; n < options.cases; n++) {
      current = drawCase(first + n, options.seed, bases);
      const t0 = performance.now();
      let outcome: "decoded" | "refused";
      let problem: string | undefined;
      try {
        outcome = await withTimeout(runCase(current, pool), timeoutMs);
      } catch (error) {
        problem = error instanceof CaseFailure
          ? error.message
          : `unexpected: ${describeError(error)}`;
        outcome = "refused";
      }
      const took = performance.now() - t0;
      report.slowestMs = Math.max(report.slowestMs, took);
      if (!problem && took > timeoutMs) problem = `took ${took.toFixed(0)} ms`;
      // Let a stray rejection of this case surface before judging it.
      await new Promise((r) => setTimeout(r, 0));
      if (!problem && stray.length) problem = stray.splice(0).join("; ");
      stray.length = 0;
      const left = DecodePool.liveWorkers - baseWorkers;
      if (!problem && left !== 0) {
        problem = `${left} decode worker(s) left running`;
      }
      const counts = report.classes[current.mutation];
      counts.cases++;
      report.forms[current.form] = (report.forms[current.form] ?? 0) + 1;
      report.paths[current.path] = (report.paths[current.path] ?? 0) + 1;
      if (onWorkers(current)) report.onWorkers++;
      const combo = `${current.form}, ${current.path.replace("async, ", "")}`;
      const both = report.byFormAndPath[combo] ??= {
        cases: 0,
        decoded: 0,
        refused: 0,
        failed: 0,
      };
      both.cases++;
      if (problem) both.failed++;
      else both[outcome]++;
      if (problem) {
        counts.failed++;
        report.failures.push({
          index: current.index,
          mutation: current.mutation,
          base: current.base.name,
          form: current.form,
          path: current.path,
          options: JSON.stringify({
            dtype: current.dtype,
            layers: current.layers,
            maxBytes: current.maxBytes,
            chunkMax: current.chunkMax,
          }),
          problem,
        });
      } else counts[outcome]++;
      options.onProgress?.(n + 1);
    }
  } finally {
    pool.close();
    setWarningHandler(previous);
    globalThis.removeEventListener("unhandledrejection", onRejection);
  }
  report.elapsedMs = performance.now() - started;
  return report;
}

/** Whether the case's decoding goes to worker threads. */
function onWorkers(c: Case): boolean {
  if (c.path === "async, shared pool") return true;
  // The decoder's default: workers for 2+ layers over 16 MiB of output.
  if (c.form === "stream") {
    // The stream starts workers once 16 MiB of float16 scores are announced.
    return c.path === "async, default workers" &&
      c.base.float32Bytes / 2 >= 16 << 20 && c.layers === undefined;
  }
  const bytes = c.base.float32Bytes / (c.dtype === "float16" ? 2 : 1);
  return c.path === "async, default workers" && bytes >= 16 << 20 &&
    c.layers === undefined;
}

/** Draws case `index` of `seed`: the same case every time. */
function drawCase(index: number, seed: number, bases: Base[]): Case {
  const dice = new Dice(
    seededRandom(
      (Math.imul(seed, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0,
    ),
  );
  const mutation = MUTATION_CLASSES[index % MUTATION_CLASSES.length];
  let r = dice.next();
  let b = 0;
  while (b < bases.length - 1 && r >= BASE_WEIGHTS[b]) r -= BASE_WEIGHTS[b++];
  const base = bases[b];
  const mutated = MUTATIONS[mutation](cloneResponse(base.value), dice);
  const form = dice.pick(["object", "string", "bytes", "stream"] as const);
  const large = base.float32Bytes >= 16 << 20;
  // The large body exists for the worker paths: decode it there. A stream
  // has no sync reader.
  const path: Path = large
    ? dice.pick(["async, default workers", "async, shared pool"] as const)
    : form === "stream"
    ? dice.pick(
      [
        "async, this thread",
        "async, default workers",
        "async, shared pool",
      ] as const,
    )
    : dice.pick(
      [
        "sync",
        "async, this thread",
        "async, default workers",
        "async, shared pool",
      ] as const,
    );
  const { input, form: actual } = inForm(mutated, form);
  const layerIds = (base.value.attn_capture_data as { layer_idx: number }[])
    .map((e) => e.layer_idx);
  // Chunk caps log-uniform over 1 B .. 64 KiB, so tiny chunks (boundaries
  // inside escapes and base64 quads) are as common as large ones.
  const length = input instanceof Uint8Array ? input.length : 0;
  const chunkMax = Math.min(
    MAX_CHUNK,
    Math.max(
      Math.round(Math.exp(dice.next() * Math.log(MAX_CHUNK))),
      Math.ceil(2 * length / MAX_CHUNKS),
    ),
  );
  const chunkSeed = dice.int(2 ** 31);
  return {
    index,
    mutation,
    base,
    form: actual,
    path,
    input,
    ...(actual === "stream" ? { chunkMax, chunkSeed } : {}),
    dtype: dice.pick(["float32", "float16"] as const),
    layers: dice.chance(0.1)
      ? layerIds.filter(() => dice.chance(0.5)).concat(
        dice.chance(0.2) ? [99] : [],
      )
      : undefined,
    maxBytes: dice.chance(0.1)
      ? 1 + dice.int(Math.ceil(base.float32Bytes * 1.5))
      : undefined,
  };
}

/**
 * The mutated input in the wanted form; text that is not JSON cannot be an
 * object, and is given as a string instead.
 */
function inForm(
  mutated: Mutated,
  form: Form,
): { input: ResponseInput; form: Form } {
  if (mutated.kind === "object") {
    if (form === "object") return { input: mutated.value, form };
    const text = JSON.stringify(mutated.value);
    return form === "string"
      ? { input: text, form }
      : { input: new TextEncoder().encode(text), form };
  }
  const text = mutated.kind === "text"
    ? mutated.text
    : new TextDecoder().decode(mutated.bytes);
  if (form === "bytes" || form === "stream") {
    return {
      input: mutated.kind === "bytes"
        ? mutated.bytes
        : new TextEncoder().encode(text),
      form,
    };
  }
  if (form === "object") {
    try {
      const value = JSON.parse(text);
      if (
        value !== null && typeof value === "object" && !Array.isArray(value)
      ) {
        return { input: value, form };
      }
    } catch {
      // Not JSON: only the serialized forms can carry it.
    }
  }
  return { input: text, form: "string" };
}

/** A case that did not pass, with what went wrong. */
class CaseFailure extends Error {}

async function runCase(
  c: Case,
  pool: DecodePool,
): Promise<"decoded" | "refused"> {
  // What the input declares, read independently of the decoder (before
  // decoding: a worker may take the bytes).
  const declared = declaredLayers(c);
  if (c.form === "stream") return await runStreamCase(c, pool, declared);
  let result: AttentionCapture | null;
  try {
    const options = { dtype: c.dtype, layers: c.layers, maxBytes: c.maxBytes };
    result = c.path === "sync"
      ? extractAttentionFromResponseSync(c.input, options)
      : c.path === "async, this thread"
      ? await extractAttentionFromResponse(c.input, { ...options, workers: 0 })
      : c.path === "async, default workers"
      ? await extractAttentionFromResponse(c.input, options)
      : await extractAttentionFromResponse(c.input, { ...options, pool });
  } catch (error) {
    if (error instanceof Error && /^Cannot /.test(error.message)) {
      return "refused";
    }
    throw new CaseFailure(`unclear error ${describeError(error)}`);
  }
  checkResult(c, result, declared);
  return "decoded";
}

/**
 * A streamed case: the body bytes as a `ReadableStream` in seeded chunks,
 * then the whole-body decode of the same bytes, which must agree.
 */
async function runStreamCase(
  c: Case,
  pool: DecodePool,
  declared: Map<number, unknown[]> | "not JSON",
): Promise<"decoded" | "refused"> {
  const body = c.input as Uint8Array;
  const options = { dtype: c.dtype, layers: c.layers, maxBytes: c.maxBytes };
  const streamed = await settle(() =>
    extractAttentionFromStream(chunkedStream(body, c), {
      ...options,
      ...(c.path === "async, this thread"
        ? { workers: 0 }
        : c.path === "async, shared pool"
        ? { pool }
        : {}),
    })
  );
  // The reference: the same bytes decoded whole on this thread (a copy: a
  // worker path may take the bytes it is given).
  const whole = await settle(() =>
    Promise.resolve(extractAttentionFromResponseSync(body.slice(), options))
  );
  if (streamed.ok && !whole.ok) {
    throw new CaseFailure(
      `the stream decoded what the whole body refuses (${whole.message})`,
    );
  }
  if (!streamed.ok) {
    if (whole.ok) {
      throw new CaseFailure(
        `the stream refused (${streamed.message}) what the whole body decodes`,
      );
    }
    return "refused";
  }
  if (!whole.ok) throw new CaseFailure("unreachable");
  checkResult(c, streamed.value, declared);
  const difference = compareCaptures(streamed.value, whole.value);
  if (difference) {
    throw new CaseFailure(
      `the stream and the whole body disagree: ${difference}`,
    );
  }
  return "decoded";
}

type Settled =
  | { ok: true; value: AttentionCapture | null }
  | { ok: false; message: string };

/** Runs a decode: its capture, or its `Cannot ...` error (anything else fails the case). */
async function settle(
  decode: () => Promise<AttentionCapture | null>,
): Promise<Settled> {
  try {
    return { ok: true, value: await decode() };
  } catch (error) {
    if (error instanceof Error && /^Cannot /.test(error.message)) {
      return { ok: false, message: error.message.slice(0, 200) };
    }
    throw new CaseFailure(`unclear error ${describeError(error)}`);
  }
}

/**
 * The body as a network would hand it over: fresh chunks of seeded sizes
 * from 1 to `chunkMax` bytes, pulled one at a time.
 */
function chunkedStream(body: Uint8Array, c: Case): ReadableStream<Uint8Array> {
  const random = seededRandom(c.chunkSeed!);
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= body.length) return controller.close();
      const size = 1 + Math.floor(random() * c.chunkMax!);
      controller.enqueue(body.slice(at, at + size));
      at += size;
    },
  });
}

/** Where two decoded captures differ, or `null` when they are equal. */
function compareCaptures(
  a: AttentionCapture | null,
  b: AttentionCapture | null,
): string | null {
  if (a === null || b === null) {
    return a === b ? null : `one is null, the other has layers`;
  }
  const ka = Object.keys(a).join(), kb = Object.keys(b).join();
  if (ka !== kb) return `layers [${ka}] vs [${kb}]`;
  for (const k of Object.keys(a)) {
    const la = a[Number(k)], lb = b[Number(k)];
    const sa = la.scores, sb = lb.scores;
    const parts: [string, unknown, unknown][] = [
      ["model", la.model, lb.model],
      ["shape", sa.shape, sb.shape],
      ["dtype", sa.dtype, sb.dtype],
      ["keyOffset", sa.keyOffset, sb.keyOffset],
      ["queryPositions", [...sa.queryPositions], [...sb.queryPositions]],
      ["tokenMeta", la.tokenMeta, lb.tokenMeta],
    ];
    for (const [what, x, y] of parts) {
      if (JSON.stringify(x) !== JSON.stringify(y)) {
        return `layer ${k} ${what}: ${JSON.stringify(x)?.slice(0, 80)} vs ${
          JSON.stringify(y)?.slice(0, 80)
        }`;
      }
    }
    const bytesA = new Uint8Array(
      sa.data.buffer,
      sa.data.byteOffset,
      sa.data.byteLength,
    );
    const bytesB = new Uint8Array(
      sb.data.buffer,
      sb.data.byteOffset,
      sb.data.byteLength,
    );
    if (bytesA.length !== bytesB.length) {
      return `layer ${k}: ${bytesA.length} vs ${bytesB.length} bytes of scores`;
    }
    for (let i = 0; i < bytesA.length; i++) {
      if (bytesA[i] !== bytesB[i]) {
        return `layer ${k}: scores differ at byte ${i}`;
      }
    }
  }
  return null;
}

/** The layers a decoded input must have: index -> declared shape. */
function declaredLayers(c: Case): Map<number, unknown[]> | "not JSON" {
  let value: unknown = c.input;
  if (typeof c.input === "string" || c.input instanceof Uint8Array) {
    try {
      value = JSON.parse(
        typeof c.input === "string"
          ? c.input
          : new TextDecoder().decode(c.input),
      );
    } catch {
      return "not JSON";
    }
  }
  const out = new Map<number, unknown[]>();
  const list = (value as Record<string, unknown> | null)?.attn_capture_data;
  if (!Array.isArray(list)) return out;
  const wanted = c.layers ? new Set(c.layers) : null;
  for (const e of list) {
    if (e === null || typeof e !== "object") continue;
    const { data, shape, layer_idx } = e as Record<string, unknown>;
    const empty = data === undefined || data === null || data === "" ||
      shape === undefined || shape === null ||
      (Array.isArray(shape) && shape.length === 0);
    // vLLM's empty slice of an attn_capture_prefix past the last row: the
    // decoder skips such a layer with a warning.
    const noRows = Array.isArray(shape) && shape.length === 3 &&
      shape[0] === 0 &&
      shape.slice(1).every((n) => Number.isInteger(n) && n > 0);
    if (empty || noRows || (wanted && !wanted.has(layer_idx as number))) {
      continue;
    }
    if (out.has(layer_idx as number)) {
      out.set(layer_idx as number, ["duplicate"]);
    } else out.set(layer_idx as number, shape as unknown[]);
  }
  return out;
}

function checkResult(
  c: Case,
  result: AttentionCapture | null,
  declared: Map<number, unknown[]> | "not JSON",
): void {
  const fail = (problem: string) => {
    throw new CaseFailure(problem);
  };
  if (declared === "not JSON") fail("decoded a body that is not JSON");
  const expected = declared as Map<number, unknown[]>;
  const got = Object.keys(result ?? {}).map(Number).sort((a, b) => a - b);
  const want = [...expected.keys()].sort((a, b) => a - b);
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    fail(`decoded layers [${got}] but the input declares [${want}]`);
  }
  for (const index of got) {
    const layer = result![index];
    const shape = expected.get(index)!;
    if (JSON.stringify(shape) !== JSON.stringify(layer.scores.shape)) {
      fail(
        `layer ${index} decoded as ${
          JSON.stringify(layer.scores.shape)
        } but declares ${JSON.stringify(shape)}`,
      );
    }
    const [tq, h, tk] = layer.scores.shape;
    if (layer.scores.data.length !== tq * h * tk) {
      fail(
        `layer ${index} has ${layer.scores.data.length} values for shape [${tq}, ${h}, ${tk}]`,
      );
    }
    const type = c.dtype === "float16" ? Float16Array : Float32Array;
    if (!(layer.scores.data instanceof type)) {
      fail(`layer ${index} is not ${c.dtype}`);
    }
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new CaseFailure(`no answer within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function describeError(error: unknown): string {
  return error instanceof Error
    ? `${error.name}: ${error.message.slice(0, 300)}`
    : String(error);
}

/**
 * The report as the table the soak prints.
 *
 * @param report What {@linkcode runFuzz} found.
 * @returns Lines of text.
 */
export function formatReport(report: FuzzReport): string {
  const row = (name: string, c: ClassCounts) =>
    `| ${name.padEnd(23)} | ${String(c.cases).padStart(6)} | ${
      String(c.decoded).padStart(7)
    } | ${String(c.refused).padStart(7)} | ${String(c.failed).padStart(6)} |`;
  const rows = Object.entries(report.classes).map(([name, c]) => row(name, c));
  const comboRows = Object.entries(report.byFormAndPath)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, c]) => row(name, c));
  const total = Object.values(report.classes).reduce(
    (t, c) => ({
      cases: t.cases + c.cases,
      decoded: t.decoded + c.decoded,
      refused: t.refused + c.refused,
      failed: t.failed + c.failed,
    }),
    { cases: 0, decoded: 0, refused: 0, failed: 0 },
  );
  const lines = [
    `fuzz: seed ${report.seed}, ${report.cases} cases in ${
      (report.elapsedMs / 1000).toFixed(1)
    } s (slowest case ${report.slowestMs.toFixed(0)} ms)`,
    `| ${"mutation class".padEnd(23)} |  cases | decoded | refused | failed |`,
    `|${"-".repeat(25)}|--------|---------|---------|--------|`,
    ...rows,
    `| ${"total".padEnd(23)} | ${String(total.cases).padStart(6)} | ${
      String(total.decoded).padStart(7)
    } | ${String(total.refused).padStart(7)} | ${
      String(total.failed).padStart(6)
    } |`,
    "",
    `| ${"form, path".padEnd(23)} |  cases | decoded | refused | failed |`,
    `|${"-".repeat(25)}|--------|---------|---------|--------|`,
    ...comboRows,
    "",
    `forms: ${JSON.stringify(report.forms)}`,
    `paths: ${JSON.stringify(report.paths)}`,
    `on worker threads: ${report.onWorkers} cases`,
  ];
  for (const f of report.failures.slice(0, 20)) {
    lines.push(
      `FAILED case ${f.index} (${f.mutation}, ${f.base}, ${f.form}, ${f.path}, ${f.options}): ${f.problem}`,
    );
  }
  return lines.join("\n");
}

function argument(args: string[], name: string): number | undefined {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const value = Number(args[at + 1]);
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(
      `Cannot run the fuzz soak: ${name} ${
        args[at + 1]
      } is not a non-negative integer; pass e.g. ${name} 1000`,
    );
  }
  return value;
}

if (import.meta.main) {
  const args = Deno.args;
  const seed = argument(args, "--seed") ??
    Number(Deno.env.get("ATTNSCOPE_FUZZ_SEED") ?? NaN);
  const runSeed = Number.isInteger(seed)
    ? seed
    : Math.floor(Math.random() * 2 ** 31);
  const single = argument(args, "--case");
  const cases = single === undefined ? argument(args, "--cases") ?? 10_000 : 1;
  console.log(`fuzz: seed ${runSeed} (rerun with --seed ${runSeed})`);
  const report = await runFuzz({
    seed: runSeed,
    cases,
    first: single ?? 0,
    onProgress: (done) => {
      if (done % 1000 === 0) console.log(`  ${done} / ${cases}`);
    },
  });
  console.log(formatReport(report));
  Deno.exit(report.failures.length ? 1 : 0);
}
