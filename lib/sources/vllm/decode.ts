/**
 * Gzip float16 payload -> flat score array, on the calling thread
 * ({@linkcode decodeScores}) or on a pool of workers, one layer per worker at
 * a time ({@linkcode decodeScoresBatch}).
 *
 * Layers are independent, so a 2-core machine decodes two at once. Memory
 * stays bounded: a layer's gzip bytes are asked for (`DecodeJob.gzip`) only
 * when a worker is about to take it, and buffers move between threads by
 * transfer, never by copy. Float16 output is the inflated buffer itself;
 * float32 output is converted chunk by chunk while inflating, so no float16
 * copy of a layer is ever held.
 *
 * @module
 */

import { float16ToFloat32 } from "../float16.ts";
import {
  checkMagic,
  inflateExact,
  inflateExactInto,
  inflateExactSlices,
} from "./inflate.ts";
import { allocateScores, checkWireLayer } from "./_limits.ts";
import type {
  ScoresArray,
  ScoresDType,
  ScoresShape,
} from "../../data/scores.ts";

/** Options for {@linkcode decodeScores}. */
export interface DecodeScoresOptions {
  /**
   * Element type of the result: `"float32"` as the reference client, or
   * `"float16"` to keep the wire's values without conversion (half the
   * memory, faster).
   * @default {"float32"}
   */
  dtype?: ScoresDType;
  /**
   * What is decoded, named in error messages.
   * @default {"the capture"}
   */
  where?: string;
  /**
   * With the payload as slices: empty each slice's (resizable) buffer as
   * soon as it is inflated, so the compressed bytes shrink as the output
   * grows. Only for slices nothing else will read.
   * @default {false}
   */
  releaseInput?: boolean;
}

/**
 * Inflates one layer's gzip payload and views or converts it as scores.
 *
 * @param gz The gzip bytes of the float16 array, whole or as consecutive
 *   slices (as the streaming scan decodes them).
 * @param shape `[Tq, H, Tk]`; the payload must inflate to `Tq*H*Tk*2` bytes.
 * @param options Output dtype and the name for errors.
 * @returns `Tq*H*Tk` values.
 * @throws {TypeError} When the payload is not gzip or the shape is not
 *   three positive integers.
 * @throws {RangeError} When it inflates to a size other than the shape's, when
 *   the shape declares more than the payload could inflate to (checked before
 *   anything is allocated), or when the memory cannot be had.
 *
 * @example
 * ```ts
 * import { decodeScores } from "./decode.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const halves = new Float16Array([1, 0, 0.25, 0.75]);
 * const gz = gzipSync(new Uint8Array(halves.buffer));
 * assert.deepEqual([...decodeScores(gz, [2, 1, 2])], [1, 0, 0.25, 0.75]);
 * assert.ok(decodeScores(gz, [2, 1, 2], { dtype: "float16" }) instanceof Float16Array);
 * assert.throws(() => decodeScores(gz, [1, 1, 2], { where: "layer 4" }), /Cannot decode layer 4/);
 * ```
 */
export function decodeScores(
  gz: Uint8Array | readonly Uint8Array[],
  shape: ScoresShape,
  options: DecodeScoresOptions = {},
): ScoresArray {
  const { dtype = "float32", where = "the capture" } = options;
  const slices = gz instanceof Uint8Array ? null : gz;
  let gzBytes = 0;
  if (slices) { for (const s of slices) gzBytes += s.length; }
  else gzBytes = (gz as Uint8Array).length;
  // Evidence before allocation: the count must be exact and the payload
  // able to hold it, or nothing is allocated.
  const count = checkWireLayer(shape, gzBytes, {
    action: `decode ${where}`,
  });
  const release = { release: options.releaseInput ?? false };
  if (dtype === "float16") {
    // Both return a buffer of their own: the view starts at 0.
    const bytes = slices
      ? inflateExactSlices(slices, count * 2, where, release)
      : inflateExact(gz as Uint8Array, count * 2, where);
    return new Float16Array(bytes.buffer, bytes.byteOffset, count);
  }
  // Converting chunk by chunk while each is in cache, instead of inflating
  // the whole float16 layer first, saves writing (and page-faulting) a
  // buffer of half the output's size.
  if (!slices) checkMagic(gz as Uint8Array, where);
  const out = allocateScores(count, "float32", `decode ${where}`);
  inflateExactInto(gz, count * 2, where, (chunk, at) => {
    const halves = new Uint16Array(
      chunk.buffer,
      chunk.byteOffset,
      chunk.length >> 1,
    );
    float16ToFloat32(halves, out.subarray(at >> 1, (at >> 1) + halves.length));
  }, release);
  return out;
}

/** One layer for {@linkcode decodeScoresBatch}. */
export interface DecodeJob {
  /** Names the layer in error messages, e.g. `"layer 18"`. */
  where: string;
  /** `[Tq, H, Tk]`. */
  shape: ScoresShape;
  /**
   * Produces the gzip bytes; called only when the job is about to run, so
   * at most a few payloads are held at once. With workers, bytes that fill
   * their buffer are transferred to a worker (the buffer is detached); a
   * view of part of a buffer is copied.
   */
  gzip: () => Uint8Array;
  /**
   * Produces the gzip bytes as consecutive slices instead (preferred by a
   * pool when present): each slice is transferred to the worker, which
   * empties it once inflated, so a layer's compressed bytes shrink while it
   * decodes. The slices must be the caller's to give away.
   * @default {undefined} `gzip` is used
   */
  gzipSlices?: () => Uint8Array[];
}

/** Options for {@linkcode decodeScoresBatch}. */
export interface DecodeBatchOptions {
  /**
   * Element type of the results.
   * @default {"float32"}
   */
  dtype?: ScoresDType;
  /**
   * Worker threads to decode on; `0` decodes on the calling thread. Ignored
   * when `pool` is given.
   * @default {defaultWorkerCount(jobs)}
   */
  workers?: number;
  /**
   * A running pool to decode on (reused across calls, so no worker start-up
   * per call); the caller closes it.
   * @default {undefined} a pool of `workers` workers for this call only
   */
  pool?: DecodePool;
}

/** Below this many output bytes in total, workers cost more than they save. */
const WORKER_THRESHOLD = 16 << 20;

/**
 * Decodes several layers, in parallel on worker threads when that pays.
 * Results come in job order. The first failing layer rejects the batch (its
 * error names the layer) and no further layer is started.
 *
 * @param jobs The layers.
 * @param options Output dtype, worker count or pool.
 * @returns One flat score array per job.
 *
 * @example
 * ```ts
 * import { decodeScoresBatch } from "./decode.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const gzip = () => gzipSync(new Uint8Array(new Float16Array([1, 0, 0.5, 0.5]).buffer));
 * const jobs = [0, 1].map((i) => ({ where: `layer ${i}`, shape: [2, 1, 2] as const, gzip }));
 * const [a, b] = await decodeScoresBatch(jobs, { workers: 2 });
 * assert.deepEqual([...a], [1, 0, 0.5, 0.5]);
 * assert.deepEqual([...b], [...a]);
 * ```
 */
export async function decodeScoresBatch(
  jobs: readonly DecodeJob[],
  options: DecodeBatchOptions = {},
): Promise<ScoresArray[]> {
  const dtype = options.dtype ?? "float32";
  if (options.pool) return await options.pool.decode(jobs, { dtype });
  const workers = Math.min(
    options.workers ?? defaultWorkerCount(jobs),
    jobs.length,
  );
  if (!Number.isInteger(workers) || workers < 0) {
    throw new RangeError(
      `Cannot decode layers: workers ${options.workers} is not a non-negative integer; pass 0 to decode on this thread`,
    );
  }
  if (workers === 0) {
    return jobs.map((j) =>
      decodeScores(j.gzip(), j.shape, { dtype, where: j.where })
    );
  }
  const pool = new DecodePool(workers);
  try {
    return await pool.decode(jobs, { dtype });
  } finally {
    pool.close();
  }
}

/**
 * How many workers {@linkcode decodeScoresBatch} uses by default: none for
 * fewer than two layers, under 16 MiB of scores, or without permission to
 * load the worker module, else one more than the
 * cores, at most one per layer. One more than the cores because equal layers
 * then finish together (3 layers on 2 cores take 1.5 layer-times, not 2);
 * measured in `bench/compare.ts`.
 *
 * @param jobs The layers.
 * @returns The worker count.
 *
 * @example
 * ```ts
 * import { defaultWorkerCount } from "./decode.ts";
 * import assert from "node:assert/strict";
 *
 * const small = { where: "layer 0", shape: [4, 1, 4] as const, gzip: () => new Uint8Array() };
 * assert.equal(defaultWorkerCount([small, small]), 0);
 * ```
 */
export function defaultWorkerCount(jobs: readonly DecodeJob[]): number {
  let bytes = 0;
  for (const j of jobs) bytes += j.shape[0] * j.shape[1] * j.shape[2] * 2;
  if (jobs.length < 2 || bytes < WORKER_THRESHOLD) return 0;
  if (!decodeWorkersPermitted()) return 0;
  return Math.min(jobs.length, coreCount() + 1);
}

function coreCount(): number {
  return Math.max(1, globalThis.navigator?.hardwareConcurrency ?? 1);
}

/** What a worker sends back. */
type Reply =
  | { buffer: ArrayBuffer }
  | { error: { name: string; message: string } };

/**
 * A set of decode worker threads, kept for reuse: decoding several responses
 * in a row (a notebook, a server) then pays worker start-up once. Layers of
 * all `decode` calls share one queue; each goes to the next free worker.
 *
 * @example
 * ```ts
 * import { DecodePool } from "./decode.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * using pool = new DecodePool(2);
 * const gz = gzipSync(new Uint8Array(new Float16Array([0.5, 0.5]).buffer));
 * const [scores] = await pool.decode([{ where: "layer 0", shape: [1, 1, 2], gzip: () => gz }]);
 * assert.deepEqual([...scores], [0.5, 0.5]);
 * ```
 */
export class DecodePool {
  static #live = 0;
  #workers: Worker[] = [];
  #running: (Task | null)[] = [];
  #idle: number[] = [];
  #dead = 0;
  #tasks: Task[] = [];
  #closed = false;

  /**
   * Starts the workers (they load in the background).
   *
   * @param size Number of workers.
   * @default size one more than `navigator.hardwareConcurrency`
   * @throws {RangeError} When `size` is not a positive integer.
   *
   * @example
   * ```ts
   * import { DecodePool } from "./decode.ts";
   * import assert from "node:assert/strict";
   *
   * const pool = new DecodePool(1);
   * assert.equal(pool.size, 1);
   * pool.close();
   * ```
   */
  constructor(size: number = coreCount() + 1) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(
        `Cannot start a decode pool: size ${size} is not a positive integer; pass 1 or more`,
      );
    }
    for (let slot = 0; slot < size; slot++) this.#spawn(slot);
  }

  /**
   * Decode workers running in this process, over all pools (to check that
   * a cancelled decode left none behind).
   *
   * @example
   * ```ts
   * import { DecodePool } from "./decode.ts";
   * import assert from "node:assert/strict";
   *
   * const before = DecodePool.liveWorkers;
   * const pool = new DecodePool(2);
   * assert.equal(DecodePool.liveWorkers, before + 2);
   * pool.close();
   * assert.equal(DecodePool.liveWorkers, before);
   * ```
   */
  static get liveWorkers(): number {
    return DecodePool.#live;
  }

  /** Number of workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Decodes layers on the pool's workers, results in job order.
   *
   * @param jobs The layers.
   * @param options Output dtype.
   * @returns One flat score array per job.
   * @throws {Error} When the pool is closed.
   *
   * @example
   * ```ts
   * import { DecodePool } from "./decode.ts";
   * import { gzipSync } from "node:zlib";
   * import assert from "node:assert/strict";
   *
   * using pool = new DecodePool(1);
   * const gz = gzipSync(new Uint8Array(new Float16Array([1]).buffer));
   * const [s] = await pool.decode([{ where: "layer 0", shape: [1, 1, 1], gzip: () => gz }], { dtype: "float16" });
   * assert.ok(s instanceof Float16Array);
   * ```
   */
  decode(
    jobs: readonly DecodeJob[],
    options: { dtype?: ScoresDType } = {},
  ): Promise<ScoresArray[]> {
    if (this.#closed) {
      return Promise.reject(
        new Error(
          "Cannot decode on a closed DecodePool: close() was called; create a new pool",
        ),
      );
    }
    const dtype = options.dtype ?? "float32";
    const batch = { failed: false };
    const results = Promise.all(
      jobs.map((job) =>
        new Promise<ScoresArray>((resolve, reject) =>
          this.#tasks.push({ job, dtype, batch, resolve, reject })
        )
      ),
    );
    this.#pump();
    return results;
  }

  /**
   * Stops the workers; later `decode` calls reject, as do layers still
   * queued.
   *
   * @example
   * ```ts
   * import { DecodePool } from "./decode.ts";
   * import assert from "node:assert/strict";
   *
   * const pool = new DecodePool(1);
   * pool.close();
   * await assert.rejects(pool.decode([]), /closed DecodePool/);
   * ```
   */
  close(): void {
    if (!this.#closed) DecodePool.#live -= this.#workers.length - this.#dead;
    this.#closed = true;
    for (const w of this.#workers) w.terminate();
    for (const task of this.#tasks.splice(0)) {
      task.reject(new Error("Cannot decode: the DecodePool was closed"));
    }
  }

  /** Same as {@linkcode DecodePool.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Starts the worker of a slot. Its handlers are set once: a reply settles
   * the slot's running layer; a crash rejects it and restarts the worker,
   * while a worker that fails with no layer (it could not load, e.g.
   * without read permission) stays dead, and when all are dead the queue is
   * refused.
   */
  #spawn(slot: number): void {
    const worker = new Worker(
      new URL("./_decode_worker.ts", import.meta.url).href,
      { type: "module" },
    );
    this.#workers[slot] = worker;
    DecodePool.#live++;
    this.#running[slot] = null;
    this.#idle.push(slot);
    worker.onmessage = (event: MessageEvent<Reply>) => {
      const task = this.#running[slot];
      this.#running[slot] = null;
      const reply = event.data;
      if (task && "error" in reply) {
        task.batch.failed = true;
        task.reject(rebuildError(reply.error));
      } else if (task && "buffer" in reply) {
        task.resolve(
          task.dtype === "float16"
            ? new Float16Array(reply.buffer)
            : new Float32Array(reply.buffer),
        );
      }
      this.#idle.push(slot);
      this.#pump();
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      worker.terminate();
      if (!this.#closed) DecodePool.#live--;
      const task = this.#running[slot];
      this.#running[slot] = null;
      this.#idle = this.#idle.filter((s) => s !== slot);
      if (task) {
        task.batch.failed = true;
        task.reject(
          new Error(
            `Cannot decode ${task.job.where}: its decode worker failed (${event.message}); pass { workers: 0 } to decode on this thread`,
          ),
        );
        if (!this.#closed) this.#spawn(slot);
      } else if (++this.#dead === this.#workers.length) {
        for (const t of this.#tasks.splice(0)) {
          t.reject(
            new Error(
              `Cannot start decode workers: ${event.message}; run Deno with --allow-read, or pass { workers: 0 } to decode on this thread`,
            ),
          );
        }
      }
      this.#pump();
    };
  }

  /** Hands queued layers to idle workers. */
  #pump(): void {
    while (this.#idle.length && this.#tasks.length && !this.#closed) {
      const task = this.#tasks.shift()!;
      // A batch stops at its first failure: its later layers never start.
      if (task.batch.failed) {
        task.reject(new Error("Cannot decode: an earlier layer failed"));
        continue;
      }
      let gz: Uint8Array[];
      try {
        gz = task.job.gzipSlices?.() ?? [task.job.gzip()];
      } catch (error) {
        task.batch.failed = true;
        task.reject(error as Error);
        continue;
      }
      // Bytes that fill their buffer move to the worker; a view of part of
      // a buffer (the body, Buffer's pool) is copied so its owner keeps it.
      gz = gz.map((g) =>
        g.byteOffset !== 0 || g.byteLength !== g.buffer.byteLength
          ? new Uint8Array(g)
          : g
      );
      const slot = this.#idle.pop()!;
      const worker = this.#workers[slot];
      this.#running[slot] = task;
      const transfer = [...new Set(gz.map((g) => g.buffer as ArrayBuffer))];
      worker.postMessage(
        { gz, shape: task.job.shape, dtype: task.dtype, where: task.job.where },
        transfer,
      );
    }
  }
}

/** One queued layer. */
interface Task {
  job: DecodeJob;
  dtype: ScoresDType;
  batch: { failed: boolean };
  resolve: (scores: ScoresArray) => void;
  reject: (error: Error) => void;
}

/**
 * Whether this process may start the decode workers: they load from a file
 * next to this module, which needs read permission there.
 *
 * @returns `false` when read permission for the worker module is missing.
 *
 * @example
 * ```ts
 * import { decodeWorkersPermitted } from "./decode.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(typeof decodeWorkersPermitted(), "boolean");
 * ```
 */
export function decodeWorkersPermitted(): boolean {
  const url = new URL("./_decode_worker.ts", import.meta.url);
  if (url.protocol !== "file:") return true;
  return Deno.permissions.querySync({ name: "read", path: url }).state ===
    "granted";
}

/** Recreates a worker's error with its class, so callers can tell them apart. */
function rebuildError(e: { name: string; message: string }): Error {
  const classes: Record<string, ErrorConstructor> = {
    TypeError,
    RangeError,
    SyntaxError,
  };
  return new (classes[e.name] ?? Error)(e.message);
}
