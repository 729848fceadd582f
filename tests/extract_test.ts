import assert from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { gzipSync } from "node:zlib";
import {
  extractAttentionFromResponse,
  extractAttentionFromResponseSync,
  type ResponseInput,
} from "../lib/sources/vllm/extract.ts";
import { DecodePool } from "../lib/sources/vllm/decode.ts";
import type { AttentionCapture } from "../lib/data/layer.ts";
import { collectWarnings, collectWarningsAsync } from "../lib/warn.ts";
import {
  bodyBytes,
  causalScores,
  encodeLayerData,
  layerEntry,
  response,
} from "./_captures.ts";

/** Runs the extraction from a parsed object, a string and bytes. */
const forms: Record<
  string,
  (value: Record<string, unknown>) => Promise<AttentionCapture | null>
> = {
  // Run inside then() so that a synchronous throw becomes a rejection.
  "parsed object (sync)": (v) =>
    Promise.resolve().then(() => extractAttentionFromResponseSync(v)),
  "string": (v) => extractAttentionFromResponse(JSON.stringify(v)),
  "bytes": (v) => extractAttentionFromResponse(bodyBytes(v)),
  "bytes on a DecodePool, streamed": async (v) => {
    using pool = new DecodePool(2);
    return await extractAttentionFromResponse(bodyBytes(v), { pool });
  },
  "bytes, float16, workers": (v) =>
    extractAttentionFromResponse(bodyBytes(v), {
      dtype: "float16",
      workers: 2,
    }),
};

const good = () => layerEntry(18, [6, 2, 6]);

/** Entries that must be refused, the error class and message. */
const badCases: {
  name: string;
  entries: () => unknown;
  error: ErrorConstructor;
  message: RegExp;
}[] = [
  {
    name: "invalid base64",
    entries: () => [{ ...good(), data: "H4sI!!!not base64!!!" }],
    error: SyntaxError,
    message:
      /^Cannot decode layer 18: data is not valid base64 .*; the server must send base64\(gzip\(float16 bytes\)\)$/,
  },
  {
    name: "data that is not gzip",
    entries: () => [{
      ...good(),
      data: new Uint8Array(new Float16Array(72).buffer).toBase64(),
    }],
    error: TypeError,
    message:
      /^Cannot decode layer 18: data is not gzip \(144 bytes starting 00 00 00 00/,
  },
  {
    name: "truncated gzip",
    entries: () => {
      const gz = gzipSync(
        new Uint8Array(causalScores(6, 2, 6).buffer),
        { level: 9 },
      );
      return [{ ...good(), data: gz.subarray(0, gz.length - 30).toBase64() }];
    },
    error: RangeError,
    message:
      /^Cannot decode layer 18: gzip data is truncated .*fetch it again$/,
  },
  {
    name: "corrupt gzip",
    entries: () => {
      const gz = new Uint8Array(
        gzipSync(new Uint8Array(causalScores(6, 2, 6).buffer)),
      );
      gz[12] ^= 0xff;
      gz[13] ^= 0xff;
      return [{ ...good(), data: gz.toBase64() }];
    },
    error: RangeError,
    message: /^Cannot decode layer 18: gzip data is corrupt/,
  },
  {
    name: "inflated size below prod(shape) * 2",
    entries:
      () => [{ ...good(), data: encodeLayerData(causalScores(5, 2, 6)) }],
    error: RangeError,
    message:
      /^Cannot decode layer 18: data inflated 120 bytes but 144 were expected from its shape; the response may be truncated or the shape wrong$/,
  },
  {
    name: "inflated size above prod(shape) * 2",
    entries: () => [{ ...good(), shape: [5, 2, 6] }],
    error: RangeError,
    message:
      /^Cannot decode layer 18: data inflates past the 120 bytes its shape needs, stopped there/,
  },
  {
    name: "a gzip bomb (1 GiB of zeros for a 144-byte shape)",
    entries: () => [{ ...good(), data: bombBase64() }],
    error: RangeError,
    message: /^Cannot decode layer 18: data inflates past the 144 bytes/,
  },
  ...[
    [2, 6],
    [6, 2, 6, 1],
    [2, 0, 6],
    [0, 0, 6],
    [6, -2, 6],
    [6, 2.5, 6],
    ["6", 2, 6],
    "6,2,6",
    { t: 6 },
  ].map((shape) => ({
    name: `shape ${JSON.stringify(shape)}`,
    entries: () => [{ ...good(), shape }],
    error: TypeError,
    message:
      /^Cannot decode layer 18: shape .* is not three positive integers \[Tq, H, Tk\]; check the server's response$/,
  })),
  {
    name: "attn_capture_data that is an object",
    entries: () => ({ 18: good() }),
    error: TypeError,
    message:
      /^Cannot read attn_capture_data: expected a list of layers, got an object; pass the response exactly as the server sent it$/,
  },
  {
    name: "attn_capture_data that is a string",
    entries: () => "H4sIAAAA",
    error: TypeError,
    message:
      /^Cannot read attn_capture_data: expected a list of layers, got the string/,
  },
  {
    name: "a layer that is not an object",
    entries: () => [good(), 42],
    error: TypeError,
    message:
      /^Cannot read attn_capture_data\[1\]: expected a layer object, got number 42/,
  },
  {
    name: "duplicate layer indices",
    entries: () => [good(), layerEntry(18, [6, 2, 6], { seed: 9 })],
    error: TypeError,
    message:
      /^Cannot read attn_capture_data\[1\]: layer 18 appears twice \(also at attn_capture_data\[0\]\); check the server's response$/,
  },
  {
    name: "layer_idx missing",
    entries: () => {
      const { layer_idx: _, ...rest } = good();
      return [rest];
    },
    error: TypeError,
    message:
      /^Cannot read attn_capture_data\[0\]: layer_idx is missing, not a non-negative integer; check the server's response$/,
  },
  ...[1.5, "18", -1, null].map((li) => ({
    name: `layer_idx ${JSON.stringify(li)}`,
    entries: () => [{ ...good(), layer_idx: li }],
    error: TypeError,
    message:
      /^Cannot read attn_capture_data\[0\]: layer_idx is .*, not a non-negative integer/,
  })),
  ...["torch.bfloat16", "float32", 16].map((dtype) => ({
    name: `dtype ${JSON.stringify(dtype)}`,
    entries: () => [{ ...good(), dtype }],
    error: TypeError,
    message:
      /^Cannot decode layer 18: dtype .* is not float16; the wire format carries float16 scores only, so check the server version$/,
  })),
  {
    name: "data that is a number",
    entries: () => [{ ...good(), data: 12345 }],
    error: TypeError,
    message:
      /^Cannot decode layer 18: data is number 12345, not a base64 string/,
  },
  {
    name: "token_meta with a bad range",
    entries: () => [{
      ...good(),
      token_meta: { prompt_len: 4, lang_ranges: [{ start: 3, end: 1 }] },
    }],
    error: TypeError,
    message: /^Cannot read token_meta.lang_ranges of layer 18/,
  },
];

let bomb: string | undefined;
/** 1 GiB of zeros as 1,024 gzip members of 1 MiB (Python accepts members). */
function bombBase64(): string {
  if (!bomb) {
    const member = gzipSync(new Uint8Array(1 << 20), { level: 9 });
    const bytes = new Uint8Array(member.length * 1024);
    for (let i = 0; i < 1024; i++) bytes.set(member, i * member.length);
    bomb = bytes.toBase64();
  }
  return bomb;
}

for (const c of badCases) {
  for (const [form, run] of Object.entries(forms)) {
    Deno.test(`extractAttentionFromResponse() refuses ${c.name} (${form})`, async () => {
      const value = response(c.entries());
      await assert.rejects(() => run(value), (error: Error) => {
        assert.equal(error.constructor, c.error, error.message);
        assert.match(error.message, c.message);
        return true;
      });
    });
  }
}

Deno.test("extractAttentionFromResponse() refuses a body that is not JSON", async () => {
  for (const body of ['{"attn_capture_data": [', "<html>502</html>"]) {
    await assert.rejects(
      () => extractAttentionFromResponse(new TextEncoder().encode(body)),
      /^SyntaxError: Cannot parse the response body: .*; pass the body exactly as the server sent it$/,
    );
    assert.throws(
      () => extractAttentionFromResponseSync(body),
      /^SyntaxError: Cannot parse the response body/,
    );
  }
  assert.throws(
    () => extractAttentionFromResponseSync("[1, 2]"),
    /^TypeError: Cannot read the response: expected a JSON object, got a list/,
  );
});

Deno.test("extractAttentionFromResponse() returns null when there is no attention", async () => {
  for (
    const value of [{ attn_capture_data: null }, { attn_capture_data: [] }, {}]
  ) {
    for (const run of Object.values(forms)) {
      assert.equal(await run({ ...response([]), ...value }), null);
    }
  }
  const { attn_capture_data: _, ...absent } = response([]);
  assert.equal(await extractAttentionFromResponse(bodyBytes(absent)), null);
});

Deno.test("extractAttentionFromResponse() skips a layer without data or shape, with a warning, as the reference does", async () => {
  for (const [form, run] of Object.entries(forms)) {
    const { result, warnings } = await collectWarningsAsync(() =>
      run(response([
        { ...good(), layer_idx: 2, data: null },
        { ...good(), layer_idx: 5, shape: [] },
        { ...good(), layer_idx: 6, data: "" },
        good(),
      ]))
    );
    assert.deepEqual(Object.keys(result ?? {}), ["18"], form);
    assert.deepEqual(warnings, [
      "Skipped layer 2: it has no data, so it is left out as the reference client leaves it out; the server captured nothing usable for it",
      "Skipped layer 5: it has no shape, so it is left out as the reference client leaves it out; the server captured nothing usable for it",
      "Skipped layer 6: it has no data, so it is left out as the reference client leaves it out; the server captured nothing usable for it",
    ], form);
  }
  // Every layer skipped: no attention, as the reference's `out or None`.
  const { result, warnings } = collectWarnings(() =>
    extractAttentionFromResponseSync(response([{ layer_idx: 1, data: null }]))
  );
  assert.equal(result, null);
  assert.equal(warnings.length, 1);
});

Deno.test("extractAttentionFromResponse() warns when sampled rows do not sum to 1", async () => {
  const values = causalScores(4, 2, 4);
  values[(3 * 2 + 1) * 4 + 0] += 0.5; // last row, head 1
  for (const run of Object.values(forms)) {
    const { result, warnings } = await collectWarningsAsync(() =>
      run(response([layerEntry(7, [4, 2, 4], { values })]))
    );
    assert.ok(result?.[7], "the layer is still returned");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /^Layer 7: row 3 of head 1 sums to 1\.50\d, not 1; these may not be softmax probabilities/,
    );
  }
  const { warnings } = await collectWarningsAsync(() =>
    extractAttentionFromResponse(bodyBytes(response([good()])))
  );
  assert.deepEqual(warnings, [], "true softmax rows raise nothing");
});

Deno.test("extractAttentionFromResponse() decodes JSON escapes such as \\/ inside data", async () => {
  const entry = layerEntry(3, [16, 2, 16]);
  const plain = bodyBytes(response([entry]));
  assert.ok(
    (entry.data as string).includes("/"),
    "the payload has slashes to escape",
  );
  const escapedText = new TextDecoder().decode(plain).replace(
    entry.data as string,
    (entry.data as string).replaceAll("/", "\\/").replaceAll("+", "\\u002B"),
  );
  const want = extractAttentionFromResponseSync(plain)![3].scores.data;
  for (
    const input of [
      new TextEncoder().encode(escapedText),
      escapedText,
    ] as ResponseInput[]
  ) {
    const got = (await extractAttentionFromResponse(input))![3].scores.data;
    assert.deepEqual(got, want);
  }
});

Deno.test("extractAttentionFromResponse() gives every input form the same layers", async () => {
  const value = response(
    [layerEntry(0, [8, 2, 8]), layerEntry(27, [8, 2, 8])],
    "m",
  );
  const want = extractAttentionFromResponseSync(value)!;
  assert.deepEqual(Object.keys(want), ["0", "27"]);
  for (const run of Object.values(forms)) {
    const got = (await run(value))!;
    for (const li of [0, 27]) {
      assert.equal(got[li].layer, li);
      assert.equal(got[li].model, "m");
      assert.deepEqual([...got[li].scores.data], [...want[li].scores.data]);
      assert.deepEqual(got[li].tokenMeta, want[li].tokenMeta);
    }
  }
  const bytes = bodyBytes(value);
  const fromBuffer = await extractAttentionFromResponse(bytes.buffer);
  assert.deepEqual([...fromBuffer![27].scores.data], [...want[27].scores.data]);
});

Deno.test("extractAttentionFromResponse() keeps float16 values exactly in both dtypes", async () => {
  const values = causalScores(8, 2, 8, 5);
  const value = response([layerEntry(1, [8, 2, 8], { values })]);
  const f32 = (await extractAttentionFromResponse(bodyBytes(value)))![1].scores;
  const f16 = (await extractAttentionFromResponse(bodyBytes(value), {
    dtype: "float16",
  }))![1].scores;
  assert.ok(f32.data instanceof Float32Array);
  assert.ok(f16.data instanceof Float16Array);
  assert.deepEqual([...f32.data], [...values]);
  assert.deepEqual([...f16.data], [...values]);
});

Deno.test("extractAttentionFromResponse() decodes only the requested layers and warns about missing ones", async () => {
  const value = response([layerEntry(2, [4, 1, 4]), layerEntry(9, [4, 1, 4])]);
  const { result, warnings } = await collectWarningsAsync(() =>
    extractAttentionFromResponse(bodyBytes(value), { layers: [9, 30] })
  );
  assert.deepEqual(Object.keys(result!), ["9"]);
  assert.deepEqual(warnings, [
    "Layer 30 was requested but the response has no such layer; the server leaves out layers it does not have, so check the layer index",
  ]);
  // A bad layer that is not requested is never decoded.
  const withBad = response([
    { ...layerEntry(2, [4, 1, 4]), data: "!!!!" },
    layerEntry(9, [4, 1, 4]),
  ]);
  const only9 = extractAttentionFromResponseSync(withBad, { layers: [9] });
  assert.deepEqual(Object.keys(only9!), ["9"]);
});

Deno.test("extractAttentionFromResponse() places rows by token_idx and keys by total_len - Tk", async () => {
  // Non-square: rows for positions 10, 12, 13 of a 14-position window whose
  // first 2 positions are not in the capture (Tk = 12, keys 2..13).
  const tq = 3, tk = 12;
  const values = new Float16Array(tq * 1 * tk);
  [8, 10, 11].forEach((lastKey, q) => {
    for (let k = 0; k <= lastKey; k++) values[q * tk + k] = 1 / (lastKey + 1);
  });
  const meta = { prompt_len: 11, total_len: 14, token_idx: [10, 12, 13] };
  const capture = await extractAttentionFromResponse(
    bodyBytes(
      response([layerEntry(4, [tq, 1, tk], { values, tokenMeta: meta })]),
    ),
  );
  const s = capture![4].scores;
  assert.deepEqual([...s.queryPositions], [10, 12, 13]);
  assert.equal(s.keyOffset, 2);
  assert.equal(s.keyPosition(0), 2);
  assert.equal(s.rowForPosition(12), 1);

  // Without token_idx, missing rows are a leading prefix: the rows are the
  // last Tq positions.
  const noIdx = extractAttentionFromResponseSync(
    response([
      layerEntry(4, [tq, 1, tk], {
        values,
        tokenMeta: { prompt_len: 11, total_len: 14 },
      }),
    ]),
  );
  assert.deepEqual([...noIdx![4].scores.queryPositions], [11, 12, 13]);
  assert.equal(noIdx![4].scores.keyOffset, 2);

  // total_len below Tk (or absent) means no offset.
  const square = extractAttentionFromResponseSync(
    response([layerEntry(1, [4, 1, 4], { tokenMeta: {} })]),
  );
  assert.deepEqual([...square![1].scores.queryPositions], [0, 1, 2, 3]);
  assert.equal(square![1].scores.keyOffset, 0);
});

Deno.test("extractAttentionFromResponse() ignores a token_idx of the wrong length, with a warning", () => {
  const { result, warnings } = collectWarnings(() =>
    extractAttentionFromResponseSync(response([
      layerEntry(5, [4, 1, 4], {
        tokenMeta: { prompt_len: 3, total_len: 4, token_idx: [0, 1] },
      }),
    ]))
  );
  assert.deepEqual([...result![5].scores.queryPositions], [0, 1, 2, 3]);
  assert.deepEqual(warnings, [
    "Layer 5: token_meta.token_idx has 2 entries for 4 rows, so it is ignored and rows are placed at the end of the 4 positions; check the server's response",
  ]);
});

Deno.test("extractAttentionFromResponse() accepts dtype float16 spelled either way, or absent", () => {
  for (const dtype of ["torch.float16", "float16", undefined, null]) {
    const capture = extractAttentionFromResponseSync(
      response([{ ...good(), dtype }]),
    );
    assert.ok(capture?.[18], String(dtype));
  }
});

Deno.test("extractAttentionFromResponse() refuses a bad workers option", async () => {
  const value = bodyBytes(response([good(), layerEntry(19, [6, 2, 6])]));
  await assert.rejects(
    () => extractAttentionFromResponse(value, { workers: -1 }),
    /^RangeError: Cannot decode layers: workers -1 is not a non-negative integer; pass 0 to decode on this thread$/,
  );
});

Deno.test("random corruptions of a real body decode to arrays of their declared shape or fail with a clear error, never a crash", async () => {
  const body = await Deno.readFile(
    new URL("./fixtures/text_small.json", import.meta.url),
  );
  const random = seededRandom(5);
  const pick = (n: number) => Math.floor(random() * n);
  const outcomes = { decoded: 0, refused: 0 };
  for (let i = 0; i < 400; i++) {
    // Flipped bytes, a truncation, or a cut-out run, anywhere in the body.
    let bytes = body.slice();
    const mode = random();
    if (mode < 0.5) {
      for (let j = 0; j <= pick(4); j++) bytes[pick(bytes.length)] = pick(256);
    } else if (mode < 0.75) {
      bytes = bytes.subarray(0, pick(bytes.length));
    } else {
      const at = pick(bytes.length);
      bytes = new Uint8Array([
        ...bytes.subarray(0, at),
        ...bytes.subarray(at + pick(50)),
      ]);
    }
    const dtype = i % 2 ? "float16" : "float32";
    try {
      const { result } = await collectWarningsAsync(() =>
        extractAttentionFromResponse(bytes, { dtype, workers: 0 })
      );
      for (const layer of Object.values(result ?? {})) {
        const [tq, h, tk] = layer.scores.shape;
        assert.equal(layer.scores.data.length, tq * h * tk);
      }
      outcomes.decoded++;
    } catch (error) {
      assert.ok(error instanceof Error, `case ${i}: threw ${error}`);
      assert.match(
        error.message,
        /^Cannot /,
        `case ${i}: unclear error ${error.name}: ${error.message}`,
      );
      outcomes.refused++;
    }
  }
  // Most corruptions land in the base64 payload, which must be refused.
  assert.ok(outcomes.refused > 300, JSON.stringify(outcomes));
});
