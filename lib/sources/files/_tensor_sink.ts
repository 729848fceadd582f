/**
 * Turns a tensor's raw bytes, arriving in chunks in file order, into
 * attnscope's `[Tq, H, Tk]` float arrays: one pass that converts the element
 * type and transposes at once, so no copy of the source tensor is ever held
 * (a chunk and one row of scratch are all that is kept).
 *
 * @module
 */

import type { AttentionLayout } from "./layout.ts";

/** Element types the readers understand. */
export type ElementType = "f16" | "bf16" | "f32" | "f64";

/** Bytes per element. */
export const ELEMENT_BYTES: Readonly<Record<ElementType, number>> = {
  f16: 2,
  bf16: 2,
  f32: 4,
  f64: 8,
};

/** Where one layer's values go. */
export interface SinkTarget {
  /** The output, `[rows, heads, keyLength]` in C order. */
  data: Float32Array | Float16Array;
  /** Heads in the output. */
  heads: number;
  /** Key columns in the output (its row length). */
  keyLength: number;
  /** Output row of the tensor's query 0 (non-zero for generate() steps). */
  rowOffset: number;
}

/** What a {@linkcode TensorSink} reads. */
export interface TensorSinkOptions {
  /** The element type. */
  element: ElementType;
  /** Byte order of the elements. */
  littleEndian: boolean;
  /** The tensor's shape, outermost first, in memory order. */
  shape: readonly number[];
  /** One axis name per shape entry. */
  layout: AttentionLayout;
  /** The batch index kept (ignored without a batch axis). */
  batch: number;
  /** The target for a layer-axis index (0 without a layer axis). */
  target: (layerIndex: number) => SinkTarget;
}

/**
 * Receives a tensor's bytes in order and writes them, converted and
 * transposed, into the targets.
 *
 * @example A [head, query, key] float64 tensor into a [query, head, key] float32 output
 * ```ts
 * import { TensorSink } from "./_tensor_sink.ts";
 * import assert from "node:assert/strict";
 *
 * // 2 heads, 1 query, 2 keys: head 0 = [1, 2], head 1 = [3, 4].
 * const bytes = new Uint8Array(new Float64Array([1, 2, 3, 4]).buffer);
 * const out = new Float32Array(4);
 * const sink = new TensorSink({
 *   element: "f64",
 *   littleEndian: true,
 *   shape: [2, 1, 2],
 *   layout: ["head", "query", "key"],
 *   batch: 0,
 *   target: () => ({ data: out, heads: 2, keyLength: 2, rowOffset: 0 }),
 * });
 * sink.push(bytes.subarray(0, 5)); // chunks may split elements
 * sink.push(bytes.subarray(5));
 * sink.finish();
 * assert.deepEqual([...out], [1, 2, 3, 4]);
 * ```
 */
export class TensorSink {
  #o: TensorSinkOptions;
  #rowBytes: number;
  #rowLength: number;
  #rows: number;
  #row = 0;
  #index: number[];
  #outer: readonly number[];
  #pending: Uint8Array;
  #pendingLength = 0;
  #scratch: Uint8Array;
  #values: Float32Array | Float64Array | Float16Array;
  #bf16In: Uint16Array | null = null;
  #bf16Out: Uint32Array | null = null;

  /**
   * Prepares the pass.
   *
   * @param options Element type, byte order, shape, layout, batch and targets.
   *
   * @example
   * ```ts
   * import { TensorSink } from "./_tensor_sink.ts";
   * import assert from "node:assert/strict";
   *
   * const out = new Float32Array(1);
   * const sink = new TensorSink({
   *   element: "f32", littleEndian: true, shape: [1, 1], layout: ["query", "key"], batch: 0,
   *   target: () => ({ data: out, heads: 1, keyLength: 1, rowOffset: 0 }),
   * });
   * assert.equal(sink.expectedBytes, 4);
   * ```
   */
  constructor(options: TensorSinkOptions) {
    this.#o = options;
    const { shape, element } = options;
    this.#rowLength = shape[shape.length - 1];
    this.#rowBytes = this.#rowLength * ELEMENT_BYTES[element];
    this.#outer = shape.slice(0, -1);
    this.#rows = this.#outer.reduce((a, b) => a * b, 1);
    this.#index = this.#outer.map(() => 0);
    this.#pending = new Uint8Array(this.#rowBytes);
    this.#scratch = new Uint8Array(this.#rowBytes);
    const buffer = this.#scratch.buffer;
    if (element === "f64") this.#values = new Float64Array(buffer);
    else if (element === "f32") this.#values = new Float32Array(buffer);
    else if (element === "f16") this.#values = new Float16Array(buffer);
    else {
      this.#bf16In = new Uint16Array(buffer);
      this.#bf16Out = new Uint32Array(this.#rowLength);
      this.#values = new Float32Array(this.#bf16Out.buffer);
    }
  }

  /** The tensor's size in bytes. */
  get expectedBytes(): number {
    return this.#rows * this.#rowBytes;
  }

  /** Bytes received so far. */
  get receivedBytes(): number {
    return this.#row * this.#rowBytes + this.#pendingLength;
  }

  /**
   * Takes the next bytes of the tensor.
   *
   * @param chunk Any number of bytes, in order; the view is used only during the call.
   * @throws {RangeError} When more bytes arrive than the shape holds.
   */
  push(chunk: Uint8Array): void {
    if (this.receivedBytes + chunk.length > this.expectedBytes) {
      throw new RangeError(
        `the data holds more than the ${this.expectedBytes} bytes its shape needs`,
      );
    }
    const rowBytes = this.#rowBytes;
    let at = 0;
    if (this.#pendingLength > 0) {
      const take = Math.min(rowBytes - this.#pendingLength, chunk.length);
      this.#pending.set(chunk.subarray(0, take), this.#pendingLength);
      this.#pendingLength += take;
      at = take;
      if (this.#pendingLength < rowBytes) return;
      this.#pendingLength = 0;
      this.#writeRow(this.#pending);
    }
    while (at + rowBytes <= chunk.length) {
      this.#writeRow(chunk.subarray(at, at + rowBytes));
      at += rowBytes;
    }
    if (at < chunk.length) {
      this.#pending.set(chunk.subarray(at));
      this.#pendingLength = chunk.length - at;
    }
  }

  /**
   * Checks that the whole tensor arrived.
   *
   * @throws {RangeError} When bytes are missing.
   */
  finish(): void {
    if (this.receivedBytes !== this.expectedBytes) {
      throw new RangeError(
        `the data ends after ${this.receivedBytes} of the ${this.expectedBytes} bytes its shape needs`,
      );
    }
  }

  #writeRow(bytes: Uint8Array): void {
    const { layout, batch, target } = this.#o;
    const index = this.#index;
    let keep = true;
    let layerIndex = 0;
    for (let a = 0; a < index.length; a++) {
      if (layout[a] === "batch" && index[a] !== batch) keep = false;
      if (layout[a] === "layer") layerIndex = index[a];
    }
    if (keep) this.#convertAndStore(bytes, target(layerIndex));
    this.#row++;
    // Odometer over the outer axes, innermost fastest.
    for (let a = index.length - 1; a >= 0; a--) {
      if (++index[a] < this.#outer[a]) break;
      index[a] = 0;
    }
  }

  #convertAndStore(bytes: Uint8Array, t: SinkTarget): void {
    const { layout, element, littleEndian } = this.#o;
    const scratch = this.#scratch;
    scratch.set(bytes);
    // The typed-array views are little-endian on every platform Deno runs on.
    if (!littleEndian) swapBytes(scratch, ELEMENT_BYTES[element]);
    if (this.#bf16In && this.#bf16Out) {
      const src = this.#bf16In;
      const dst = this.#bf16Out;
      // bfloat16 is the high half of a float32.
      for (let i = 0; i < dst.length; i++) dst[i] = src[i] << 16;
    }
    const stride = (axis: string): number =>
      axis === "head"
        ? t.keyLength
        : axis === "query"
        ? t.heads * t.keyLength
        : axis === "key"
        ? 1
        : 0;
    let base = t.rowOffset * t.heads * t.keyLength;
    for (let a = 0; a < this.#index.length; a++) {
      base += this.#index[a] * stride(layout[a]);
    }
    const step = stride(layout[layout.length - 1]);
    const values = this.#values;
    const out = t.data;
    if (step === 1) {
      out.set(values, base);
    } else {
      for (let i = 0, at = base; i < values.length; i++, at += step) {
        out[at] = values[i];
      }
    }
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i < bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}
