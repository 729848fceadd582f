import assert from "node:assert/strict";
import { createWasmBackend } from "../../lib/models/kernels/wasm/backend.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

Deno.test("uploadStreamed packs row chunks into the same weight as upload", async () => {
  const backend = await createWasmBackend({ threads: 2 });
  try {
    const r = rng(7);
    // 16384 bf16 columns: 32 KiB rows, so 64-row chunks and 150 rows make
    // two whole chunks and a 22-row tail (not a multiple of 8).
    const rows = 150, cols = 16384;
    const data = new Uint16Array(rows * cols);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < data.length; i++) {
      f[0] = r();
      data[i] = u[0] >>> 16;
    }
    const bias = new Float32Array(rows).map(() => r());
    const whole = backend.upload({ rows, cols, dtype: "bfloat16", data }, bias);
    const writer = backend.uploadStreamed!(
      { rows, cols, dtype: "bfloat16" },
      bias,
    );
    assert.equal(writer.chunkRows % 8, 0);
    assert.ok(writer.chunkRows < rows, "the test must cover several chunks");
    const bytes = new Uint8Array(data.buffer);
    const step = writer.chunkRows * cols * 2;
    const reused = new Uint8Array(step);
    for (let b = 0; b < bytes.length; b += step) {
      const n = Math.min(step, bytes.length - b);
      reused.set(bytes.subarray(b, b + n));
      writer.write(reused.subarray(0, n));
      reused.fill(0xff); // the writer must have copied already
    }
    const streamed = writer.finish();
    const x = new Float32Array(3 * cols).map(() => r());
    const want = backend.linear(x, 3, whole);
    const got = backend.linear(x, 3, streamed);
    assert.deepEqual(got, want);
    assert.ok(want.some((v) => v !== 0));
    // A handful of outputs against a plain float64 sum.
    for (const [i, o] of [[0, 0], [1, 77], [2, 149]]) {
      let s = bias[o];
      for (let j = 0; j < cols; j++) {
        u[0] = data[o * cols + j] << 16;
        s += x[i * cols + j] * f[0];
      }
      assert.ok(Math.abs(got[i * rows + o] - s) < 1e-3, `${i},${o}`);
    }
  } finally {
    backend.close();
  }
});

Deno.test("uploadStreamed rejects wrong chunks, early finish and use after abort with what to do", async () => {
  const backend = await createWasmBackend({ threads: 1 });
  try {
    const w = backend.uploadStreamed!({ rows: 20, cols: 4, dtype: "float32" });
    assert.equal(w.chunkRows >= 20, true);
    assert.throws(
      () => w.write(new Uint8Array(10 * 16)),
      /Cannot upload weight: got 160 bytes where rows 0\.\.20 .* were due/,
    );
    assert.throws(() => w.finish(), /0 of 20 rows were written/);
    w.abort();
    assert.throws(() => w.write(new Uint8Array(20 * 16)), /already finished/);
    assert.throws(
      () =>
        backend.uploadStreamed!(
          { rows: 2, cols: 2, dtype: "float32" },
          new Float32Array(3),
        ),
      /bias has 3 elements for 2 rows/,
    );
    assert.throws(
      () => backend.uploadStreamed!({ rows: 0, cols: 2, dtype: "float32" }),
      /not two positive integers/,
    );
  } finally {
    backend.close();
  }
});
