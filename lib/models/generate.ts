/**
 * Generation as steps: prefill in chunks, then one token per step with the
 * KV cache, sampling (greedy or seeded temperature), stop ids, logprobs,
 * prompt logprobs (the head run in vocabulary slices so no `[T, vocab]`
 * matrix is ever built), and the captured attention assembled as
 * `AttentionLayer`s in vLLM's rows.
 *
 * @module
 */

import { type AttentionCapture, AttentionLayer } from "../data/layer.ts";
import type { LayerMeta } from "../data/layer_meta.ts";
import { AttentionScores } from "../data/scores.ts";
import { TokenMeta } from "../data/token_meta.ts";
import type { CaptureSink, Forward } from "./forward.ts";
import type {
  HeadRef,
  ModelGenerateOptions,
  ModelGenerateResult,
  ModelSteps,
  TokenLogprob,
} from "./types.ts";
import { seededRandom } from "../random.ts";

/** Positions per prefill step. */
export const PREFILL_CHUNK = 128;
/** Vocabulary rows per slice when prompt logprobs run the head. */
const VOCAB_SLICE = 8192;

function rangeError(what: string): never {
  throw new RangeError(`Cannot generate: ${what}`);
}

/** Top `k` entries of `values` (by value, ties by lower id) as logprobs. */
function topK(
  values: Float32Array,
  k: number,
  lse: number,
  offset = 0,
): TokenLogprob[] {
  if (k <= 0) return [];
  const best: TokenLogprob[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (best.length < k || v > best[best.length - 1].logprob) {
      const item = { id: i + offset, logprob: v };
      let j = best.length;
      while (j > 0 && best[j - 1].logprob < v) j--;
      best.splice(j, 0, item);
      if (best.length > k) best.pop();
    }
  }
  return best.map((b) => ({ id: b.id, logprob: b.logprob - lse }));
}

function logSumExp(values: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
  let s = 0;
  for (let i = 0; i < values.length; i++) s += Math.exp(values[i] - max);
  return max + Math.log(s);
}

/** What a run needs to know about its model. */
export interface RunModel {
  /** The forward pass. */
  forward: Forward;
  /** Layer architectures, for `layerMeta`. */
  layerMeta: LayerMeta[];
  /** The model name captures carry. */
  name: string | null;
  /** Default stop ids. */
  eosTokenIds: number[];
  /** Longest sequence. */
  maxPositions: number;
  /** Called when a run starts and ends, so one model runs one sequence at a time. */
  lock: { busy: boolean };
}

/**
 * Checks options and starts a run.
 *
 * @param model The loaded model.
 * @param options The generation options.
 * @returns The steps.
 */
export function startRun(
  model: RunModel,
  options: ModelGenerateOptions,
): ModelSteps {
  const f = model.forward;
  const c = f.config;
  const ids = options.inputIds;
  if (!Array.isArray(ids) && !(ids as unknown as ArrayLike<number>)?.length) {
    rangeError("inputIds is empty; pass at least one prompt token id");
  }
  if (ids.length === 0) {
    rangeError("inputIds is empty; pass at least one prompt token id");
  }
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
      rangeError(
        `input id ${id} is outside the vocabulary [0, ${c.vocabSize}); pass ids from this model's tokenizer`,
      );
    }
  }
  const maxTokens = options.maxTokens;
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    rangeError(
      `maxTokens ${maxTokens} is not a positive integer; ask for at least 1 token`,
    );
  }
  const total = ids.length + maxTokens - 1;
  if (total > model.maxPositions) {
    rangeError(
      `the prompt (${ids.length}) plus ${maxTokens} tokens needs ${total} positions but the model takes ${model.maxPositions}; shorten the prompt or maxTokens`,
    );
  }
  const layers = options.layers === "all"
    ? Array.from({ length: c.numLayers }, (_, i) => i)
    : [...(options.layers ?? [])];
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= c.numLayers) {
      rangeError(
        `layer ${l} does not exist; the model has layers 0..${c.numLayers - 1}`,
      );
    }
  }
  const ablate: Set<number>[] = Array.from(
    { length: c.numLayers },
    () => new Set(),
  );
  const ablated: HeadRef[] = [];
  for (const ref of options.ablateHeads ?? []) {
    const [l, h] = ref;
    if (!Number.isInteger(l) || l < 0 || l >= c.numLayers) {
      rangeError(
        `ablated head [${l}, ${h}] names no layer; layers are 0..${
          c.numLayers - 1
        }`,
      );
    }
    if (!Number.isInteger(h) || h < 0 || h >= c.numHeads) {
      rangeError(
        `ablated head [${l}, ${h}] names no head; heads are 0..${
          c.numHeads - 1
        }`,
      );
    }
    if (!ablate[l].has(h)) ablated.push([l, h]);
    ablate[l].add(h);
  }
  const temperature = options.temperature ?? 0;
  if (!(temperature >= 0) || !Number.isFinite(temperature)) {
    rangeError(`temperature ${temperature} is not a non-negative number`);
  }
  const topLogprobs = options.topLogprobs ?? 0;
  const promptTop = options.promptTopLogprobs ?? 0;
  if (model.lock.busy) {
    throw new Error(
      "Cannot generate: this model is already running a sequence; wait for it to finish (or load a second model)",
    );
  }
  const stop = new Set(options.stopTokenIds ?? model.eosTokenIds);
  const dtype = options.dtype ?? "float32";
  const size = total;
  const sink: CaptureSink = {
    size,
    layers: Array.from({ length: c.numLayers }, () => undefined),
  };
  model.lock.busy = true;
  try {
    for (const l of layers) {
      sink.layers[l] = dtype === "float16"
        ? new Float16Array(size * c.numHeads * size)
        : new Float32Array(size * c.numHeads * size);
    }
    f.begin(total, Math.min(PREFILL_CHUNK, ids.length), ablate);
  } catch (error) {
    model.lock.busy = false;
    throw error;
  }
  const random = seededRandom(options.seed ?? 0);
  const tokens: number[] = [];
  const logits: Float32Array[] = [];
  const logprobs: ModelGenerateResult["logprobs"] = [];
  const promptLogprobs: ModelGenerateResult["promptLogprobs"] = [];
  const wantPrompt = promptTop > 0;
  if (wantPrompt) promptLogprobs.push(null);
  const vocab = c.vocabSize;
  const last = new Float32Array(vocab);
  let done = false;
  let finishReason: "stop" | "length" = "length";
  let prefilled = 0;
  let result: ModelGenerateResult | null = null;

  const choose = () => {
    if (options.logits) logits.push(last.slice());
    let id = 0;
    if (temperature === 0) {
      let best = -Infinity;
      for (let i = 0; i < vocab; i++) {
        if (last[i] > best) {
          best = last[i];
          id = i;
        }
      }
    } else {
      let max = -Infinity;
      for (let i = 0; i < vocab; i++) if (last[i] > max) max = last[i];
      let sum = 0;
      for (let i = 0; i < vocab; i++) {
        sum += Math.exp((last[i] - max) / temperature);
      }
      let u = random() * sum;
      id = vocab - 1;
      for (let i = 0; i < vocab; i++) {
        u -= Math.exp((last[i] - max) / temperature);
        if (u <= 0) {
          id = i;
          break;
        }
      }
    }
    const lse = logSumExp(last);
    logprobs.push({
      token: { id, logprob: last[id] - lse },
      top: topK(last, topLogprobs, lse),
    });
    tokens.push(id);
    if (stop.has(id)) {
      finishReason = "stop";
      done = true;
    } else if (tokens.length >= maxTokens) done = true;
  };

  const promptRows = (p0: number, chunk: readonly number[]) => {
    // Rows p0.. predict tokens p0+1..; the chunk's last row predicts the
    // next chunk's first token (or nothing past the prompt).
    const n = Math.min(chunk.length, ids.length - 1 - p0);
    if (n <= 0) return;
    const target = new Float32Array(1);
    const tokenLogit: number[] = [];
    for (let i = 0; i < n; i++) {
      const t = ids[p0 + i + 1];
      f.logitsRows(i, 1, target, [t, t + 1]);
      tokenLogit.push(target[0]);
    }
    const slice = new Float32Array(n * Math.min(VOCAB_SLICE, vocab));
    const max = new Float64Array(n).fill(-Infinity);
    const sum = new Float64Array(n);
    const rank = new Int32Array(n).fill(1);
    const tops: TokenLogprob[][] = Array.from({ length: n }, () => []);
    for (let start = 0; start < vocab; start += VOCAB_SLICE) {
      const end = Math.min(vocab, start + VOCAB_SLICE);
      const w = end - start;
      f.logitsRows(0, n, slice, [start, end]);
      for (let i = 0; i < n; i++) {
        const row = slice.subarray(i * w, (i + 1) * w);
        let mx = max[i];
        for (let j = 0; j < w; j++) if (row[j] > mx) mx = row[j];
        let s = sum[i] * Math.exp(max[i] - mx);
        if (!Number.isFinite(s)) s = 0;
        // The token itself is never counted: a kernel may round its logit
        // differently for one row than for many.
        const self = ids[p0 + i + 1] - start;
        for (let j = 0; j < w; j++) {
          s += Math.exp(row[j] - mx);
          if (row[j] > tokenLogit[i] && j !== self) rank[i]++;
        }
        max[i] = mx;
        sum[i] = s;
        const merged = [...tops[i], ...topK(row, promptTop, 0, start)];
        merged.sort((a, b) => b.logprob - a.logprob || a.id - b.id);
        tops[i] = merged.slice(0, promptTop);
      }
    }
    for (let i = 0; i < n; i++) {
      const lse = max[i] + Math.log(sum[i]);
      promptLogprobs.push({
        token: { id: ids[p0 + i + 1], logprob: tokenLogit[i] - lse },
        rank: rank[i],
        top: tops[i].map((t) => ({ id: t.id, logprob: t.logprob - lse })),
      });
    }
  };

  const finish = () => {
    f.end();
    model.lock.busy = false;
  };

  const steps: ModelSteps = {
    get tokens() {
      return tokens;
    },
    get logprobs() {
      return logprobs;
    },
    finish(): void {
      // Ends the run where it is (a server's stop string); result() then
      // holds the rows computed so far.
      if (done) return;
      if (tokens.length === 0) {
        throw new Error(
          "Cannot finish the generation: no token is generated yet; call step() until the prompt is read",
        );
      }
      done = true;
      finishReason = "stop";
      finish();
    },
    step(): boolean {
      if (done) return true;
      try {
        if (prefilled < ids.length) {
          const chunk = ids.slice(prefilled, prefilled + PREFILL_CHUNK);
          f.run(chunk, prefilled, sink);
          if (wantPrompt) promptRows(prefilled, chunk);
          prefilled += chunk.length;
          if (prefilled === ids.length) {
            f.logits(chunk.length - 1, last);
            choose();
          }
        } else {
          const pos = ids.length + tokens.length - 1;
          f.run([tokens[tokens.length - 1]], pos, sink);
          f.logits(0, last);
          choose();
        }
      } catch (error) {
        done = true;
        finish();
        throw error;
      }
      if (done) finish();
      return done;
    },
    result(): ModelGenerateResult {
      if (!done) {
        throw new Error(
          "Cannot read the result: generation has not ended; call step() until it returns true",
        );
      }
      if (result) return result;
      const t = ids.length + tokens.length - 1;
      const attention: AttentionCapture = {};
      const h = c.numHeads;
      for (const l of layers) {
        let data = sink.layers[l]!;
        if (t < size) data = compact(data, size, h, t);
        attention[l] = new AttentionLayer({
          layer: l,
          model: model.name,
          scores: new AttentionScores(data, [t, h, t]),
          tokenMeta: new TokenMeta({
            promptLen: ids.length,
            totalLen: t,
            langRanges: [{ start: 0, end: ids.length }],
          }),
          layerMeta: model.layerMeta[l],
        });
        sink.layers[l] = undefined;
      }
      result = {
        tokens: [...tokens],
        finishReason,
        attention,
        ...(options.logits ? { logits } : {}),
        logprobs,
        promptLogprobs,
        ablatedHeads: ablated,
      };
      return result;
    },
  };
  return steps;
}

/** Repacks `[size, h, size]` into `[t, h, t]` (t < size), in a new array. */
function compact(
  data: Float32Array | Float16Array,
  size: number,
  h: number,
  t: number,
): Float32Array | Float16Array {
  const out = data instanceof Float16Array
    ? new Float16Array(t * h * t)
    : new Float32Array(t * h * t);
  for (let q = 0; q < t; q++) {
    for (let k = 0; k < h; k++) {
      const src = (q * h + k) * size;
      out.set(data.subarray(src, src + t), (q * h + k) * t);
    }
  }
  return out;
}
