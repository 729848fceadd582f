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
  if (options.seed !== undefined && !Number.isFinite(options.seed)) {
    throw new RangeError(
      `Cannot generate: seed is ${options.seed}; pass a finite number`,
    );
  }
}

/**
 * Runs the model on a prompt and generates a reply.
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
  validate(weights, input, options);
  const { maxPositions, numHeads } = weights.config;
  const captureLayers = [...new Set(options.captureLayers ?? [])];
  const prompt = input.ids;
  const P = prompt.length;
  const seq = new Sequence(weights, {
    captureLayers,
    expectedLength: Math.min(maxPositions, P + options.maxTokens),
  });
  const promptLogprobs: (PromptTokenLogprob | null)[] = [null];
  const promptTop = options.promptTopLogprobs ?? 0;
  let logits: Float64Array = new Float64Array(0);
  for (let i = 0; i < P; i++) {
    logits = seq.logits(seq.push(prompt[i], input.patches?.get(i)));
    if (i + 1 < P) {
      const id = prompt[i + 1];
      const lse = logSumExp(logits);
      promptLogprobs.push({
        id,
        logprob: logits[id] - lse,
        rank: rankOf(logits, id),
        top: topLogprobs(logits, lse, promptTop),
      });
    }
  }

  const random = options.temperature > 0
    ? seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32))
    : undefined;
  const k = options.topLogprobs ?? 0;
  const tokens: number[] = [];
  const logprobs: GenerateResult["logprobs"] = [];
  let finishReason: GenerateResult["finishReason"] = "length";
  while (true) {
    const id = random
      ? sample(logits, options.temperature, random)
      : argmax(logits);
    const lse = logSumExp(logits);
    tokens.push(id);
    logprobs.push({
      token: { id, logprob: logits[id] - lse },
      top: topLogprobs(logits, lse, k),
    });
    if (
      id === SPECIAL.endOfTurn || id === SPECIAL.eos ||
      options.shouldStop?.(tokens)
    ) {
      finishReason = "stop";
      break;
    }
    if (
      tokens.length >= options.maxTokens || P + tokens.length >= maxPositions
    ) break;
    logits = seq.logits(seq.push(id));
  }

  // Rows 0..T-1 (the last token's query was never computed), padded to T keys.
  const T = seq.length;
  const attention = new Map<number, Float32Array>();
  for (const layer of captureLayers) {
    const rows = seq.attentionRows(layer);
    const out = new Float32Array(T * numHeads * T);
    rows.forEach((row, t) => {
      for (let h = 0; h < numHeads; h++) {
        out.set(
          row.subarray(h * (t + 1), (h + 1) * (t + 1)),
          (t * numHeads + h) * T,
        );
      }
    });
    attention.set(layer, out);
  }
  return { tokens, finishReason, logprobs, promptLogprobs, attention };
}
