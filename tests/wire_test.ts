import assert from "node:assert/strict";
import {
  Base64Span,
  decodeBase64,
  unescapeJson,
} from "../lib/sources/vllm/base64.ts";
import { parseResponseBytes } from "../lib/sources/vllm/wire.ts";
import { seededRandom } from "../lib/random.ts";

const encode = (s: string) => new TextEncoder().encode(s);

function randomBytes(n: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = random() * 256;
  return out;
}

type Parsed = {
  model: string;
  attn_capture_data: { layer_idx: number; data: Base64Span | string }[];
};

/**
 * Records the longest string made by TextDecoder and the longest JSON text
 * parsed while `fn` runs: instrumentation of the real built-ins, restored
 * afterwards.
 */
function longestStrings<T>(
  fn: () => T,
): { result: T; decoded: number; parsed: number } {
  const decode = TextDecoder.prototype.decode;
  const parse = JSON.parse;
  let decoded = 0;
  let parsed = 0;
  TextDecoder.prototype.decode = function (this: TextDecoder, ...args) {
    const text = decode.apply(this, args);
    decoded = Math.max(decoded, text.length);
    return text;
  };
  JSON.parse = (text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    parsed = Math.max(parsed, text.length);
    return parse(text, reviver);
  };
  try {
    return { result: fn(), decoded, parsed };
  } finally {
    TextDecoder.prototype.decode = decode;
    JSON.parse = parse;
  }
}

for (const decodeSpans of [true, false]) {
  Deno.test(`parseResponseBytes() never makes the body or a data field one string (decodeSpans: ${decodeSpans})`, () => {
    // Scaled down: three 12 MiB payloads (16 MiB of base64 each) in a 48 MiB
    // body. No string made along the way may be longer than a 4 MiB chunk.
    const payloads = [1, 2, 3].map((seed) => randomBytes(12 << 20, seed));
    const body = encode(JSON.stringify({
      model: "m",
      attn_capture_data: payloads.map((p, i) => ({
        layer_idx: i,
        data: p.toBase64(),
        shape: [1, 1, 1],
      })),
    }));
    const { result, decoded, parsed } = longestStrings(() =>
      parseResponseBytes(body, { decodeSpans }) as Parsed
    );
    assert.ok(
      decoded <= 4 << 20,
      `longest decoded string: ${decoded} characters`,
    );
    assert.ok(parsed < 1024, `longest parsed JSON text: ${parsed} characters`);
    assert.equal(result.model, "m");
    result.attn_capture_data.forEach((layer, i) => {
      assert.ok(layer.data instanceof Base64Span);
      assert.equal(
        layer.data.bytes.buffer,
        body.buffer,
        "the span views the body",
      );
      assert.equal(layer.data.decoded !== null, decodeSpans);
      const { result: bytes, decoded } = longestStrings(() =>
        decodeBase64(layer.data, `layer ${i}`)
      );
      assert.ok(decoded <= 4 << 20);
      assert.deepEqual(bytes, payloads[i]);
    });
  });
}

Deno.test("parseResponseBytes() leaves short data strings and other keys as strings", () => {
  const long = "QUJD".repeat(2000);
  const body = encode(JSON.stringify({
    attn_capture_data: [{ data: "QUJD" }],
    choices: [{ message: { content: long } }],
    metadata: long,
  }));
  const parsed = parseResponseBytes(body) as Record<string, unknown> & {
    attn_capture_data: { data: unknown }[];
    choices: { message: { content: unknown } }[];
  };
  assert.equal(parsed.attn_capture_data[0].data, "QUJD");
  assert.equal(parsed.choices[0].message.content, long);
  assert.equal(parsed.metadata, long);
});

Deno.test("parseResponseBytes() finds data keys in any JSON layout", () => {
  const payload = randomBytes(9000, 4);
  const b64 = payload.toBase64();
  for (
    const text of [
      `{"attn_capture_data":[{"data":"${b64}","layer_idx":1}]}`,
      `{\n  "attn_capture_data": [\n    {\n      "data" :\n\t"${b64}"\r\n    }\n  ]\n}`,
    ]
  ) {
    const parsed = parseResponseBytes(encode(text)) as Parsed;
    const span = parsed.attn_capture_data[0].data;
    assert.ok(span instanceof Base64Span);
    assert.deepEqual(decodeBase64(span, "layer 1"), payload);
  }
});

Deno.test("parseResponseBytes() handles JSON escapes inside data and around it", () => {
  const payload = randomBytes(30000, 5);
  const b64 = payload.toBase64();
  assert.ok(b64.includes("/"));
  const escaped = b64.replaceAll("/", "\\/");
  const text =
    `{"note": "say \\"data\\": \\\\", "model": "a\\/b", "attn_capture_data": [{"data": "${escaped}"}]}`;
  const parsed = parseResponseBytes(encode(text)) as Parsed & { note: string };
  assert.equal(parsed.note, 'say "data": \\');
  assert.equal(parsed.model, "a/b");
  const span = parsed.attn_capture_data[0].data as Base64Span;
  assert.equal(span.decoded, null, "escaped text is left for decodeBase64");
  assert.deepEqual(decodeBase64(span, "layer 0"), payload);
});

Deno.test("parseResponseBytes() keeps a string that looks like its internal marker", () => {
  const payload = randomBytes(6000, 6).toBase64();
  const lookalike = "\u0000attnscope-span-abc:0";
  const parsed = parseResponseBytes(
    encode(
      JSON.stringify({ x: lookalike, attn_capture_data: [{ data: payload }] }),
    ),
  ) as Parsed & { x: string };
  assert.equal(parsed.x, lookalike);
  assert.ok(parsed.attn_capture_data[0].data instanceof Base64Span);
});

Deno.test("parseResponseBytes() refuses a body that is not JSON", () => {
  assert.throws(
    () => parseResponseBytes(encode('{"data": "abc')),
    /^SyntaxError: Cannot parse the response body: a string opened at byte 9 never closes; the body may be truncated$/,
  );
  assert.throws(
    () => parseResponseBytes(encode('{"a": 1,,}')),
    /^SyntaxError: Cannot parse the response body: .*; pass the body exactly as the server sent it$/,
  );
});

Deno.test("decodeBase64() names the layer when a span is not base64", () => {
  const body = encode(JSON.stringify({ data: "AAAA".repeat(2000) + "*AAA" }));
  const parsed = parseResponseBytes(body) as { data: Base64Span };
  assert.equal(parsed.data.decoded, null);
  assert.throws(
    () => decodeBase64(parsed.data, "layer 12"),
    /^SyntaxError: Cannot decode layer 12: data is not valid base64/,
  );
});

Deno.test("unescapeJson() resolves every JSON escape and refuses malformed ones", () => {
  const raw = encode('a\\/b\\"c\\\\d\\n\\t\\u00e9\\u002F');
  assert.equal(
    new TextDecoder().decode(unescapeJson(raw, "layer 0")),
    'a/b"c\\d\n\té/',
  );
  for (const bad of ["\\x41", "\\u00g1", "\\u12"]) {
    assert.throws(
      () => unescapeJson(encode(bad), "layer 3"),
      /^SyntaxError: Cannot decode layer 3: data has a malformed JSON escape at character 0/,
    );
  }
});

Deno.test("decodeBase64() accepts whitespace-wrapped and unpadded base64 as Python does", () => {
  const payload = randomBytes(10001, 7);
  const wrapped = payload.toBase64().replace(/(.{76})/g, "$1\n");
  assert.deepEqual(
    decodeBase64(new Base64Span(encode(wrapped)), "layer 0"),
    payload,
  );
  const unpadded = payload.toBase64().replace(/=+$/, "");
  assert.deepEqual(
    decodeBase64(new Base64Span(encode(unpadded)), "layer 0"),
    payload,
  );
  assert.deepEqual(decodeBase64(unpadded, "layer 0"), payload);
});

Deno.test("parseResponseBytes() refuses what JSON forbids inside a data span: raw control characters and malformed escapes", () => {
  const data = randomBytes(6000, 3).toBase64();
  const at = 3000;
  const body = (inner: string) =>
    encode(`{"attn_capture_data": [{"data": "${inner}", "shape": [1, 1, 1]}]}`);
  for (const bad of ["\n", "\t", "\u0000", "\\x", "\\3", "\\u12G4"]) {
    assert.throws(
      () => parseResponseBytes(body(data.slice(0, at) + bad + data.slice(at))),
      /^SyntaxError: Cannot parse the response body: (a raw control character \(0x[0-9a-f]{2}\)|a malformed escape) at byte \d+, inside a string; pass the body exactly as the server sent it$/,
      JSON.stringify(bad),
    );
  }
  // What JSON allows still decodes: escaped slashes, escaped newlines.
  for (const good of ["\\/", "\\n", "\\u0041"]) {
    const parsed = parseResponseBytes(
      body(data.slice(0, at) + good + data.slice(at)),
    ) as { attn_capture_data: { data: Base64Span }[] };
    assert.ok(parsed.attn_capture_data[0].data instanceof Base64Span);
  }
});
