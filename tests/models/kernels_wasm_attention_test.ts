import assert from "node:assert/strict";
import { createWasmBackend } from "../../lib/models/kernels/wasm/backend.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** float64 attention of one head: probabilities [m][s] and output [m][hd]. */
function expectedHead(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  o: { m: number; s: number; hd: number; heads: number; kvHeads: number },
  head: number,
  p0: number,
  window: number | null,
  scale: number,
) {
  const { m, s, hd, heads, kvHeads } = o;
  const g = Math.floor(head / (heads / kvHeads));
  const probs: number[][] = [], out: number[][] = [];
  for (let i = 0; i < m; i++) {
    const pos = p0 + i;
    const lo = window === null ? 0 : Math.max(0, pos - window + 1);
    const row = new Array(s).fill(0);
    let max = -Infinity;
    for (let j = lo; j <= pos; j++) {
      let d = 0;
      for (let p = 0; p < hd; p++) {
        d += q[i * heads * hd + head * hd + p] *
          k[j * kvHeads * hd + g * hd + p];
      }
      row[j] = d * scale;
      max = Math.max(max, row[j]);
    }
    let sum = 0;
    for (let j = lo; j <= pos; j++) sum += row[j] = Math.exp(row[j] - max);
    for (let j = lo; j <= pos; j++) row[j] /= sum;
    probs.push(row);
    const y = new Array(hd).fill(0);
    for (let j = lo; j <= pos; j++) {
      for (let p = 0; p < hd; p++) {
        y[p] += row[j] * v[j * kvHeads * hd + g * hd + p];
      }
    }
    out.push(y);
  }
  return { probs, out };
}

Deno.test("attention: GQA heads on two threads, causal and sliding, match float64 and write only their heads' columns", async () => {
  const backend = await createWasmBackend({ threads: 2 });
  try {
    const r = rng(5);
    // 9 query heads over 3 KV heads (SmolLM2's grouping), head width 20
    // (not a multiple of 8), 37 queries after 30 cached positions.
    const shape = { m: 37, s: 67, hd: 20, heads: 9, kvHeads: 3 };
    const { m, s, hd, heads, kvHeads } = shape;
    const q = Float32Array.from({ length: m * heads * hd }, () => r() * 2);
    const k = Float32Array.from(
      { length: (s + 5) * kvHeads * hd },
      () => r() * 2,
    );
    const v = Float32Array.from({ length: (s + 5) * kvHeads * hd }, () => r());
    for (const [window, h0, h1] of [[null, 0, 9], [16, 2, 7]] as const) {
      const out = new Float32Array(m * heads * hd).fill(7);
      const probs = backend.attention!({
        m,
        s,
        headDim: hd,
        heads,
        kvHeads,
        headStart: h0,
        headEnd: h1,
        p0: s - m,
        window,
        scale: 0.3,
        q,
        k,
        v,
        out,
      });
      assert.equal(probs.length, (h1 - h0) * m * s);
      for (let head = 0; head < heads; head++) {
        if (head < h0 || head >= h1) {
          for (let i = 0; i < m; i++) {
            for (let p = 0; p < hd; p++) {
              assert.equal(out[i * heads * hd + head * hd + p], 7);
            }
          }
          continue;
        }
        const want = expectedHead(q, k, v, shape, head, s - m, window, 0.3);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < s; j++) {
            const got = probs[((head - h0) * m + i) * s + j];
            assert.ok(
              Math.abs(got - want.probs[i][j]) <= 1e-6,
              `window ${window} head ${head} row ${i} key ${j}: ${got} vs ${
                want.probs[i][j]
              }`,
            );
          }
          for (let p = 0; p < hd; p++) {
            const got = out[i * heads * hd + head * hd + p];
            assert.ok(Math.abs(got - want.out[i][p]) <= 1e-5);
          }
        }
      }
    }
    assert.throws(
      () =>
        backend.attention!({
          m: 4,
          s: 3,
          headDim: 2,
          heads: 2,
          kvHeads: 1,
          headStart: 0,
          headEnd: 2,
          p0: 0,
          window: null,
          scale: 1,
          q,
          k,
          v,
          out: new Float32Array(16),
        }),
      /Cannot run attention: .*pass shapes that agree/,
    );
  } finally {
    backend.close();
  }
});
