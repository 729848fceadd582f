/**
 * Every bad input `loadAttention` can meet gets `Cannot load <file>: ...
 * <tensor> ...; <what to do>`, one test each.
 */

import assert from "node:assert/strict";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { collectWarningsAsync } from "../lib/warn.ts";
import { causal, f32, npy, safetensors, zip } from "./_attention_files.ts";

const GOOD = safetensors([
  { name: "layers.0", dtype: "F32", shape: [1, 1, 3, 3], data: f32(causal(3)) },
]);

async function refuses(
  bytes: Uint8Array,
  name: string,
  pattern: RegExp,
  options: Record<string, unknown> = {},
): Promise<void> {
  await assert.rejects(
    loadAttention(bytes, { name, ...options }),
    (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`^Cannot load ${name.replace(".", "\\.")}: `),
      );
      assert.match(error.message, pattern);
      assert.match(error.message, /; \S/, "says what to do");
      return true;
    },
  );
}

Deno.test("loadAttention() reads the well-formed file these cases break", async () => {
  const loaded = await loadAttention(GOOD);
  assert.deepEqual(loaded.attention[0].scores.shape, [3, 1, 3]);
});

Deno.test("loadAttention() refuses a safetensors file cut inside its header", async () => {
  await refuses(
    GOOD.subarray(0, 20),
    "cut.safetensors",
    /header of \d+ bytes runs past the end of the 20-byte file/,
  );
});

Deno.test("loadAttention() refuses a safetensors file cut inside a tensor", async () => {
  await refuses(
    GOOD.subarray(0, GOOD.length - 4),
    "cut.safetensors",
    /tensor "layers\.0" ends at byte \d+ but the file has/,
  );
});

Deno.test("loadAttention() refuses a .npy cut inside its data", async () => {
  const bytes = npy("<f4", [1, 1, 3, 3], f32(causal(3)));
  await refuses(
    bytes.subarray(0, bytes.length - 8),
    "cut.npy",
    /tensor "array" declares shape \[1, 1, 3, 3\] \(36 bytes\) but the file holds 28/,
  );
});

Deno.test("loadAttention() refuses an .npz cut inside an entry", async () => {
  const bytes = zip({
    "layers.0.npy": npy("<f4", [1, 1, 3, 3], f32(causal(3))),
  });
  await refuses(
    bytes.subarray(0, 120),
    "cut.npz",
    /zip entry "layers\.0\.npy" is cut off.*the archive is truncated/,
  );
});

Deno.test("loadAttention() refuses a safetensors header whose offsets do not match the shape", async () => {
  const bytes = safetensors([
    {
      name: "layers.0",
      dtype: "F32",
      shape: [1, 1, 3, 3],
      data: f32(causal(3)),
      offsets: [0, 32],
    },
  ]);
  await refuses(
    bytes,
    "lies.safetensors",
    /tensor "layers\.0" has shape \[1, 1, 3, 3\] F32 \(36 bytes\) but its offsets span 32 bytes/,
  );
});

Deno.test("loadAttention() refuses an unknown safetensors dtype, naming the tensor", async () => {
  const bytes = safetensors([
    {
      name: "layers.0",
      dtype: "I64",
      shape: [1, 1, 1, 1],
      data: new Uint8Array(8),
    },
  ]);
  await refuses(
    bytes,
    "ints.safetensors",
    /tensor "layers\.0" has dtype I64; attnscope reads F16, BF16, F32 and F64/,
  );
});

Deno.test("loadAttention() refuses an unknown .npy dtype inside an .npz", async () => {
  const bytes = zip({
    "layers.0.npy": npy("<i4", [1, 1, 1, 1], new Uint8Array(4)),
  });
  await refuses(
    bytes,
    "ints.npz",
    /tensor "layers\.0" has dtype <i4; attnscope reads <f2, <f4 and <f8/,
  );
});

Deno.test("loadAttention() refuses a rank that does not match the layout", async () => {
  await refuses(
    GOOD,
    "rank.safetensors",
    /tensor "layers\.0" has rank 4 \[1, 1, 3, 3\] but the layout "head query key" has 3 axes/,
    { layout: "head query key" },
  );
});

Deno.test("loadAttention() refuses more query rows than keys, which causal self-attention cannot have", async () => {
  const bytes = safetensors([
    {
      name: "layers.0",
      dtype: "F32",
      shape: [1, 1, 3, 2],
      data: f32([1, 0, 0.5, 0.5, 0.5, 0.5]),
    },
  ]);
  await refuses(
    bytes,
    "qk.safetensors",
    /tensor "layers\.0" has 3 query rows but only 2 keys, which causal self-attention cannot have/,
  );
});

Deno.test("loadAttention() reads fewer query rows than keys as the last positions, with a note", async () => {
  const bytes = safetensors([
    {
      name: "layers.0",
      dtype: "F32",
      shape: [1, 1, 1, 3],
      data: f32([0.2, 0.3, 0.5]),
    },
  ]);
  const { result, warnings } = await collectWarningsAsync(() =>
    loadAttention(bytes, { name: "tail.safetensors" })
  );
  assert.deepEqual([...result.attention[0].scores.queryPositions], [2]);
  assert.deepEqual(warnings, [
    'tail.safetensors: tensor "layers.0" has 1 query rows for 3 keys; they are read as the last 1 positions',
  ]);
});

Deno.test("loadAttention() refuses a zip entry that is not .npy", async () => {
  const bytes = zip({
    "layers.0.npy": npy("<f4", [1, 1, 3, 3], f32(causal(3))),
    "notes.txt": new Uint8Array([104, 105]),
  });
  await refuses(
    bytes,
    "extra.npz",
    /zip entry "notes\.txt" is not a \.npy array/,
  );
});

Deno.test("loadAttention() refuses layers of different shapes", async () => {
  const bytes = zip({
    "layers.0.npy": npy("<f4", [1, 1, 3, 3], f32(causal(3))),
    "layers.1.npy": npy("<f4", [1, 1, 2, 2], f32(causal(2))),
  });
  await refuses(
    bytes,
    "mixed.npz",
    /tensor "layers\.1" has \[query 2, head 1, key 2\] but "layers\.0" has \[query 3, head 1, key 3\]/,
  );
});

Deno.test("loadAttention() refuses a tensor name that names no layer", async () => {
  const bytes = zip({
    "a.npy": npy("<f4", [1, 1, 3, 3], f32(causal(3))),
    "b.npy": npy("<f4", [1, 1, 3, 3], f32(causal(3))),
  });
  await refuses(
    bytes,
    "names.npz",
    /tensor "a": its name names no layer.*pass layers: \{ "a": 0/,
  );
});

Deno.test("loadAttention() refuses a batch index past the batch", async () => {
  await refuses(
    GOOD,
    "batch.safetensors",
    /tensor "layers\.0" has 1 sequence in its batch axis but batch 1 was asked for; pass batch from 0 to 0/,
    { batch: 1 },
  );
});

const TWO_GIB = [1, 8, 16384, 4096]; // 2^31 float32 bytes

Deno.test("loadAttention() refuses a 2 GiB-declared safetensors tensor in a 1 KB file before allocating", async () => {
  const bytes = safetensors([
    {
      name: "layers.0",
      dtype: "F32",
      shape: TWO_GIB,
      data: new Uint8Array(900),
      offsets: [0, 2 ** 31],
    },
  ]);
  assert.ok(bytes.length < 1100);
  await refuses(
    bytes,
    "huge.safetensors",
    /tensor "layers\.0" ends at byte 2147483\d+ but the file has \d{3,4}/,
  );
});

Deno.test("loadAttention() refuses a 2 GiB-declared .npy in a 1 KB file before allocating", async () => {
  await refuses(
    npy("<f4", TWO_GIB, new Uint8Array(900)),
    "huge.npy",
    /tensor "array" declares shape \[1, 8, 16384, 4096\] \(2147483648 bytes\) but the file holds 900/,
  );
});

Deno.test("loadAttention() refuses a 2 GiB-declared .npz entry in a 1 KB file before allocating", async () => {
  for (const level of [0, 6] as const) {
    const bytes = zip({
      "layers.0.npy": npy("<f4", TWO_GIB, new Uint8Array(900)),
    }, level);
    assert.ok(bytes.length < 1200);
    await refuses(
      bytes,
      "huge.npz",
      /tensor "layers\.0" declares shape \[1, 8, 16384, 4096\] \(2147483776 bytes\) but its zip entry holds 1028 bytes/,
    );
  }
});

Deno.test("loadAttention() refuses a file of no known format", async () => {
  await refuses(
    new TextEncoder().encode("hello, this is not attention"),
    "notes.txt",
    /not a safetensors, \.npy, \.npz or attnscope capture file/,
  );
});
