import assert from "node:assert/strict";
import {
  decodeCapture,
  encodeCapture,
  loadCapture,
  saveCapture,
} from "../lib/sources/files/capture_file.ts";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { headSummary } from "../lib/analysis/metrics/mod.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { collectWarnings } from "../lib/warn.ts";
import { randomCausalAttention } from "./_numpy.ts";

const FIXTURE = new URL("./fixtures/medium.json", import.meta.url);

function layerOf(index: number, scores: AttentionScores): AttentionLayer {
  return new AttentionLayer({
    layer: index,
    model: "test-model",
    scores,
    tokenMeta: TokenMeta.from({
      prompt_len: 5,
      total_len: scores.keyOffset + scores.keyLength,
      lang_ranges: [{ start: 0, end: 5 }],
      token_idx: [...scores.queryPositions],
      token_idx_basis: "window_local",
    }),
  });
}

function sameLayer(a: AttentionLayer, b: AttentionLayer) {
  assert.equal(b.layer, a.layer);
  assert.equal(b.model, a.model);
  assert.deepEqual(b.scores.shape, a.scores.shape);
  assert.equal(b.scores.dtype, a.scores.dtype);
  assert.equal(b.scores.keyOffset, a.scores.keyOffset);
  assert.deepEqual(b.scores.queryPositions, a.scores.queryPositions);
  assert.deepEqual(b.scores.data, a.scores.data);
  assert.deepEqual(b.tokenMeta, a.tokenMeta);
}

Deno.test("saveCapture()/loadCapture() round-trip a real wire capture exactly, with its metadata", async () => {
  const body = await Deno.readFile(FIXTURE);
  const response = JSON.parse(new TextDecoder().decode(body));
  for (const dtype of ["float16", "float32"] as const) {
    const attention = (await extractAttentionFromResponse(body, { dtype }))!;
    const labels = Array.from({ length: 256 }, (_, i) => `tok${i % 17}`);
    const record = {
      response,
      attention,
      labels,
      text: "1729",
      model: String(response.model),
      promptLen: 240,
      finishReason: "stop",
    };
    const path = await Deno.makeTempFile({ suffix: ".attn" });
    try {
      // Scores decoded from float16 are float16-exact: no rounding warning.
      const { warnings } = collectWarnings(() => encodeCapture(record));
      assert.deepEqual(warnings, []);
      await saveCapture(path, record);
      const loaded = await loadCapture(path);
      assert.deepEqual(Object.keys(loaded.attention), ["2", "18", "27"]);
      for (const key of Object.keys(attention)) {
        sameLayer(attention[+key], loaded.attention[+key]);
      }
      assert.deepEqual(loaded.labels, labels);
      assert.equal(loaded.text, "1729");
      assert.equal(loaded.model, response.model);
      assert.equal(loaded.promptLen, 240);
      assert.equal(loaded.finishReason, "stop");
      // The response is kept without its score payloads.
      assert.deepEqual(loaded.response?.choices, response.choices);
      const layers = loaded.response?.attn_capture_data as Record<
        string,
        unknown
      >[];
      assert.deepEqual(layers.map((l) => l.layer_idx), [2, 18, 27]);
      assert.ok(layers.every((l) => !("data" in l) && Array.isArray(l.shape)));
      // An analysis of the loaded capture reproduces the original exactly.
      assert.deepEqual(
        headSummary(loaded).metrics,
        headSummary({ attention, labels }).metrics,
      );
      const size = (await Deno.stat(path)).size;
      assert.ok(
        size < body.length,
        `file ${size} bytes vs JSON ${body.length}`,
      );
    } finally {
      await Deno.remove(path);
    }
  }
});

Deno.test("encodeCapture() keeps offset and non-square positions and float32 on request", () => {
  const full = randomCausalAttention(12, 2, 3);
  const sliced = new AttentionScores(full.slice(4 * 2 * 12), [8, 2, 12], {
    keyOffset: 3,
    queryPositions: [7, 8, 9, 10, 11, 12, 13, 14],
  });
  const capture = { 5: layerOf(5, sliced) };
  const exact = decodeCapture(encodeCapture(capture, { dtype: "float32" }));
  sameLayer(capture[5], exact.attention[5]);
  const raw = decodeCapture(
    encodeCapture(capture, { dtype: "float32", compression: "none" }),
  );
  sameLayer(capture[5], raw.attention[5]);
});

Deno.test("encodeCapture() warns when float16 storage rounds float32 scores", () => {
  const scores = new AttentionScores(randomCausalAttention(6, 1, 4), [6, 1, 6]);
  const { result, warnings } = collectWarnings(() =>
    encodeCapture({ 0: layerOf(0, scores) })
  );
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /rounded; pass \{ dtype: "float32" \}/);
  const loaded = decodeCapture(result).attention[0].scores;
  assert.equal(loaded.dtype, "float32");
  assert.deepEqual(
    loaded.data,
    Float32Array.from(Float16Array.from(scores.data)),
  );
});

Deno.test("decodeCapture() refuses every truncation with a clear error", () => {
  const scores = new AttentionScores(
    Float16Array.from(randomCausalAttention(10, 2, 5)),
    [10, 2, 10],
  );
  const bytes = encodeCapture({
    attention: { 0: layerOf(0, scores) },
    labels: ["a"],
  });
  for (
    const cut of [
      0,
      3,
      19,
      40,
      bytes.length - 200,
      bytes.length - 9,
      bytes.length - 1,
    ]
  ) {
    assert.throws(
      () => decodeCapture(bytes.subarray(0, cut), "x.attn"),
      (e: Error) =>
        e instanceof SyntaxError &&
        e.message.startsWith("Cannot load capture from x.attn: ") &&
        /truncated|empty|end marker/.test(e.message),
      `cut at ${cut}`,
    );
  }
});

Deno.test("decodeCapture() refuses foreign and corrupted files", () => {
  const scores = new AttentionScores(
    Float16Array.from(randomCausalAttention(10, 2, 5)),
    [10, 2, 10],
  );
  const bytes = encodeCapture({ 0: layerOf(0, scores) });
  const npy = toNpy(scores);
  assert.throws(
    () => decodeCapture(npy),
    /not an attnscope capture file \(it looks like a numpy \.npy file\)/,
  );
  assert.throws(
    () => decodeCapture(new Uint8Array([0x1f, 0x8b, 8, 0])),
    /it looks like gzip data/,
  );
  assert.throws(
    () => decodeCapture(new TextEncoder().encode("hello world!")),
    /starts with bytes 68 65 6c/,
  );
  const flipped = bytes.slice();
  flipped[bytes.length - 20] ^= 0xff; // inside the layer's blob
  assert.throws(
    () => decodeCapture(flipped),
    /layer 0's checksum does not match; the file is corrupted/,
  );
  const header = bytes.slice();
  header[25] ^= 0x01;
  assert.throws(
    () => decodeCapture(header),
    /the header's checksum does not match/,
  );
  const newer = bytes.slice();
  newer[8] = 2;
  assert.throws(
    () => decodeCapture(newer),
    /format version 2 but this attnscope reads version 1; upgrade attnscope/,
  );
  const padded = new Uint8Array(bytes.length + 3);
  padded.set(bytes);
  const { result, warnings } = collectWarnings(() => decodeCapture(padded));
  assert.deepEqual(result.attention[0].scores.data, scores.data);
  assert.match(warnings[0], /3 unexpected byte\(s\) after the end/);
});

Deno.test("a capture file is readable from Python with json, zlib and numpy alone", async () => {
  const scores = new AttentionScores(
    Float16Array.from(randomCausalAttention(9, 3, 8)),
    [9, 3, 9],
  );
  const path = await Deno.makeTempFile({ suffix: ".attn" });
  try {
    await saveCapture(path, {
      attention: { 4: layerOf(4, scores) },
      labels: ["x"],
      text: "t",
    });
    const script = `
import json, struct, sys, zlib
import numpy as np
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\\x89ATTNCAP"
version, _, n, crc = struct.unpack("<HHII", b[8:20])
header = json.loads(b[20:20 + n])
assert zlib.crc32(b[20:20 + n]) == crc
start = 20 + n
e = header["layers"][0]
blob = b[start + e["offset"]: start + e["offset"] + e["length"]]
assert zlib.crc32(blob) == e["crc32"]
raw = np.frombuffer(zlib.decompress(blob), np.uint8)
if e["shuffle"]:
    raw = raw.reshape(2, -1).T.copy().ravel()
a = raw.view("<f2").reshape(e["shape"])
print(json.dumps({"version": version, "layer": e["layer"], "labels": header["labels"], "sum": float(a.astype(np.float64).sum()), "a": a.astype(np.float64).ravel().tolist()}))
`;
    const out = await new Deno.Command("python3", {
      args: ["-c", script, path],
      stdout: "piped",
    }).output();
    assert.equal(out.code, 0);
    const got = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(got.version, 1);
    assert.equal(got.layer, 4);
    assert.deepEqual(got.labels, ["x"]);
    assert.deepEqual(got.a, [...scores.data]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("encodeCapture() rejects bad options and empty captures", () => {
  const scores = new AttentionScores(new Float32Array([1]), [1, 1, 1]);
  const capture = { 0: layerOf(0, scores) };
  assert.throws(
    () => encodeCapture(capture, { dtype: "int8" as "float16" }),
    /dtype "int8" is not/,
  );
  assert.throws(
    () => encodeCapture(capture, { compression: "lz4" as "none" }),
    /compression "lz4" is not/,
  );
  assert.throws(
    () => encodeCapture(capture, { level: 12 }),
    /level 12 is not an integer from 1 to 9/,
  );
  assert.throws(
    () => encodeCapture({}),
    /Cannot encode capture: the capture holds no layers/,
  );
});

Deno.test("charts drawn from a loaded capture are identical to the live ones", async () => {
  const { attentionHeatmap } = await import("../lib/charts/heatmap.ts");
  const { headSummaryChart } = await import("../lib/charts/metrics.ts");
  const body = await Deno.readFile(FIXTURE);
  const attention = (await extractAttentionFromResponse(body))!;
  const labels = Array.from({ length: 256 }, (_, i) => `w${i % 23}`);
  const loaded = decodeCapture(encodeCapture({ attention, labels }));
  // Element ids come from per-process counters; everything else must match.
  const ids = (svg: string) =>
    svg.replace(/(attnscope-[a-z-]+?-|data-attnscope-[a-z-]+=")\d+/g, "$1N");
  assert.equal(
    ids(
      attentionHeatmap(loaded.attention[18], {
        head: 2,
        labels: loaded.labels!,
      })
        .toSVG(),
    ),
    ids(attentionHeatmap(attention[18], { head: 2, labels }).toSVG()),
  );
  assert.equal(
    headSummaryChart(headSummary(loaded)).toSVG(),
    headSummaryChart(headSummary({ attention, labels })).toSVG(),
  );
});

Deno.test("loadCapture() restores layers on worker threads exactly as on the calling thread", async () => {
  const layers = [0, 1, 2].map((i) =>
    layerOf(
      i,
      new AttentionScores(
        Float16Array.from(randomCausalAttention(40, 4, 50 + i)),
        [40, 4, 40],
      ),
    )
  );
  const f32 = layerOf(
    3,
    new AttentionScores(randomCausalAttention(40, 4, 60), [40, 4, 40]),
  );
  const capture = {
    attention: { 0: layers[0], 1: layers[1], 2: layers[2], 3: f32 },
    labels: ["a"],
  };
  const path = await Deno.makeTempFile({ suffix: ".attn" });
  try {
    await saveCapture(path, capture, { dtype: "float32" });
    for (const workers of [0, 1, 2, 8]) {
      const loaded = await loadCapture(path, { workers });
      for (const l of [...layers, f32]) sameLayer(l, loaded.attention[l.layer]);
      assert.deepEqual(loaded.labels, ["a"]);
    }
    // A corrupted file fails with the same message with or without workers.
    const bytes = await Deno.readFile(path);
    bytes[bytes.length - 30] ^= 0xff;
    await Deno.writeFile(path, bytes);
    for (const workers of [0, 2]) {
      await assert.rejects(
        loadCapture(path, { workers }),
        /layer 3's checksum does not match/,
      );
    }
  } finally {
    await Deno.remove(path);
  }
});
