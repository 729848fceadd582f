/**
 * Picks the fastest matrix backend this runtime can run: the WebAssembly
 * SIMD kernels on worker threads when WebAssembly and shared memory are
 * there, else the plain TypeScript reference.
 *
 * @module
 */

export type { MatmulBackend } from "./backend.ts";
import type { MatmulBackend } from "./backend.ts";
import { createReferenceBackend } from "./reference.ts";

/** Options for {@linkcode createMatmulBackend}. */
export interface CreateMatmulBackendOptions {
  /**
   * Threads multiplying at once, the calling thread included; defaults to
   * the machine's cores.
   */
  threads?: number;
}

/**
 * Starts a matrix backend. The WebAssembly kernels are used when the
 * runtime has WebAssembly SIMD and shared memory; otherwise the reference
 * backend, which is exact but slow.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createMatmulBackend } from "./select.ts";
 *
 * const backend = await createMatmulBackend({ threads: 1 });
 * const w = backend.upload({ rows: 2, cols: 2, dtype: "float32", data: new Float32Array([1, 2, 3, 4]) });
 * assert.deepEqual([...backend.linear(new Float32Array([1, 1]), 1, w)], [3, 7]);
 * backend.close();
 * ```
 */
export async function createMatmulBackend(
  options: CreateMatmulBackendOptions = {},
): Promise<MatmulBackend> {
  if (!wasmUsable()) return createReferenceBackend();
  const { createWasmBackend } = await import("./wasm/backend.ts");
  return await createWasmBackend({ threads: options.threads });
}

/** Whether this runtime has WebAssembly SIMD128 and shared memory. */
function wasmUsable(): boolean {
  if (
    typeof WebAssembly !== "object" || typeof SharedArrayBuffer !== "function"
  ) return false;
  try {
    // (module (func (result v128) v128.const i32x4 0 0 0 0))
    const simd = new Uint8Array([
      0,
      97,
      115,
      109,
      1,
      0,
      0,
      0,
      1,
      5,
      1,
      96,
      0,
      1,
      123,
      3,
      2,
      1,
      0,
      10,
      22,
      1,
      20,
      0,
      253,
      12,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      11,
    ]);
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return WebAssembly.validate(simd);
  } catch {
    return false;
  }
}
