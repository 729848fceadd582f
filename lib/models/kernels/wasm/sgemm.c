// WebAssembly SIMD matrix kernels for attnscope's real-model engine.
//
// Weights are packed once, at upload, into panels of 8 output features:
// panel q holds features 8q..8q+7 as [k][8] at their stored width
// (float32, bfloat16 or float16), zero-padded past the last feature. One
// layout serves both prefill (a 6x8 register tile, x broadcast) and decode
// (m = 1, a stream through the panel), and 16-bit weights widen inside
// the kernel: bf16 -> f32 is a 16-bit shift (a shuffle with zero), f16 goes
// through an exponent-rebias multiply.
//
// Freestanding: no libc, no stack use, no data segments, so one module
// instance per thread can share a memory. Build: build.ts next to this file.

#include <wasm_simd128.h>

#define DT_F32 0
#define DT_BF16 1
#define DT_F16 2

// Separate multiply and add, not relaxed-SIMD FMA: measured here, FMA was
// no faster (two FMA pipes do what two multiply and two add pipes do), and
// plain SIMD128 runs on every engine and gives the same bits everywhere.
#define MADD(acc, a, b) wasm_f32x4_add((acc), wasm_f32x4_mul((a), (b)))

typedef unsigned short u16;

static inline __attribute__((always_inline)) v128_t f16lo(v128_t h) {
  // f16 -> f32 for lanes 0..3 of eight u16: shift the magnitude into f32's
  // place, rebias the exponent by multiplying with 2^112 (exact for
  // normals and subnormals), then restore inf/NaN and the sign.
  v128_t w = wasm_u32x4_extend_low_u16x8(h);
  v128_t mag = wasm_i32x4_shl(wasm_v128_and(w, wasm_i32x4_splat(0x7fff)), 13);
  v128_t f = wasm_f32x4_mul(mag, wasm_i32x4_splat(0x77800000));
  v128_t infnan = wasm_i32x4_ge(mag, wasm_i32x4_splat(0x0f800000));
  f = wasm_v128_or(f, wasm_v128_and(infnan, wasm_i32x4_splat(0x7f800000)));
  return wasm_v128_or(f, wasm_i32x4_shl(wasm_v128_and(w, wasm_i32x4_splat(0x8000)), 16));
}

static inline __attribute__((always_inline)) v128_t f16hi(v128_t h) {
  return f16lo(wasm_i64x2_shuffle(h, h, 1, 0));
}

// Loads 8 weights of one panel row as two f32x4.
static inline __attribute__((always_inline)) void load8(const void* w, int dt, long idx, v128_t* lo, v128_t* hi) {
  if (dt == DT_F32) {
    const float* p = (const float*)w + idx;
    *lo = wasm_v128_load(p);
    *hi = wasm_v128_load(p + 4);
  } else {
    v128_t h = wasm_v128_load((const u16*)w + idx);
    if (dt == DT_BF16) {
      v128_t z = wasm_i32x4_splat(0);
      *lo = wasm_i16x8_shuffle(z, h, 0, 8, 1, 9, 2, 10, 3, 11);
      *hi = wasm_i16x8_shuffle(z, h, 4, 12, 5, 13, 6, 14, 7, 15);
    } else {
      *lo = f16lo(h);
      *hi = f16hi(h);
    }
  }
}

static inline __attribute__((always_inline)) float lane8(v128_t lo, v128_t hi, int c) {
  switch (c) {
    case 0: return wasm_f32x4_extract_lane(lo, 0);
    case 1: return wasm_f32x4_extract_lane(lo, 1);
    case 2: return wasm_f32x4_extract_lane(lo, 2);
    case 3: return wasm_f32x4_extract_lane(lo, 3);
    case 4: return wasm_f32x4_extract_lane(hi, 0);
    case 5: return wasm_f32x4_extract_lane(hi, 1);
    case 6: return wasm_f32x4_extract_lane(hi, 2);
    default: return wasm_f32x4_extract_lane(hi, 3);
  }
}

// Writes one row of a tile: lanes [c0, c1) of the panel's 8 features.
static inline __attribute__((always_inline)) void store_row(float* o, v128_t lo, v128_t hi, int c0, int c1,
                                                           const float* bias, float alpha) {
  lo = wasm_f32x4_mul(lo, wasm_f32x4_splat(alpha));
  hi = wasm_f32x4_mul(hi, wasm_f32x4_splat(alpha));
  if (c0 == 0 && c1 == 8) {
    if (bias) {
      lo = wasm_f32x4_add(lo, wasm_v128_load(bias));
      hi = wasm_f32x4_add(hi, wasm_v128_load(bias + 4));
    }
    wasm_v128_store(o, lo);
    wasm_v128_store(o + 4, hi);
    return;
  }
  for (int c = c0; c < c1; c++) o[c - c0] = lane8(lo, hi, c) + (bias ? bias[c] : 0.0f);
}

// Six packed rows of x ([k][6], see packx) times one panel, over all k;
// rows past `mr` are zero padding and are not stored.
static inline __attribute__((always_inline)) void tile(int mr, const float* xp, const void* w, int dt, long pbase,
                                                      int k, float* o, int ldc, int c0, int c1, const float* bias,
                                                      float alpha) {
  v128_t a0 = wasm_f32x4_splat(0), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0;
  v128_t a3 = a0, b3 = a0, a4 = a0, b4 = a0, a5 = a0, b5 = a0;
  // Unrolled by 4 (the same sums in the same order): V8's loop overhead
  // otherwise costs about a third of the tile's time (measured 27 -> 40
  // GFLOP/s on one thread, 256x1536x576 bf16; 2 and 8 were slower).
  _Pragma("clang loop unroll_count(4)")
  for (int p = 0; p < k; p++) {
    v128_t lo, hi;
    load8(w, dt, pbase + (long)p * 8, &lo, &hi);
    const float* xr = xp + p * 6;
    v128_t s;
    s = wasm_v128_load32_splat(xr); a0 = MADD(a0, s, lo); b0 = MADD(b0, s, hi);
    s = wasm_v128_load32_splat(xr + 1); a1 = MADD(a1, s, lo); b1 = MADD(b1, s, hi);
    s = wasm_v128_load32_splat(xr + 2); a2 = MADD(a2, s, lo); b2 = MADD(b2, s, hi);
    s = wasm_v128_load32_splat(xr + 3); a3 = MADD(a3, s, lo); b3 = MADD(b3, s, hi);
    s = wasm_v128_load32_splat(xr + 4); a4 = MADD(a4, s, lo); b4 = MADD(b4, s, hi);
    s = wasm_v128_load32_splat(xr + 5); a5 = MADD(a5, s, lo); b5 = MADD(b5, s, hi);
  }
  store_row(o, a0, b0, c0, c1, bias, alpha);
  if (mr > 1) store_row(o + ldc, a1, b1, c0, c1, bias, alpha);
  if (mr > 2) store_row(o + 2 * ldc, a2, b2, c0, c1, bias, alpha);
  if (mr > 3) store_row(o + 3 * ldc, a3, b3, c0, c1, bias, alpha);
  if (mr > 4) store_row(o + 4 * ldc, a4, b4, c0, c1, bias, alpha);
  if (mr > 5) store_row(o + 5 * ldc, a5, b5, c0, c1, bias, alpha);
}

// Interleaves rows [i0, i1) of x into tiles of six: xp[t][p][r] =
// x[i0 + 6t + r][p], zero past i1.
static void packx(const float* x, int lda, int i0, int i1, int k, float* xp) {
  for (int t = 0; i0 + 6 * t < i1; t++) {
    float* d = xp + (long)t * 6 * k;
    for (int r = 0; r < 6; r++) {
      int i = i0 + 6 * t + r;
      const float* s = x + (long)i * lda;
      if (i < i1) {
        for (int p = 0; p < k; p++) d[p * 6 + r] = s[p];
      } else {
        for (int p = 0; p < k; p++) d[p * 6 + r] = 0.0f;
      }
    }
  }
}

// One row of x times one panel (decode): four independent chains over k.
static inline __attribute__((always_inline)) void tile1(const float* x, const void* w, int dt, long pbase, int k,
                                                       float* o, int c0, int c1, const float* bias, float alpha) {
  v128_t a0 = wasm_f32x4_splat(0), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
  int p = 0;
  for (; p + 4 <= k; p += 4) {
    v128_t lo, hi, s;
    load8(w, dt, pbase + (long)p * 8, &lo, &hi);
    s = wasm_v128_load32_splat(x + p); a0 = MADD(a0, s, lo); b0 = MADD(b0, s, hi);
    load8(w, dt, pbase + (long)(p + 1) * 8, &lo, &hi);
    s = wasm_v128_load32_splat(x + p + 1); a1 = MADD(a1, s, lo); b1 = MADD(b1, s, hi);
    load8(w, dt, pbase + (long)(p + 2) * 8, &lo, &hi);
    s = wasm_v128_load32_splat(x + p + 2); a2 = MADD(a2, s, lo); b2 = MADD(b2, s, hi);
    load8(w, dt, pbase + (long)(p + 3) * 8, &lo, &hi);
    s = wasm_v128_load32_splat(x + p + 3); a3 = MADD(a3, s, lo); b3 = MADD(b3, s, hi);
  }
  for (; p < k; p++) {
    v128_t lo, hi, s;
    load8(w, dt, pbase + (long)p * 8, &lo, &hi);
    s = wasm_v128_load32_splat(x + p); a0 = MADD(a0, s, lo); b0 = MADD(b0, s, hi);
  }
  a0 = wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3));
  b0 = wasm_f32x4_add(wasm_f32x4_add(b0, b1), wasm_f32x4_add(b2, b3));
  store_row(o, a0, b0, c0, c1, bias, alpha);
}

// Rows of x per packed block: enough to keep 256 KiB in L2 while the
// panels stream by, but at least 48 (within the thread's scratch budget): with only 6
// rows, a k = 10240 product (gemma-3-4b's down_proj) reread all of W from
// memory for every 6 rows; one thread of 150x2560x10240 bf16 went from
// 24 to 36 GFLOP/s (best of 4 under load ~10).
static inline int block_rows(int k, int budget) {
  if (k < 1) k = 1;
  int mc = (256 * 1024) / (4 * k);
  int cap = budget / (4 * k);
  int lo = 48 < cap ? 48 : cap;
  if (mc < lo) mc = lo;
  return mc < 6 ? 6 : (mc / 6) * 6;
}

static inline __attribute__((always_inline)) void gemm_dt(int dt, const float* x, int lda, int m, const void* w,
                                                         int k, int q0, int q1, float* out, int ldc, int cb, int ce,
                                                         const float* bias, float alpha, float* scratch,
                                                         int budget) {
  if (m == 1) {
    for (int q = q0; q < q1; q++) {
      int f0 = q * 8;
      int c0 = cb > f0 ? cb - f0 : 0;
      int c1 = ce < f0 + 8 ? ce - f0 : 8;
      if (c1 <= c0) continue;
      tile1(x, w, dt, (long)q * 8 * k, k, out + (f0 + c0 - cb), c0, c1, bias ? bias + f0 : 0, alpha);
    }
    return;
  }
  int mc = block_rows(k, budget);
  for (int i0 = 0; i0 < m; i0 += mc) {
    int i1 = i0 + mc < m ? i0 + mc : m;
    packx(x, lda, i0, i1, k, scratch);
    for (int q = q0; q < q1; q++) {
      int f0 = q * 8;
      int c0 = cb > f0 ? cb - f0 : 0;
      int c1 = ce < f0 + 8 ? ce - f0 : 8;
      if (c1 <= c0) continue;
      long pbase = (long)q * 8 * k;
      float* o = out + (f0 + c0 - cb);
      const float* bq = bias ? bias + f0 : 0;
      for (int i = i0, t = 0; i < i1; i += 6, t++) {
        int mr = i1 - i < 6 ? i1 - i : 6;
        tile(mr, scratch + (long)t * 6 * k, w, dt, pbase, k, o + (long)i * ldc, ldc, c0, c1, bq, alpha);
      }
    }
  }
}

// Bytes of scratch gemm needs for inner dimension k within a budget of
// `budget` bytes (more than the budget when even 6 rows do not fit).
__attribute__((export_name("gemm_scratch_bytes"))) int gemm_scratch_bytes(int k, int budget) {
  return block_rows(k, budget) * k * 4;
}

// out[i, j - cb] = alpha * sum_p x[i, p] * W[j, p] + bias[j], for rows
// i < m and features j in [cb, ce) that lie in panels [q0, q1).
// `scratch` holds gemm_scratch_bytes(k, budget) bytes of this thread's own.
__attribute__((export_name("gemm"))) void gemm(const float* x, int lda, int m, const void* w, int dt, int k,
                                                int q0, int q1, float* out, int ldc, int cb, int ce,
                                                const float* bias, float alpha, float* scratch, int budget) {
  if (dt == DT_F32) gemm_dt(DT_F32, x, lda, m, w, k, q0, q1, out, ldc, cb, ce, bias, alpha, scratch, budget);
  else if (dt == DT_BF16) gemm_dt(DT_BF16, x, lda, m, w, k, q0, q1, out, ldc, cb, ce, bias, alpha, scratch, budget);
  else gemm_dt(DT_F16, x, lda, m, w, k, q0, q1, out, ldc, cb, ce, bias, alpha, scratch, budget);
}

// Packs rows [r0, r0 + nrows) of a row-major [rows][k] weight (src holds
// those rows, `es` bytes an element) into panels at dst, zero-padding
// features past `rows`. r0 and nrows are multiples of 8 except at the end.
__attribute__((export_name("pack"))) void pack(const void* src, int es, int r0, int nrows, int rows, int k,
                                                void* dst) {
  for (int r = 0; r < nrows; r += 8) {
    int q = (r0 + r) / 8;
    for (int c = 0; c < 8; c++) {
      int row = r + c;
      int valid = r0 + row < rows && row < nrows;
      if (es == 4) {
        float* d = (float*)dst + (long)q * 8 * k + c;
        const float* s = (const float*)src + (long)row * k;
        for (int p = 0; p < k; p++) d[(long)p * 8] = valid ? s[p] : 0.0f;
      } else {
        u16* d = (u16*)dst + (long)q * 8 * k + c;
        const u16* s = (const u16*)src + (long)row * k;
        for (int p = 0; p < k; p++) d[(long)p * 8] = valid ? s[p] : 0;
      }
    }
  }
}

// Packs a strided float32 activation matrix as panels: with trans, B is
// n x k (rows are features, as K in Q.K^T); without, B is k x n (as V).
__attribute__((export_name("pack_act"))) void pack_act(const float* b, int ldb, int n, int k, int trans, float* dst) {
  int np = (n + 7) / 8;
  for (int q = 0; q < np; q++) {
    float* d = dst + (long)q * 8 * k;
    for (int p = 0; p < k; p++) {
      for (int c = 0; c < 8; c++) {
        int j = q * 8 + c;
        d[(long)p * 8 + c] = j < n ? (trans ? b[(long)j * ldb + p] : b[(long)p * ldb + j]) : 0.0f;
      }
    }
  }
}

// ---- Elementwise kernels for the forward pass (attention softmax, MLP
// activations), so their exps run four at a time instead of one Math.exp
// per element.

static inline __attribute__((always_inline)) v128_t splatf(float v) { return wasm_f32x4_splat(v); }

// exp(x) for four lanes: Cephes' expf (range reduction by ln 2 in two
// parts, a degree-5 polynomial, 2^n through the exponent bits), within
// 1-2 ulp of the true value; x is clamped to [-87.3, 88.3], so results
// below float's smallest normal flush to about 1.2e-38 and none overflow.
static inline __attribute__((always_inline)) v128_t exp4(v128_t x) {
  x = wasm_f32x4_min(wasm_f32x4_max(x, splatf(-87.33654f)), splatf(88.3762626647949f));
  v128_t fx = wasm_f32x4_nearest(wasm_f32x4_mul(x, splatf(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(fx, splatf(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(fx, splatf(-2.12194440e-4f)));
  v128_t y = splatf(1.9875691500E-4f);
  y = wasm_f32x4_add(wasm_f32x4_mul(y, r), splatf(1.3981999507E-3f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, r), splatf(8.3334519073E-3f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, r), splatf(4.1665795894E-2f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, r), splatf(1.6666665459E-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, r), splatf(5.0000001201E-1f));
  y = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(y, r), r), r), splatf(1.0f));
  v128_t n = wasm_i32x4_trunc_sat_f32x4(fx);
  v128_t pow2 = wasm_i32x4_shl(wasm_i32x4_add(n, wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(y, pow2);
}

static inline float exp1(float x) {
  return wasm_f32x4_extract_lane(exp4(wasm_f32x4_splat(x)), 0);
}

// gate[i] = act(gate[i]) * (up ? up[i] : 1) for i < n, where act is SiLU
// (kind 0: v / (1 + e^-v)) or GELU with the tanh approximation (kind 1:
// 0.5 v (1 + tanh(u)) with u = sqrt(2/pi) (v + 0.044715 v^3), computed as
// the equal v / (1 + e^(-2u)), which has no cancellation).
__attribute__((export_name("activate"))) void activate(float* gate, const float* up, int n, int kind) {
  const v128_t one = splatf(1.0f);
  const v128_t k2 = splatf(-2.0f * 0.7978845608028654f), c3 = splatf(0.044715f);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v128_t v = wasm_v128_load(gate + i);
    v128_t t;
    if (kind == 0) t = wasm_f32x4_neg(v);
    else t = wasm_f32x4_mul(k2, wasm_f32x4_add(v, wasm_f32x4_mul(c3, wasm_f32x4_mul(v, wasm_f32x4_mul(v, v)))));
    v128_t r = wasm_f32x4_div(v, wasm_f32x4_add(one, exp4(t)));
    if (up) r = wasm_f32x4_mul(r, wasm_v128_load(up + i));
    wasm_v128_store(gate + i, r);
  }
  for (; i < n; i++) {
    float v = gate[i];
    float t = kind == 0 ? -v : -2.0f * 0.7978845608028654f * (v + 0.044715f * (v * v * v));
    float r = v / (1.0f + exp1(t));
    gate[i] = up ? r * up[i] : r;
  }
}

// Row-wise masked softmax in place over an m x n block of scores (row i is
// query position p0 + i): keys [lo, p0 + i] are kept, with lo = 0, or
// p0 + i - window + 1 for a sliding window (window > 0); every other
// column becomes 0.
__attribute__((export_name("softmax_rows"))) void softmax_rows(float* s, int m, int n, int p0, int window) {
  for (int i = 0; i < m; i++) {
    float* r = s + (long)i * n;
    int pos = p0 + i;
    int lo = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
    int hi = pos + 1 < n ? pos + 1 : n;
    v128_t mx4 = splatf(-__builtin_inff());
    int k = lo;
    for (; k + 4 <= hi; k += 4) mx4 = wasm_f32x4_max(mx4, wasm_v128_load(r + k));
    float mx = wasm_f32x4_extract_lane(mx4, 0);
    float l1 = wasm_f32x4_extract_lane(mx4, 1), l2 = wasm_f32x4_extract_lane(mx4, 2),
          l3 = wasm_f32x4_extract_lane(mx4, 3);
    mx = mx > l1 ? mx : l1;
    mx = mx > l2 ? mx : l2;
    mx = mx > l3 ? mx : l3;
    for (; k < hi; k++) mx = mx > r[k] ? mx : r[k];
    v128_t m4 = splatf(mx), sum4 = splatf(0.0f);
    k = lo;
    for (; k + 4 <= hi; k += 4) {
      v128_t e = exp4(wasm_f32x4_sub(wasm_v128_load(r + k), m4));
      wasm_v128_store(r + k, e);
      sum4 = wasm_f32x4_add(sum4, e);
    }
    float sum = (wasm_f32x4_extract_lane(sum4, 0) + wasm_f32x4_extract_lane(sum4, 1)) +
                (wasm_f32x4_extract_lane(sum4, 2) + wasm_f32x4_extract_lane(sum4, 3));
    for (; k < hi; k++) {
      float e = exp1(r[k] - mx);
      r[k] = e;
      sum += e;
    }
    float inv = 1.0f / sum;
    v128_t inv4 = splatf(inv);
    for (k = 0; k < lo; k++) r[k] = 0.0f;
    k = lo;
    for (; k + 4 <= hi; k += 4) wasm_v128_store(r + k, wasm_f32x4_mul(wasm_v128_load(r + k), inv4));
    for (; k < hi; k++) r[k] = r[k] * inv;
    for (k = hi; k < n; k++) r[k] = 0.0f;
  }
}

#define ATTN_BUDGET (2 << 20)

// Floats of scratch attn_heads needs per thread for s keys of width hd.
__attribute__((export_name("attn_scratch_floats"))) int attn_scratch_floats(int s, int hd) {
  int kk = s > hd ? s : hd;
  return ((s + 7) / 8) * 8 * hd + ((hd + 7) / 8) * 8 * s + gemm_scratch_bytes(kk, ATTN_BUDGET) / 4 + 16;
}

// The attention of query heads [h0, h1) for m query rows (positions p0 ..
// p0 + m - 1) over s keys, all heads of one call sharing the data:
// q is [m][ldq] with head h at column h*hd; k and v are [s][ldkv] with
// KV head g = h / rep at column g*hd. Per head: scores = scale * Q K^T
// into probs + (h - hb) * m * s (an m x s block), the masked softmax
// (softmax_rows), then att[:, h*hd ..] = probs V with row stride ldo. K
// and V are packed as panels once per KV head. `scratch` holds
// attn_scratch_floats(s, hd) floats of this thread's own.
__attribute__((export_name("attn_heads"))) void attn_heads(const float* q, int ldq, const float* k, const float* v,
                                                          int ldkv, int m, int s, int hd, int h0, int h1, int hb,
                                                          int rep, int p0, int window, float scale, float* probs,
                                                          float* att, int ldo, float* scratch) {
  float* pk = scratch;
  float* pv = pk + (long)((s + 7) / 8) * 8 * hd;
  float* gs = pv + (long)((hd + 7) / 8) * 8 * s;
  int last = -1;
  for (int h = h0; h < h1; h++) {
    int g = h / rep;
    if (g != last) {
      pack_act(k + (long)g * hd, ldkv, s, hd, 1, pk);
      pack_act(v + (long)g * hd, ldkv, hd, s, 0, pv);
      last = g;
    }
    float* ph = probs + (long)(h - hb) * m * s;
    gemm_dt(DT_F32, q + (long)h * hd, ldq, m, pk, hd, 0, (s + 7) / 8, ph, s, 0, s, 0, scale, gs, ATTN_BUDGET);
    softmax_rows(ph, m, s, p0, window);
    gemm_dt(DT_F32, ph, s, m, pv, s, 0, (hd + 7) / 8, att + (long)h * hd, ldo, 0, hd, 0, 1.0f, gs, ATTN_BUDGET);
  }
}
