/**
 * The wire encoder: round trip through the decoder, gzip level 9, float16
 * little-endian with numpy's rounding, shape, dtype and token_meta; and the
 * reference's own Python decoding of what it writes.
 */

import assert from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { gunzipSync, gzipSync } from "node:zlib";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import {
  buildTokenMeta,
  encodeAttentionLayer,
  float16Bytes,
} from "../server/encode.ts";

/** Causal softmax rows of random logits: `[T, H, T]`. */
function softmaxScores(t: number, h: number, seed: number): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(t * h * t);
  for (let q = 0; q < t; q++) {
    for (let head = 0; head < h; head++) {
      const base = (q * h + head) * t;
      let sum = 0;
      for (let k = 0; k <= q; k++) sum += out[base + k] = Math.exp(4 * next());
      for (let k = 0; k <= q; k++) out[base + k] /= sum;
    }
  }
  return out;
}

Deno.test("encodeAttentionLayer() round-trips through extractAttentionFromResponse()", async () => {
  const [t, h] = [23, 4];
  const scores = softmaxScores(t, h, 7);
  const wire = encodeAttentionLayer(5, scores, [t, h, t], {
    promptLen: 20,
    visionRanges: [{ start: 3, end: 9 }],
  });
  const capture = await extractAttentionFromResponse(
    new TextEncoder().encode(
      JSON.stringify({ model: "m", attn_capture_data: [wire] }),
    ),
  );
  const layer = capture![5];
  assert.deepEqual(layer.scores.shape, [t, h, t]);
  assert.equal(layer.tokenMeta.promptLen, 20);
  assert.equal(layer.tokenMeta.totalLen, t);
  assert.deepEqual(layer.tokenMeta.visionTokens(), [3, 4, 5, 6, 7, 8]);
  for (let i = 0; i < scores.length; i++) {
    const q = Math.floor(i / (h * t));
    const head = Math.floor(i / t) % h;
    const k = i % t;
    assert.equal(layer.scores.get(q, head, k), Math.f16round(scores[i]));
  }
});

Deno.test("encodeAttentionLayer() writes gzip level 9 of little-endian float16, shape [T, H, T] and dtype torch.float16", () => {
  const scores = softmaxScores(9, 2, 3);
  const wire = encodeAttentionLayer(0, scores, [9, 2, 9], {
    promptLen: 9,
    visionRanges: [],
  });
  const gz = Uint8Array.fromBase64(wire.data);
  assert.deepEqual(
    [gz[0], gz[1], gz[2]],
    [0x1f, 0x8b, 8],
    "gzip magic and deflate",
  );
  assert.equal(gz[8], 2, "XFL=2: the compressor used its maximum level");
  const raw = new Uint8Array(gunzipSync(gz));
  assert.deepEqual(
    new Uint8Array(gzipSync(raw, { level: 9 })).subarray(10),
    gz.subarray(10),
    "same deflate stream as level 9",
  );
  assert.equal(raw.length, 9 * 2 * 9 * 2);
  const view = new DataView(raw.buffer);
  assert.equal(
    view.getFloat16(0, true),
    1,
    "row 0 puts all weight on key 0, little-endian",
  );
  assert.deepEqual(wire.shape, [9, 2, 9]);
  assert.equal(wire.dtype, "torch.float16");
  assert.equal(wire.layer_idx, 0);
});

Deno.test("float16Bytes() rounds to nearest even as numpy's astype(float16)", () => {
  // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even 1.
  // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: ties go to 1 + 2^-9.
  const bytes = float16Bytes(
    new Float32Array([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1e-8, 70000]),
  );
  const view = new DataView(bytes.buffer);
  assert.deepEqual(
    [0, 2, 4, 6].map((o) => view.getFloat16(o, true)),
    [1, 1 + 2 ** -9, 0, Infinity],
  );
});

Deno.test("encodeAttentionLayer() refuses scores that do not match the shape", () => {
  assert.throws(
    () =>
      encodeAttentionLayer(3, new Float32Array(5), [2, 1, 2], {
        promptLen: 2,
        visionRanges: [],
      }),
    /Cannot encode layer 3: shape \[2,1,2\] needs 4 scores but 5 were given/,
  );
});

Deno.test("buildTokenMeta() fills the prompt around vision ranges and counts every row", () => {
  const meta = buildTokenMeta(14, {
    promptLen: 12,
    visionRanges: [{ start: 8, end: 10 }, { start: 1, end: 4 }],
  });
  assert.deepEqual(meta.vision_ranges, [{ start: 1, end: 4 }, {
    start: 8,
    end: 10,
  }]);
  assert.deepEqual(meta.lang_ranges, [
    { start: 0, end: 1 },
    { start: 4, end: 8 },
    { start: 10, end: 12 },
  ]);
  assert.deepEqual(meta.token_idx, Array.from({ length: 14 }, (_, i) => i));
  assert.equal(meta.prompt_len, 12);
  assert.equal(meta.total_len, 14);
  assert.deepEqual(Object.keys(meta).sort(), [
    "lang_ranges",
    "prompt_len",
    "token_idx",
    "token_idx_basis",
    "total_len",
    "vision_ranges",
  ]);
});

Deno.test("the reference's Python decoding reads the encoder's output", async () => {
  const [t, h] = [11, 3];
  const scores = softmaxScores(t, h, 11);
  const wire = encodeAttentionLayer(2, scores, [t, h, t], {
    promptLen: 8,
    visionRanges: [],
  });
  // The guide's extract_attention_from_response, inline (numpy only).
  const script = `
import base64, gzip, json, sys
import numpy as np
item = json.load(sys.stdin)
s = np.frombuffer(gzip.decompress(base64.b64decode(item["data"])), dtype=np.float16).astype(np.float32).reshape(item["shape"])
print(json.dumps({"shape": list(s.shape), "sums": s.sum(-1).round(2).tolist(), "last": float(s[-1, 2, 4])}))
`;
  const python = new Deno.Command("python3", {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = python.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(wire)));
  await writer.close();
  const out = await python.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(result.shape, [t, h, t]);
  for (const rowSums of result.sums) {
    for (const s of rowSums) assert.ok(Math.abs(s - 1) <= 0.01);
  }
  assert.equal(result.last, Math.f16round(scores[((t - 1) * h + 2) * t + 4]));
});
