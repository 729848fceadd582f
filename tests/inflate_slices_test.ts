import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  inflateExact,
  inflateExactInto,
  inflateExactSlices,
} from "../lib/sources/vllm/inflate.ts";
import { decodeScores } from "../lib/sources/vllm/decode.ts";
import { seededRandom } from "../lib/random.ts";

/** Bytes that compress a little (float16-like, with some noise). */
function payload(n: number, seed: number): Uint8Array {
  const random = seededRandom(seed);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 2) {
    out[i] = random() < 0.3 ? Math.floor(random() * 256) : i & 0xff;
    out[i + 1] = 0x30 + Math.floor(random() * 8);
  }
  return out;
}

/**
 * The outcome of a whole-buffer inflate, by chunks (`sink`, as
 * inflateExactInto) or into one buffer (`direct`, as inflateExact): the
 * bytes, or the error's message.
 */
function whole(
  gz: Uint8Array,
  expected: number,
  how: "sink" | "direct",
): string {
  try {
    if (how === "direct") {
      return `ok ${inflateExact(gz, expected, "layer 0").toBase64()}`;
    }
    const out = new Uint8Array(expected);
    inflateExactInto(gz, expected, "layer 0", (c, at) => out.set(c, at));
    return `ok ${out.toBase64()}`;
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

function sliced(
  slices: Uint8Array[],
  expected: number,
  how: "sink" | "direct",
): string {
  try {
    if (how === "direct") {
      return `ok ${inflateExactSlices(slices, expected, "layer 0").toBase64()}`;
    }
    const out = new Uint8Array(expected);
    inflateExactInto(slices, expected, "layer 0", (c, at) => {
      assert.equal(c.length % 2, 0, "chunks have even lengths");
      out.set(c, at);
    });
    return `ok ${out.toBase64()}`;
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

/** Cuts bytes at the given positions. */
function cut(bytes: Uint8Array, at: number[]): Uint8Array[] {
  const points = [
    0,
    ...at.filter((p) => p > 0 && p < bytes.length),
    bytes.length,
  ]
    .sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  for (let i = 1; i < points.length; i++) {
    out.push(bytes.slice(points[i - 1], points[i]));
  }
  return out;
}

Deno.test("inflateExactInto() and inflateExactSlices() on slices agree with inflateExactInto() and inflateExact() on the whole buffer wherever the slices are cut", () => {
  const data = payload(300_000, 1);
  const gz = gzipSync(data, { level: 1 });
  const member2 = gzipSync(data.subarray(0, 1000));
  const two = new Uint8Array([...gz, ...member2]);
  const cases: [string, Uint8Array, number][] = [
    ["one member", gz, data.length],
    ["two members", two, data.length + 1000],
    ["trailing zeros", new Uint8Array([...gz, 0, 0, 0]), data.length],
    ["a zero, then garbage", new Uint8Array([...gz, 0, 5, 6]), data.length],
    ["trailing garbage", new Uint8Array([...gz, 7, 7]), data.length],
    ["truncated", gz.subarray(0, gz.length - 5), data.length],
    ["truncated in the data", gz.subarray(0, gz.length >> 1), data.length],
    ["a bomb (expects less)", gz, data.length - 2],
    ["expects more", gz, data.length + 2],
    ["corrupt", gz.map((b, i) => i === 4000 ? b ^ 0x55 : b), data.length],
  ];
  const random = seededRandom(7);
  for (const [name, bytes, expected] of cases) {
    // Cuts at the ends of the members, inside the header, one byte apart,
    // and at random places.
    const cutSets = [
      [gz.length],
      [1, 2, 3, 10, 11],
      [gz.length - 8, gz.length - 4, gz.length - 1, gz.length + 1],
      Array.from({ length: 6 }, () => Math.floor(random() * bytes.length)),
      Array.from({ length: 40 }, (_, i) => 4001 + i * 4099 + (i & 1)),
    ];
    for (const at of cutSets) {
      for (const how of ["sink", "direct"] as const) {
        const want = whole(bytes, expected, how);
        const got = sliced(cut(bytes, at), expected, how);
        assert.equal(
          got.slice(0, 300),
          want.slice(0, 300),
          `${name}, cut at ${at}, ${how}`,
        );
        assert.equal(got, want, `${name}, cut at ${at}, ${how}`);
      }
    }
  }
});

Deno.test("decodeScores() on slices with releaseInput empties each slice and gives the whole-buffer scores", () => {
  const data = payload(1 << 20, 3);
  const gz = gzipSync(data, { level: 1 });
  const want = decodeScores(gz, [1, 1, data.length / 2]);
  for (const dtype of ["float32", "float16"] as const) {
    const slices = cut(gz, [65536, 200_000, 400_000]).map((s) => {
      const buffer = new ArrayBuffer(s.length, { maxByteLength: s.length });
      const view = new Uint8Array(buffer);
      view.set(s);
      return view;
    });
    const got = decodeScores(slices, [1, 1, data.length / 2], {
      dtype,
      releaseInput: true,
    });
    assert.deepEqual(Float32Array.from(got), want, dtype);
    for (const s of slices) assert.equal(s.buffer.byteLength, 0, "released");
  }
  // Without releaseInput the slices are left as they were.
  const kept = cut(gz, [1000]);
  decodeScores(kept, [1, 1, data.length / 2], { dtype: "float16" });
  assert.equal(kept[0].length, 1000);
});
