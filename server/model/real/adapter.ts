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
  RenderChatOptions,
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
    ...tokenizerParts(tokenizer, info.name ?? "model"),
    generate(input, options): GenerateResult {
      const run = start(input, options);
      while (!run.step()) { /* one prefill chunk or one token per step */ }
      return run.result();
    },
    start,
  };
}

/**
 * The tokenizer's side of a {@linkcode DemoModel} (`tokenize`,
 * `renderChat`, `tokenText`, `decode`), so the HTTP thread can answer
 * `POST /tokenize` and size prompts while the weights live in the worker.
 *
 * @example
 * ```ts ignore
 * const parts = tokenizerParts(await loadTokenizer(dir), "gemma");
 * parts.tokenize("Hello", false);
 * ```
 *
 * @param tokenizer The checkpoint's tokenizer (`loadTokenizer`).
 * @param name The served name, for errors.
 * @returns The four members.
 */
export function tokenizerParts(
  tokenizer: ModelTokenizer,
  name: string,
): Pick<DemoModel, "tokenize" | "renderChat" | "tokenText" | "decode"> {
  return {
    tokenize: (text, addSpecialTokens) =>
      tokenizer.encode(text, addSpecialTokens),
    renderChat(
      messages: ChatMessage[],
      options: RenderChatOptions = {},
    ): ModelInput {
      const plain = messages.map((m) => ({
        role: m.role,
        content: m.parts.map((p) => {
          if (p.type !== "text") {
            throw new RangeError(
              `Cannot read messages: ${name} is a text model and takes no images; send text parts only`,
            );
          }
          return p.text;
        }).join(""),
      }));
      const ids = tokenizer.encodeChat(plain, {
        addGenerationPrompt: options.addGenerationPrompt ?? true,
      });
      return {
        ids: Int32Array.from(ids),
        patches: new Map(),
        visionRanges: [],
      };
    },
    tokenText: (id) => tokenizer.tokenText(id),
    decode: (ids) => tokenizer.decode(ids, true),
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
    const full = data instanceof Float32Array
      ? data
      : Float32Array.from(data as ArrayLike<number>);
    attention.set(l, keepRows(full, layer.scores.shape, options.captureRows));
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

/**
 * The query rows `attn_capture_prefix` asked for, `[rows, H, T]` with rows
 * `max(0, min(end, T) - start)`, as the demo model returns them; the whole
 * capture when no range was asked. A view, not a copy: the rows of a
 * `[T, H, T]` capture are contiguous.
 */
function keepRows(
  data: Float32Array,
  shape: readonly number[],
  rows: GenerateOptions["captureRows"],
): Float32Array {
  if (!rows) return data;
  const [t, h, k] = shape;
  const start = Math.min(rows.start, t);
  const end = Math.max(start, Math.min(rows.end, t));
  return data.subarray(start * h * k, end * h * k);
}
