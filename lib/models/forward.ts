/**
 * The decoder forward pass shared by the four families, in float32, over a
 * chunk of new positions with a KV cache: norms, projections through the
 * {@linkcode MatmulBackend}, RoPE or learned positions, masked softmax
 * attention (causal, sliding window, GQA, soft-capping) whose probabilities
 * can be copied out row by row, head ablation, the MLP, and the head on
 * only the rows asked for.
 *
 * @module
 */

import type { EngineConfig } from "./config.ts";
import type { MatmulBackend } from "./kernels/backend.ts";
import { widenInto } from "./kernels/reference.ts";
import { inverseFrequencies, RopeTable } from "./rope.ts";
import type { ModelWeights, NormWeights } from "./weights.ts";

/** Where a layer's attention probabilities are copied, `[T, H, T]`. */
export interface CaptureSink {
  /** `T` (rows and columns); rows at or past it are not kept. */
  size: number;
  /** Per layer, the flat `[T, H, T]` array, or `undefined` when not captured. */
  layers: (Float32Array | Float16Array | undefined)[];
}

/** Rounds a float32 to bfloat16 (round to nearest even), as torch's `.to(bfloat16)`. */
function roundBf16(x: number): number {
  const b = new Float32Array([x]);
  const u = new Uint32Array(b.buffer);
  u[0] = (u[0] + 0x7fff + ((u[0] >> 16) & 1)) & 0xffff0000;
  return b[0];
}

function identity(d: number): Float32Array {
  const m = new Float32Array(d * d);
  for (let i = 0; i < d; i++) m[i * d + i] = 1;
  return m;
}

/** A model's weights, caches and scratch: runs positions and keeps their keys. */
export class Forward {
  readonly config: EngineConfig;
  readonly weights: ModelWeights;
  readonly backend: MatmulBackend;
  #ropeGlobal: RopeTable | null = null;
  #ropeLocal: RopeTable | null = null;
  #embedScale: number;
  // Per-run state.
  #kCache: Float32Array[] = [];
  #vCache: Float32Array[] = [];
  #capacity = 0;
  #chunk = 0;
  #x = new Float32Array(0);
  #h = new Float32Array(0);
  #q = new Float32Array(0);
  #att = new Float32Array(0);
  #o = new Float32Array(0);
  #gate = new Float32Array(0);
  #up = new Float32Array(0);
  #scores = new Float32Array(0);
  #ablate: Set<number>[] = [];
  #identity: Float32Array | null = null;

  /**
   * @param config The normalized config.
   * @param weights The loaded weights.
   * @param backend The backend holding the matrices.
   */
  constructor(
    config: EngineConfig,
    weights: ModelWeights,
    backend: MatmulBackend,
  ) {
    this.config = config;
    this.weights = weights;
    this.backend = backend;
    if (config.positions === "rope") {
      this.#ropeGlobal = new RopeTable(
        inverseFrequencies(config.headDim, config.ropeGlobal),
      );
      this.#ropeLocal = config.ropeLocal === config.ropeGlobal
        ? this.#ropeGlobal
        : new RopeTable(inverseFrequencies(config.headDim, config.ropeLocal));
    }
    const s = config.embedScale;
    this.#embedScale = s === null
      ? 1
      : weights.dtype === "bfloat16"
      ? roundBf16(s)
      : weights.dtype === "float16"
      ? Math.f16round(s)
      : Math.fround(s);
  }

  /**
   * Starts a sequence: sizes the KV cache for `capacity` positions and the
   * scratch for chunks of up to `chunk` positions.
   *
   * @param capacity Most positions the sequence will hold.
   * @param chunk Most positions per {@linkcode Forward.run}.
   * @param ablate Query heads to zero, per layer.
   */
  begin(capacity: number, chunk: number, ablate: Set<number>[]): void {
    const c = this.config;
    const kvd = c.numKeyValueHeads * c.headDim;
    const qd = c.numHeads * c.headDim;
    this.#kCache = [];
    this.#vCache = [];
    for (let l = 0; l < c.numLayers; l++) {
      this.#kCache.push(new Float32Array(capacity * kvd));
      this.#vCache.push(new Float32Array(capacity * kvd));
    }
    this.#capacity = capacity;
    this.#chunk = chunk;
    this.#x = new Float32Array(chunk * c.hiddenSize);
    this.#h = new Float32Array(chunk * c.hiddenSize);
    this.#o = new Float32Array(chunk * c.hiddenSize);
    this.#q = new Float32Array(chunk * qd);
    this.#att = new Float32Array(chunk * qd);
    this.#gate = new Float32Array(chunk * c.intermediateSize);
    this.#up = new Float32Array(chunk * c.intermediateSize);
    this.#scores = new Float32Array(chunk * capacity);
    this.#ablate = ablate;
    this.#ropeGlobal?.ensure(capacity);
    this.#ropeLocal?.ensure(capacity);
  }

  /** Drops the per-sequence caches. */
  end(): void {
    this.#kCache = [];
    this.#vCache = [];
    this.#capacity = 0;
    this.#x =
      this.#h =
      this.#o =
      this.#q =
      this.#att =
        new Float32Array(0);
    this.#gate = this.#up = this.#scores = new Float32Array(0);
  }

  /**
   * Runs positions `p0 .. p0 + ids.length - 1` through every layer, keeping
   * their keys and values, and leaves the final hidden states (before the
   * final norm) in the scratch for {@linkcode Forward.logits}.
   *
   * @param ids The tokens at those positions.
   * @param p0 Position of the first.
   * @param capture Where attention rows go, or `null`.
   */
  run(ids: readonly number[], p0: number, capture: CaptureSink | null): void {
    const c = this.config;
    const m = ids.length;
    if (m > this.#chunk || p0 + m > this.#capacity) {
      throw new RangeError(
        `Cannot run positions ${p0}..${
          p0 + m - 1
        }: the sequence was begun for ${this.#capacity} positions in chunks of ${this.#chunk}`,
      );
    }
    const d = c.hiddenSize;
    const x = this.#x;
    const w = this.weights;
    for (let i = 0; i < m; i++) {
      const row = x.subarray(i * d, (i + 1) * d);
      if (w.embed.data) {
        const bits = new Uint32Array(x.buffer, x.byteOffset + i * d * 4, d);
        widenInto(w.embed.data, w.embed.dtype, ids[i] * d, d, row, bits);
      } else if (this.backend.readRow) {
        // Row `id` of the tied head, widened exactly.
        this.backend.readRow(w.head, ids[i], row);
      } else {
        // Row `id` of the tied head: I · W[id]ᵀ, exact (one product by 1).
        this.#identity ??= identity(d);
        this.backend.linear(this.#identity, d, w.head, row, [
          ids[i],
          ids[i] + 1,
        ]);
      }
      if (this.#embedScale !== 1) {
        for (let j = 0; j < d; j++) row[j] = row[j] * this.#embedScale;
      }
      if (w.positionEmbed) {
        const pos = this.#h.subarray(0, d);
        widenInto(
          w.positionEmbed.data,
          w.positionEmbed.dtype,
          (p0 + i) * d,
          d,
          pos,
          new Uint32Array(this.#h.buffer, this.#h.byteOffset, d),
        );
        for (let j = 0; j < d; j++) row[j] += pos[j];
      }
    }
    for (let l = 0; l < c.numLayers; l++) this.#layer(l, m, p0, capture);
  }

  #norm(
    x: Float32Array,
    xo: number,
    out: Float32Array,
    oo: number,
    n: number,
    rows: number,
    stride: number,
    w: NormWeights,
  ): void {
    const eps = this.config.normEps;
    const ws = w.weight;
    if (this.config.norm === "layernorm") {
      const b = w.bias!;
      for (let r = 0; r < rows; r++) {
        const a = xo + r * stride, o = oo + r * stride;
        let mean = 0;
        for (let i = 0; i < n; i++) mean += x[a + i];
        mean /= n;
        let v = 0;
        for (let i = 0; i < n; i++) {
          const t = x[a + i] - mean;
          v += t * t;
        }
        const inv = 1 / Math.sqrt(v / n + eps);
        for (let i = 0; i < n; i++) {
          out[o + i] = (x[a + i] - mean) * inv * ws[i] + b[i];
        }
      }
      return;
    }
    for (let r = 0; r < rows; r++) {
      const a = xo + r * stride, o = oo + r * stride;
      let ss = 0;
      for (let i = 0; i < n; i++) ss += x[a + i] * x[a + i];
      const inv = Math.fround(1 / Math.sqrt(Math.fround(ss / n) + eps));
      for (let i = 0; i < n; i++) {
        out[o + i] = Math.fround(x[a + i] * inv) * ws[i];
      }
    }
  }

  /** The TypeScript softmax (with soft-capping), copying rows to the sink. */
  #softmax(
    scores: Float32Array,
    m: number,
    s: number,
    p0: number,
    window: number | null,
    cap: number | null,
    sink: Float32Array | Float16Array | undefined,
    size: number,
    nh: number,
    head: number,
  ): void {
    for (let i = 0; i < m; i++) {
      const pos = p0 + i;
      const r = i * s;
      const lo = window === null ? 0 : Math.max(0, pos - window + 1);
      let max = -Infinity;
      for (let k = lo; k <= pos; k++) {
        let v = scores[r + k];
        if (cap !== null) v = scores[r + k] = Math.tanh(v / cap) * cap;
        if (v > max) max = v;
      }
      let sum = 0;
      for (let k = lo; k <= pos; k++) {
        const e = Math.fround(Math.exp(scores[r + k] - max));
        scores[r + k] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let k = 0; k < lo; k++) scores[r + k] = 0;
      for (let k = lo; k <= pos; k++) scores[r + k] = scores[r + k] * inv;
      for (let k = pos + 1; k < s; k++) scores[r + k] = 0;
      if (sink && pos < size) {
        const base = (pos * nh + head) * size;
        for (let k = lo; k <= pos; k++) sink[base + k] = scores[r + k];
      }
    }
  }

  /** Attention head by head through matmul (soft-capping, or a backend without attention). */
  #attentionByHead(
    l: number,
    m: number,
    p0: number,
    s: number,
    window: number | null,
    sink: Float32Array | Float16Array | undefined,
    size: number,
  ): void {
    const c = this.config;
    const be = this.backend;
    const hd = c.headDim, nh = c.numHeads, kv = c.numKeyValueHeads;
    const qd = nh * hd, kvd = kv * hd;
    const q = this.#q, att = this.#att, scores = this.#scores;
    const kc = this.#kCache[l], vc = this.#vCache[l];
    const scale = c.attnScaling[l];
    const cap = c.attnSoftcap;
    const rep = nh / kv;
    const ablate = this.#ablate[l];
    for (let head = 0; head < nh; head++) {
      const g = Math.floor(head / rep);
      if (ablate?.has(head) && !sink) {
        for (let i = 0; i < m; i++) {
          att.fill(0, i * qd + head * hd, i * qd + (head + 1) * hd);
        }
        continue;
      }
      be.matmul({
        m,
        n: s,
        k: hd,
        a: { data: q, offset: head * hd, stride: qd },
        b: { data: kc, offset: g * hd, stride: kvd },
        transposeB: true,
        out: { data: scores, offset: 0, stride: s },
        alpha: scale,
      });
      if (cap === null && be.softmaxRows) {
        be.softmaxRows(scores, m, s, p0, window);
        if (sink) {
          for (let i = 0; i < m; i++) {
            const pos = p0 + i;
            if (pos >= size) continue;
            const lo = window === null ? 0 : Math.max(0, pos - window + 1);
            sink.set(
              scores.subarray(i * s + lo, i * s + pos + 1),
              (pos * nh + head) * size + lo,
            );
          }
        }
      } else {
        this.#softmax(scores, m, s, p0, window, cap, sink, size, nh, head);
      }
      if (ablate?.has(head)) {
        for (let i = 0; i < m; i++) {
          att.fill(0, i * qd + head * hd, i * qd + (head + 1) * hd);
        }
        continue;
      }
      be.matmul({
        m,
        n: hd,
        k: s,
        a: { data: scores, offset: 0, stride: s },
        b: { data: vc, offset: g * hd, stride: kvd },
        out: { data: att, offset: head * hd, stride: qd },
      });
    }
  }

  #layer(l: number, m: number, p0: number, capture: CaptureSink | null): void {
    const c = this.config;
    const be = this.backend;
    const lw = this.weights.layers[l];
    const d = c.hiddenSize,
      hd = c.headDim,
      nh = c.numHeads,
      kv = c.numKeyValueHeads;
    const qd = nh * hd, kvd = kv * hd;
    const x = this.#x, h = this.#h, q = this.#q, att = this.#att, o = this.#o;
    const md = m * d;
    this.#norm(x, 0, h, 0, d, m, d, lw.inputNorm);
    const hIn = h.subarray(0, md);
    be.linear(hIn, m, lw.q, q.subarray(0, m * qd));
    const kc = this.#kCache[l], vc = this.#vCache[l];
    be.linear(hIn, m, lw.k, kc.subarray(p0 * kvd, (p0 + m) * kvd));
    be.linear(hIn, m, lw.v, vc.subarray(p0 * kvd, (p0 + m) * kvd));
    if (lw.qNorm && lw.kNorm) {
      this.#norm(q, 0, q, 0, hd, m * nh, hd, lw.qNorm);
      this.#norm(kc, p0 * kvd, kc, p0 * kvd, hd, m * kv, hd, lw.kNorm);
    }
    const sliding = c.layerTypes[l] === "sliding_attention";
    const rope = sliding ? this.#ropeLocal : this.#ropeGlobal;
    if (rope) {
      rope.apply(q, 0, qd, m, nh, p0);
      rope.apply(kc, p0 * kvd, kvd, m, kv, p0);
    }
    // Attention: all heads in one backend call where it can, else head by head.
    const s = p0 + m;
    const scale = c.attnScaling[l];
    const cap = c.attnSoftcap;
    const window = sliding ? c.slidingWindow : null;
    const ablate = this.#ablate[l];
    const sink = capture?.layers[l];
    const size = capture?.size ?? 0;
    if (cap === null && be.attention) {
      // Heads in batches whose probabilities stay under 16 M floats.
      const batch = Math.max(1, Math.floor((16 << 20) / (m * s)));
      for (let h0 = 0; h0 < nh; h0 += batch) {
        const h1 = Math.min(nh, h0 + batch);
        const probs = be.attention({
          m,
          s,
          headDim: hd,
          heads: nh,
          kvHeads: kv,
          headStart: h0,
          headEnd: h1,
          p0,
          window,
          scale,
          q,
          k: kc,
          v: vc,
          out: att,
        });
        if (sink) {
          for (let head = h0; head < h1; head++) {
            for (let i = 0; i < m; i++) {
              const pos = p0 + i;
              if (pos >= size) continue;
              const lo = window === null ? 0 : Math.max(0, pos - window + 1);
              const r = ((head - h0) * m + i) * s;
              sink.set(
                probs.subarray(r + lo, r + pos + 1),
                (pos * nh + head) * size + lo,
              );
            }
          }
        }
      }
      for (const head of ablate ?? []) {
        for (let i = 0; i < m; i++) {
          att.fill(0, i * qd + head * hd, i * qd + (head + 1) * hd);
        }
      }
    } else {
      this.#attentionByHead(l, m, p0, s, window, sink, size);
    }
    be.linear(att.subarray(0, m * qd), m, lw.o, o.subarray(0, md));
    if (lw.postAttnNorm) this.#norm(o, 0, o, 0, d, m, d, lw.postAttnNorm);
    for (let i = 0; i < md; i++) x[i] += o[i];
    // MLP.
    this.#norm(x, 0, h, 0, d, m, d, lw.mlpNorm);
    const inter = c.intermediateSize;
    const mi = m * inter;
    const gate = this.#gate.subarray(0, mi);
    be.linear(hIn, m, lw.gate, gate);
    if (be.activate) {
      if (lw.up) be.linear(hIn, m, lw.up, this.#up.subarray(0, mi));
      be.activate(gate, lw.up ? this.#up : null, mi, c.activation);
    } else if (c.activation === "gelu_tanh") {
      const k0 = Math.sqrt(2 / Math.PI);
      for (let i = 0; i < mi; i++) {
        const v = gate[i];
        gate[i] = 0.5 * v * (1 + Math.tanh(k0 * (v + 0.044715 * v * v * v)));
      }
    } else {
      for (let i = 0; i < mi; i++) gate[i] = gate[i] / (1 + Math.exp(-gate[i]));
    }
    if (lw.up && !be.activate) {
      const up = this.#up.subarray(0, mi);
      be.linear(hIn, m, lw.up, up);
      for (let i = 0; i < mi; i++) gate[i] *= up[i];
    }
    be.linear(gate, m, lw.down, o.subarray(0, md));
    if (lw.postMlpNorm) this.#norm(o, 0, o, 0, d, m, d, lw.postMlpNorm);
    for (let i = 0; i < md; i++) x[i] += o[i];
  }

  /**
   * Logits of row `row` of the last chunk (final norm, head, soft-capping),
   * over vocabulary rows `[start, end)`.
   *
   * @param row Row in the last chunk.
   * @param out `end - start` values.
   * @param range Vocabulary slice; all of it when omitted.
   * @returns `out`.
   */
  logits(
    row: number,
    out: Float32Array,
    range?: [number, number],
  ): Float32Array {
    return this.logitsRows(row, 1, out, range);
  }

  /**
   * Logits of `rows` consecutive rows of the last chunk from `row`, written
   * `rows * (end - start)`.
   *
   * @param row First row.
   * @param rows Rows.
   * @param out Destination.
   * @param range Vocabulary slice.
   * @returns `out`.
   */
  logitsRows(
    row: number,
    rows: number,
    out: Float32Array,
    range?: [number, number],
  ): Float32Array {
    const d = this.config.hiddenSize;
    const h = this.#h;
    this.#norm(this.#x, row * d, h, 0, d, rows, d, this.weights.finalNorm);
    this.backend.linear(
      h.subarray(0, rows * d),
      rows,
      this.weights.head,
      out,
      range,
    );
    const cap = this.config.finalSoftcap;
    if (cap !== null) {
      const n = rows * (range ? range[1] - range[0] : this.config.vocabSize);
      for (let i = 0; i < n; i++) out[i] = Math.tanh(out[i] / cap) * cap;
    }
    return out;
  }
}
