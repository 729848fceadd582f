/**
 * A real checkpoint behind the server's {@linkcode DemoModel} contract: the
 * engine's step API (`RealModel.start`), the checkpoint's own tokenizer and
 * chat template, its layer layout and provenance.
 *
 * @module
 */

import type { RealModel } from "../../../lib/models/types.ts";
import type { ModelTokenizer } from "../../../lib/models/tokenizer/tokenizer.ts";
import type {
  ChatMessage,
  DemoModel,
  GenerateOptions,
  GenerateResult,
  GenerationSteps,
  ModelInput,
} from "../types.ts";

/**
 * Wraps a loaded model and its tokenizer as a {@linkcode DemoModel}.
 *
 * @param model The loaded checkpoint (`loadModel`).
 * @param tokenizer Its tokenizer (`loadTokenizer`).
 * @param provenance What the responses carry about where it came from.
 * @returns The server model; its `start` runs one prefill chunk or one token
 *   per step.
 */
export function realDemoModel(
  model: RealModel,
  tokenizer: ModelTokenizer,
  provenance: Readonly<Record<string, unknown>> = {},
): DemoModel {
  const info = model.info;
  const start = (input: ModelInput, options: GenerateOptions) =>
    startReal(model, input, options);
  return {
    name: info.name ?? "model",
    numLayers: info.numLayers,
    numHeads: info.numHeads,
    maxPositions: info.maxPositions,
    layerMeta: info.layerMeta,
    provenance,
    tokenize: (text, addSpecialTokens) =>
      tokenizer.encode(text, addSpecialTokens),
    renderChat(messages: ChatMessage[]): ModelInput {
      const plain = messages.map((m) => ({
        role: m.role,
        content: m.parts.map((p) => {
          if (p.type !== "text") {
            throw new RangeError(
              `Cannot read messages: ${info.name} is a text model and takes no images; send text parts only`,
            );
          }
          return p.text;
        }).join(""),
      }));
      const ids = tokenizer.encodeChat(plain);
      return {
        ids: Int32Array.from(ids),
        patches: new Map(),
        visionRanges: [],
      };
    },
    tokenText: (id) => tokenizer.tokenText(id),
    decode: (ids) => tokenizer.decode(ids, true),
    generate(input, options): GenerateResult {
      const run = start(input, options);
      while (!run.step()) { /* one prefill chunk or one token per step */ }
      return run.result();
    },
    start,
  };
}

function startReal(
  model: RealModel,
  input: ModelInput,
  options: GenerateOptions,
): GenerationSteps {
  if (input.ids.length + options.maxTokens > model.info.maxPositions + 1) {
    throw new RangeError(
      `Cannot run the prompt: ${input.ids.length} prompt tokens plus max_tokens ${options.maxTokens} exceed the model's context of ${model.info.maxPositions}; shorten the prompt or lower max_tokens`,
    );
  }
  const run = model.start({
    inputIds: Array.from(input.ids),
    maxTokens: options.maxTokens,
    temperature: options.temperature,
    seed: options.seed,
    layers: options.captureLayers ?? [],
    topLogprobs: options.topLogprobs ?? 0,
    // prompt_logprobs: 0 still wants each prompt token's own logprob; the
    // engine computes them when asked for at least one alternative.
    promptTopLogprobs: options.promptTopLogprobs === undefined
      ? 0
      : Math.max(1, options.promptTopLogprobs),
    ablateHeads: options.ablateHeads ?? [],
  });
  let result: GenerateResult | null = null;
  return {
    step(): boolean {
      if (result) return true;
      const before = run.tokens.length;
      let done = run.step();
      if (
        !done && run.tokens.length > before &&
        options.shouldStop?.(run.tokens)
      ) {
        run.finish();
        done = true;
      }
      if (done) result = convert(run.result(), options);
      return done;
    },
    get tokens() {
      return run.tokens;
    },
    get logprobs() {
      return run.logprobs;
    },
    result(): GenerateResult {
      if (!result) {
        throw new Error(
          "Cannot read the result: generation has not ended; call step() until it returns true",
        );
      }
      return result;
    },
  };
}

function convert(
  r: ReturnType<ReturnType<RealModel["start"]>["result"]>,
  options: GenerateOptions,
): GenerateResult {
  const attention = new Map<number, Float32Array>();
  for (const l of options.captureLayers ?? []) {
    const layer = r.attention[l];
    if (!layer) continue;
    const data = layer.scores.data;
    attention.set(
      l,
      data instanceof Float32Array
        ? data
        : Float32Array.from(data as ArrayLike<number>),
    );
  }
  return {
    tokens: r.tokens,
    finishReason: r.finishReason,
    logprobs: r.logprobs,
    promptLogprobs: r.promptLogprobs.map((p) =>
      p === null ? null : {
        id: p.token.id,
        logprob: p.token.logprob,
        rank: p.rank,
        top: p.top.slice(0, options.promptTopLogprobs ?? 0),
      }
    ),
    attention,
  };
}
