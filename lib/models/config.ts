/**
 * Reads a HuggingFace `config.json` into the engine's terms, filling every
 * field a config omits with the default of HF's config class for that
 * family (`Gemma3TextConfig`, `LlamaConfig`, `Qwen2Config`, `GPT2Config`).
 * A multimodal `gemma3` config is read through its `text_config`.
 *
 * @module
 */

import type { ModelFamily } from "./types.ts";

/** RoPE for one kind of layer: base and HF `rope_scaling`. */
export interface RopeSpec {
  /** The base (`rope_theta`, or `rope_local_base_freq` on Gemma 3 sliding layers). */
  theta: number;
  /** `linear` divides the frequencies; `llama3` is Llama 3.1's band scaling. */
  scaling:
    | { type: "default" }
    | { type: "linear"; factor: number }
    | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };
}

/** A config with its family's defaults applied: everything the engine reads. */
export interface EngineConfig {
  /** The text model's family. */
  family: ModelFamily;
  /** `true` for a multimodal `gemma3` checkpoint (text weights prefixed). */
  multimodal: boolean;
  /** Output rows of the head. */
  vocabSize: number;
  /** Residual width. */
  hiddenSize: number;
  /** MLP width. */
  intermediateSize: number;
  /** Decoder layers. */
  numLayers: number;
  /** Query heads. */
  numHeads: number;
  /** KV heads. */
  numKeyValueHeads: number;
  /** Width of a head. */
  headDim: number;
  /** Longest sequence. */
  maxPositions: number;
  /** `rms` is `w·x̂`, `rms1p` Gemma's `(1+w)·x̂`, `layernorm` GPT-2's with bias. */
  norm: "rms" | "rms1p" | "layernorm";
  /** The norms' epsilon. */
  normEps: number;
  /** MLP activation. */
  activation: "gelu_tanh" | "silu";
  /** `true`: `down(act(gate(x)) · up(x))`; `false`: GPT-2's `proj(act(fc(x)))`. */
  gatedMlp: boolean;
  /** Gemma 3: q/k RMSNorm over head_dim before RoPE, and norms after each sub-layer. */
  gemmaNorms: boolean;
  /** Multiplies the embeddings (Gemma: sqrt(hidden), rounded to the weights' dtype at load). */
  embedScale: number | null;
  /** RoPE, or GPT-2's learned positions. */
  positions: "rope" | "learned";
  /** Score scaling of each layer. */
  attnScaling: number[];
  /** Each layer's kind. */
  layerTypes: ("sliding_attention" | "full_attention")[];
  /** Keys a sliding layer sees (itself included), or `null`. */
  slidingWindow: number | null;
  /** RoPE of full layers. */
  ropeGlobal: RopeSpec;
  /** RoPE of sliding layers. */
  ropeLocal: RopeSpec;
  /** Gemma's `attn_logit_softcapping`, or `null`. */
  attnSoftcap: number | null;
  /** Gemma's `final_logit_softcapping`, or `null`. */
  finalSoftcap: number | null;
  /** The head is the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Biases on q, k and v. */
  qkvBias: boolean;
  /** Bias on o_proj. */
  oBias: boolean;
  /** Biases on the MLP projections. */
  mlpBias: boolean;
  /** End-of-sequence ids. */
  eosTokenIds: number[];
}

/** The families `loadModel` runs, as named in errors. */
export const SUPPORTED_ARCHITECTURES =
  "gemma3_text (Gemma3ForCausalLM), gemma3 (text part of Gemma3ForConditionalGeneration), llama, qwen2, gpt2";

type Raw = Record<string, unknown>;

function fail(what: string): never {
  throw new Error(`Cannot load model: ${what}`);
}

function num(
  c: Raw,
  key: string,
  fallback: number | undefined,
  opts: { int?: boolean; positive?: boolean } = {},
): number {
  const v = c[key] ?? fallback;
  if (v === undefined) {
    fail(
      `config.json has no "${key}" and HF's config class has no default for it; add it to config.json`,
    );
  }
  if (
    typeof v !== "number" || !Number.isFinite(v) ||
    (opts.int && !Number.isInteger(v)) || (opts.positive && v <= 0)
  ) {
    fail(
      `config.json "${key}" is ${JSON.stringify(v)}, not a ${
        opts.positive ? "positive " : ""
      }${opts.int ? "integer" : "number"}; fix config.json`,
    );
  }
  return v;
}

function optNum(c: Raw, key: string, fallback: number | null): number | null {
  const v = c[key];
  if (v === undefined || v === null) return fallback;
  return num(c, key, undefined);
}

function bool(c: Raw, key: string, fallback: boolean): boolean {
  const v = c[key] ?? fallback;
  if (typeof v !== "boolean") {
    fail(
      `config.json "${key}" is ${
        JSON.stringify(v)
      }, not true or false; fix config.json`,
    );
  }
  return v;
}

function ids(v: unknown, where: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((n) => Number.isInteger(n) && n >= 0)) {
    fail(
      `${where} eos_token_id is ${
        JSON.stringify(v)
      }, not an id or a list of ids; fix it`,
    );
  }
  return list as number[];
}

function ropeSpec(theta: number, raw: unknown): RopeSpec {
  if (raw === undefined || raw === null) {
    return { theta, scaling: { type: "default" } };
  }
  if (typeof raw !== "object" || Array.isArray(raw)) {
    fail(
      `config.json "rope_scaling" is ${
        JSON.stringify(raw)
      }, not an object; fix config.json`,
    );
  }
  const r = raw as Raw;
  const type = r.rope_type ?? r.type;
  if (type === "default") return { theta, scaling: { type: "default" } };
  if (type === "linear") {
    return {
      theta,
      scaling: {
        type: "linear",
        factor: num(r, "factor", undefined, { positive: true }),
      },
    };
  }
  if (type === "llama3") {
    return {
      theta,
      scaling: {
        type: "llama3",
        factor: num(r, "factor", undefined, { positive: true }),
        lowFreqFactor: num(r, "low_freq_factor", undefined, { positive: true }),
        highFreqFactor: num(r, "high_freq_factor", undefined, {
          positive: true,
        }),
        originalMaxPositions: num(
          r,
          "original_max_position_embeddings",
          undefined,
          {
            positive: true,
          },
        ),
      },
    };
  }
  fail(
    `rope_scaling type ${
      JSON.stringify(type)
    } is not supported; supported: default, linear, llama3`,
  );
}

function layerTypes(
  c: Raw,
  n: number,
  fallback: () => ("sliding_attention" | "full_attention")[],
): ("sliding_attention" | "full_attention")[] {
  const v = c.layer_types;
  if (v === undefined || v === null) return fallback();
  if (
    !Array.isArray(v) || v.length !== n ||
    !v.every((t) => t === "sliding_attention" || t === "full_attention")
  ) {
    fail(
      `config.json "layer_types" must list "sliding_attention" or "full_attention" for each of the ${n} layers; fix config.json`,
    );
  }
  return v;
}

/**
 * Normalizes a `config.json` (and `generation_config.json`, for its EOS ids).
 *
 * @param raw The parsed `config.json`.
 * @param generation The parsed `generation_config.json`, when present.
 * @returns The config with the family's defaults filled in.
 * @throws {Error} `Cannot load model: ...` for an unsupported architecture or a malformed field.
 *
 * @example A SmolLM2-like Llama config; omitted fields take LlamaConfig's defaults
 * ```ts
 * import { parseModelConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 *
 * const c = parseModelConfig({
 *   model_type: "llama", hidden_size: 576, num_attention_heads: 9,
 *   num_key_value_heads: 3, num_hidden_layers: 30, intermediate_size: 1536, vocab_size: 49152,
 * });
 * assert.equal(c.headDim, 64);
 * assert.equal(c.ropeGlobal.theta, 10000);
 * assert.deepEqual(c.eosTokenIds, [2]);
 * assert.throws(() => parseModelConfig({ model_type: "mistral" }), /architecture mistral is not supported/);
 * ```
 */
export function parseModelConfig(
  raw: unknown,
  generation?: unknown,
): EngineConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(
      "config.json is not a JSON object; use the checkpoint's own config.json",
    );
  }
  let c = raw as Raw;
  let type = c.model_type;
  if (type === undefined) {
    fail(
      'config.json has no "model_type", so its architecture is unknown; add it (e.g. "llama") to config.json',
    );
  }
  let multimodal = false;
  const outerEos = ids(c.eos_token_id, "config.json");
  if (type === "gemma3") {
    const text = c.text_config ?? {};
    if (typeof text !== "object" || text === null || Array.isArray(text)) {
      fail('config.json "text_config" is not an object; fix config.json');
    }
    c = text as Raw;
    type = "gemma3_text";
    multimodal = true;
  }
  const genEos = generation && typeof generation === "object"
    ? ids((generation as Raw).eos_token_id, "generation_config.json")
    : [];
  const eos = (fallback: number | null) => {
    const own = c.eos_token_id === undefined
      ? (fallback === null ? [] : [fallback])
      : ids(c.eos_token_id, "config.json");
    return [...new Set([...own, ...outerEos, ...genEos])];
  };
  if (type === "gpt2") return gpt2(c, eos(50256));
  if (type !== "gemma3_text" && type !== "llama" && type !== "qwen2") {
    fail(
      `architecture ${
        typeof type === "string" ? type : JSON.stringify(type)
      } is not supported; supported: ${SUPPORTED_ARCHITECTURES}`,
    );
  }
  const gemma = type === "gemma3_text";
  const D = {
    gemma3_text: {
      vocab: 262208,
      hidden: 2304,
      inter: 9216,
      layers: 26,
      heads: 8,
      kv: 4,
      pos: 131072,
      theta: 1e6,
      tie: true,
      eos: 1,
    },
    llama: {
      vocab: 32000,
      hidden: 4096,
      inter: 11008,
      layers: 32,
      heads: 32,
      kv: null,
      pos: 2048,
      theta: 10000,
      tie: false,
      eos: 2,
    },
    qwen2: {
      vocab: 151936,
      hidden: 4096,
      inter: 22016,
      layers: 32,
      heads: 32,
      kv: 32,
      pos: 32768,
      theta: 10000,
      tie: false,
      eos: null,
    },
  }[type];
  const hidden = num(c, "hidden_size", D.hidden, { int: true, positive: true });
  const heads = num(c, "num_attention_heads", D.heads, {
    int: true,
    positive: true,
  });
  const kv = num(c, "num_key_value_heads", D.kv ?? heads, {
    int: true,
    positive: true,
  });
  if (heads % kv !== 0) {
    fail(
      `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}; fix config.json`,
    );
  }
  const headDim = num(c, "head_dim", gemma ? 256 : Math.floor(hidden / heads), {
    int: true,
    positive: true,
  });
  const n = num(c, "num_hidden_layers", D.layers, {
    int: true,
    positive: true,
  });
  const act = c[gemma ? "hidden_activation" : "hidden_act"] ??
    (gemma ? "gelu_pytorch_tanh" : "silu");
  const activation = act === "silu"
    ? "silu"
    : act === "gelu_pytorch_tanh" || act === "gelu_new"
    ? "gelu_tanh"
    : fail(
      `activation ${
        JSON.stringify(act)
      } is not supported; supported: silu, gelu_pytorch_tanh`,
    );
  const theta = num(c, "rope_theta", D.theta, { positive: true });
  const ropeGlobal = ropeSpec(theta, c.rope_scaling);
  let types: ("sliding_attention" | "full_attention")[];
  let window: number | null;
  if (gemma) {
    const pattern = num(c, "sliding_window_pattern", 6, {
      int: true,
      positive: true,
    });
    types = layerTypes(
      c,
      n,
      () =>
        Array.from(
          { length: n },
          (_, i) => (i + 1) % pattern ? "sliding_attention" : "full_attention",
        ),
    );
    window = num(c, "sliding_window", 4096, { int: true, positive: true });
  } else if (type === "qwen2") {
    window = bool(c, "use_sliding_window", false)
      ? optNum(c, "sliding_window", 4096)
      : null;
    const mwl = num(c, "max_window_layers", 28, { int: true });
    types = layerTypes(
      c,
      n,
      () =>
        Array.from(
          { length: n },
          (_, i) =>
            window !== null && i >= mwl
              ? "sliding_attention"
              : "full_attention",
        ),
    );
    if (window === null) types = types.map(() => "full_attention");
  } else {
    types = Array.from({ length: n }, () => "full_attention");
    window = null;
  }
  const scalar = gemma
    ? num(c, "query_pre_attn_scalar", 256, { positive: true })
    : headDim;
  const attentionBias = bool(c, "attention_bias", false);
  return {
    family: type,
    multimodal,
    vocabSize: num(c, "vocab_size", D.vocab, { int: true, positive: true }),
    hiddenSize: hidden,
    intermediateSize: num(c, "intermediate_size", D.inter, {
      int: true,
      positive: true,
    }),
    numLayers: n,
    numHeads: heads,
    numKeyValueHeads: kv,
    headDim,
    maxPositions: num(c, "max_position_embeddings", D.pos, {
      int: true,
      positive: true,
    }),
    norm: gemma ? "rms1p" : "rms",
    normEps: num(c, "rms_norm_eps", 1e-6, { positive: true }),
    activation,
    gatedMlp: true,
    gemmaNorms: gemma,
    embedScale: gemma ? Math.fround(Math.sqrt(hidden)) : null,
    positions: "rope",
    attnScaling: Array.from({ length: n }, () => scalar ** -0.5),
    layerTypes: types,
    slidingWindow: types.includes("sliding_attention") ? window : null,
    ropeGlobal,
    ropeLocal: gemma
      ? {
        theta: num(c, "rope_local_base_freq", 10000, { positive: true }),
        scaling: { type: "default" },
      }
      : ropeGlobal,
    attnSoftcap: gemma ? optNum(c, "attn_logit_softcapping", null) : null,
    finalSoftcap: gemma ? optNum(c, "final_logit_softcapping", null) : null,
    tieWordEmbeddings: bool(c, "tie_word_embeddings", D.tie),
    qkvBias: type === "qwen2" || attentionBias,
    oBias: type !== "qwen2" && attentionBias,
    mlpBias: type === "llama" && bool(c, "mlp_bias", false),
    eosTokenIds: eos(D.eos),
  };
}

function gpt2(c: Raw, eosTokenIds: number[]): EngineConfig {
  const hidden = num(c, "n_embd", 768, { int: true, positive: true });
  const heads = num(c, "n_head", 12, { int: true, positive: true });
  if (hidden % heads !== 0) {
    fail(
      `n_embd ${hidden} is not a multiple of n_head ${heads}; fix config.json`,
    );
  }
  const n = num(c, "n_layer", 12, { int: true, positive: true });
  const act = c.activation_function ?? "gelu_new";
  if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
    fail(
      `activation_function ${
        JSON.stringify(act)
      } is not supported; supported: gelu_new`,
    );
  }
  const headDim = hidden / heads;
  const scale = bool(c, "scale_attn_weights", true);
  const byLayer = bool(c, "scale_attn_by_inverse_layer_idx", false);
  if (bool(c, "reorder_and_upcast_attn", false)) {
    // Same math in float32, which is what the engine computes anyway.
  }
  const inner = c.n_inner ?? null;
  return {
    family: "gpt2",
    multimodal: false,
    vocabSize: num(c, "vocab_size", 50257, { int: true, positive: true }),
    hiddenSize: hidden,
    intermediateSize: inner === null
      ? 4 * hidden
      : num(c, "n_inner", undefined, { int: true, positive: true }),
    numLayers: n,
    numHeads: heads,
    numKeyValueHeads: heads,
    headDim,
    maxPositions: num(c, "n_positions", 1024, { int: true, positive: true }),
    norm: "layernorm",
    normEps: num(c, "layer_norm_epsilon", 1e-5, { positive: true }),
    activation: "gelu_tanh",
    gatedMlp: false,
    gemmaNorms: false,
    embedScale: null,
    positions: "learned",
    attnScaling: Array.from(
      { length: n },
      (_, i) => (scale ? 1 / Math.sqrt(headDim) : 1) / (byLayer ? i + 1 : 1),
    ),
    layerTypes: Array.from({ length: n }, () => "full_attention"),
    slidingWindow: null,
    ropeGlobal: { theta: 10000, scaling: { type: "default" } },
    ropeLocal: { theta: 10000, scaling: { type: "default" } },
    attnSoftcap: null,
    finalSoftcap: null,
    tieWordEmbeddings: bool(c, "tie_word_embeddings", true),
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    eosTokenIds,
  };
}
