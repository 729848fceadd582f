/**
 * The real capture bodies the fuzz soak mutates: the wire fixtures, and one
 * body whose scores pass the decoder's worker threshold (16 MiB of float32),
 * so that the worker path is fuzzed too.
 *
 * @module
 */

import { gzipSync } from "node:zlib";

/** A response to mutate, and its name in reports. */
export interface Base {
  name: string;
  value: Record<string, unknown>;
  /** Decoded scores as float32, in bytes, before any mutation. */
  float32Bytes: number;
}

const FIXTURES = ["text_small", "multimodal", "medium"];

/** Layers and shape of the body over the worker threshold: 3 x 8 MiB as float32. */
const LARGE_LAYERS = [4, 9, 13];
const LARGE_SHAPE: [number, number, number] = [512, 8, 512];

/**
 * Loads the fixtures and builds the large body.
 *
 * @returns The bases, fixtures first.
 */
export async function loadBases(): Promise<Base[]> {
  const bases: Base[] = [];
  for (const name of FIXTURES) {
    const text = await Deno.readTextFile(
      new URL(`../tests/fixtures/${name}.json`, import.meta.url),
    );
    const value = JSON.parse(text);
    bases.push({ name, value, float32Bytes: float32Bytes(value) });
  }
  const large = largeResponse();
  bases.push({
    name: "large (workers)",
    value: large,
    float32Bytes: float32Bytes(large),
  });
  return bases;
}

function float32Bytes(value: Record<string, unknown>): number {
  let bytes = 0;
  for (const e of value.attn_capture_data as { shape: number[] }[]) {
    bytes += e.shape[0] * e.shape[1] * e.shape[2] * 4;
  }
  return bytes;
}

/**
 * A causal capture in the wire format: each row spreads its weight evenly
 * over the keys it may see, with a per-head tilt so heads differ. Cheap to
 * build, and its rows sum to 1 as real softmax rows do.
 */
function largeResponse(): Record<string, unknown> {
  const [tq, h, tk] = LARGE_SHAPE;
  const entries = LARGE_LAYERS.map((layer) => {
    const values = new Float16Array(tq * h * tk);
    for (let q = 0; q < tq; q++) {
      for (let head = 0; head < h; head++) {
        const base = (q * h + head) * tk;
        const keys = q + 1;
        // The last key gets a head-dependent extra share.
        const extra = keys > 1 ? 0.1 * ((head + layer) % 4) : 0;
        const rest = (1 - extra) / keys;
        for (let k = 0; k < keys; k++) values[base + k] = rest;
        values[base + q] = rest + extra;
      }
    }
    return {
      layer_idx: layer,
      data: gzipSync(new Uint8Array(values.buffer), { level: 6 }).toBase64(),
      shape: [tq, h, tk],
      dtype: "torch.float16",
      token_meta: {
        token_idx: Array.from({ length: tq }, (_, i) => i),
        prompt_len: tk - 4,
        total_len: tk,
        vision_ranges: [],
        lang_ranges: [{ start: 0, end: tk - 4 }],
        token_idx_basis: "window_local",
      },
    };
  });
  return {
    id: "chatcmpl-soak-large",
    object: "chat.completion",
    model: "soak-model",
    choices: [{
      index: 0,
      message: { role: "assistant", content: "ok" },
      finish_reason: "stop",
    }],
    usage: {
      prompt_tokens: tk - 4,
      completion_tokens: 5,
      total_tokens: tk + 1,
    },
    attn_capture_data: entries,
  };
}
