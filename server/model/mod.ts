/**
 * The demo server's model: a two-layer attention-only transformer with
 * constructed weights (previous-token heads, an n-gram induction head, an
 * image head, first-token sinks), its tokenizer and Gemma's chat template,
 * behind the {@linkcode DemoModel} contract the HTTP layer uses.
 *
 * @example Needle recall
 * ```ts
 * import { loadDemoModel } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const model = loadDemoModel();
 * const input = model.renderChat([
 *   { role: "user", parts: [{ type: "text", text: "alpha: 1729\nbeta: 2048\nalpha:" }] },
 * ]);
 * const result = model.generate(input, { maxTokens: 10, temperature: 0 });
 * assert.equal(model.decode(result.tokens), "1729");
 * ```
 *
 * @module
 */

import { renderChat } from "./chat_template.ts";
import { generate, Generation } from "./generate.ts";
import { Tokenizer } from "./tokenizer.ts";
import type {
  ChatMessage,
  DemoModel,
  GenerateOptions,
  GenerateResult,
  GenerationSteps,
  ModelInput,
  RenderChatOptions,
} from "./types.ts";
import { SPECIAL } from "./vocab.ts";
import { loadWeights } from "./weights.ts";

export type * from "./types.ts";

/**
 * Loads the demo model from the committed weights.
 *
 * @returns The model.
 *
 * @example
 * ```ts
 * import { loadDemoModel } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const model = loadDemoModel();
 * assert.equal(model.numLayers, 2);
 * assert.equal(model.numHeads, 12);
 * ```
 */
export function loadDemoModel(): DemoModel {
  const weights = loadWeights();
  const tokenizer = new Tokenizer(weights.vocab);
  const { name, numLayers, numHeads, maxPositions } = weights.config;
  return {
    name,
    numLayers,
    numHeads,
    maxPositions,
    // Causal softmax over every earlier key, one KV head per query head.
    layerMeta: Array.from({ length: numLayers }, () => ({
      attention: "full_attention" as const,
      slidingWindow: null,
      numKeyValueHeads: numHeads,
      causal: true,
    })),
    renderChat: (
      messages: ChatMessage[],
      options?: RenderChatOptions,
    ): ModelInput => renderChat(messages, tokenizer, options),
    tokenize: (text: string, addSpecialTokens: boolean): number[] => [
      ...(addSpecialTokens ? [SPECIAL.bos] : []),
      ...tokenizer.encode(text),
    ],
    tokenText: (id: number): string => tokenizer.tokenText(id),
    // SentencePiece drops the space that starts a reply; so does this.
    decode: (ids: readonly number[]): string =>
      tokenizer.decode(ids, { skipSpecial: true }).replace(/^ /, ""),
    generate: (input: ModelInput, options: GenerateOptions): GenerateResult =>
      generate(weights, input, options),
    start: (input: ModelInput, options: GenerateOptions): GenerationSteps =>
      new Generation(weights, input, options),
  };
}
