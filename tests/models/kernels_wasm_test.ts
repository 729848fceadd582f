import assert from "node:assert/strict";
import { createWasmBackend } from "../../lib/models/kernels/wasm/backend.ts";
import { createMatmulBackend } from "../../lib/models/kernels/select.ts";
import {
  buildSgemm,
  sgemmModuleText,
} from "../../lib/models/kernels/wasm/build.ts";
import type { WeightDtype } from "../../lib/models/kernels/backend.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function toBf16(v: number): number {
  f32[0] = v;
  return u32[0] >>> 16;
}
function fromBf16(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}
function fromF16(h: number): number {
  const e = (h >> 10) & 31, f = h & 1023, s = h & 0x8000 ? -1 : 1;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** A weight in `dtype` and its exact float64 values. */
function makeWeight(
  rows: number,
  cols: number,
  dtype: WeightDtype,
  r: () => number,
) {
  const values = new Float64Array(rows * cols);
  let data: Float32Array | Uint16Array;
  if (dtype === "float32") {
    data = new Float32Array(rows * cols).map(() => r());
    values.set(data);
  } else {
    data = new Uint16Array(rows * cols);
    for (let i = 0; i < data.length; i++) {
      if (dtype === "bfloat16") {
        data[i] = toBf16(r());
        values[i] = fromBf16(data[i]);
      } else {
        // Normals in [2^-5, 2) with either sign and, every 7th, a subnormal.
        const sign = r() < 0 ? 0x8000 : 0;
        const exp = 10 + Math.floor((r() + 0.5) * 6.99);
        data[i] = i % 7 === 0
          ? (i & 0x3ff) | sign
          : sign | (exp << 10) | Math.floor((r() + 0.5) * 1023);
        values[i] = fromF16(data[i]);
      }
    }
  }
  return { data, values };
}

function expected(
  x: Float32Array,
  m: number,
  w: Float64Array,
  rows: number,
  cols: number,
  bias?: Float32Array,
) {
  const out = new Float64Array(m * rows);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < rows; j++) {
      let s = bias ? bias[j] : 0;
      for (let p = 0; p < cols; p++) s += x[i * cols + p] * w[j * cols + p];
      out[i * rows + j] = s;
    }
  }
  return out;
}

function assertClose(
  actual: ArrayLike<number>,
  want: ArrayLike<number>,
  tol: number,
  what: string,
) {
  assert.equal(actual.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(actual[i] - want[i]);
    if (!(d <= tol * (1 + Math.abs(want[i])))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${want[i]}`);
    }
  }
}

for (const threads of [1, 2]) {
  Deno.test(`createWasmBackend linear matches a float64 product for every dtype, bias, m and row range (threads ${threads})`, async () => {
    const backend = await createWasmBackend({ threads });
    try {
      const r = rng(7 + threads);
      for (const dtype of ["float32", "bfloat16", "float16"] as const) {
        for (const [rows, cols] of [[37, 29], [64, 80], [200, 48]]) {
          const { data, values } = makeWeight(rows, cols, dtype, r);
          const bias = new Float32Array(rows).map(() => r());
          const h = backend.upload({ rows, cols, dtype, data }, bias);
          const plain = backend.upload({ rows, cols, dtype, data });
          for (const m of [1, 5, 13, 70]) {
            const x = new Float32Array(m * cols).map(() => r());
            const want = expected(x, m, values, rows, cols, bias);
            assertClose(
              backend.linear(x, m, h),
              want,
              1e-5,
              `${dtype} ${rows}x${cols} m=${m}`,
            );
            const noBias = expected(x, m, values, rows, cols);
            assertClose(
              backend.linear(x, m, plain),
              noBias,
              1e-5,
              `${dtype} no bias m=${m}`,
            );
            const [a, b] = [3, rows - 5];
            const sliced = backend.linear(x, m, h, undefined, [a, b]);
            const wantSliced = new Float64Array(m * (b - a));
            for (let i = 0; i < m; i++) {
              for (let j = a; j < b; j++) {
                wantSliced[i * (b - a) + j - a] = want[i * rows + j];
              }
            }
            assertClose(
              sliced,
              wantSliced,
              1e-5,
              `${dtype} rows [${a}, ${b}) m=${m}`,
            );
          }
          backend.release(h);
          backend.release(plain);
        }
      }
    } finally {
      backend.close();
    }
  });

  Deno.test(`createWasmBackend matmul multiplies strided head slices, with and without transposeB (threads ${threads})`, async () => {
    const backend = await createWasmBackend({ threads });
    try {
      const r = rng(99);
      const T = 21, S = 19, H = 3, KV = 1, d = 12;
      const q = new Float32Array(T * H * d).map(() => r());
      const k = new Float32Array(S * KV * d).map(() => r());
      const h = 2, g = 0, alpha = 0.25;
      const scores = new Float32Array(T * S);
      backend.matmul({
        m: T,
        n: S,
        k: d,
        a: { data: q, offset: h * d, stride: H * d },
        b: { data: k, offset: g * d, stride: KV * d },
        transposeB: true,
        out: { data: scores, offset: 0, stride: S },
        alpha,
      });
      const want = new Float64Array(T * S);
      for (let i = 0; i < T; i++) {
        for (let j = 0; j < S; j++) {
          let s = 0;
          for (let p = 0; p < d; p++) {
            s += q[i * H * d + h * d + p] * k[j * KV * d + g * d + p];
          }
          want[i * S + j] = alpha * s;
        }
      }
      assertClose(scores, want, 1e-5, "Q·Kᵀ");
      const out = new Float32Array(T * H * d).fill(7);
      backend.matmul({
        m: T,
        n: d,
        k: S,
        a: { data: scores, offset: 0, stride: S },
        b: { data: k, offset: 0, stride: d },
        out: { data: out, offset: h * d, stride: H * d },
      });
      for (let i = 0; i < T; i++) {
        for (let c = 0; c < H * d; c++) {
          const v = out[i * H * d + c];
          if (c < h * d) {
            assert.equal(v, 7, "other heads' columns untouched");
            continue;
          }
          const j = c - h * d;
          let s = 0;
          for (let p = 0; p < S; p++) s += scores[i * S + p] * k[p * d + j];
          assertClose([v], [s], 1e-5, `P·V (${i}, ${j})`);
        }
      }
    } finally {
      backend.close();
    }
  });
}

Deno.test("createWasmBackend puts weights past a shard's size into new memories, on every thread", async () => {
  const backend = await createWasmBackend({
    threads: 2,
    maxShardBytes: 8 << 20,
  });
  try {
    const r = rng(5);
    const rows = 512, cols = 1024; // 2 MiB each in bfloat16: several shards
    const ws = [];
    for (let i = 0; i < 6; i++) {
      const w = makeWeight(rows, cols, "bfloat16", r);
      ws.push({
        ...w,
        h: backend.upload({ rows, cols, dtype: "bfloat16", data: w.data }),
      });
    }
    const x = new Float32Array(4 * cols).map(() => r());
    for (const w of ws) {
      assertClose(
        backend.linear(x, 4, w.h),
        expected(x, 4, w.values, rows, cols),
        1e-5,
        "sharded weight",
      );
    }
  } finally {
    backend.close();
  }
});

Deno.test("createWasmBackend rejects bad weights and handles with what to do", async () => {
  const backend = await createWasmBackend({ threads: 1 });
  try {
    assert.throws(
      () =>
        backend.upload({
          rows: 2,
          cols: 3,
          dtype: "float32",
          data: new Float32Array(5),
        }),
      /Cannot upload weight: 5 elements .* pass rows\*cols elements/,
    );
    assert.throws(
      () =>
        backend.upload({
          rows: 2,
          cols: 2,
          dtype: "bfloat16",
          data: new Float32Array(4),
        }),
      /Cannot upload weight/,
    );
    const h = backend.upload({
      rows: 2,
      cols: 2,
      dtype: "float32",
      data: new Float32Array(4),
    });
    assert.throws(
      () => backend.linear(new Float32Array(4), 2, h, undefined, [1, 3]),
      /Cannot multiply: row range/,
    );
    backend.release(h);
    assert.throws(
      () => backend.linear(new Float32Array(4), 2, h),
      /not a live upload/,
    );
  } finally {
    backend.close();
  }
  assert.throws(
    () =>
      backend.upload({
        rows: 1,
        cols: 1,
        dtype: "float32",
        data: new Float32Array(1),
      }),
    /closed/,
  );
});

Deno.test("createMatmulBackend gives the WebAssembly backend here", async () => {
  const backend = await createMatmulBackend({ threads: 2 });
  try {
    assert.equal(backend.name, "wasm-simd x2");
  } finally {
    backend.close();
  }
});

Deno.test("sgemm_wasm.ts is what build.ts makes from sgemm.c with Debian's clang and lld", async () => {
  const fresh = sgemmModuleText(await buildSgemm());
  const committed = await Deno.readTextFile(
    new URL("../../lib/models/kernels/wasm/sgemm_wasm.ts", import.meta.url),
  );
  assert.ok(
    committed === fresh,
    "sgemm_wasm.ts is stale; run deno run -A lib/models/kernels/wasm/build.ts",
  );
});
