/**
 * `layer_meta` end to end: the demo server sends its own, the whole-body and
 * the streaming decoders carry it as `layer.layerMeta` (null when absent),
 * malformed metas are refused with a message naming the field, and
 * `loadAttention({ layerMeta })` gives files the same.
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { createHandler } from "../server/handler.ts";
import { loadDemoModel } from "../server/model/mod.ts";
import {
  extractAttentionFromResponse,
  extractAttentionFromResponseSync,
  readAttentionStream,
} from "../lib/sources/vllm/extract.ts";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import type { LayerMeta } from "../lib/data/layer_meta.ts";

const model = loadDemoModel();

Deno.test("layer_meta: the demo server reports its own, and both decoders carry it as layer.layerMeta", async () => {
  const handler = createHandler(model, {
    enableAttentionInstrumentation: true,
  });
  const res = await handler(
    new Request("http://x/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model: model.name,
        messages: [{ role: "user", content: "a: 1\nb: 2\na:" }],
        max_tokens: 2,
        attn_capture: 1,
        attn_capture_layers: "all",
      }),
    }),
  );
  const bytes = new Uint8Array(await res.arrayBuffer());
  const body = JSON.parse(new TextDecoder().decode(bytes));
  for (const entry of body.attn_capture_data) {
    assert.deepEqual(entry.layer_meta, {
      attention: "full_attention",
      sliding_window: null,
      num_key_value_heads: model.numHeads,
    });
  }
  const expected: LayerMeta = {
    attention: "full_attention",
    slidingWindow: null,
    numKeyValueHeads: model.numHeads,
    causal: true,
  };
  const captures = [
    extractAttentionFromResponseSync(body)!,
    (await extractAttentionFromResponse(bytes))!,
    (await readAttentionStream(new Blob([bytes]).stream())).attention!,
  ];
  for (const capture of captures) {
    assert.deepEqual(Object.keys(capture), ["0", "1"]);
    for (const layer of Object.values(capture)) {
      assert.deepEqual(layer.layerMeta, expected);
    }
  }
  // Without layer_meta (vLLM), layerMeta is null.
  for (const entry of body.attn_capture_data) delete entry.layer_meta;
  assert.equal(extractAttentionFromResponseSync(body)![0].layerMeta, null);
});

function entry(layerMeta: unknown) {
  const data = gzipSync(
    new Uint8Array(new Float16Array([1, 0, 1, 0, 0.5, 0.5, 0.25, 0.75]).buffer),
  ).toBase64();
  return {
    attn_capture_data: [{
      layer_idx: 3,
      data,
      shape: [2, 2, 2],
      dtype: "torch.float16",
      layer_meta: layerMeta,
    }],
  };
}

Deno.test("layer_meta: a sliding layer's window and GQA are read; malformed metas are refused naming the field, in both decoders", async () => {
  const sliding = extractAttentionFromResponseSync(entry({
    attention: "sliding_attention",
    sliding_window: 512,
    num_key_value_heads: 1,
    future_key: "ignored",
  }))!;
  assert.deepEqual(sliding[3].layerMeta, {
    attention: "sliding_attention",
    slidingWindow: 512,
    numKeyValueHeads: 1,
    causal: true,
  });
  const cases: [unknown, RegExp][] = [
    ["full", /layer_meta of layer 3: it is string, not an object/],
    [
      { attention: "local", sliding_window: null, num_key_value_heads: 1 },
      /attention is "local"/,
    ],
    [{
      attention: "sliding_attention",
      sliding_window: null,
      num_key_value_heads: 1,
    }, /sliding_window is null on a sliding layer/],
    [{
      attention: "sliding_attention",
      sliding_window: 0,
      num_key_value_heads: 1,
    }, /sliding_window is 0 on a sliding layer/],
    [{
      attention: "full_attention",
      sliding_window: 64,
      num_key_value_heads: 1,
    }, /sliding_window is 64 on a full-attention layer/],
    [{
      attention: "full_attention",
      sliding_window: null,
      num_key_value_heads: 0,
    }, /num_key_value_heads is 0, not a positive integer/],
    [
      { attention: "full_attention", sliding_window: null },
      /num_key_value_heads is missing/,
    ],
    [{
      attention: "full_attention",
      sliding_window: null,
      num_key_value_heads: 3,
    }, /num_key_value_heads 3 does not divide the 2 query heads/],
    [{
      attention: "full_attention",
      sliding_window: null,
      num_key_value_heads: 2,
      causal: "yes",
    }, /causal is "yes"/],
  ];
  for (const [meta, message] of cases) {
    assert.throws(() => extractAttentionFromResponseSync(entry(meta)), message);
    const bytes = new TextEncoder().encode(JSON.stringify(entry(meta)));
    await assert.rejects(
      readAttentionStream(new Blob([bytes]).stream()),
      message,
    );
  }
});

/** A one-layer safetensors file, [batch 1, head 2, query 2, key 2], F32. */
function safetensors(): Uint8Array {
  const values = new Float32Array([1, 0, 0.5, 0.5, 1, 0, 0.25, 0.75]);
  const header = new TextEncoder().encode(JSON.stringify({
    "model.layers.4.self_attn": {
      dtype: "F32",
      shape: [1, 2, 2, 2],
      data_offsets: [0, 32],
    },
  }));
  const bytes = new Uint8Array(8 + header.length + 32);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
  bytes.set(header, 8);
  bytes.set(new Uint8Array(values.buffer), 8 + header.length);
  return bytes;
}

Deno.test("loadAttention({ layerMeta }) gives a file's layers their architecture, one for all or by layer, checked", async () => {
  const sliding: LayerMeta = {
    attention: "sliding_attention",
    slidingWindow: 4,
    numKeyValueHeads: 1,
    causal: true,
  };
  assert.equal(
    (await loadAttention(safetensors())).attention[4].layerMeta,
    null,
  );
  assert.deepEqual(
    (await loadAttention(safetensors(), { layerMeta: sliding })).attention[4]
      .layerMeta,
    sliding,
  );
  assert.deepEqual(
    (await loadAttention(safetensors(), { layerMeta: { 4: sliding } }))
      .attention[4].layerMeta,
    sliding,
  );
  await assert.rejects(
    loadAttention(safetensors(), { layerMeta: { 5: sliding } }),
    /layerMeta: it names layer 5, which the file does not have \(it has 4\)/,
  );
  await assert.rejects(
    loadAttention(safetensors(), {
      layerMeta: { ...sliding, numKeyValueHeads: 3 },
    }),
    /numKeyValueHeads 3 does not divide the 2 query heads/,
  );
});
