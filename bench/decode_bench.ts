/**
 * `deno bench` cases for the decoder's parts, side by side in one run:
 * the whole extraction from bytes (workers vs the calling thread, float32 vs
 * float16), against the obvious path (`JSON.parse` + `fromBase64` +
 * `gunzipSync` + built-in conversion); and the float16 table against the
 * built-in `Float16Array` -> `Float32Array` conversion.
 *
 * The comparison with the Python reference client is `bench/compare.ts`
 * (it needs a second process), run by `deno task bench` after this file.
 *
 * @module
 */

import { gunzipSync } from "node:zlib";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { float16ToFloat32 } from "../lib/sources/float16.ts";
import { benchCapture } from "./_data.ts";

/** The straightforward decoder, as a baseline. */
function naive(body: Uint8Array, dtype: "float32" | "float16"): number {
  const response = JSON.parse(new TextDecoder().decode(body));
  let n = 0;
  for (const item of response.attn_capture_data) {
    const raw = gunzipSync(Uint8Array.fromBase64(item.data));
    const halves = new Float16Array(raw.buffer, raw.byteOffset, raw.length / 2);
    const scores = dtype === "float16" ? halves : new Float32Array(halves);
    n += scores.length;
  }
  return n;
}

for (const t of [512, 2048, 4096]) {
  const body = await Deno.readFile(await benchCapture(t));
  const group = `decode T=${t}`;
  // Few iterations at large T: one run takes seconds.
  const n = t >= 4096 ? 3 : t >= 2048 ? 5 : 20;
  for (const dtype of ["float32", "float16"] as const) {
    Deno.bench({
      name: `attnscope, bytes, ${dtype}`,
      group,
      baseline: dtype === "float32",
      n,
      warmup: 1,
      fn: async () => {
        await extractAttentionFromResponse(body, { dtype });
      },
    });
    Deno.bench({
      name: `attnscope, bytes, ${dtype}, calling thread only`,
      group,
      n,
      warmup: 1,
      fn: async () => {
        await extractAttentionFromResponse(body, { dtype, workers: 0 });
      },
    });
    Deno.bench({
      name: `JSON.parse + fromBase64 + gunzipSync + built-in, ${dtype}`,
      group,
      n,
      warmup: 1,
      fn: () => {
        naive(body, dtype);
      },
    });
  }
}

const halves = new Float16Array(32 << 20);
{
  const bits = new Uint16Array(halves.buffer);
  // Probabilities: bit patterns of [0, 1).
  for (let i = 0; i < bits.length; i++) bits[i] = (i * 2654435761) % 0x3c00;
}
const out = new Float32Array(halves.length);
Deno.bench({
  name: "float16ToFloat32 (65,536-entry table), 32 Mi values",
  group: "float16 -> float32",
  baseline: true,
  fn: () => {
    float16ToFloat32(halves, out);
  },
});
Deno.bench({
  name: "Float32Array.prototype.set(Float16Array) (built-in), 32 Mi values",
  group: "float16 -> float32",
  fn: () => {
    out.set(halves);
  },
});
Deno.bench({
  name: "new Float32Array(Float16Array) (built-in, fresh memory), 32 Mi values",
  group: "float16 -> float32",
  fn: () => {
    new Float32Array(halves);
  },
});
Deno.bench({
  name: "float16ToFloat32 into fresh memory, 32 Mi values",
  group: "float16 -> float32",
  fn: () => {
    float16ToFloat32(halves);
  },
});
