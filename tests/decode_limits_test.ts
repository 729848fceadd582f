/**
 * Evidence before allocation (issue 11): impossible shapes, payloads too
 * small for their shape, captures past `maxBytes` and failed allocations are
 * refused with `Cannot ...` errors, in every decoding path.
 */

import assert from "node:assert/strict";
import { crc32, deflateSync, gzipSync } from "node:zlib";
import {
  extractAttentionFromResponse,
  extractAttentionFromResponseSync,
  type ResponseInput,
} from "../lib/sources/vllm/extract.ts";
import { decodeScores, decodeScoresBatch } from "../lib/sources/vllm/decode.ts";
import {
  DEFAULT_MAX_BYTES,
  DEFLATE_MAX_RATIO,
} from "../lib/sources/vllm/_limits.ts";
import {
  decodeCapture,
  encodeCapture,
  loadCapture,
  saveCapture,
} from "../lib/sources/files/capture_file.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { captureAttention } from "../lib/client/client.ts";
import { startDemoServer } from "../server/serve.ts";
import { type AttentionCapture, AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { collectWarningsAsync } from "../lib/warn.ts";
import { bodyBytes, layerEntry, response } from "./_captures.ts";

/** The three input forms, sync and async, each with and without workers. */
const forms: Record<
  string,
  (
    value: Record<string, unknown>,
    maxBytes?: number,
  ) => Promise<AttentionCapture | null>
> = {
  "object (sync)": (v, maxBytes) =>
    Promise.resolve().then(() =>
      extractAttentionFromResponseSync(v, { maxBytes })
    ),
  "object": (v, maxBytes) => extractAttentionFromResponse(v, { maxBytes }),
  "string": (v, maxBytes) =>
    extractAttentionFromResponse(JSON.stringify(v), { maxBytes }),
  "bytes": (v, maxBytes) =>
    extractAttentionFromResponse(bodyBytes(v), { maxBytes }),
  "bytes, workers": (v, maxBytes) =>
    extractAttentionFromResponse(bodyBytes(v), { maxBytes, workers: 2 }),
};

async function refuses(
  run: () => Promise<unknown>,
  type: ErrorConstructor,
  message: RegExp,
): Promise<Error> {
  let caught: Error | undefined;
  await assert.rejects(run, (error: Error) => {
    assert.equal(error.constructor, type, `${error.name}: ${error.message}`);
    assert.match(error.message, message);
    caught = error;
    return true;
  });
  return caught!;
}

for (const [form, run] of Object.entries(forms)) {
  Deno.test(`extractAttentionFromResponse() refuses a shape past exact integers before allocating (${form})`, async () => {
    const value = response([{
      ...layerEntry(4, [4, 2, 4]),
      shape: [1e9, 1e9, 1e9],
    }]);
    await refuses(
      () => run(value),
      RangeError,
      /^Cannot decode layer 4: shape \[1000000000, 1000000000, 1000000000\] holds 1e\+27 values, past what any array can hold .*; check the server's response$/,
    );
  });

  Deno.test(`extractAttentionFromResponse() refuses a shape larger than deflate could expand its data to, naming layer, shape and both sizes (${form})`, async () => {
    const entry = layerEntry(7, [4, 2, 4]);
    const value = response([{ ...entry, shape: [4096, 8, 4096] }]);
    const error = await refuses(
      () => run(value),
      RangeError,
      /^Cannot decode layer 7: shape \[4096, 8, 4096\] needs 268435456 bytes but its data is (\d+) compressed bytes, which inflate to at most (\d+) \(deflate expands at most 1032:1\); the data is truncated or the shape is wrong/,
    );
    const [, compressed, most] = error.message.match(
      /is (\d+) compressed bytes, which inflate to at most (\d+)/,
    )!;
    // The bound is taken from the base64 text before decoding it, so it is
    // at least the real gzip size and within a few bytes of it.
    const gzip = Uint8Array.fromBase64(entry.data as string).length;
    assert.ok(Number(compressed) >= gzip && Number(compressed) <= gzip + 2);
    assert.equal(Number(most), Number(compressed) * DEFLATE_MAX_RATIO);
  });

  Deno.test(`extractAttentionFromResponse() refuses a capture past maxBytes with its size and how to raise the limit (${form})`, async () => {
    // Two layers of 4*2*4 = 32 values: 128 bytes each as float32.
    const value = response([
      layerEntry(0, [4, 2, 4]),
      layerEntry(1, [4, 2, 4]),
    ]);
    await refuses(
      () => run(value, 255),
      RangeError,
      /^Cannot decode layer 1: the capture's scores would take at least 256 bytes as float32, over maxBytes 255 bytes; pass a larger maxBytes \(e\.g\. \{ maxBytes: 1 \* 2 \*\* 30 \}\) if this machine has the memory, ask for \{ dtype: "float16" \} to halve it, or ask for fewer layers$/,
    );
    const { result } = await collectWarningsAsync(() => run(value, 256));
    assert.deepEqual(Object.keys(result!), ["0", "1"]);
  });
}

Deno.test("extractAttentionFromResponse() counts maxBytes in the output dtype, over the layers asked for only", async () => {
  const value = response([layerEntry(0, [4, 2, 4]), layerEntry(1, [4, 2, 4])]);
  await assert.rejects(
    () => extractAttentionFromResponse(value, { maxBytes: 200 }),
    /over maxBytes 200 bytes/,
  );
  const half = await extractAttentionFromResponse(value, {
    maxBytes: 128,
    dtype: "float16",
  });
  assert.equal(Object.keys(half!).length, 2);
  const one = await extractAttentionFromResponse(value, {
    maxBytes: 128,
    layers: [1],
  });
  assert.deepEqual(Object.keys(one!), ["1"]);
});

Deno.test("extractAttentionFromResponse() refuses a bad maxBytes", async () => {
  const value = response([layerEntry(0, [4, 2, 4])]);
  for (const maxBytes of [0, -5, NaN, "1e9" as unknown as number]) {
    await refuses(
      () => extractAttentionFromResponse(value, { maxBytes }),
      RangeError,
      /^Cannot decode the capture: maxBytes .* is not a positive number; pass a byte count such as 16 \* 2 \*\* 30, or Infinity for no limit$/,
    );
  }
});

Deno.test("extractAttentionFromResponse() refuses by default a capture past 8 GiB before reading its data", async () => {
  // [24576, 8, 24576] is 4.8e9 values: 9 GiB as float16, more than 8 GiB in
  // any dtype. 9.4 MB of payload could inflate that far, so only the budget
  // stands in the way; the payload is not even gzip, and is never read.
  assert.equal(DEFAULT_MAX_BYTES, 8 * 2 ** 30);
  const data = new Uint8Array(9_400_000).fill(7).toBase64();
  const value = response([{
    ...layerEntry(3, [4, 2, 4]),
    shape: [24576, 8, 24576],
    data,
  }]);
  const started = performance.now();
  for (const input of [value, bodyBytes(value)] as ResponseInput[]) {
    await refuses(
      () => extractAttentionFromResponse(input, { dtype: "float16" }),
      RangeError,
      /^Cannot decode layer 3: the capture's scores would take at least 9663676416 bytes \(9 GiB\) as float16, over maxBytes 8589934592 bytes \(8 GiB\); pass a larger maxBytes \(e\.g\. \{ maxBytes: 9 \* 2 \*\* 30 \}\)/,
    );
  }
  assert.ok(performance.now() - started < 5000);
  // With the limit off, the next check speaks: the payload is not gzip.
  await refuses(
    () => extractAttentionFromResponse(value, { maxBytes: Infinity }),
    TypeError,
    /^Cannot decode layer 3: data is not gzip/,
  );
});

/** A gzip header followed by `size` bytes of junk: passes the magic check. */
function gzipLooking(size: number): Uint8Array {
  const gz = new Uint8Array(size);
  gz.set([0x1f, 0x8b, 8, 0]);
  return gz;
}

Deno.test("decodeScores() turns a failed allocation into Cannot decode layer N saying how much was asked for", () => {
  // 2^35 values: 128 GiB as float32, 64 GiB as float16, past what V8 will
  // give one array; 67 MB of payload make the size plausible for deflate.
  const gz = gzipLooking(67_000_000);
  const shape = [32768, 32, 32768] as const;
  assert.throws(
    () => decodeScores(gz, shape, { where: "layer 5" }),
    /^RangeError: Cannot decode layer 5: could not allocate 137438953472 bytes \(128 GiB\) for its float32 scores \(.*\); free memory, ask for fewer layers or \{ dtype: "float16" \}, or lower maxBytes/,
  );
  assert.throws(
    () => decodeScores(gz, shape, { where: "layer 5", dtype: "float16" }),
    /^RangeError: Cannot decode layer 5: could not allocate 68719476736 bytes \(64 GiB\) for its float16 bytes/,
  );
});

Deno.test("decodeScores() checks shape and payload size on worker threads too", async () => {
  const gz = gzipSync(new Uint8Array(new Float16Array([0.5, 0.5]).buffer));
  await assert.rejects(
    () =>
      decodeScoresBatch([
        { where: "layer 0", shape: [1, 1, 2], gzip: () => gz },
        { where: "layer 9", shape: [1e6, 8, 1e6], gzip: () => gz },
      ], { workers: 2 }),
    /^RangeError: Cannot decode layer 9: shape \[1000000, 8, 1000000\] needs 16000000000000 bytes but its data is \d+ compressed bytes/,
  );
  await assert.rejects(
    () =>
      decodeScoresBatch([
        {
          where: "layer 2",
          shape: [2 ** 20, 2 ** 20, 2 ** 20],
          gzip: () => gz,
        },
      ], { workers: 1 }),
    /^RangeError: Cannot decode layer 2: shape \[1048576, 1048576, 1048576\] holds .* values, past what any array can hold/,
  );
});

function layerOf(scores: AttentionScores): AttentionLayer {
  return new AttentionLayer({
    layer: 0,
    model: null,
    scores,
    tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
  });
}

/** A small capture file and a way to rewrite its header (checksum kept valid). */
function captureFile(): Uint8Array {
  const scores = new AttentionScores(
    new Float16Array([1, 0, 0.5, 0.5, 1, 0, 0.25, 0.75]),
    [2, 2, 2],
  );
  return encodeCapture({ 0: layerOf(scores) });
}

function withHeader(
  bytes: Uint8Array,
  edit: (header: Record<string, unknown>) => void,
  blobs?: Uint8Array,
): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const length = view.getUint32(12, true);
  const header = JSON.parse(
    new TextDecoder().decode(bytes.subarray(20, 20 + length)),
  );
  const oldBlobs = bytes.subarray(20 + length, bytes.length - 8);
  edit(header);
  const body = blobs ?? oldBlobs;
  header.blobBytes = body.length;
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(20 + json.length + body.length + 8);
  out.set(bytes.subarray(0, 12));
  new DataView(out.buffer).setUint32(12, json.length, true);
  new DataView(out.buffer).setUint32(16, crc32(json), true);
  out.set(json, 20);
  out.set(body, 20 + json.length);
  out.set(
    new TextEncoder().encode("ATTNEND\n"),
    20 + json.length + body.length,
  );
  return out;
}

Deno.test("decodeCapture() refuses a header whose sizes cannot be true, before allocating", () => {
  const file = captureFile();
  assert.ok(decodeCapture(file).attention[0]);
  const layer = (h: Record<string, unknown>) =>
    (h.layers as Record<string, unknown>[])[0];
  const cases: [string, (h: Record<string, unknown>) => void, RegExp][] = [
    [
      "a shape past exact integers",
      (h) => (layer(h).shape = [1e9, 1e9, 1e9]),
      /^SyntaxError: Cannot load layer 0 from x\.attn: shape \[1000000000, 1000000000, 1000000000\] holds 1e\+27 values.*; the file is corrupted; copy or save it again$/,
    ],
    [
      "a shape its blob cannot inflate to",
      (h) => (layer(h).shape = [4096, 8, 4096]),
      /^SyntaxError: Cannot load layer 0 from x\.attn: shape \[4096, 8, 4096\] needs 268435456 bytes but its data is \d+ compressed bytes, which inflate to at most \d+ \(deflate expands at most 1032:1\)/,
    ],
    [
      "an uncompressed blob of the wrong length",
      (h) => {
        layer(h).compression = "none";
        layer(h).shuffle = false;
      },
      /^SyntaxError: Cannot load layer 0 from x\.attn: shape \[2, 2, 2\] needs 16 bytes but its uncompressed blob is \d+/,
    ],
    [
      "a shape that is not three positive integers",
      (h) => (layer(h).shape = [2, "2", 2]),
      /^SyntaxError: Cannot load layer 0 from x\.attn: shape \[2,"2",2\] is not three positive integers/,
    ],
    [
      "a blob outside the file",
      (h) => (layer(h).offset = 1e6),
      /^SyntaxError: Cannot load capture from x\.attn: layer 0's blob \(offset 1000000, length \d+\) does not lie within/,
    ],
    [
      "an unknown stored type",
      (h) => (layer(h).stored = "int8"),
      /^SyntaxError: Cannot load capture from x\.attn: layer 0's stored "int8" is not "float16" or "float32"/,
    ],
  ];
  for (const [name, edit, message] of cases) {
    assert.throws(
      () => decodeCapture(withHeader(file, edit), "x.attn"),
      message,
      name,
    );
  }
});

Deno.test("decodeCapture() stops a blob that inflates past its shape at the shape's size", () => {
  const file = captureFile();
  // 64 MiB of zeros deflate to 64 KiB: within 1032:1 of 16 bytes? No, but
  // the header can claim [2, 2, 2] with a blob of any size; zlib is capped.
  const bomb = deflateSync(new Uint8Array(64 << 20));
  const edited = withHeader(file, (h) => {
    const entry = (h.layers as Record<string, unknown>[])[0];
    entry.length = bomb.length;
    entry.crc32 = crc32(bomb);
  }, bomb);
  const started = performance.now();
  assert.throws(
    () => decodeCapture(edited, "x.attn"),
    /^SyntaxError: Cannot load capture from x\.attn: layer 0 inflates past the 16 bytes its shape needs; the file is corrupted/,
  );
  assert.ok(performance.now() - started < 1000);
});

Deno.test("loadCapture() refuses a capture past maxBytes, on the calling thread and with workers", async () => {
  const path = await Deno.makeTempFile({ suffix: ".attn" });
  try {
    await Deno.writeFile(path, captureFile());
    for (const workers of [0, 2]) {
      await refuses(
        () => loadCapture(path, { maxBytes: 15, workers }),
        RangeError,
        /^Cannot load layer 0 from .*\.attn: the capture's scores would take at least 16 bytes as float16, over maxBytes 15 bytes; pass a larger maxBytes to loadCapture/,
      );
      const loaded = await loadCapture(path, { maxBytes: 16, workers });
      assert.equal(loaded.attention[0].scores.data.length, 8);
    }
    assert.throws(
      () => decodeCapture(captureFile(), "x.attn", { maxBytes: 15 }),
      /^RangeError: Cannot load layer 0 from x\.attn: the capture's scores would take at least 16 bytes/,
    );
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("saveCapture() output loads back with the default limit", async () => {
  const path = await Deno.makeTempFile({ suffix: ".attn" });
  try {
    const scores = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [
      2,
      1,
      2,
    ]);
    await saveCapture(path, { 0: layerOf(scores) });
    assert.equal((await loadCapture(path)).attention[0].scores.data.length, 4);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("toNpy() refuses a file past maxBytes, naming the size and the dtype", () => {
  const scores = new AttentionScores(new Float16Array(64), [4, 4, 4]);
  assert.equal(toNpy(scores, { maxBytes: 256 }).length, 128 + 128);
  assert.throws(
    () => toNpy(scores, { dtype: "float64", maxBytes: 256 }),
    /^RangeError: Cannot write \.npy: the file would take 640 bytes as float64, over maxBytes 256 bytes; pass a larger maxBytes if this machine has the memory, or a narrower dtype$/,
  );
  assert.throws(
    () => toNpy({ data: new Float32Array(4), shape: [2 ** 40, 2 ** 40, 4] }),
    /^TypeError: Cannot write \.npy: shape \[1099511627776, 1099511627776, 4\] does not match 4 values/,
  );
});

Deno.test("captureAttention() passes maxBytes to the decoder", async () => {
  await using server = await startDemoServer();
  const ask = (maxBytes?: number) =>
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: "alpha: 1\nalpha:",
      layers: "all",
      maxTokens: 2,
      maxBytes,
    });
  await refuses(
    () => ask(64),
    RangeError,
    /^Cannot decode layer \d+: the capture's scores would take at least \d+ bytes .* as float32, over maxBytes 64 bytes/,
  );
  const { attention } = await ask();
  assert.ok(Object.keys(attention!).length >= 1);
});

Deno.test("extractAttentionFromResponse() refuses a malformed data string even in a layer it skips", async () => {
  // Found by the fuzz soak: a bad escape in a layer left out by `layers`
  // was never looked at, so a body that is not JSON decoded to null.
  const value = response([
    layerEntry(0, [40, 4, 40]),
    layerEntry(1, [40, 4, 40]),
  ]);
  const text = JSON.stringify(value);
  const at = text.lastIndexOf('"data":"') + 100;
  for (const bad of ["\\3", "\u0000"]) {
    const body = new TextEncoder().encode(
      text.slice(0, at) + bad + text.slice(at),
    );
    await refuses(
      () => extractAttentionFromResponse(body, { layers: [0] }),
      SyntaxError,
      /^Cannot parse the response body: .* inside a string; pass the body exactly as the server sent it$/,
    );
  }
});
