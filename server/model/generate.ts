/**
 * Generation for the demo model: runs the prompt, then samples token by token
 * (greedy at temperature 0, seeded sampling above), and returns the tokens,
 * their log-probabilities, the prompt's log-probabilities and the attention of
 * the captured layers exactly as the forward pass used it.
 *
 * @module
 */

import { Sequence } from "./forward.ts";
import type {
  GenerateOptions,
  GenerateResult,
  GenerationSteps,
  ModelInput,
  PromptTokenLogprob,
  TokenLogprob,
} from "./types.ts";
import { SPECIAL } from "./vocab.ts";
import type { DemoWeights } from "./weights.ts";
import { seededRandom } from "../../lib/random.ts";

/** Most alternatives per token (generated or prompt), as OpenAI's API allows. */
export const MAX_TOP_LOGPROBS = 20;

function logSumExp(logits: Float64Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

function argmax(logits: Float64Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

function sample(
  logits: Float64Array,
  temperature: number,
  random: () => number,
): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    sum += p[i] = Math.exp((logits[i] - max) / temperature);
  }
  let r = random() * sum;
  for (let i = 0; i < p.length; i++) {
    r -= p[i];
    if (r < 0) return i;
  }
  return argmax(logits);
}

/**
 * 1-based rank of `id` in the order {@linkcode topLogprobs} lists tokens
 * (likelier first, ties by id), so the top k are exactly ranks 1..k.
 */
function rankOf(logits: Float64Array, id: number): number {
  let rank = 1;
  const own = logits[id];
  for (let t = 0; t < logits.length; t++) {
    if (logits[t] > own || (logits[t] === own && t < id)) rank++;
  }
  return rank;
}

function topLogprobs(
  logits: Float64Array,
  lse: number,
  k: number,
): TokenLogprob[] {
  if (k === 0) return [];
  const order = Array.from(logits.keys()).sort((a, b) =>
    logits[b] - logits[a] || a - b
  );
  return order.slice(0, k).map((id) => ({ id, logprob: logits[id] - lse }));
}

function validate(
  weights: DemoWeights,
  input: ModelInput,
  options: GenerateOptions,
): void {
  const { vocabSize, maxPositions, numLayers } = weights.config;
  if (!(input?.ids instanceof Int32Array) || input.ids.length === 0) {
    throw new TypeError(
      "Cannot generate: input.ids is not a non-empty Int32Array; build the input with renderChat()",
    );
  }
  if (input.ids.length > maxPositions) {
    throw new RangeError(
      `Cannot generate: the prompt has ${input.ids.length} tokens but the model accepts at most ${maxPositions}; shorten the prompt`,
    );
  }
  for (let i = 0; i < input.ids.length; i++) {
    const id = input.ids[i];
    if (id < 0 || id >= vocabSize) {
      throw new RangeError(
        `Cannot generate: token ${i} has id ${id}, outside 0..${
          vocabSize - 1
        }; build the input with renderChat()`,
      );
    }
    if (id === SPECIAL.imagePatch && !input.patches?.has(i)) {
      throw new TypeError(
        `Cannot generate: position ${i} is an image patch without features; build the input with renderChat()`,
      );
    }
  }
  if (!Number.isInteger(options?.maxTokens) || options.maxTokens < 1) {
    throw new RangeError(
      `Cannot generate: maxTokens is ${options?.maxTokens}; pass a whole number of at least 1`,
    );
  }
  if (
    typeof options.temperature !== "number" || !(options.temperature >= 0) ||
    !Number.isFinite(options.temperature)
  ) {
    throw new RangeError(
      `Cannot generate: temperature is ${options.temperature}; pass a number of 0 or more`,
    );
  }
  for (const name of ["topLogprobs", "promptTopLogprobs"] as const) {
    const top = options[name] ?? 0;
    if (!Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS) {
      throw new RangeError(
        `Cannot generate: ${name} is ${top}; pass a whole number from 0 to ${MAX_TOP_LOGPROBS}`,
      );
    }
  }
  for (const layer of options.captureLayers ?? []) {
    if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
      throw new RangeError(
        `Cannot capture layer ${layer}: the model has layers 0..${
          numLayers - 1
        }; pick layers in that range`,
      );
    }
  }
  const rows = options.captureRows;
  if (
    rows !== undefined &&
    (!Number.isInteger(rows?.start) || !Number.isInteger(rows?.end) ||
      rows.start < 0 || rows.end <= rows.start)
  ) {
    throw new RangeError(
      `Cannot capture rows ${
        JSON.stringify(rows)
      }: pass {start, end} with 0 <= start < end (half-open positions)`,
    );
  }
  const { numHeads } = weights.config;
  for (const pair of options.ablateHeads ?? []) {
    const [l, h] = (Array.isArray(pair) ? pair : []) as number[];
    if (
      !Number.isInteger(l) || !Number.isInteger(h) || l < 0 || h < 0 ||
      l >= numLayers || h >= numHeads || pair.length !== 2
    ) {
      throw new RangeError(
        `Cannot ablate head ${JSON.stringify(pair)}: the model has layers 0..${
          numLayers - 1
        } and heads 0..${numHeads - 1}; pass [layer, head] pairs in range`,
      );
    }
  }
  if (options.seed !== undefined && !Number.isFinite(options.seed)) {
    throw new RangeError(
      `Cannot generate: seed is ${options.seed}; pass a finite number`,
    );
  }
}

/**
 * Prompt positions one {@linkcode Generation.step} runs: small enough that a
 * long prompt takes turns with other requests, large enough that the
 * scheduler's per-step overhead stays small beside the work.
 */
export const PREFILL_CHUNK = 16;

/**
 * One generation run step by step: the prompt in chunks of
 * {@linkcode PREFILL_CHUNK} positions, then one generated token per step.
 * A server interleaves the steps of many requests and drops a cancelled one
 * between steps (its caches go with it).
 *
 * @example
 * ```ts
 * import { Generation } from "./generate.ts";
 * import { renderChat } from "./chat_template.ts";
 * import { Tokenizer } from "./tokenizer.ts";
 * import { loadWeights } from "./weights.ts";
 * import assert from "node:assert/strict";
 * const tok = new Tokenizer(loadWeights().vocab);
 * const input = renderChat([{ role: "user", parts: [{ type: "text", text: "x: 42\ny: 7\nx:" }] }], tok);
 * const run = new Generation(loadWeights(), input, { maxTokens: 8, temperature: 0 });
 * let steps = 1;
 * while (!run.step()) steps++;
 * assert.ok(steps > run.tokens.length); // the prompt took steps of its own
 * assert.equal(tok.decode(run.result().tokens, { skipSpecial: true }).trim(), "42");
 * ```
 */
export class Generation implements GenerationSteps {
  readonly #weights: DemoWeights;
  readonly #input: ModelInput;
  readonly #options: GenerateOptions;
  readonly #seq: Sequence;
  readonly #captureLayers: number[];
  readonly #promptLogprobs: (PromptTokenLogprob | null)[] = [null];
  readonly #random: (() => number) | undefined;
  readonly #tokens: number[] = [];
  readonly #logprobs: GenerateResult["logprobs"] = [];
  /** The latest next-token logits; one buffer for the whole run. */
  readonly #logits: Float64Array;
  #prompted = 0;
  #finishReason: GenerateResult["finishReason"] | null = null;

  /**
   * Checks the input and options and sizes the caches; runs nothing yet.
   *
   * @param weights Model weights.
   * @param input Prompt from `renderChat`.
   * @param options Generation options (see {@linkcode GenerateOptions}).
   * @throws {TypeError | RangeError} On an input or option the model cannot run.
   */
  constructor(
    weights: DemoWeights,
    input: ModelInput,
    options: GenerateOptions,
  ) {
    validate(weights, input, options);
    this.#weights = weights;
    this.#input = input;
    this.#options = options;
    this.#captureLayers = [...new Set(options.captureLayers ?? [])];
    this.#seq = new Sequence(weights, {
      captureLayers: this.#captureLayers,
      captureRows: options.captureRows,
      ablateHeads: options.ablateHeads,
      // Caches grow as needed: a request without max_tokens may generate
      // to the end of the context, but most stop after a few tokens.
      expectedLength: Math.min(
        weights.config.maxPositions,
        input.ids.length + Math.min(options.maxTokens, 64),
      ),
    });
    this.#logits = new Float64Array(weights.config.vocabSize);
    this.#random = options.temperature > 0
      ? seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32))
      : undefined;
  }

  /** Tokens generated so far. */
  get tokens(): readonly number[] {
    return this.#tokens;
  }

  /** Per generated token so far: its logprob and the top alternatives. */
  get logprobs(): GenerateResult["logprobs"] {
    return this.#logprobs;
  }

  /** Whether generation has ended. */
  get done(): boolean {
    return this.#finishReason !== null;
  }

  /**
   * Runs the next chunk of the prompt, or generates the next token.
   *
   * @returns `true` once generation has ended.
   */
  step(): boolean {
    if (this.#finishReason !== null) return true;
    const P = this.#input.ids.length;
    if (this.#prompted < P) {
      this.#prefill(Math.min(P, this.#prompted + PREFILL_CHUNK));
      // The first token comes with the step that finishes the prompt, so a
      // one-token request takes no extra turn.
      if (this.#prompted < P) return false;
    } else {
      this.#seq.logits(this.#seq.push(this.#tokens.at(-1)!), this.#logits);
    }
    this.#emit();
    return this.#finishReason !== null;
  }

  #prefill(end: number): void {
    const prompt = this.#input.ids;
    const promptTop = this.#options.promptTopLogprobs ?? 0;
    for (let i = this.#prompted; i < end; i++) {
      this.#seq.logits(
        this.#seq.push(prompt[i], this.#input.patches?.get(i)),
        this.#logits,
      );
      if (i + 1 < prompt.length) {
        const id = prompt[i + 1];
        const lse = logSumExp(this.#logits);
        this.#promptLogprobs.push({
          id,
          logprob: this.#logits[id] - lse,
          rank: rankOf(this.#logits, id),
          top: topLogprobs(this.#logits, lse, promptTop),
        });
      }
    }
    this.#prompted = end;
  }

  /** Picks the next token from the current logits and decides whether to stop. */
  #emit(): void {
    const logits = this.#logits;
    const options = this.#options;
    const id = this.#random
      ? sample(logits, options.temperature, this.#random)
      : argmax(logits);
    const lse = logSumExp(logits);
    this.#tokens.push(id);
    this.#logprobs.push({
      token: { id, logprob: logits[id] - lse },
      top: topLogprobs(logits, lse, options.topLogprobs ?? 0),
    });
    if (
      id === SPECIAL.endOfTurn || id === SPECIAL.eos ||
      options.shouldStop?.(this.#tokens)
    ) {
      this.#finishReason = "stop";
    } else if (
      this.#tokens.length >= options.maxTokens ||
      this.#input.ids.length + this.#tokens.length >=
        this.#weights.config.maxPositions
    ) {
      this.#finishReason = "length";
    }
  }

  /**
   * The finished generation.
   *
   * @param options `attention: false` leaves the attention map empty (fetch
   *   layers one at a time with {@linkcode Generation.attention}).
   * @returns Tokens, log-probabilities and captured attention.
   * @throws {Error} When called before {@linkcode Generation.step} returned `true`.
   */
  result(options: { attention?: boolean } = {}): GenerateResult {
    this.#checkDone("return the result");
    const attention = new Map<number, Float32Array>();
    if (options.attention ?? true) {
      for (const layer of this.#captureLayers) {
        attention.set(layer, this.attention(layer));
      }
    }
    return {
      tokens: this.#tokens,
      finishReason: this.#finishReason!,
      logprobs: this.#logprobs,
      promptLogprobs: this.#promptLogprobs,
      attention,
    };
  }

  /**
   * One captured layer's scores as the wire has them: rows of positions
   * 0..T-1 (the last token's query was never computed), or those of
   * `captureRows` that exist, each padded to T keys. The run lets go of the
   * layer's rows, so each layer is asked for once.
   *
   * @param layer A captured layer.
   * @returns Flat `[Tq, H, T]` scores; Tq is T without `captureRows`.
   * @throws {Error} Before the run ended.
   * @throws {RangeError} For a layer not captured, or asked for twice.
   */
  attention(layer: number): Float32Array {
    this.#checkDone("return attention");
    const { numHeads } = this.#weights.config;
    const T = this.#seq.length;
    const first = this.#options.captureRows?.start ?? 0;
    const rows = this.#seq.attentionRows(layer);
    const out = new Float32Array(rows.length * numHeads * T);
    rows.forEach((row, i) => {
      const t = first + i;
      for (let h = 0; h < numHeads; h++) {
        out.set(
          row.subarray(h * (t + 1), (h + 1) * (t + 1)),
          (i * numHeads + h) * T,
        );
      }
    });
    this.#seq.releaseAttention(layer);
    return out;
  }

  #checkDone(action: string): void {
    if (this.#finishReason === null) {
      throw new Error(
        `Cannot ${action}: generation has not finished; call step() until it returns true`,
      );
    }
  }
}

/**
 * Runs the model on a prompt and generates a reply, all at once (a
 * {@linkcode Generation} stepped to its end).
 *
 * @param weights Model weights.
 * @param input Prompt from `renderChat`.
 * @param options Generation options (see {@linkcode GenerateOptions}).
 * @returns Tokens, log-probabilities and captured attention.
 *
 * @example
 * ```ts
 * import { generate } from "./generate.ts";
 * import { renderChat } from "./chat_template.ts";
 * import { Tokenizer } from "./tokenizer.ts";
 * import { loadWeights } from "./weights.ts";
 * import assert from "node:assert/strict";
 * const tok = new Tokenizer(loadWeights().vocab);
 * const input = renderChat([{ role: "user", parts: [{ type: "text", text: "x: 42\ny: 7\nx:" }] }], tok);
 * const result = generate(loadWeights(), input, { maxTokens: 8, temperature: 0, captureLayers: [1] });
 * assert.equal(tok.decode(result.tokens, { skipSpecial: true }).trim(), "42");
 * const T = input.ids.length + result.tokens.length - 1;
 * assert.equal(result.attention.get(1)!.length, T * loadWeights().config.numHeads * T);
 * ```
 */
export function generate(
  weights: DemoWeights,
  input: ModelInput,
  options: GenerateOptions,
): GenerateResult {
  const run = new Generation(weights, input, options);
  while (!run.step());
  return run.result();
}
