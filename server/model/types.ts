/**
 * The contract between the demo server's HTTP layer and its model.
 *
 * The HTTP layer (server/handler.ts) validates requests, applies stop
 * strings and encodes the wire format; the model (server/model/) owns the
 * tokenizer, the chat template, the weights and the forward pass. Neither
 * knows the other's internals.
 *
 * @module
 */

import type { LayerMeta } from "../../lib/data/layer_meta.ts";

/** One chat message after the HTTP layer has validated it. */
export interface ChatMessage {
  /** `system`, `user` or `assistant`. */
  role: "system" | "user" | "assistant";
  /** Text and images in order. */
  parts: ChatPart[];
}

/** A piece of message content. */
export type ChatPart =
  | { type: "text"; text: string }
  | { type: "image"; png: Uint8Array };

/** Options for {@linkcode DemoModel.renderChat}. */
export interface RenderChatOptions {
  /**
   * End with the header of the model's turn (the template's
   * `add_generation_prompt`); `POST /tokenize` may turn it off.
   * @default {true}
   */
  addGenerationPrompt?: boolean;
}

/** A prompt ready for the forward pass. */
export interface ModelInput {
  /** Token id of every prompt position; vision positions hold the image-patch id. */
  ids: Int32Array;
  /** Feature vector of each vision position, by absolute position. */
  patches: Map<number, Float32Array>;
  /** Half-open ranges of vision positions. */
  visionRanges: { start: number; end: number }[];
}

/** A candidate token with its log-probability. */
export interface TokenLogprob {
  /** Token id. */
  id: number;
  /** Natural-log probability under the sampling distribution at temperature 1. */
  logprob: number;
}

/** A prompt token's logprob with its rank and the likeliest tokens there. */
export interface PromptTokenLogprob extends TokenLogprob {
  /** 1-based rank of the token in the model's distribution (1 = likeliest). */
  rank: number;
  /** The likeliest tokens at this position, best first. */
  top: TokenLogprob[];
}

/** Options for {@linkcode DemoModel.generate}. */
export interface GenerateOptions {
  /** Most tokens to generate (the end-of-turn token counts). */
  maxTokens: number;
  /** 0 is greedy; above 0 samples from softmax(logits / temperature). */
  temperature: number;
  /** Seed for sampling; same seed, same tokens. */
  seed?: number;
  /** How many alternatives to report per generated token. @default {0} */
  topLogprobs?: number;
  /** How many alternatives to report per prompt position. @default {0} */
  promptTopLogprobs?: number;
  /** Layers whose attention to return. @default {[]} */
  captureLayers?: number[];
  /**
   * Called after each generated token with every generated id so far;
   * returning true ends generation (the HTTP layer's stop strings).
   */
  shouldStop?: (generated: readonly number[]) => boolean;
  /**
   * Query heads `[layer, head]` whose outputs are zeroed before the output
   * projection at every position (`attn_ablate_heads`); validated by the
   * HTTP layer against `numLayers` and `numHeads`.
   */
  ablateHeads?: [number, number][];
  /**
   * Only these query rows, half-open absolute positions, are kept for the
   * captured layers (`attn_capture_prefix`); all rows when omitted.
   */
  captureRows?: { start: number; end: number };
}

/** What one generation returns. */
export interface GenerateResult {
  /** Generated ids, the end-of-turn token included when one was produced. */
  tokens: number[];
  /** `"stop"` (end of turn or stop string) or `"length"` (maxTokens reached). */
  finishReason: "stop" | "length";
  /** Per generated token: its own logprob and the top alternatives. */
  logprobs: { token: TokenLogprob; top: TokenLogprob[] }[];
  /**
   * Per prompt position: the actual token's logprob and rank, and the top
   * alternatives; null at position 0, which nothing predicts.
   */
  promptLogprobs: (PromptTokenLogprob | null)[];
  /**
   * Per captured layer, the softmax attention the forward pass used,
   * `[T, H, T]` flattened in C order, where T = prompt + generated - 1
   * (the last generated token's query is never computed). With
   * `captureRows`, only the rows that exist of that range:
   * `[max(0, min(end, T) - start), H, T]`, the first being position `start`.
   */
  attention: Map<number, Float32Array>;
}

/**
 * A generation run step by step, so a server can interleave many and drop
 * one between steps.
 */
export interface GenerationSteps {
  /**
   * Runs the next step: a chunk of prompt positions, or one generated token.
   * @returns `true` once generation has ended.
   */
  step(): boolean;
  /** Tokens generated so far. */
  readonly tokens: readonly number[];
  /** Per generated token so far: its logprob and the top alternatives. */
  readonly logprobs: GenerateResult["logprobs"];
  /**
   * The finished generation; only after {@linkcode GenerationSteps.step}
   * returned `true`. With `attention: false` its attention map is empty and
   * each layer is fetched with {@linkcode GenerationSteps.attention}, so a
   * server holds one layer's `[T, H, T]` at a time.
   */
  result(options?: { attention?: boolean }): GenerateResult;
  /**
   * One captured layer's `[T, H, T]` scores, built when asked; the run lets
   * go of that layer's rows, so ask once per layer, after the run ended.
   */
  attention?(layer: number): Float32Array;
}

/** The demo model as the HTTP layer sees it. */
export interface DemoModel {
  /** The name served by /v1/models. */
  readonly name: string;
  /** Decoder layers. */
  readonly numLayers: number;
  /** Attention heads per layer. */
  readonly numHeads: number;
  /** Longest sequence (prompt plus generated) the model accepts. */
  readonly maxPositions: number;
  /** Each layer's attention layout, sent as the wire entry's `layer_meta`. */
  readonly layerMeta?: readonly LayerMeta[];
  /**
   * Where the weights and tokenizer came from (model id, revision, hashes,
   * dtype), carried into the response for real models.
   */
  readonly provenance?: Readonly<Record<string, unknown>>;
  /** Tokenizes raw text for `POST /tokenize` (special tokens added when asked). */
  tokenize?(text: string, addSpecialTokens: boolean): number[];
  /**
   * Applies the chat template (Gemma-style turns) and tokenizes. A model
   * that ignores `options` always adds the generation prompt.
   */
  renderChat(messages: ChatMessage[], options?: RenderChatOptions): ModelInput;
  /** The text of one token, as `decoded_token` and `logprobs` report it. */
  tokenText(id: number): string;
  /** Decodes generated ids to the reply text (special tokens dropped). */
  decode(ids: readonly number[]): string;
  /** Runs the model. */
  generate(input: ModelInput, options: GenerateOptions): GenerateResult;
  /**
   * Starts a generation to be run step by step (see {@linkcode GenerationSteps}).
   * A model without it runs {@linkcode DemoModel.generate} as one step.
   * @throws {TypeError | RangeError} On an input or option the model cannot run.
   */
  start?(input: ModelInput, options: GenerateOptions): GenerationSteps;
}
