/**
 * The part of `node:zlib`'s native handle that the synchronous streaming
 * inflaters drive (the vLLM payloads' gunzip, the npz entries' raw
 * inflate). It is private to Node's zlib, so each user checks it is there
 * and falls back to a public API when it is not.
 *
 * @module
 */

/** The native handle: one synchronous write with explicit offsets. */
export interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  onerror: (message: string, errno: number) => void;
}

/** A `node:zlib` stream seen from inside: its handle and write state. */
export interface RawZlibStream {
  _handle?: ZlibHandle;
  /** `[availOut, availIn]` after each `writeSync`. */
  _writeState?: Uint32Array;
  close(): void;
}
