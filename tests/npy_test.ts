import assert from "node:assert/strict";
import { toNpy } from "../lib/sources/files/npy.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { randomCausalAttention, runNumpy } from "./_numpy.ts";

const SCRIPT = `
out = {}
for name, a in [("s", s)]:
    out = {"dtype": a.dtype.str, "shape": list(a.shape), "c": bool(a.flags["C_CONTIGUOUS"]),
           "values": a.astype(np.float64).ravel().tolist()}
print(json.dumps(out))
`;

for (const dtype of ["float16", "float32", "float64"] as const) {
  Deno.test(`toNpy() writes ${dtype} that numpy.load reads back exactly`, async () => {
    const scores = new AttentionScores(randomCausalAttention(7, 3, 5), [
      7,
      3,
      7,
    ]);
    const got = await runNumpy(SCRIPT, { s: { array: scores, dtype } }) as {
      dtype: string;
      shape: number[];
      c: boolean;
      values: number[];
    };
    assert.equal(
      got.dtype,
      { float16: "<f2", float32: "<f4", float64: "<f8" }[dtype],
    );
    assert.deepEqual(got.shape, [7, 3, 7]);
    assert.equal(got.c, true);
    const expected = dtype === "float16"
      ? Float16Array.from(scores.data)
      : scores.data;
    assert.deepEqual(got.values, [...expected]);
  });
}

Deno.test("toNpy() defaults to the array's own type and writes 1-D and 2-D shapes", async () => {
  const half = new AttentionScores(new Float16Array([1, 0, 0.5, 0.5]), [
    2,
    1,
    2,
  ]);
  const bytes = toNpy(half);
  assert.match(
    new TextDecoder().decode(bytes.subarray(10, 80)),
    /'descr': '<f2'/,
  );
  // Header: magic, version 1.0, data aligned to 64 bytes, ends in "\n".
  assert.deepEqual([...bytes.subarray(0, 8)], [
    0x93,
    0x4e,
    0x55,
    0x4d,
    0x50,
    0x59,
    1,
    0,
  ]);
  const headerLength = new DataView(bytes.buffer).getUint16(8, true);
  assert.equal((10 + headerLength) % 64, 0);
  assert.equal(bytes[10 + headerLength - 1], 0x0a);
  const got = await runNumpy(
    `print(json.dumps([list(v.shape), m.shape[0], m.tolist()]))`,
    {
      v: { data: new Float64Array([1, 2, 3]), shape: [3] },
      m: { data: new Float32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] },
    },
  );
  assert.deepEqual(got, [[3], 2, [[1, 2, 3], [4, 5, 6]]]);
});

Deno.test("toNpy() refuses a shape that does not match and an unknown dtype", () => {
  assert.throws(
    () => toNpy({ data: new Float32Array(5), shape: [2, 3] }),
    /Cannot write \.npy: shape \[2, 3\] does not match 5 values/,
  );
  const s = new AttentionScores(new Float32Array(1), [1, 1, 1]);
  assert.throws(
    () => toNpy(s, { dtype: "int8" as "float16" }),
    /unknown dtype "int8"/,
  );
});
