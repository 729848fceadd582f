/**
 * The contract between a model's forward pass and whatever multiplies its
 * matrices. The forward pass (lib/models/) knows only this interface; a
 * backend (a plain TypeScript reference, or WebAssembly SIMD kernels on
 * worker threads) implements it. Weights are handed over once, at their
 * stored width, and referred to by handle afterwards, so a backend may keep
 * them wherever its kernels read fastest (for example in WebAssembly memory
 * shared between threads) without the forward pass knowing.
 *
 * @module
 */

/** How a weight's elements are stored. */
export type WeightDtype = "float32" | "bfloat16" | "float16";

/**
 * A linear layer's weight in HF `nn.Linear` layout: `rows` outputs by
 * `cols` inputs, row-major, so `y = x · Wᵀ`. GPT-2's Conv1D weights
 * (`[in, out]`) are transposed into this layout when loaded.
 */
export interface MatrixWeight {
  /** Output features (the weight's first dimension). */
  rows: number;
  /** Input features (the weight's second dimension). */
  cols: number;
  /** Element type of `data`. */
  dtype: WeightDtype;
  /** `rows * cols` elements; BF16 and F16 are raw 16-bit patterns. */
  data: Float32Array | Uint16Array;
}

/**
 * A row-major float32 matrix inside a larger array: element `(i, j)` is
 * `data[offset + i * stride + j]`.
 */
export interface MatrixView {
  /** The array holding the matrix. */
  data: Float32Array;
  /** Index of element `(0, 0)`. */
  offset: number;
  /** Elements from one row to the next (at least the row's length). */
  stride: number;
}

/** One {@linkcode MatmulBackend.matmul}: `out = alpha · a · (transposeB ? bᵀ : b)`. */
export interface MatmulOp {
  /** Rows of `a` and of `out`. */
  m: number;
  /** Columns of `out` (rows of `b` when `transposeB`). */
  n: number;
  /** The summed dimension: columns of `a`. */
  k: number;
  /** `m × k`. */
  a: MatrixView;
  /** `k × n`, or `n × k` when `transposeB`. */
  b: MatrixView;
  /** Reads `b` as `n × k` (for `Q · Kᵀ`). @default {false} */
  transposeB?: boolean;
  /** `m × n`, written (not accumulated into). */
  out: MatrixView;
  /** Scales the product. @default {1} */
  alpha?: number;
}

/**
 * One layer's attention core for {@linkcode MatmulBackend.attention}: for
 * each query head `h` in `[headStart, headEnd)` (KV head
 * `floor(h / (heads / kvHeads))`), `P = softmax(scale · Q_h K_gᵀ)` under
 * the causal (and sliding-window) mask, and `out_h = P V_g`.
 */
export interface AttentionOp {
  /** Query rows (positions `p0 .. p0 + m - 1`). */
  m: number;
  /** Keys (positions `0 .. s - 1`), at least `p0 + m`. */
  s: number;
  /** Width of one head. */
  headDim: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads (dividing `heads`). */
  kvHeads: number;
  /** First query head to run. */
  headStart: number;
  /** One past the last. */
  headEnd: number;
  /** Position of the first query row. */
  p0: number;
  /** Keys kept before each query (itself included), or `null` for all. */
  window: number | null;
  /** Multiplies the scores before the softmax. */
  scale: number;
  /** `m × heads · headDim` queries. */
  q: Float32Array;
  /** `s × kvHeads · headDim` keys (more rows may follow; unused). */
  k: Float32Array;
  /** `s × kvHeads · headDim` values, like `k`. */
  v: Float32Array;
  /** `m × heads · headDim`: the heads' columns are written, others kept. */
  out: Float32Array;
}

/** A weight a backend has taken in; only that backend can use it. */
export interface WeightHandle {
  /** Output features. */
  readonly rows: number;
  /** Input features. */
  readonly cols: number;
  /** Stored element type. */
  readonly dtype: WeightDtype;
}

/** A weight's shape and element type, without its elements. */
export interface WeightShape {
  /** Output features. */
  rows: number;
  /** Input features. */
  cols: number;
  /** Element type of the rows to come. */
  dtype: WeightDtype;
}

/**
 * Takes a weight in row chunks, from {@linkcode MatmulBackend.uploadStreamed},
 * so the caller can read it from a file through one small reused buffer
 * instead of holding the whole tensor.
 */
export interface WeightWriter {
  /**
   * Rows per {@linkcode WeightWriter.write} (a multiple of 8): every chunk
   * but the last carries exactly this many rows, the last the rest.
   */
  readonly chunkRows: number;
  /**
   * Takes the next chunk: whole rows, row-major, at stored width, as raw
   * little-endian bytes. The writer copies them; the caller may reuse
   * `bytes` once this returns.
   */
  write(bytes: Uint8Array): void;
  /** Ends the upload once every row has been written. */
  finish(): WeightHandle;
  /** Gives up the upload, freeing what it took. */
  abort(): void;
}

/** Multiplies activations by weights. Every call is synchronous and exact in float32. */
export interface MatmulBackend {
  /** A short name for benches and errors, e.g. `"reference"` or `"wasm-simd x2"`. */
  readonly name: string;
  /**
   * Takes in a weight (and its bias), keeping it at its stored width where
   * the kernels allow. The caller may drop `weight.data` afterwards.
   */
  upload(weight: MatrixWeight, bias?: Float32Array | null): WeightHandle;
  /**
   * Like {@linkcode MatmulBackend.upload}, but the rows come in chunks
   * through the returned writer. Optional: a backend that keeps the arrays
   * it is given (the reference) has no use for it.
   */
  uploadStreamed?(
    shape: WeightShape,
    bias?: Float32Array | null,
  ): WeightWriter;
  /**
   * `out[m, rows] = x[m, cols] · Wᵀ + bias`, with float32 accumulation.
   *
   * @param x `m * cols` activations, row-major.
   * @param m Rows of `x` (positions).
   * @param weight A handle from {@linkcode MatmulBackend.upload}.
   * @param out Where to write `m * rows` results; allocated when omitted.
   * @param rowRange Only output features `[start, end)` (for example one
   *   vocabulary slice), written densely as `m * (end - start)`.
   * @returns `out`.
   */
  linear(
    x: Float32Array,
    m: number,
    weight: WeightHandle,
    out?: Float32Array,
    rowRange?: [number, number],
  ): Float32Array;
  /**
   * Activation × activation product for the attention core, in float32:
   * `out[i, j] = alpha · Σ_p a[i, p] · b'[p, j]` for `i < m`, `j < n`,
   * `p < k`, where `b'` is `b` or, with `transposeB`, `bᵀ`. Every operand
   * is a strided view, so one head's slice of a `[T, heads · headDim]`
   * projection is passed without a copy:
   *
   * - scores of query head `h` (KV head `g`): `a` = Q at `h · d` with
   *   stride `H · d`, `b` = K at `g · d` with stride `KV · d`,
   *   `transposeB: true`, `out` = a `[T, S]` block, `alpha` = the scaling;
   * - its output: `a` = the probabilities `[T, S]`, `b` = V at `g · d` with
   *   stride `KV · d`, `transposeB: false`, `out` = the attention output at
   *   `h · d` with stride `H · d`.
   *
   * `out` must not overlap `a` or `b`. Synchronous, like every call here.
   */
  matmul(op: MatmulOp): void;
  /**
   * Runs {@linkcode AttentionOp} and returns the probabilities as
   * `[headEnd - headStart, m, s]` (zero where masked), a view valid until
   * the backend's next call. Optional: without it the forward pass runs
   * {@linkcode MatmulBackend.matmul} per head.
   */
  attention?(op: AttentionOp): Float32Array;
  /**
   * In place, `gate[i] = act(gate[i]) · up[i]` (or `act(gate[i])` without
   * `up`) for `i < n`, in float32: SiLU, or GELU with the tanh
   * approximation. Optional: the forward pass does it in TypeScript
   * without it.
   */
  activate?(
    gate: Float32Array,
    up: Float32Array | null,
    n: number,
    kind: "silu" | "gelu_tanh",
  ): void;
  /**
   * In place, the causal (and sliding-window) softmax of an `m × n` block
   * of scores whose row `i` is query position `p0 + i`: keys
   * `[max(0, p0 + i - window + 1), p0 + i]` are kept (all up to
   * `p0 + i` when `window` is `null`), every other column becomes 0.
   * Optional, like {@linkcode MatmulBackend.activate}.
   */
  softmaxRows?(
    scores: Float32Array,
    m: number,
    n: number,
    p0: number,
    window: number | null,
  ): void;
  /**
   * Copies row `row` of a weight (one output feature's `cols` inputs),
   * widened to float32 exactly, into `out` (for a tied head's embedding
   * lookup). Optional: without it the caller multiplies by an identity.
   */
  readRow?(weight: WeightHandle, row: number, out: Float32Array): void;
  /** Frees a weight. */
  release(weight: WeightHandle): void;
  /** Frees everything, workers included. */
  close(): void;
}
