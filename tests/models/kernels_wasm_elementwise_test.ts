import assert from "node:assert/strict";
import { createWasmBackend } from "../../lib/models/kernels/wasm/backend.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function assertNear(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  rel: number,
  what: string,
) {
  assert.equal(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    // Plus 1e-9 absolute: deep in the tails float32 rounding of the
    // argument dominates (relative 1e-6 at values of 1e-14).
    const tol = rel * Math.abs(want[i]) + 1e-9;
    assert.ok(
      Math.abs(got[i] - want[i]) <= tol,
      `${what}[${i}]: ${got[i]} vs ${want[i]}`,
    );
  }
}

Deno.test("activate: SiLU and tanh GELU (times up, and without up) within a few float32 ulps of float64, tails included", async () => {
  const backend = await createWasmBackend({ threads: 1 });
  try {
    const r = rng(3);
    // 1031 values (not a multiple of 4): spread in [-30, 30], plus extremes.
    const xs = Array.from({ length: 1031 }, () => r() * 60);
    xs.splice(0, 6, 0, -0, 100, -100, 1e-6, -90);
    const up = Float32Array.from(xs, () => r() * 4);
    const k0 = Math.sqrt(2 / Math.PI);
    const silu = (v: number) => v / (1 + Math.exp(-v));
    // 0.5 v (1 + tanh(u)) = v / (1 + e^(-2u)), the form that has no
    // cancellation in float64's tail either.
    const gelu = (v: number) =>
      v / (1 + Math.exp(-2 * k0 * (v + 0.044715 * v * v * v)));
    for (const [kind, f] of [["silu", silu], ["gelu_tanh", gelu]] as const) {
      const g = Float32Array.from(xs);
      const want = Array.from(g, (v, i) => f(v) * up[i]);
      backend.activate!(g, up, g.length, kind);
      assertNear(g, want, 4e-7, `${kind} x up`);
      const g2 = Float32Array.from(xs);
      backend.activate!(g2, null, g2.length, kind);
      assertNear(g2, Array.from(Float32Array.from(xs), f), 4e-7, kind);
    }
    assert.throws(
      () => backend.activate!(new Float32Array(2), null, 3, "silu"),
      /Cannot activate: .*pass n elements/,
    );
  } finally {
    backend.close();
  }
});

Deno.test("softmaxRows: causal and sliding-window rows sum to 1, match float64 softmax, and zero masked keys", async () => {
  const backend = await createWasmBackend({ threads: 1 });
  try {
    const r = rng(9);
    const m = 7, n = 23, p0 = 16;
    for (const window of [null, 5, 1]) {
      const s = Float32Array.from({ length: m * n }, () => r() * 40);
      const src = s.slice();
      backend.softmaxRows!(s, m, n, p0, window);
      for (let i = 0; i < m; i++) {
        const pos = p0 + i;
        const lo = window === null ? 0 : Math.max(0, pos - window + 1);
        const row = Array.from(src.subarray(i * n, (i + 1) * n));
        const max = Math.max(...row.slice(lo, pos + 1));
        const e = row.map((v, k) => k < lo || k > pos ? 0 : Math.exp(v - max));
        const sum = e.reduce((a, b) => a + b, 0);
        const want = e.map((v) => v / sum);
        const got = s.subarray(i * n, (i + 1) * n);
        for (let k = 0; k < n; k++) {
          assert.ok(
            Math.abs(got[k] - want[k]) <= 1e-6 * Math.max(want[k], 1e-3),
            `window ${window} row ${i} key ${k}: ${got[k]} vs ${want[k]}`,
          );
          if (k < lo || k > pos) assert.equal(got[k], 0);
        }
      }
    }
    assert.throws(
      () => backend.softmaxRows!(new Float32Array(3), 2, 2, 0, null),
      /Cannot take the softmax: .*pass m \* n scores/,
    );
  } finally {
    backend.close();
  }
});

Deno.test("readRow gives a weight's row widened exactly, for float32, bfloat16 and float16", async () => {
  const backend = await createWasmBackend({ threads: 1 });
  try {
    const rows = 13, cols = 5;
    const f = Float32Array.from({ length: rows * cols }, (_, i) => i - 30.25);
    const b = Uint16Array.from(
      f,
      (v) => new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16,
    );
    const h = Uint16Array.from(
      f,
      (v) => new Uint16Array(new Float16Array([v]).buffer)[0],
    );
    const hf = backend.upload({ rows, cols, dtype: "float32", data: f });
    const hb = backend.upload({ rows, cols, dtype: "bfloat16", data: b });
    const hh = backend.upload({ rows, cols, dtype: "float16", data: h });
    const out = new Float32Array(cols);
    for (const row of [0, 7, 8, 12]) {
      const want = f.subarray(row * cols, (row + 1) * cols);
      backend.readRow!(hf, row, out);
      assert.deepEqual([...out], [...want]);
      backend.readRow!(hb, row, out);
      assert.deepEqual(
        [...out],
        [...want].map((v) => {
          const u = new Uint32Array(new Float32Array([v]).buffer);
          u[0] &= 0xffff0000;
          return new Float32Array(u.buffer)[0];
        }),
      );
      backend.readRow!(hh, row, out);
      assert.deepEqual([...out], [...want].map((v) => Math.f16round(v)));
    }
    assert.throws(
      () => backend.readRow!(hf, 13, out),
      /Cannot read a weight row: row 13 is outside/,
    );
  } finally {
    backend.close();
  }
});
