/**
 * What the calling thread and the kernel workers share: the compiled
 * module, the control block's layout, and how one thread's instance of a
 * memory shard is set up. Internal to the WebAssembly backend.
 *
 * @module
 */

import { SGEMM_WASM_BASE64 } from "./sgemm_wasm.ts";

/** The exports of sgemm.c. */
export interface SgemmExports {
  /** sgemm.c's `gemm`. */
  gemm(
    x: number,
    lda: number,
    m: number,
    w: number,
    dt: number,
    k: number,
    q0: number,
    q1: number,
    out: number,
    ldc: number,
    cb: number,
    ce: number,
    bias: number,
    alpha: number,
    scratch: number,
    budget: number,
  ): void;
  /** sgemm.c's `gemm_scratch_bytes`. */
  gemm_scratch_bytes(k: number, budget: number): number;
  /** sgemm.c's `pack`. */
  pack(
    src: number,
    es: number,
    r0: number,
    nrows: number,
    rows: number,
    k: number,
    dst: number,
  ): void;
  /** sgemm.c's `pack_act`. */
  pack_act(
    b: number,
    ldb: number,
    n: number,
    k: number,
    trans: number,
    dst: number,
  ): void;
  /** sgemm.c's `activate`. */
  activate(gate: number, up: number, n: number, kind: number): void;
  /** sgemm.c's `softmax_rows`. */
  softmax_rows(
    s: number,
    m: number,
    n: number,
    p0: number,
    window: number,
  ): void;
  /** sgemm.c's `attn_scratch_floats`. */
  attn_scratch_floats(s: number, hd: number): number;
  /** sgemm.c's `attn_heads`. */
  attn_heads(
    q: number,
    ldq: number,
    k: number,
    v: number,
    ldkv: number,
    m: number,
    s: number,
    hd: number,
    h0: number,
    h1: number,
    hb: number,
    rep: number,
    p0: number,
    window: number,
    scale: number,
    probs: number,
    att: number,
    ldo: number,
    scratch: number,
  ): void;
  /** The instance's stack pointer (set per thread). */
  __stack_pointer: WebAssembly.Global;
}

let compiled: WebAssembly.Module | undefined;

/** The kernels' module, compiled once per thread. */
export function sgemmModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(
    (Uint8Array as unknown as { fromBase64(s: string): Uint8Array })
      .fromBase64(SGEMM_WASM_BASE64) as Uint8Array<ArrayBuffer>,
  );
  return compiled;
}

/** Bytes of stack each thread's instance gets (the kernels use about 1 KiB). */
export const STACK_BYTES = 64 * 1024;
/**
 * Most bytes of packing scratch each thread gets per shard (a shard of
 * under 64 MiB, as tests make, gives each a 32nd of itself, at least 256
 * KiB); gemm stays within it for k up to a 24th of it.
 */
export const SCRATCH_BYTES = 2 * 1024 * 1024;

/** The per-thread scratch of a shard of `maxBytes`. */
export function scratchBytes(maxBytes: number): number {
  return Math.min(
    SCRATCH_BYTES,
    Math.max(256 * 1024, Math.floor(maxBytes / 32 / 65536) * 65536),
  );
}
/** Int32 slots of the control block per worker. */
export const SLOT = 32;
/** Slot indices inside one worker's block. */
export const C = {
  seq: 0,
  done: 1,
  cmd: 2,
  shard: 3,
  args: 4,
  shards: 31,
} as const;
/** Commands. */
export const CMD = { gemm: 1, yield: 2, exit: 3, attn: 4 } as const;
/** Args of a gemm command: the 16 parameters of sgemm.c's gemm, alpha as float bits at index 13. */
export const GEMM_ARGS = 16;

/** Args of an attn command: the 19 parameters of sgemm.c's attn_heads, scale as float bits at index 14. */
export const ATTN_ARGS = 19;

/**
 * Instantiates the kernels on a shard's memory for one thread, with the
 * thread's own stack (at `stackTop`, growing down).
 */
export function instantiateShard(
  memory: WebAssembly.Memory,
  stackTop: number,
): SgemmExports {
  const instance = new WebAssembly.Instance(sgemmModule(), {
    env: { memory },
  });
  const ex = instance.exports as unknown as SgemmExports;
  ex.__stack_pointer.value = stackTop;
  return ex;
}
