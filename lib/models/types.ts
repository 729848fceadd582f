/**
 * The public contract of a loaded real model: what `loadModel` returns and
 * what `generate` takes and gives. The engine (lib/models/), the server's
 * adapter (server/) and the tokenizer layer (lib/models/tokenizer/) all code
 * against these types, so they can change independently.
 *
 * @module
 */

import type { AttentionCapture } from "../data/layer.ts";
import type { LayerMeta } from "../data/layer_meta.ts";

/** Architectures `loadModel` runs, as HF's `model_type` names them. */
export type ModelFamily = "gemma3_text" | "llama" | "qwen2" | "gpt2";

/** Options for `loadModel`. */
export interface LoadModelOptions {
  /**
   * Called as weights load, with bytes read so far and in all, so a caller
   * can show progress for a multi-GB checkpoint.
   */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  /** Worker threads for the matrix kernels; defaults to the machine's cores. */
  threads?: number;
  /**
   * The name captures carry as `AttentionLayer.model` (e.g. the HF id);
   * defaults to the folder's name.
   */
  name?: string;
}

/** What a model is, after its config's defaults are filled in. */
export interface ModelInfo {
  /** `model_type`, normalized (a multimodal `gemma3` reports `gemma3_text`). */
  family: ModelFamily;
  /** Decoder layers. */
  numLayers: number;
  /** Query heads per layer. */
  numHeads: number;
  /** KV heads per layer. */
  numKeyValueHeads: number;
  /** Width of one head. */
  headDim: number;
  /** Width of the residual stream. */
  hiddenSize: number;
  /** Vocabulary size (rows of the output head). */
  vocabSize: number;
  /** Longest sequence the model accepts (`max_position_embeddings` / `n_positions`). */
  maxPositions: number;
  /** End-of-sequence ids from `config.json` (and `generation_config.json` when present). */
  eosTokenIds: number[];
  /** Stored weight type: `"bfloat16"`, `"float16"` or `"float32"`. */
  dtype: "bfloat16" | "float16" | "float32";
  /** Each layer's attention: full or sliding, KV heads, causal. */
  layerMeta: LayerMeta[];
  /** Bytes of the checkpoint's tensors on disk. */
  checkpointBytes: number;
  /** The name captures carry (`LoadModelOptions.name`, else the folder's name). */
  name?: string;
}

/** A query head to silence: `[layer, head]`. */
export type HeadRef = readonly [layer: number, head: number];

/** Options for {@linkcode RealModel.generate}. */
export interface ModelGenerateOptions {
  /** Prompt ids, used verbatim (no BOS is added). */
  inputIds: readonly number[];
  /** Most tokens to generate. */
  maxTokens: number;
  /** Layers whose attention to capture. @default {[]} */
  layers?: "all" | readonly number[];
  /** 0 is greedy; above 0 samples from softmax(logits / temperature). @default {0} */
  temperature?: number;
  /** Seed for sampling. */
  seed?: number;
  /** Ends generation early; overrides the config's EOS ids, `[]` never stops early. */
  stopTokenIds?: readonly number[];
  /** Element type of the captured scores. @default {"float32"} */
  dtype?: "float32" | "float16";
  /** Adds the last-position logits of every step to the result. */
  logits?: boolean;
  /** Query heads whose outputs are zeroed before the output projection, at every position. */
  ablateHeads?: readonly HeadRef[];
  /** Alternatives per generated token to report with logprobs. @default {0} */
  topLogprobs?: number;
  /** Alternatives per prompt position (prompt_logprobs). @default {0}, none computed */
  promptTopLogprobs?: number;
}

/** What {@linkcode RealModel.generate} returns. */
export interface ModelGenerateResult {
  /** Generated ids only, the stop token included when one ended it. */
  tokens: number[];
  /** `"stop"` (a stop id) or `"length"` (maxTokens). */
  finishReason: "stop" | "length";
  /**
   * Captured layers, vLLM's rows: `[T, H, T]` over prompt + generated
   * tokens except the last; query heads.
   */
  attention: AttentionCapture;
  /** Last-position logits of every step, when `logits: true`. */
  logits?: Float32Array[];
  /** Per generated token: its logprob (temperature 1) and the top alternatives. */
  logprobs: { token: TokenLogprob; top: TokenLogprob[] }[];
  /**
   * Per prompt position when `promptTopLogprobs` was asked (else empty):
   * the token's logprob, rank and top alternatives; `null` at position 0.
   */
  promptLogprobs:
    ({ token: TokenLogprob; rank: number; top: TokenLogprob[] } | null)[];
  /** The heads that were ablated, as applied. */
  ablatedHeads: HeadRef[];
}

/** A candidate token and its natural-log probability. */
export interface TokenLogprob {
  /** Token id. */
  id: number;
  /** Natural-log probability. */
  logprob: number;
}

/**
 * A generation run one step at a time (a prefill chunk, or one token), so a
 * server can interleave requests and cancel between steps. Synchronous:
 * the kernels block the calling thread (a worker, in the server).
 */
export interface ModelSteps {
  /** Runs the next step; `true` once generation has ended. */
  step(): boolean;
  /** Tokens generated so far. */
  readonly tokens: readonly number[];
  /** Per generated token so far: its logprob and the top alternatives. */
  readonly logprobs: ModelGenerateResult["logprobs"];
  /**
   * Ends the run early with `finishReason: "stop"` (a server's stop string),
   * after at least one token; `result()` then holds what was computed.
   */
  finish(): void;
  /** The finished result; only after `step()` returned `true`. */
  result(): ModelGenerateResult;
}

/** A checkpoint in memory, ready to run. */
export interface RealModel {
  /** The model's shape and attention layout. */
  readonly info: ModelInfo;
  /** Runs prefill then decoding with a KV cache. */
  generate(options: ModelGenerateOptions): Promise<ModelGenerateResult>;
  /**
   * The same generation, step by step; throws a `RangeError` naming the
   * problem for a bad head, layer or a sequence past `maxPositions`.
   */
  start(options: ModelGenerateOptions): ModelSteps;
  /** Frees weights, caches and workers. */
  close(): void;
}
