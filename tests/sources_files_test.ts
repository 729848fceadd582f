/**
 * loadAttention() from files larger than its 4 MiB read chunk: entries and
 * tensors that span chunks, rows split across them, deflate streams fed in
 * pieces, all read back exactly.
 */

import assert from "node:assert/strict";
import { zipSync } from "fflate";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { CHUNK_BYTES } from "../lib/sources/files/_byte_source.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { seededRandom } from "../lib/random.ts";
import { safetensors } from "./_attention_files.ts";

const H = 4;
const T = 601; // odd, so rows straddle chunk boundaries
const LAYERS = 3;

/** Causal softmax rows, [1, H, T, T]. */
function layer(seed: number): Float32Array {
  const random = seededRandom(seed);
  const out = new Float32Array(H * T * T);
  for (let h = 0; h < H; h++) {
    for (let q = 0; q < T; q++) {
      const base = (h * T + q) * T;
      let total = 0;
      for (let k = 0; k <= q; k++) total += out[base + k] = random() ** 6;
      for (let k = 0; k <= q; k++) out[base + k] /= total;
    }
  }
  return out;
}

const layers = Array.from({ length: LAYERS }, (_, i) => layer(i + 1));

function assertLayers(loaded: Awaited<ReturnType<typeof loadAttention>>) {
  assert.deepEqual(Object.keys(loaded.attention), ["0", "1", "2"]);
  for (let l = 0; l < LAYERS; l++) {
    const scores = loaded.attention[l].scores;
    assert.deepEqual(scores.shape, [T, H, T]);
    const src = layers[l];
    let bad = 0;
    for (let q = 0; q < T; q++) {
      for (let h = 0; h < H; h++) {
        for (let k = 0; k < T; k++) {
          if (scores.data[(q * H + h) * T + k] !== src[(h * T + q) * T + k]) {
            bad++;
          }
        }
      }
    }
    assert.equal(bad, 0, `layer ${l}: ${bad} values differ`);
  }
  assert.deepEqual(loaded.findings, { 0: [], 1: [], 2: [] });
}

Deno.test("loadAttention() reads multi-chunk .npz files, stored and deflated, exactly", async () => {
  const entries = Object.fromEntries(
    layers.map((
      data,
      i,
    ) => [`layers.${i}.npy`, toNpy({ data, shape: [1, H, T, T] })]),
  );
  for (const level of [0, 6] as const) {
    const bytes = zipSync(entries, { level });
    assert.ok(bytes.length > CHUNK_BYTES, `${bytes.length} bytes`);
    const path = await Deno.makeTempFile({ suffix: ".npz" });
    try {
      await Deno.writeFile(path, bytes);
      assertLayers(await loadAttention(path));
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("loadAttention() reads a multi-chunk safetensors file exactly", async () => {
  const bytes = safetensors(layers.map((data, i) => ({
    name: `model.layers.${i}.self_attn`,
    dtype: "F32",
    shape: [1, H, T, T],
    data: new Uint8Array(data.buffer),
  })));
  assert.ok(bytes.length > 2 * CHUNK_BYTES);
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await Deno.writeFile(path, bytes);
    assertLayers(await loadAttention(path));
  } finally {
    await Deno.remove(path);
  }
});
