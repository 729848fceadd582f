/**
 * The WebAssembly SIMD backend: sgemm.c's kernels on the calling thread
 * plus worker threads, all sharing the weights in shared
 * `WebAssembly.Memory`. Calls stay synchronous: the caller hands each
 * worker its share through a shared control block (`Atomics.notify`),
 * does its own share, and waits (`Atomics.wait`) for the others.
 *
 * A wasm32 memory holds at most 4 GiB, so weights go into shards: a new
 * memory (and an instance of the kernels on it in every thread) starts
 * when the current one cannot take the next weight. Each shard has its own
 * activation buffers, so a product runs wholly inside the shard holding
 * its weight; only the activations (small next to the weights) are copied
 * in and out.
 *
 * @module
 */

export type { MatmulBackend } from "../backend.ts";
import type {
  AttentionOp,
  MatmulBackend,
  MatmulOp,
  MatrixWeight,
  WeightDtype,
  WeightHandle,
  WeightShape,
  WeightWriter,
} from "../backend.ts";
import {
  C,
  CMD,
  instantiateShard,
  scratchBytes,
  type SgemmExports,
  SLOT,
  STACK_BYTES,
} from "./protocol.ts";

const PAGE = 65536;
/** Largest shard: wasm32's 4 GiB. */
const MAX_PAGES = 65536;
const DT: Record<WeightDtype, number> = { float32: 0, bfloat16: 1, float16: 2 };
/** Below this many multiply-adds a product runs on the calling thread alone. */
const PARALLEL_MIN = 1 << 18;

/** Options for {@linkcode createWasmBackend}. */
export interface WasmBackendOptions {
  /** Threads multiplying at once, the calling thread included. @default {navigator.hardwareConcurrency} */
  threads?: number;
  /** Largest shard in bytes (tests set it small to exercise sharding). @default {4 GiB} */
  maxShardBytes?: number;
}

interface Block {
  ptr: number;
  bytes: number;
}

class Shard {
  readonly memory: WebAssembly.Memory;
  readonly main: SgemmExports;
  /** Bytes of each thread's packing scratch. */
  readonly scratch: number;
  /** Per thread: [stack top, scratch]. */
  readonly threadAreas: number[][] = [];
  top = 0;
  free: Block[] = [];
  io: Block | null = null;

  constructor(
    readonly index: number,
    readonly maxBytes: number,
    threads: number,
  ) {
    this.scratch = scratchBytes(maxBytes);
    const perThread = STACK_BYTES + this.scratch;
    const fixed = 2 * PAGE + threads * perThread;
    this.memory = new WebAssembly.Memory({
      initial: Math.ceil(fixed / PAGE) + 1,
      maximum: Math.floor(maxBytes / PAGE),
      shared: true,
    });
    // Page 0..1: the module's own stack region (unused: every thread gets its own below).
    let p = 2 * PAGE;
    for (let t = 0; t < threads; t++) {
      this.threadAreas.push([p + STACK_BYTES, p + STACK_BYTES]);
      p += perThread;
    }
    this.top = p;
    this.main = instantiateShard(this.memory, this.threadAreas[0][0]);
  }

  /** Room for `bytes` more, or false when the shard is full. */
  alloc(bytes: number): number | null {
    bytes = Math.ceil(bytes / 64) * 64;
    const i = this.free.findIndex((b) => b.bytes >= bytes);
    if (i >= 0) {
      const b = this.free[i];
      const ptr = b.ptr;
      if (b.bytes === bytes) this.free.splice(i, 1);
      else {
        b.ptr += bytes;
        b.bytes -= bytes;
      }
      return ptr;
    }
    const end = this.top + bytes;
    if (end > this.maxBytes) return null;
    const have = this.memory.buffer.byteLength;
    if (end > have) {
      const pages = Math.ceil((end - have) / PAGE);
      try {
        this.memory.grow(pages);
      } catch {
        return null;
      }
    }
    const ptr = this.top;
    this.top = end;
    return ptr;
  }

  release(ptr: number, bytes: number): void {
    bytes = Math.ceil(bytes / 64) * 64;
    if (ptr + bytes === this.top) this.top = ptr;
    else this.free.push({ ptr, bytes });
  }

  /** The activation buffer, at least `bytes` long. */
  ioBuffer(bytes: number): number {
    if (this.io && this.io.bytes >= bytes) return this.io.ptr;
    if (this.io) this.release(this.io.ptr, this.io.bytes);
    const want = Math.max(bytes, 4 << 20);
    const ptr = this.alloc(want);
    if (ptr === null) {
      throw new Error(
        `Cannot multiply: no room for ${want} bytes of activations in a weight shard; use fewer positions per call`,
      );
    }
    this.io = { ptr, bytes: want };
    return ptr;
  }
}

class WasmWeight implements WeightHandle {
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly dtype: WeightDtype,
    readonly shard: Shard,
    readonly ptr: number,
    readonly bytes: number,
    readonly bias: number,
    public live = true,
  ) {}
}

/** Bytes per element of a supported dtype; throws for any other. */
function checkDtype(dtype: WeightDtype): number {
  if (!(dtype in DT)) {
    throw new TypeError(
      `Cannot upload weight: dtype ${dtype} is not supported; use float32, bfloat16 or float16`,
    );
  }
  return dtype === "float32" ? 4 : 2;
}

/** Splits panels [0, n) into `parts` contiguous ranges. */
function split(n: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  for (let t = 0; t < parts; t++) {
    out.push([Math.floor(n * t / parts), Math.floor(n * (t + 1) / parts)]);
  }
  return out;
}

class WasmBackend implements MatmulBackend {
  readonly name: string;
  readonly #threads: number;
  readonly #workers: Worker[];
  readonly #ctrl: Int32Array;
  readonly #ctrlF: Float32Array;
  readonly #shards: Shard[] = [];
  readonly #maxShardBytes: number;
  #closed = false;

  constructor(
    threads: number,
    workers: Worker[],
    ctrl: SharedArrayBuffer,
    maxShardBytes: number,
  ) {
    this.#threads = threads;
    this.#workers = workers;
    this.#ctrl = new Int32Array(ctrl);
    this.#ctrlF = new Float32Array(ctrl);
    this.#maxShardBytes = maxShardBytes;
    this.name = `wasm-simd x${threads}`;
    this.#addShard();
  }

  #addShard(): Shard {
    const shard = new Shard(
      this.#shards.length,
      this.#maxShardBytes,
      this.#threads,
    );
    this.#shards.push(shard);
    const want = this.#shards.length;
    this.#workers.forEach((w, i) => {
      w.postMessage({
        memory: shard.memory,
        stackTop: shard.threadAreas[i + 1][0],
      });
      this.#command(i, CMD.yield);
    });
    this.#workers.forEach((_, i) => {
      const at = i * SLOT + C.shards;
      while (Atomics.load(this.#ctrl, at) < want) {
        Atomics.wait(this.#ctrl, at, Atomics.load(this.#ctrl, at), 1000);
      }
    });
    return shard;
  }

  #command(worker: number, cmd: number): void {
    const b = worker * SLOT;
    this.#ctrl[b + C.cmd] = cmd;
    Atomics.add(this.#ctrl, b + C.seq, 1);
    Atomics.notify(this.#ctrl, b + C.seq);
  }

  #wait(worker: number): void {
    const b = worker * SLOT;
    const seq = Atomics.load(this.#ctrl, b + C.seq);
    for (;;) {
      const done = Atomics.load(this.#ctrl, b + C.done);
      if (done === seq) return;
      Atomics.wait(this.#ctrl, b + C.done, done, 1000);
    }
  }

  #alive(): void {
    if (this.#closed) {
      throw new Error(
        "Cannot multiply: the backend is closed; create a new one",
      );
    }
  }

  upload(weight: MatrixWeight, bias?: Float32Array | null): WeightHandle {
    this.#alive();
    const { rows, cols, dtype, data } = weight;
    const es = checkDtype(dtype);
    if (
      data.length !== rows * cols ||
      (es === 4) !== (data instanceof Float32Array)
    ) {
      throw new TypeError(
        `Cannot upload weight: ${data.length} elements of ${data.constructor.name} for a ${rows}x${cols} ${dtype} matrix; pass rows*cols elements (Float32Array for float32, Uint16Array for 16-bit)`,
      );
    }
    // Pack through the staging buffer, a few panels at a time, so no
    // second full copy of the weight exists.
    const writer = this.uploadStreamed({ rows, cols, dtype }, bias);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const step = writer.chunkRows * cols * es;
    for (let b = 0; b < bytes.length; b += step) {
      writer.write(bytes.subarray(b, Math.min(bytes.length, b + step)));
    }
    return writer.finish();
  }

  uploadStreamed(
    shape: WeightShape,
    bias?: Float32Array | null,
  ): WeightWriter {
    this.#alive();
    const { rows, cols, dtype } = shape;
    const es = checkDtype(dtype);
    if (
      !Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 ||
      cols <= 0
    ) {
      throw new TypeError(
        `Cannot upload weight: shape ${rows}x${cols} is not two positive integers; pass rows and cols of the matrix`,
      );
    }
    if (bias && bias.length !== rows) {
      throw new TypeError(
        `Cannot upload weight: bias has ${bias.length} elements for ${rows} rows; pass one per output feature`,
      );
    }
    const panels = Math.ceil(rows / 8);
    const bytes = panels * 8 * cols * es + (bias ? panels * 8 * 4 : 0);
    const { shard, ptr } = this.#place(bytes);
    const rowBytes = cols * es;
    const chunkRows = Math.max(8, Math.floor((2 << 20) / rowBytes / 8) * 8);
    let r0 = 0;
    let open = true;
    const alive = () => {
      if (!open) {
        throw new Error(
          "Cannot upload weight: this writer has already finished or been aborted; start a new upload",
        );
      }
      this.#alive();
    };
    return {
      chunkRows,
      write(chunk: Uint8Array): void {
        alive();
        const n = Math.min(chunkRows, rows - r0);
        if (chunk.length !== n * rowBytes) {
          throw new RangeError(
            `Cannot upload weight: got ${chunk.length} bytes where rows ${r0}..${
              r0 + n
            } of ${rowBytes} bytes each were due; write chunkRows whole rows per call (the rest in the last)`,
          );
        }
        const staging = shard.ioBuffer(chunkRows * rowBytes);
        new Uint8Array(shard.memory.buffer, staging, chunk.length).set(chunk);
        shard.main.pack(staging, es, r0, n, rows, cols, ptr);
        r0 += n;
      },
      finish(): WeightHandle {
        alive();
        if (r0 !== rows) {
          throw new RangeError(
            `Cannot upload weight: ${r0} of ${rows} rows were written; write every row before finish()`,
          );
        }
        open = false;
        let biasPtr = 0;
        if (bias) {
          biasPtr = ptr + panels * 8 * cols * es;
          const view = new Float32Array(
            shard.memory.buffer,
            biasPtr,
            panels * 8,
          );
          view.fill(0);
          view.set(bias);
        }
        return new WasmWeight(rows, cols, dtype, shard, ptr, bytes, biasPtr);
      },
      abort(): void {
        if (!open) return;
        open = false;
        shard.release(ptr, bytes);
      },
    };
  }

  /** Room for `bytes` of weight in some shard, starting a new one if need be. */
  #place(bytes: number): { shard: Shard; ptr: number } {
    let shard = this.#shards[this.#shards.length - 1];
    let ptr = shard.alloc(bytes);
    if (ptr === null) {
      for (const s of this.#shards) {
        ptr = s.alloc(bytes);
        if (ptr !== null) {
          shard = s;
          break;
        }
      }
    }
    if (ptr === null) {
      shard = this.#addShard();
      ptr = shard.alloc(bytes);
      if (ptr === null) {
        throw new RangeError(
          `Cannot upload weight: ${bytes} bytes do not fit in one ${this.#maxShardBytes}-byte WebAssembly memory; split the tensor`,
        );
      }
    }
    return { shard, ptr };
  }

  /** Runs gemm over panels [q0, q1), split between threads when big enough. */
  #gemm(
    shard: Shard,
    args: number[],
    q0: number,
    q1: number,
    work: number,
  ): void {
    const threads = work >= PARALLEL_MIN ? Math.min(this.#threads, q1 - q0) : 1;
    const parts = split(q1 - q0, threads);
    for (let t = 1; t < threads; t++) {
      const b = (t - 1) * SLOT;
      const a = b + C.args;
      for (let i = 0; i < args.length; i++) this.#ctrl[a + i] = args[i];
      this.#ctrl[a + 6] = q0 + parts[t][0];
      this.#ctrl[a + 7] = q0 + parts[t][1];
      this.#ctrlF[a + 13] = args[13];
      this.#ctrl[a + 14] = shard.threadAreas[t][1];
      this.#ctrl[a + 15] = shard.scratch;
      this.#ctrl[b + C.shard] = shard.index;
      this.#command(t - 1, CMD.gemm);
    }
    const [x, lda, m, w, dt, k, , , out, ldc, cb, ce, bias, alpha] = args;
    shard.main.gemm(
      x,
      lda,
      m,
      w,
      dt,
      k,
      q0 + parts[0][0],
      q0 + parts[0][1],
      out,
      ldc,
      cb,
      ce,
      bias,
      alpha,
      shard.threadAreas[0][1],
      shard.scratch,
    );
    for (let t = 1; t < threads; t++) this.#wait(t - 1);
  }

  linear(
    x: Float32Array,
    m: number,
    weight: WeightHandle,
    out?: Float32Array,
    rowRange?: [number, number],
  ): Float32Array {
    this.#alive();
    if (!(weight instanceof WasmWeight) || !weight.live) {
      throw new TypeError(
        "Cannot multiply: the weight handle is not a live upload of this backend; upload the weight first",
      );
    }
    const { rows, cols, shard } = weight;
    const [cb, ce] = rowRange ?? [0, rows];
    if (!(0 <= cb && cb < ce && ce <= rows)) {
      throw new RangeError(
        `Cannot multiply: row range [${cb}, ${ce}) is outside the weight's ${rows} rows; pass 0 <= start < end <= rows`,
      );
    }
    if (x.length < m * cols) {
      throw new RangeError(
        `Cannot multiply: x has ${x.length} elements for ${m} rows of ${cols}; pass m * cols activations`,
      );
    }
    const n = ce - cb;
    out ??= new Float32Array(m * n);
    if (out.length < m * n) {
      throw new RangeError(
        `Cannot multiply: out has ${out.length} elements for ${m} x ${n} results; pass a larger array or none`,
      );
    }
    // Rows per pass, so the activation buffer stays bounded (e.g. a whole
    // prompt through the vocabulary head).
    const rowBytes = (cols + n) * 4;
    const step = Math.max(1, Math.min(m, Math.floor((64 << 20) / rowBytes)));
    const io = shard.ioBuffer(step * rowBytes);
    const q0 = Math.floor(cb / 8);
    const q1 = Math.ceil(ce / 8);
    for (let i0 = 0; i0 < m; i0 += step) {
      const mm = Math.min(step, m - i0);
      const buf = shard.memory.buffer;
      new Float32Array(buf, io, mm * cols).set(
        x.subarray(i0 * cols, (i0 + mm) * cols),
      );
      const o = io + mm * cols * 4;
      this.#gemm(
        shard,
        [
          io,
          cols,
          mm,
          weight.ptr,
          DT[weight.dtype],
          cols,
          0,
          0,
          o,
          n,
          cb,
          ce,
          weight.bias,
          1,
        ],
        q0,
        q1,
        mm * n * cols,
      );
      out.set(new Float32Array(buf, o, mm * n), i0 * n);
    }
    return out;
  }

  matmul(op: MatmulOp): void {
    this.#alive();
    const { m, n, k, a, b, out } = op;
    const trans = op.transposeB ?? false;
    const alpha = op.alpha ?? 1;
    if (m <= 0 || n <= 0 || k <= 0) {
      if (m > 0 && n > 0) {
        for (let i = 0; i < m; i++) {
          out.data.fill(
            0,
            out.offset + i * out.stride,
            out.offset + i * out.stride + n,
          );
        }
      }
      return;
    }
    const bRows = trans ? n : k;
    const bCols = trans ? k : n;
    if (
      a.stride < k || b.stride < bCols || out.stride < n ||
      a.offset + (m - 1) * a.stride + k > a.data.length ||
      b.offset + (bRows - 1) * b.stride + bCols > b.data.length ||
      out.offset + (m - 1) * out.stride + n > out.data.length
    ) {
      throw new RangeError(
        `Cannot multiply: a ${m}x${k} by ${
          trans ? "transposed " : ""
        }${bRows}x${bCols} view reaches past its array or has a stride shorter than its row; check offsets and strides`,
      );
    }
    const shard = this.#shards[0];
    const panels = Math.ceil(n / 8);
    const aBytes = m * k * 4;
    const bRaw = bRows * bCols * 4;
    const bPacked = panels * 8 * k * 4;
    const oBytes = m * n * 4;
    const io = shard.ioBuffer(aBytes + bRaw + bPacked + oBytes);
    const buf = shard.memory.buffer;
    const aPtr = io;
    const bPtr = aPtr + aBytes;
    const pPtr = bPtr + bRaw;
    const oPtr = pPtr + bPacked;
    copyIn(
      new Float32Array(buf, aPtr, m * k),
      a.data,
      a.offset,
      a.stride,
      m,
      k,
    );
    copyIn(
      new Float32Array(buf, bPtr, bRows * bCols),
      b.data,
      b.offset,
      b.stride,
      bRows,
      bCols,
    );
    shard.main.pack_act(bPtr, bCols, n, k, trans ? 1 : 0, pPtr);
    this.#gemm(
      shard,
      [aPtr, k, m, pPtr, 0, k, 0, 0, oPtr, n, 0, n, 0, alpha],
      0,
      panels,
      m * n * k,
    );
    const res = new Float32Array(buf, oPtr, m * n);
    if (out.stride === n) out.data.set(res, out.offset);
    else {
      for (let i = 0; i < m; i++) {
        out.data.set(
          res.subarray(i * n, (i + 1) * n),
          out.offset + i * out.stride,
        );
      }
    }
  }

  attention(op: AttentionOp): Float32Array {
    this.#alive();
    const {
      m,
      s,
      headDim: hd,
      heads,
      kvHeads,
      headStart: h0,
      headEnd: h1,
      p0,
      window,
      scale,
    } = op;
    const qd = heads * hd, kvd = kvHeads * hd;
    if (
      !(m > 0 && s >= p0 + m && hd > 0 && kvHeads > 0 &&
        heads % kvHeads === 0 && 0 <= h0 && h0 < h1 && h1 <= heads &&
        (window === null || window >= 1)) ||
      op.q.length < m * qd || op.k.length < s * kvd ||
      op.v.length < s * kvd || op.out.length < m * qd
    ) {
      throw new RangeError(
        `Cannot run attention: heads [${h0}, ${h1}) of ${heads} (${kvHeads} KV), ${m} queries at ${p0} over ${s} keys, window ${window}, with q ${op.q.length}, k ${op.k.length}, v ${op.v.length}, out ${op.out.length} values; pass shapes that agree`,
      );
    }
    const nh = h1 - h0;
    const shard = this.#shards[0];
    const ex = shard.main;
    const threads = 2 * m * s * hd * nh >= PARALLEL_MIN
      ? Math.min(this.#threads, nh)
      : 1;
    const per = ex.attn_scratch_floats(s, hd);
    const sizes = [m * qd, s * kvd, s * kvd, nh * m * s, m * qd];
    const floats = sizes.reduce((a, b) => a + Math.ceil(b / 4) * 4, 0) +
      threads * per;
    const io = shard.ioBuffer(floats * 4);
    const ptrs: number[] = [];
    let at = io;
    for (const n of sizes) {
      ptrs.push(at);
      at += Math.ceil(n / 4) * 16;
    }
    const [qPtr, kPtr, vPtr, pPtr, oPtr] = ptrs;
    const buf = shard.memory.buffer;
    new Float32Array(buf, qPtr, m * qd).set(op.q.subarray(0, m * qd));
    new Float32Array(buf, kPtr, s * kvd).set(op.k.subarray(0, s * kvd));
    new Float32Array(buf, vPtr, s * kvd).set(op.v.subarray(0, s * kvd));
    const rep = heads / kvHeads;
    const parts = split(nh, threads);
    const args = (t: number) => [
      qPtr,
      qd,
      kPtr,
      vPtr,
      kvd,
      m,
      s,
      hd,
      h0 + parts[t][0],
      h0 + parts[t][1],
      h0,
      rep,
      p0,
      window ?? 0,
      scale,
      pPtr,
      oPtr,
      qd,
      at + t * per * 4,
    ];
    for (let t = 1; t < threads; t++) {
      const b = (t - 1) * SLOT;
      const a = b + C.args;
      const v = args(t);
      for (let i = 0; i < v.length; i++) this.#ctrl[a + i] = v[i];
      this.#ctrlF[a + 14] = scale;
      this.#ctrl[b + C.shard] = shard.index;
      this.#command(t - 1, CMD.attn);
    }
    const v0 = args(0);
    ex.attn_heads(
      v0[0],
      v0[1],
      v0[2],
      v0[3],
      v0[4],
      v0[5],
      v0[6],
      v0[7],
      v0[8],
      v0[9],
      v0[10],
      v0[11],
      v0[12],
      v0[13],
      v0[14],
      v0[15],
      v0[16],
      v0[17],
      v0[18],
    );
    for (let t = 1; t < threads; t++) this.#wait(t - 1);
    // Only this call's heads' columns go back.
    const res = new Float32Array(buf, oPtr, m * qd);
    const c0 = h0 * hd, c1 = h1 * hd;
    if (c0 === 0 && c1 === qd) op.out.set(res);
    else {
      for (let i = 0; i < m; i++) {
        op.out.set(res.subarray(i * qd + c0, i * qd + c1), i * qd + c0);
      }
    }
    return new Float32Array(buf, pPtr, nh * m * s);
  }

  activate(
    gate: Float32Array,
    up: Float32Array | null,
    n: number,
    kind: "silu" | "gelu_tanh",
  ): void {
    this.#alive();
    if (gate.length < n || (up && up.length < n)) {
      throw new RangeError(
        `Cannot activate: gate or up has fewer than ${n} elements; pass n elements in each`,
      );
    }
    if (kind !== "silu" && kind !== "gelu_tanh") {
      throw new TypeError(
        `Cannot activate: activation ${kind} is not supported; use silu or gelu_tanh`,
      );
    }
    if (n === 0) return;
    const shard = this.#shards[0];
    const io = shard.ioBuffer(n * 4 * (up ? 2 : 1));
    const buf = shard.memory.buffer;
    const g = new Float32Array(buf, io, n);
    g.set(gate.subarray(0, n));
    if (up) new Float32Array(buf, io + n * 4, n).set(up.subarray(0, n));
    shard.main.activate(io, up ? io + n * 4 : 0, n, kind === "silu" ? 0 : 1);
    gate.set(g);
  }

  softmaxRows(
    scores: Float32Array,
    m: number,
    n: number,
    p0: number,
    window: number | null,
  ): void {
    this.#alive();
    if (scores.length < m * n || p0 < 0 || (window !== null && window < 1)) {
      throw new RangeError(
        `Cannot take the softmax: ${scores.length} scores for ${m} x ${n}, p0 ${p0}, window ${window}; pass m * n scores, p0 >= 0 and a window of at least 1 or null`,
      );
    }
    if (m === 0 || n === 0) return;
    const shard = this.#shards[0];
    const io = shard.ioBuffer(m * n * 4);
    const s = new Float32Array(shard.memory.buffer, io, m * n);
    s.set(scores.subarray(0, m * n));
    shard.main.softmax_rows(io, m, n, p0, window ?? 0);
    scores.set(s);
  }

  readRow(weight: WeightHandle, row: number, out: Float32Array): void {
    this.#alive();
    if (!(weight instanceof WasmWeight) || !weight.live) {
      throw new TypeError(
        "Cannot read a weight row: the handle is not a live upload of this backend; upload the weight first",
      );
    }
    const { rows, cols, dtype, shard, ptr } = weight;
    if (!Number.isInteger(row) || row < 0 || row >= rows) {
      throw new RangeError(
        `Cannot read a weight row: row ${row} is outside the weight's ${rows} rows; pass 0 <= row < rows`,
      );
    }
    if (out.length < cols) {
      throw new RangeError(
        `Cannot read a weight row: out has ${out.length} elements for ${cols} columns; pass at least cols`,
      );
    }
    // Panel layout: element (row, p) sits at panel row*8 + p*8 + row%8.
    const buf = shard.memory.buffer;
    const q = Math.floor(row / 8), c = row % 8;
    if (dtype === "float32") {
      const src = new Float32Array(buf, ptr + q * 8 * cols * 4, 8 * cols);
      for (let p = 0; p < cols; p++) out[p] = src[p * 8 + c];
    } else if (dtype === "bfloat16") {
      const src = new Uint16Array(buf, ptr + q * 8 * cols * 2, 8 * cols);
      const bits = new Uint32Array(out.buffer, out.byteOffset, cols);
      for (let p = 0; p < cols; p++) bits[p] = src[p * 8 + c] << 16;
    } else {
      const src = new Float16Array(buf, ptr + q * 8 * cols * 2, 8 * cols);
      for (let p = 0; p < cols; p++) out[p] = src[p * 8 + c];
    }
  }

  release(weight: WeightHandle): void {
    if (!(weight instanceof WasmWeight) || !weight.live) return;
    weight.live = false;
    weight.shard.release(weight.ptr, weight.bytes);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#workers.forEach((w, i) => {
      this.#command(i, CMD.exit);
      this.#wait(i);
      w.terminate();
    });
  }
}

function copyIn(
  dst: Float32Array,
  src: Float32Array,
  offset: number,
  stride: number,
  rows: number,
  cols: number,
): void {
  if (stride === cols) {
    dst.set(src.subarray(offset, offset + rows * cols));
    return;
  }
  for (let i = 0; i < rows; i++) {
    dst.set(
      src.subarray(offset + i * stride, offset + i * stride + cols),
      i * cols,
    );
  }
}

/**
 * Starts the WebAssembly backend: `threads - 1` workers plus the calling
 * thread. Throws when the runtime lacks WebAssembly SIMD or shared memory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createWasmBackend } from "./backend.ts";
 *
 * const backend = await createWasmBackend({ threads: 2 });
 * const w = backend.upload({ rows: 2, cols: 3, dtype: "float32", data: new Float32Array([1, 0, 0, 0, 1, 1]) });
 * assert.deepEqual([...backend.linear(new Float32Array([1, 2, 3]), 1, w)], [1, 5]);
 * backend.close();
 * ```
 */
export async function createWasmBackend(
  options: WasmBackendOptions = {},
): Promise<MatmulBackend> {
  const threads = Math.max(
    1,
    Math.floor(options.threads ?? navigator.hardwareConcurrency ?? 1),
  );
  const maxShardBytes = Math.min(
    MAX_PAGES * PAGE,
    Math.max(16 * PAGE, options.maxShardBytes ?? MAX_PAGES * PAGE),
  );
  const ctrl = new SharedArrayBuffer(Math.max(1, threads - 1) * SLOT * 4);
  const ctrlI = new Int32Array(ctrl);
  for (let i = 0; i < threads - 1; i++) ctrlI[i * SLOT + C.shards] = -1;
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < threads - 1; i++) {
      const w = new Worker(new URL("./worker.ts", import.meta.url), {
        type: "module",
      });
      workers.push(w);
      await new Promise<void>((resolve, reject) => {
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`Cannot start kernel worker: ${e.message}`));
        };
        w.postMessage({ ctrl, index: i });
        const at = i * SLOT + C.shards;
        const poll = () => {
          if (Atomics.load(ctrlI, at) >= 0) resolve();
          else setTimeout(poll, 1);
        };
        // The worker marks its slot (0 shards) once it has taken init and
        // is about to wait for commands.
        setTimeout(poll, 0);
      });
    }
    return new WasmBackend(threads, workers, ctrl, maxShardBytes);
  } catch (error) {
    for (const w of workers) w.terminate();
    throw error;
  }
}
