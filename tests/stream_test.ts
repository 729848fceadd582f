/**
 * Streaming decode (`ResponseScanner`, `readAttentionStream`) against the
 * whole-body decode, with chunk boundaries everywhere that matters.
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  extractAttentionFromResponse,
  extractAttentionFromStream,
  readAttentionStream,
} from "../lib/sources/vllm/extract.ts";
import { parseResponseBytes } from "../lib/sources/vllm/wire.ts";
import { ResponseScanner } from "../lib/sources/vllm/stream.ts";
import { Base64Span, decodeBase64 } from "../lib/sources/vllm/base64.ts";
import { DecodePool } from "../lib/sources/vllm/decode.ts";
import type { AttentionCapture, AttentionLayer } from "../lib/data/layer.ts";
import type { ProgressEvent } from "../lib/progress.ts";
import { bodyBytes, layerEntry, response } from "./_captures.ts";

/** A stream that yields `body` cut at `cuts`, each chunk a fresh buffer. */
function streamOf(
  body: Uint8Array,
  cuts: readonly number[],
): ReadableStream<Uint8Array> {
  const points = [...new Set([0, ...cuts, body.length])]
    .filter((c) => c >= 0 && c <= body.length).sort((a, b) => a - b);
  let i = 0;
  return new ReadableStream({
    pull(controller) {
      if (i + 1 >= points.length) return controller.close();
      controller.enqueue(body.slice(points[i], points[i + 1]));
      i++;
    },
  });
}

function everyN(body: Uint8Array, n: number): number[] {
  return Array.from({ length: Math.ceil(body.length / n) }, (_, i) => i * n);
}

function assertSameCapture(
  got: AttentionCapture | null,
  want: AttentionCapture | null,
): void {
  assert.equal(got === null, want === null);
  if (!got || !want) return;
  assert.deepEqual(Object.keys(got), Object.keys(want));
  for (const key of Object.keys(want)) {
    const a: AttentionLayer = got[Number(key)];
    const b: AttentionLayer = want[Number(key)];
    assert.deepEqual(a.scores.shape, b.scores.shape);
    assert.equal(a.scores.dtype, b.scores.dtype);
    assert.equal(a.model, b.model);
    assert.deepEqual(a.tokenMeta, b.tokenMeta);
    assert.deepEqual(
      new Uint8Array(
        a.scores.data.buffer,
        a.scores.data.byteOffset,
        a.scores.data.byteLength,
      ),
      new Uint8Array(
        b.scores.data.buffer,
        b.scores.data.byteOffset,
        b.scores.data.byteLength,
      ),
    );
  }
}

/**
 * The parsed skeleton with each span as its decoded bytes (a span gives
 * them up: call once per parse), for comparing scans.
 */
function plain(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(
      value,
      (_, v) =>
        v instanceof Base64Span
          ? { span: decodeBase64(v, "span").toBase64(), length: v.length }
          : v,
    ),
  );
}

/** The parsed skeleton with each span marked only, for decoded responses. */
function skeleton(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_, v) => v instanceof Base64Span ? "<span>" : v),
  );
}

/** Rows of seeded weights summing to 1, fast enough for megabytes. */
function quickScores(rows: number, keys: number, seed: number): Float16Array {
  const out = new Float16Array(rows * keys);
  let x = seed * 2654435761 >>> 0;
  const row = new Float32Array(keys);
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let k = 0; k < keys; k++) {
      x = (x * 1664525 + 1013904223) >>> 0;
      row[k] = (x >>> 8) / 2 ** 24;
      sum += row[k];
    }
    for (let k = 0; k < keys; k++) out[r * keys + k] = row[k] / sum;
  }
  return out;
}

const fixtures = ["text_small", "multimodal", "medium"];

for (const name of fixtures) {
  Deno.test(`readAttentionStream() decodes ${name}.json as extractAttentionFromResponse does, in chunks of every size`, async () => {
    const body = await Deno.readFile(
      new URL(`./fixtures/${name}.json`, import.meta.url),
    );
    for (const dtype of ["float32", "float16"] as const) {
      const want = await extractAttentionFromResponse(body, { dtype });
      const sizes = body.length < 100_000
        ? [1, 3, 7, 4093, 65536]
        : [997, 4096, 65536];
      for (const n of sizes) {
        const { response: parsed, attention } = await readAttentionStream(
          streamOf(body, everyN(body, n)),
          { dtype },
        );
        assertSameCapture(attention, want);
        assert.deepEqual(skeleton(parsed), skeleton(parseResponseBytes(body)));
      }
    }
  });
}

/** A body with escapes in the skeleton and in a layer's data. */
function escapedBody(): Uint8Array {
  const entries = [0, 1, 2].map((i) => layerEntry(i, [6, 2, 8]));
  const text = JSON.stringify(response(entries, 'a "quoted" \\ model'))
    // JSON allows "\/" for "/": escape every slash of layer 1's data.
    .replace(
      /"data":"([^"]*)"/g,
      (m, data: string, at: number, all: string) =>
        all.indexOf('"data"') !== at
          ? m
          : `"data":"${data.replaceAll("/", "\\/")}"`,
    );
  assert.match(text, /\\\//, "the fixture must hold an escaped slash");
  return new TextEncoder().encode(text);
}

Deno.test("ResponseScanner() gives what parseResponseBytes() gives with boundaries inside escapes, inside base64 quads and between layers", async () => {
  const body = escapedBody();
  const want = parseResponseBytes(body, { spanThreshold: 16 });
  const text = new TextDecoder().decode(body);
  const cuts: number[][] = [];
  // Right after each backslash: inside an escape.
  for (let i = text.indexOf("\\"); i >= 0; i = text.indexOf("\\", i + 1)) {
    cuts.push([i + 1]);
  }
  // Inside the first base64 quads of each data string.
  for (
    let i = text.indexOf('"data":"');
    i >= 0;
    i = text.indexOf('"data":"', i + 1)
  ) {
    for (const k of [1, 2, 3, 5, 6, 7]) cuts.push([i + 8 + k]);
  }
  // Between layers: just before and after each "},{".
  for (let i = text.indexOf("},{"); i >= 0; i = text.indexOf("},{", i + 1)) {
    cuts.push([i, i + 1, i + 2]);
  }
  assert.ok(cuts.length > 20);
  for (const at of cuts) {
    const scanner = new ResponseScanner({ spanThreshold: 16 });
    const reader = streamOf(body, at).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      scanner.push(value);
    }
    assert.deepEqual(plain(scanner.finish()), plain(want), `cut at ${at}`);
  }
  const whole = await extractAttentionFromResponse(body);
  for (const at of cuts) {
    assertSameCapture(
      await extractAttentionFromStream(streamOf(body, at)),
      whole,
    );
  }
});

Deno.test("ResponseScanner() reports each attn_capture_data entry as soon as it has arrived", () => {
  const body = bodyBytes(response([0, 1].map((i) => layerEntry(i, [2, 1, 4]))));
  const text = new TextDecoder().decode(body);
  const seen: number[] = [];
  const scanner = new ResponseScanner({
    spanThreshold: 1,
    onCaptureEntry: (_, i) => seen.push(i),
  });
  const firstEnd = text.indexOf("},{") + 1;
  scanner.push(body.subarray(0, firstEnd));
  assert.deepEqual(seen, [0]);
  scanner.push(body.subarray(firstEnd));
  assert.deepEqual(seen, [0, 1]);
});

Deno.test("readAttentionStream() decodes a large body on workers equal to the whole-body decode", async () => {
  // 4 layers of 4 MiB of float16 scores: past the streaming worker threshold.
  const entries = [0, 1, 2, 3].map((i) => {
    const values = quickScores(256 * 8, 1024, i + 1);
    return {
      ...layerEntry(i, [256, 8, 1024], { values: new Float16Array(1) }),
      data: gzipSync(new Uint8Array(values.buffer), { level: 1 }).toBase64(),
      shape: [256, 8, 1024],
    };
  });
  const body = bodyBytes(response(entries));
  const want = await extractAttentionFromResponse(body, { workers: 0 });
  const before = DecodePool.liveWorkers;
  const got = await readAttentionStream(
    streamOf(body, everyN(body, 65536)),
  );
  assertSameCapture(got.attention, want);
  assert.equal(DecodePool.liveWorkers, before, "the stream's workers ended");
});

Deno.test("readAttentionStream() reports progress in phase order with monotone counts", async () => {
  const entries = [0, 1, 2].map((i) => layerEntry(i, [8, 2, 16]));
  const body = bodyBytes(response(entries));
  const events: ProgressEvent[] = [];
  const source = new Response(streamOf(body, everyN(body, 500)), {
    headers: { "content-length": String(body.length) },
  });
  await readAttentionStream(source, { onProgress: (e) => events.push(e) });
  const order = ["waiting", "receiving", "decoding", "done"];
  assert.equal(events[0].phase, "waiting");
  assert.equal(events.at(-1)!.phase, "done");
  for (let i = 1; i < events.length; i++) {
    const [a, b] = [events[i - 1], events[i]];
    assert.ok(order.indexOf(b.phase) >= order.indexOf(a.phase), "phase order");
    assert.ok(b.bytes >= a.bytes && b.layers >= a.layers);
    assert.ok(b.layersTotal >= a.layersTotal && b.elapsedMs >= a.elapsedMs);
    assert.ok(b.layers <= b.layersTotal);
    assert.equal(b.totalBytes, body.length);
  }
  const last = events.at(-1)!;
  assert.deepEqual([last.bytes, last.layers, last.layersTotal], [
    body.length,
    3,
    3,
  ]);
  // Layers were announced while bytes were still arriving.
  assert.ok(events.some((e) => e.phase === "receiving" && e.layersTotal === 1));
});

Deno.test("readAttentionStream() refuses a truncated body and a bad layer, and stops reading at the bad layer", async () => {
  const body = bodyBytes(response([0, 1].map((i) => layerEntry(i, [2, 1, 4]))));
  await assert.rejects(
    readAttentionStream(streamOf(body.subarray(0, body.length - 40), [50])),
    /Cannot parse the response body/,
  );
  const bad = bodyBytes(response([
    { ...layerEntry(0, [2, 1, 4]), shape: [2, 1] },
    layerEntry(1, [2, 1, 4]),
  ]));
  let cancelled = false;
  let pulls = 0;
  const text = new TextDecoder().decode(bad);
  const cut = text.indexOf("},{") + 2;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulls++;
      if (pulls === 1) controller.enqueue(bad.slice(0, cut));
      else controller.enqueue(bad.slice(cut));
    },
    cancel() {
      cancelled = true;
    },
  });
  await assert.rejects(
    readAttentionStream(source),
    /Cannot decode layer 0: shape/,
  );
  assert.ok(cancelled, "the source was cancelled");
});

Deno.test("readAttentionStream() names the status of an error Response", async () => {
  await assert.rejects(
    readAttentionStream(new Response('{"error": "nope"}', { status: 400 })),
    /Cannot read the response: the server answered 400: \{"error": "nope"\}/,
  );
});

/**
 * Both decodes of one body: the whole-body decode's result or error
 * message, and the stream's, cut at `cuts`.
 */
async function bothDecodes(
  text: string,
  cuts: readonly number[],
  options: { layers?: number[] } = {},
): Promise<{ whole: string; streamed: string }> {
  const body = new TextEncoder().encode(text);
  const outcome = async (decode: () => Promise<AttentionCapture | null>) => {
    try {
      const capture = await decode();
      return `decoded layers ${Object.keys(capture ?? {})}`;
    } catch (error) {
      return (error as Error).message;
    }
  };
  return {
    whole: await outcome(() =>
      extractAttentionFromResponse(body.slice(), { ...options, workers: 0 })
    ),
    streamed: await outcome(() =>
      extractAttentionFromStream(streamOf(body, cuts), options)
    ),
  };
}

// Found by the fuzz soak's stream form: a long "data" string the stream gave
// up decoding was kept as text without the syntax check the whole-body scan
// makes, and base64 whitespace (tab, LF, FF, CR) was skipped as the base64
// decoder skips it, though JSON forbids it raw in a string.
Deno.test("readAttentionStream() refuses a raw control character in a long data string as the whole-body decode does, even in a layer it skips", async () => {
  const text = JSON.stringify(
    response([layerEntry(0, [64, 2, 64]), layerEntry(1, [4, 1, 4])]),
  );
  const start = text.indexOf('"data":"') + 8;
  assert.ok(text.indexOf('"', start) - start > 4096, "a long data string");
  const at = start + 5000;
  for (
    const [control, replace] of [["\x0f", 1], ["\n", 0], ["\t", 0]] as const
  ) {
    const bad = text.slice(0, at) + control + text.slice(at + replace);
    const expected = new RegExp(
      `^Cannot parse the response body: a raw control character \\(0x0${
        control.charCodeAt(0).toString(16)
      }\\) at byte ${at}, inside a string`,
    );
    for (
      const cuts of [
        [],
        [at - 100],
        [at],
        [at + 1],
        everyN(new TextEncoder().encode(bad), 7),
      ]
    ) {
      for (const layers of [undefined, [1]]) {
        const { whole, streamed } = await bothDecodes(bad, cuts, { layers });
        assert.match(whole, expected);
        assert.equal(streamed, whole, `cuts ${cuts.length}, layers ${layers}`);
      }
    }
  }
});

Deno.test("readAttentionStream() refuses base64 that goes on after padding, with a chunk boundary at the padding, as the whole-body decode does", async () => {
  const text = JSON.stringify(response([layerEntry(0, [64, 2, 64])]));
  const start = text.indexOf('"data":"') + 8;
  const quad = start + 4800;
  const bad = text.slice(0, quad) + "AA==" + text.slice(quad);
  for (const cuts of [[], [quad + 4], [quad + 3], [quad + 2, quad + 4]]) {
    const { whole, streamed } = await bothDecodes(bad, cuts);
    assert.match(whole, /^Cannot decode layer 0: data is not valid base64/);
    assert.equal(streamed, whole, `cuts ${cuts}`);
  }
});

Deno.test("readAttentionStream() refuses non-ASCII inside base64, with chunk boundaries inside the character, as the whole-body decode does", async () => {
  const text = JSON.stringify(response([layerEntry(0, [64, 2, 64])]));
  const start = text.indexOf('"data":"') + 8;
  // Before `at` the body is ASCII, so character and byte positions agree.
  const at = start + 5000;
  for (const char of ["é", "€", "\u0100", "\u00ff"]) {
    const bad = text.slice(0, at) + char + text.slice(at + 1);
    const size = new TextEncoder().encode(char).length;
    for (const cuts of [[], [at], [at + 1], [at + size - 1, at + size]]) {
      for (const layers of [undefined, [1]]) {
        const { whole, streamed } = await bothDecodes(bad, cuts, { layers });
        if (!layers) {
          assert.match(
            whole,
            /^Cannot decode layer 0: data is not valid base64/,
          );
        }
        assert.equal(
          streamed,
          whole,
          `${char}, cuts ${cuts}, layers ${layers}`,
        );
      }
    }
  }
});
