/**
 * The two-core inflate floor of a capture body, for `decode_bench.ts`:
 * base64 plus `node:zlib` inflation of each layer, on as many workers as the
 * decoder's pool, from a body already in (shared) memory. What any decoder
 * of this wire format that uses zlib must at least spend; the decoder adds
 * the scan, the checks, the float16 widening and the copies.
 *
 * @module
 */

import { DecodePool } from "../lib/sources/vllm/decode.ts";

/**
 * `[start, end, inflated size]` of each `"data"` string's characters in a
 * bench body (its size from the `"shape"` that follows, as the bench data
 * writes it).
 */
export function dataSpans(body: Uint8Array): [number, number, number][] {
  const key = new TextEncoder().encode('"data"');
  const spans: [number, number, number][] = [];
  let at = 0;
  for (;;) {
    at = indexOf(body, key, at);
    if (at < 0) return spans;
    const open = body.indexOf(0x22, at + key.length);
    const close = body.indexOf(0x22, open + 1);
    const shape = /^, "shape": \[(\d+), (\d+), (\d+)\]/.exec(
      new TextDecoder().decode(body.subarray(close + 1, close + 64)),
    )!;
    spans.push([open + 1, close, 2 * +shape[1] * +shape[2] * +shape[3]]);
    at = close + 1;
  }
}

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  for (let i = hay.indexOf(needle[0], from); i >= 0;) {
    let k = 1;
    while (k < needle.length && hay[i + k] === needle[k]) k++;
    if (k === needle.length) return i;
    i = hay.indexOf(needle[0], i + 1);
  }
  return -1;
}

/** Workers holding one body, inflating its layers on request. */
export class FloorPool {
  #workers: Worker[];
  #spans: [number, number, number][];

  private constructor(workers: Worker[], spans: [number, number, number][]) {
    this.#workers = workers;
    this.#spans = spans;
  }

  /**
   * Starts `size` workers (by default the decoder pool's size) on a copy of
   * the body in shared memory.
   */
  static async open(
    body: Uint8Array,
    size = FloorPool.defaultSize(),
  ): Promise<FloorPool> {
    const shared = new SharedArrayBuffer(body.length);
    new Uint8Array(shared).set(body);
    const workers = Array.from(
      { length: size },
      () =>
        new Worker(new URL("./_floor_worker.ts", import.meta.url), {
          type: "module",
        }),
    );
    await Promise.all(workers.map((w) => ask(w, shared)));
    return new FloorPool(workers, dataSpans(body));
  }

  /** The decoder pool's default size. */
  static defaultSize(): number {
    const pool = new DecodePool();
    const size = pool.size;
    pool.close();
    return size;
  }

  /** Number of layers in the body. */
  get layers(): number {
    return this.#spans.length;
  }

  /** Inflates every layer, each worker taking the next; total bytes. */
  async run(): Promise<number> {
    let next = 0, total = 0;
    await Promise.all(this.#workers.map(async (worker) => {
      while (next < this.#spans.length) {
        total += await ask(worker, this.#spans[next++]);
      }
    }));
    return total;
  }

  /** Ends the workers. */
  close(): void {
    for (const w of this.#workers) w.terminate();
  }
}

function ask(worker: Worker, message: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => reject(e);
    worker.postMessage(message);
  });
}
