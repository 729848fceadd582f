/**
 * Which tensors each family's checkpoint holds, under which names and
 * shapes, and loading them one at a time into a {@linkcode MatmulBackend}
 * (matrices at stored width) or float32 vectors (norms, biases). Any error
 * releases what was already uploaded, so no partial model is left behind.
 *
 * @module
 */

import type { EngineConfig } from "./config.ts";
import type { Checkpoint } from "./checkpoint.ts";
import type {
  MatmulBackend,
  WeightDtype,
  WeightHandle,
} from "./kernels/backend.ts";
import { ReferenceBackend, widenInto } from "./kernels/reference.ts";

/** A norm's parameters, float32 (Gemma's `1 + w` already added). */
export interface NormWeights {
  /** Scale. */
  weight: Float32Array;
  /** Shift (LayerNorm only). */
  bias: Float32Array | null;
}

/** One decoder layer's weights. */
export interface LayerWeights {
  /** Before attention (`input_layernorm`, `ln_1`). */
  inputNorm: NormWeights;
  /** Query projection. */
  q: WeightHandle;
  /** Key projection. */
  k: WeightHandle;
  /** Value projection. */
  v: WeightHandle;
  /** Output projection. */
  o: WeightHandle;
  /** Gemma's q/k norms over head_dim. */
  qNorm: NormWeights | null;
  /** Gemma's k norm. */
  kNorm: NormWeights | null;
  /** Gemma's `post_attention_layernorm` (on the attention output). */
  postAttnNorm: NormWeights | null;
  /** Before the MLP (`pre_feedforward_layernorm`, `post_attention_layernorm`, `ln_2`). */
  mlpNorm: NormWeights;
  /** Gemma's `post_feedforward_layernorm`. */
  postMlpNorm: NormWeights | null;
  /** Gated MLP's gate (or GPT-2's `c_fc`). */
  gate: WeightHandle;
  /** Gated MLP's up projection; `null` for GPT-2. */
  up: WeightHandle | null;
  /** Down projection (`c_proj`). */
  down: WeightHandle;
}

/** A whole model's weights. */
export interface ModelWeights {
  /**
   * Token embeddings at stored width, `vocab * hidden`; `data` is `null`
   * when the head is tied and the backend keeps its own copy, in which case
   * rows are read back through the head (see `Forward`), so the matrix is
   * held once.
   */
  embed: { dtype: WeightDtype; data: Float32Array | Uint16Array | null };
  /** Learned positions (GPT-2), `positions * hidden`. */
  positionEmbed:
    | { dtype: WeightDtype; data: Float32Array | Uint16Array }
    | null;
  /** Decoder layers. */
  layers: LayerWeights[];
  /** Final norm. */
  finalNorm: NormWeights;
  /** Output head, `vocab x hidden`. */
  head: WeightHandle;
  /** The embeddings' stored dtype. */
  dtype: WeightDtype;
  /** Every handle, for release. */
  handles: WeightHandle[];
}

function fail(what: string): never {
  throw new Error(`Cannot load model: ${what}`);
}

/** Finds the prefix under which this checkpoint keeps the text model. */
function findPrefix(config: EngineConfig, ckpt: Checkpoint): {
  body: string;
  heads: string[];
} {
  const has = (n: string) => ckpt.tensors.has(n);
  if (config.family === "gpt2") {
    for (const body of ["transformer.", ""]) {
      if (has(body + "wte.weight")) return { body, heads: ["lm_head.weight"] };
    }
    fail(
      "the checkpoint has no wte.weight (nor transformer.wte.weight), so it is not a GPT-2 checkpoint; check config.json's model_type",
    );
  }
  const bodies = config.multimodal
    ? ["language_model.model.", "model.language_model.", "model."]
    : ["model.", "model.language_model.", "language_model.model."];
  for (const body of bodies) {
    if (has(body + "embed_tokens.weight")) {
      return {
        body,
        heads: body === "language_model.model."
          ? ["language_model.lm_head.weight", "lm_head.weight"]
          : ["lm_head.weight", "language_model.lm_head.weight"],
      };
    }
  }
  fail(
    `the checkpoint has no embed_tokens.weight under ${
      bodies.join(", ")
    }; check that config.json's model_type (${config.family}) matches the weights`,
  );
}

/**
 * Loads every tensor the config needs, checking names, shapes and dtypes.
 *
 * @param config The normalized config.
 * @param ckpt The open checkpoint.
 * @param backend Where matrices go.
 * @param onProgress Bytes read so far and in all.
 * @returns The weights; on error every uploaded handle is released first.
 */
export async function loadWeights(
  config: EngineConfig,
  ckpt: Checkpoint,
  backend: MatmulBackend,
  onProgress?: (loaded: number, total: number) => void,
): Promise<ModelWeights> {
  const handles: WeightHandle[] = [];
  const total = ckpt.totalBytes;
  let loaded = 0;
  const { body, heads } = findPrefix(config, ckpt);
  let headIsEmbed = false;
  const d = config.hiddenSize;
  const hd = config.headDim;
  const nh = config.numHeads;
  const kv = config.numKeyValueHeads;
  const inter = config.intermediateSize;

  const check = (name: string, shape: number[]) => {
    const t = ckpt.tensors.get(name);
    if (!t) {
      fail(
        `tensor ${name} is missing from the checkpoint; the ${config.family} config needs it, so check the files and config.json`,
      );
    }
    const got = t.entry.shape;
    if (got.length !== shape.length || got.some((n, i) => n !== shape[i])) {
      fail(
        `tensor ${name} has shape [${
          got.join(", ")
        }] but config.json implies [${
          shape.join(", ")
        }]; check config.json (hidden_size, heads, head_dim, vocab_size...) against the weights`,
      );
    }
    return t;
  };
  const read = async (name: string, shape: number[]) => {
    const t = check(name, shape);
    const r = await ckpt.read(name);
    loaded += t.entry.length;
    onProgress?.(loaded, total);
    return r;
  };
  const vector = async (
    name: string,
    n: number,
    plusOne = false,
  ): Promise<Float32Array> => {
    const r = await read(name, [n]);
    const out = new Float32Array(n);
    widenInto(r.data, r.dtype, 0, n, out, new Uint32Array(out.buffer));
    if (plusOne) {
      for (let i = 0; i < n; i++) {
        out[i] = Math.fround(1 + out[i]);
      }
    }
    return out;
  };
  const norm = async (prefix: string, n: number): Promise<NormWeights> => ({
    weight: await vector(prefix + ".weight", n, config.norm === "rms1p"),
    bias: config.norm === "layernorm"
      ? await vector(prefix + ".bias", n)
      : null,
  });
  const matrix = async (
    name: string,
    rows: number,
    cols: number,
    bias: string | null,
  ): Promise<WeightHandle> => {
    if (backend.uploadStreamed) {
      const b = bias ? await vector(bias, rows) : null;
      const h = await streamed(name, rows, cols, b);
      handles.push(h);
      return h;
    }
    const r = await read(name, [rows, cols]);
    const b = bias ? await vector(bias, rows) : null;
    const h = backend.upload({ rows, cols, dtype: r.dtype, data: r.data }, b);
    handles.push(h);
    return h;
  };
  // Straight from the file into the backend, a few MiB of rows at a time
  // through one reused buffer, so no whole-tensor array exists.
  const streamed = async (
    name: string,
    rows: number,
    cols: number,
    bias: Float32Array | null,
  ): Promise<WeightHandle> => {
    const t = check(name, [rows, cols]);
    const dtype = ckpt.dtypeOf(name);
    const writer = backend.uploadStreamed!({ rows, cols, dtype }, bias);
    try {
      const es = dtype === "float32" ? 4 : 2;
      await ckpt.readChunks(
        name,
        writer.chunkRows * cols * es,
        (chunk) => writer.write(chunk),
      );
      const h = writer.finish();
      loaded += t.entry.length;
      onProgress?.(loaded, total);
      return h;
    } catch (error) {
      writer.abort();
      throw error;
    }
  };
  type Embed = { dtype: WeightDtype; data: Float32Array | Uint16Array | null };
  // A tied head on a backend that copies (and can take rows streamed) is
  // read once, into the backend, at the end; the engine keeps no copy and
  // reads embedding rows back through the head.
  const ownHead = heads.find((n) => ckpt.tensors.has(n));
  const streamTied = (config.tieWordEmbeddings || !ownHead) &&
    backend.uploadStreamed !== undefined &&
    !(backend instanceof ReferenceBackend);
  const readEmbed = async (name: string): Promise<Embed> => {
    if (!streamTied) return await read(name, [config.vocabSize, d]);
    check(name, [config.vocabSize, d]);
    return { dtype: ckpt.dtypeOf(name), data: null };
  };
  // GPT-2's Conv1D keeps [in, out]: transpose into nn.Linear's [out, in],
  // at stored width, one tensor at a time; `parts` splits c_attn into q, k, v.
  const conv1d = async (
    prefix: string,
    inDim: number,
    outDim: number,
    parts: number,
  ): Promise<WeightHandle[]> => {
    const r = await read(prefix + ".weight", [inDim, outDim]);
    const bias = await vector(prefix + ".bias", outDim);
    const part = outDim / parts;
    const out: WeightHandle[] = [];
    for (let p = 0; p < parts; p++) {
      const t = r.dtype === "float32"
        ? new Float32Array(part * inDim)
        : new Uint16Array(part * inDim);
      for (let o = 0; o < part; o++) {
        const col = p * part + o;
        for (let i = 0; i < inDim; i++) {
          t[o * inDim + i] = r.data[i * outDim + col];
        }
      }
      const h = backend.upload(
        { rows: part, cols: inDim, dtype: r.dtype, data: t },
        bias.slice(p * part, (p + 1) * part),
      );
      handles.push(h);
      out.push(h);
    }
    return out;
  };

  try {
    const layers: LayerWeights[] = [];
    if (config.family === "gpt2") {
      const embedName = body + "wte.weight";
      const embed = await readEmbed(embedName);
      const pos = await read(body + "wpe.weight", [config.maxPositions, d]);
      for (let i = 0; i < config.numLayers; i++) {
        const p = `${body}h.${i}.`;
        const inputNorm = await norm(p + "ln_1", d);
        const [q, k, v] = await conv1d(p + "attn.c_attn", d, 3 * d, 3);
        const [o] = await conv1d(p + "attn.c_proj", d, d, 1);
        const mlpNorm = await norm(p + "ln_2", d);
        const [gate] = await conv1d(p + "mlp.c_fc", d, inter, 1);
        const [down] = await conv1d(p + "mlp.c_proj", inter, d, 1);
        layers.push({
          inputNorm,
          q,
          k,
          v,
          o,
          qNorm: null,
          kNorm: null,
          postAttnNorm: null,
          mlpNorm,
          postMlpNorm: null,
          gate,
          up: null,
          down,
        });
      }
      const finalNorm = await norm(body + "ln_f", d);
      const head = await tiedOrOwnHead(embedName, embed);
      return {
        embed: embedOf(embed),
        positionEmbed: pos,
        layers,
        finalNorm,
        head,
        dtype: embed.dtype,
        handles,
      };
    }
    const embedName = body + "embed_tokens.weight";
    const embed = await readEmbed(embedName);
    for (let i = 0; i < config.numLayers; i++) {
      const p = `${body}layers.${i}.`;
      const a = p + "self_attn.";
      const qb = config.qkvBias;
      const inputNorm = await norm(p + "input_layernorm", d);
      const q = await matrix(
        a + "q_proj.weight",
        nh * hd,
        d,
        qb ? a + "q_proj.bias" : null,
      );
      const k = await matrix(
        a + "k_proj.weight",
        kv * hd,
        d,
        qb ? a + "k_proj.bias" : null,
      );
      const v = await matrix(
        a + "v_proj.weight",
        kv * hd,
        d,
        qb ? a + "v_proj.bias" : null,
      );
      const o = await matrix(
        a + "o_proj.weight",
        d,
        nh * hd,
        config.oBias ? a + "o_proj.bias" : null,
      );
      const g = config.gemmaNorms;
      const qNorm = g ? await norm(a + "q_norm", hd) : null;
      const kNorm = g ? await norm(a + "k_norm", hd) : null;
      const postAttnNorm = g
        ? await norm(p + "post_attention_layernorm", d)
        : null;
      const mlpNorm = await norm(
        p + (g ? "pre_feedforward_layernorm" : "post_attention_layernorm"),
        d,
      );
      const postMlpNorm = g
        ? await norm(p + "post_feedforward_layernorm", d)
        : null;
      const m = p + "mlp.";
      const mb = config.mlpBias;
      const gate = await matrix(
        m + "gate_proj.weight",
        inter,
        d,
        mb ? m + "gate_proj.bias" : null,
      );
      const up = await matrix(
        m + "up_proj.weight",
        inter,
        d,
        mb ? m + "up_proj.bias" : null,
      );
      const down = await matrix(
        m + "down_proj.weight",
        d,
        inter,
        mb ? m + "down_proj.bias" : null,
      );
      layers.push({
        inputNorm,
        q,
        k,
        v,
        o,
        qNorm,
        kNorm,
        postAttnNorm,
        mlpNorm,
        postMlpNorm,
        gate,
        up,
        down,
      });
    }
    const finalNorm = await norm(body + "norm", d);
    const head = await tiedOrOwnHead(embedName, embed);
    return {
      embed: embedOf(embed),
      positionEmbed: null,
      layers,
      finalNorm,
      head,
      dtype: embed.dtype,
      handles,
    };
  } catch (error) {
    for (const h of handles) backend.release(h);
    throw error;
  }

  // The reference backend keeps the array it is given (no copy), so the
  // engine may share it; any other backend copies, so the engine drops its
  // own copy of a tied matrix and reads rows back through the head.
  function embedOf(embed: Embed): ModelWeights["embed"] {
    const copied = headIsEmbed && !(backend instanceof ReferenceBackend);
    return copied ? { dtype: embed.dtype, data: null } : embed;
  }

  async function tiedOrOwnHead(
    embedName: string,
    embed: Embed,
  ): Promise<WeightHandle> {
    const own = ownHead;
    if (config.tieWordEmbeddings || !own) {
      if (!config.tieWordEmbeddings) {
        fail(
          `tensor ${
            heads[0]
          } is missing and config.json says tie_word_embeddings is false; add the head or set tie_word_embeddings`,
        );
      }
      headIsEmbed = true;
      if (!embed.data) {
        const h = await streamed(embedName, config.vocabSize, d, null);
        handles.push(h);
        return h;
      }
      const h = backend.upload({
        rows: config.vocabSize,
        cols: d,
        dtype: embed.dtype,
        data: embed.data,
      });
      handles.push(h);
      return h;
    }
    return await matrix(own, config.vocabSize, d, null);
  }
}
