import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import {
  type DecodeJob,
  DecodePool,
  decodeScores,
  decodeScoresBatch,
  defaultWorkerCount,
} from "../lib/sources/vllm/decode.ts";
import { float16ToFloat32 } from "../lib/sources/float16.ts";
import { inflateExact, inflateExactInto } from "../lib/sources/vllm/inflate.ts";
import { causalScores } from "./_captures.ts";

const gz = (values: Float16Array) =>
  gzipSync(new Uint8Array(values.buffer), { level: 9 });

Deno.test("float16ToFloat32() matches the built-in conversion for all 65,536 bit patterns", () => {
  const bits = new Uint16Array(65536).map((_, i) => i);
  const builtin = new Float32Array(new Float16Array(bits.buffer));
  const ours = float16ToFloat32(bits);
  for (let i = 0; i < 65536; i++) {
    if (Number.isNaN(builtin[i])) {
      assert.ok(Number.isNaN(ours[i]), `pattern ${i.toString(16)}`);
    } else {
      assert.ok(Object.is(ours[i], builtin[i]), `pattern ${i.toString(16)}`);
    }
  }
  assert.deepEqual(float16ToFloat32(new Float16Array(bits.buffer)), ours);
});

Deno.test("float16ToFloat32() writes into a given output and refuses a wrong length", () => {
  const out = new Float32Array(6).subarray(1, 4);
  float16ToFloat32(new Float16Array([0.5, -1, 2]), out);
  assert.deepEqual([...out], [0.5, -1, 2]);
  assert.throws(
    () => float16ToFloat32(new Float16Array(3), new Float32Array(2)),
    /^RangeError: Cannot convert float16 to float32: 3 values but the output holds 2; pass an output of the same length$/,
  );
});

Deno.test("decodeScores() gives float32 or float16 holding the payload's values", () => {
  const values = causalScores(5, 3, 7, 2);
  const f32 = decodeScores(gz(values), [5, 3, 7]);
  const f16 = decodeScores(gz(values), [5, 3, 7], { dtype: "float16" });
  assert.ok(f32 instanceof Float32Array);
  assert.ok(f16 instanceof Float16Array);
  assert.deepEqual([...f32], [...values]);
  assert.deepEqual([...f16], [...values]);
  assert.equal(
    f16.buffer.byteLength,
    values.byteLength,
    "the result owns its buffer",
  );
});

/** Both inflate paths, as the decoders call them. */
const inflaters: Record<string, (gz: Uint8Array, n: number) => number> = {
  inflateExact: (g, n) => inflateExact(g, n, "layer 9").length,
  inflateExactInto: (g, n) => {
    let seen = 0;
    inflateExactInto(g, n, "layer 9", (chunk) => {
      seen += chunk.length;
    });
    return seen;
  },
};

for (const [name, inflate] of Object.entries(inflaters)) {
  Deno.test(`${name}() inflates multi-member gzip, as Python does`, () => {
    const a = gz(new Float16Array([1, 2]));
    const b = gz(new Float16Array([3]));
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    assert.equal(inflate(both, 6), 6);
  });

  Deno.test(`${name}() refuses data that is not gzip, truncated, corrupt or of the wrong size`, () => {
    const good = gz(causalScores(4, 2, 4));
    const corrupt = new Uint8Array(good);
    corrupt[12] ^= 0xff;
    corrupt[13] ^= 0xff;
    const cases: [Uint8Array, number, RegExp][] = [
      [
        new Uint8Array(64),
        64,
        /^TypeError: Cannot decode layer 9: data is not gzip \(64 bytes starting 00 00 00 00, gzip starts 1f 8b\)/,
      ],
      [
        new Uint8Array(3),
        64,
        /^TypeError: Cannot decode layer 9: data is not gzip \(3 bytes/,
      ],
      [
        good.subarray(0, good.length - 9),
        64,
        /^RangeError: Cannot decode layer 9: gzip data is truncated/,
      ],
      [corrupt, 64, /^RangeError: Cannot decode layer 9: gzip data is corrupt/],
      [
        good,
        66,
        /^RangeError: Cannot decode layer 9: data inflated 64 bytes but 66 were expected from its shape/,
      ],
      [
        good,
        62,
        /^RangeError: Cannot decode layer 9: data inflates past the 62 bytes its shape needs, stopped there/,
      ],
    ];
    for (const [input, n, message] of cases) {
      assert.throws(() => inflate(input, n), message);
    }
  });

  Deno.test(`${name}() stops a gzip bomb early, in bounded memory`, () => {
    // 4 GiB of zeros in 4.3 MB (4,096 gzip members of 1 MiB). Inflating it
    // all would take 4 GiB, more than one buffer may hold here; a decoder
    // that stops at the expected 1 MiB returns its error at once.
    const member = gzipSync(new Uint8Array(1 << 20), { level: 9 });
    const bomb = new Uint8Array(member.length * 4096);
    for (let i = 0; i < 4096; i++) bomb.set(member, i * member.length);
    const before = Deno.memoryUsage().rss;
    assert.throws(
      () => inflate(bomb, 1 << 20),
      /^RangeError: Cannot decode layer 9: data inflates past the 1048576 bytes its shape needs, stopped there/,
    );
    const grown = Deno.memoryUsage().rss - before;
    assert.ok(grown < 256 << 20, `memory grew by ${grown} bytes`);
  });
}

Deno.test("inflateExactInto() hands over no byte past the expected size and refuses trailing bytes", () => {
  const values = causalScores(8, 2, 8);
  let seen = 0;
  assert.throws(
    () =>
      inflateExactInto(gz(values), 100, "layer 1", (chunk) => {
        seen += chunk.length;
      }),
    /inflates past the 100 bytes/,
  );
  assert.ok(seen <= 100, `sink saw ${seen} bytes`);
  const trailing = new Uint8Array([...gz(values), 1, 2, 3]);
  assert.throws(
    () => inflateExactInto(trailing, values.byteLength, "layer 1", () => {}),
    // zlib reads trailing bytes as a next gzip member, as Python does.
    /^RangeError: Cannot decode layer 1: gzip data is corrupt \(incorrect header check\)/,
  );
});

function jobs(count: number, calls: number[] = []): DecodeJob[] {
  return Array.from({ length: count }, (_, i) => ({
    where: `layer ${i}`,
    shape: [6, 2, 6] as const,
    gzip: () => {
      calls.push(i);
      return gz(causalScores(6, 2, 6, i + 1));
    },
  }));
}

Deno.test("decodeScoresBatch() on workers gives what the calling thread gives, in job order", async () => {
  for (const dtype of ["float32", "float16"] as const) {
    const inline = await decodeScoresBatch(jobs(5), { dtype, workers: 0 });
    const pooled = await decodeScoresBatch(jobs(5), { dtype, workers: 2 });
    assert.equal(pooled.length, 5);
    pooled.forEach((p, i) => {
      assert.equal(p.constructor, inline[i].constructor);
      assert.deepEqual([...p], [...inline[i]]);
      assert.deepEqual([...p], [...causalScores(6, 2, 6, i + 1)]);
    });
  }
});

Deno.test("decodeScoresBatch() stops at the first failing layer and names it", async () => {
  for (const workers of [0, 1]) {
    const calls: number[] = [];
    const list = jobs(4, calls);
    list[1] = { ...list[1], shape: [6, 2, 5] };
    await assert.rejects(
      () => decodeScoresBatch(list, { workers }),
      /^RangeError: Cannot decode layer 1: data inflates past the 120 bytes/,
    );
    assert.deepEqual(calls, [0, 1], "no later layer is started");
  }
});

Deno.test("DecodePool decodes batch after batch, survives a failed batch, and refuses work once closed", async () => {
  const pool = new DecodePool(2);
  try {
    const bad = jobs(3);
    bad[2] = { ...bad[2], gzip: () => new Uint8Array(40) };
    await assert.rejects(
      () => pool.decode(bad),
      /^TypeError: Cannot decode layer 2: data is not gzip/,
    );
    const [a, b] = await Promise.all([
      pool.decode(jobs(3)),
      pool.decode(jobs(2), { dtype: "float16" }),
    ]);
    assert.equal(a.length, 3);
    assert.ok(b[1] instanceof Float16Array);
    assert.deepEqual([...b[1]], [...causalScores(6, 2, 6, 2)]);
  } finally {
    pool.close();
  }
  await assert.rejects(
    () => pool.decode(jobs(1)),
    /^Error: Cannot decode on a closed DecodePool/,
  );
  assert.throws(
    () => new DecodePool(0),
    /^RangeError: Cannot start a decode pool: size 0/,
  );
});

Deno.test("decodeScoresBatch() moves whole buffers to workers and copies views of larger ones", async () => {
  const values = causalScores(6, 2, 6);
  const whole = new Uint8Array(gz(values));
  const size = whole.length;
  const inBody = new Uint8Array(size + 10);
  inBody.set(whole, 5);
  const view = inBody.subarray(5, 5 + size);
  const out = await decodeScoresBatch([
    { where: "layer 0", shape: [6, 2, 6], gzip: () => whole },
    { where: "layer 1", shape: [6, 2, 6], gzip: () => view },
  ], { workers: 2 });
  assert.deepEqual([...out[1]], [...values]);
  assert.equal(whole.byteLength, 0, "the whole buffer was transferred");
  assert.equal(inBody.byteLength, size + 10, "the body keeps its buffer");
  assert.equal(view.byteLength, size);
});

Deno.test("defaultWorkerCount() uses workers only for several large layers", () => {
  const big = {
    where: "layer 0",
    shape: [2048, 8, 2048] as const,
    gzip: () => new Uint8Array(),
  };
  const small = { ...big, shape: [64, 8, 64] as const };
  assert.equal(defaultWorkerCount([big]), 0);
  assert.equal(defaultWorkerCount([small, small, small]), 0);
  const cores = navigator.hardwareConcurrency;
  assert.equal(defaultWorkerCount([big, big]), Math.min(2, cores + 1));
  assert.equal(defaultWorkerCount(Array(9).fill(big)), cores + 1);
});
