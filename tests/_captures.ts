/**
 * Test helpers: captures in the exact wire format (float16, gzip level 9 as
 * Python's `gzip.compress`, base64), built from seeded causal softmaxes.
 */

import { gzipSync } from "node:zlib";
import { AttentionLayer } from "../lib/data/layer.ts";
import { seededRandom } from "../lib/random.ts";
import type { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";

/**
 * Causal softmax scores `[tq, h, tk]` as float16: row `q` is the query at
 * key position `tk - tq + q` and attends to keys up to it.
 */
export function causalScores(
  tq: number,
  h: number,
  tk: number,
  seed = 1,
): Float16Array {
  const random = seededRandom(seed);
  const out = new Float16Array(tq * h * tk);
  for (let q = 0; q < tq; q++) {
    const last = tk - tq + q;
    for (let head = 0; head < h; head++) {
      const base = (q * h + head) * tk;
      const logits = Array.from({ length: last + 1 }, () => random() * 4);
      const max = Math.max(...logits);
      const exps = logits.map((x) => Math.exp(x - max));
      const total = exps.reduce((a, b) => a + b, 0);
      exps.forEach((e, k) => (out[base + k] = e / total));
    }
  }
  return out;
}

/** `base64(gzip(bytes))` as the server encodes a layer. */
export function encodeLayerData(values: Float16Array | Uint8Array): string {
  const bytes = values instanceof Uint8Array
    ? values
    : new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return gzipSync(bytes, { level: 9 }).toBase64();
}

/** One `attn_capture_data` entry. */
export function layerEntry(
  layerIdx: number,
  shape: [number, number, number],
  options: {
    values?: Float16Array;
    tokenMeta?: Record<string, unknown>;
    seed?: number;
  } = {},
): Record<string, unknown> {
  const values = options.values ??
    causalScores(shape[0], shape[1], shape[2], options.seed ?? layerIdx + 1);
  return {
    layer_idx: layerIdx,
    data: encodeLayerData(values),
    shape,
    dtype: "torch.float16",
    token_meta: options.tokenMeta ?? {
      prompt_len: shape[2] - 2,
      total_len: shape[2],
      vision_ranges: [],
      lang_ranges: [{ start: 0, end: shape[2] - 2 }],
    },
  };
}

/** A chat completion response around the given entries. */
export function response(
  entries: unknown,
  model = "test-model",
): Record<string, unknown> {
  return {
    id: "chatcmpl-test",
    object: "chat.completion",
    model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: "ok" },
      finish_reason: "stop",
    }],
    attn_capture_data: entries,
  };
}

/** The body bytes of a response, as the server sends them. */
export function bodyBytes(value: unknown): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(JSON.stringify(value));
}

/**
 * A layer whose every position is a prompt token: for metric, rollout and
 * comparison tests that need a layer around hand-made scores.
 */
export function promptLayer(
  index: number,
  scores: AttentionScores,
): AttentionLayer {
  return new AttentionLayer({
    layer: index,
    model: "test",
    scores,
    tokenMeta: TokenMeta.from({
      prompt_len: scores.keyLength,
      total_len: scores.keyLength,
    }),
  });
}
