/**
 * `extractAttentionFromResponse`: the reference client's entry point, from a
 * parsed response, its raw body as a string, or its raw body bytes.
 *
 * Bytes are the fast and scalable path: the body is scanned without becoming
 * one string (see `wire.ts`), so responses over 512 MiB decode too, and each
 * layer goes to a worker thread as soon as the scan has passed it.
 *
 * Why async, where the reference is sync: decoding on workers means waiting
 * for them, and inflating dominates the time (layers in parallel on two cores
 * roughly halve it). {@linkcode extractAttentionFromResponseSync} does the same
 * work on the calling thread, for small responses and code that cannot await.
 *
 * @module
 */

import { Base64Span, decodeBase64, takeDecodedSlices } from "./base64.ts";
import {
  type DecodeJob,
  DecodePool,
  decodeScores,
  decodeScoresBatch,
  decodeWorkersPermitted,
} from "./decode.ts";
import { type AttentionCapture, AttentionLayer } from "../../data/layer.ts";
import {
  AttentionScores,
  type ScoresArray,
  type ScoresDType,
  type ScoresShape,
} from "../../data/scores.ts";
import { TokenMeta } from "../../data/token_meta.ts";
import { type LayerMeta, readLayerMeta } from "../../data/layer_meta.ts";
import { warn } from "../../warn.ts";
import { parseResponseBytes } from "./wire.ts";
import {
  base64DecodedBound,
  checkWireLayer,
  DecodeBudget,
  readMaxBytes,
} from "./_limits.ts";
import { ResponseScanner } from "./stream.ts";
import { type OnProgress, ProgressTracker } from "../../progress.ts";
import { checkCapture, warnFindings } from "../../data/check_capture.ts";

/** What {@linkcode extractAttentionFromResponse} accepts. */
export type ResponseInput =
  | Uint8Array
  | ArrayBuffer
  | string
  | Record<string, unknown>;

/** Options for {@linkcode extractAttentionFromResponse}. */
export interface ExtractOptions {
  /**
   * Element type of the scores: `"float32"` as the reference client, or
   * `"float16"` to keep the wire's values (half the memory, faster).
   * @default {"float32"}
   */
  dtype?: ScoresDType;
  /**
   * Decode only these layer indices (others are skipped before any
   * decoding); a requested layer missing from the response is warned about.
   * @default {undefined} every layer
   */
  layers?: readonly number[];
  /**
   * Worker threads for decoding (async function only); `0` decodes on the
   * calling thread.
   * @default {Math.min(layers, navigator.hardwareConcurrency)} when the
   * layers hold more than 16 MiB of scores, else 0
   */
  workers?: number;
  /**
   * A running {@linkcode DecodePool} to decode on, reused across calls
   * (async function only); the caller closes it.
   * @default {undefined} workers started for this call only
   */
  pool?: DecodePool;
  /**
   * Largest decoded size of the capture, in bytes of the output `dtype`,
   * summed over the layers decoded: a capture past it is refused before its
   * scores are allocated, with its size and how to raise the limit. Layers
   * that `layers` leaves out do not count; `Infinity` turns the check off.
   * @default {DEFAULT_MAX_BYTES} 8 GiB, which a 24 GiB machine survives
   * (see {@linkcode DEFAULT_MAX_BYTES})
   */
  maxBytes?: number;
}

/** A layer validated and ready to decode. */
interface PlannedLayer {
  layer: number;
  shape: ScoresShape;
  /** `prod(shape)`, checked exact. */
  count: number;
  data: string | Base64Span;
  tokenMeta: TokenMeta;
  /** The entry's `layer_meta`, or `null` when it has none. */
  layerMeta: LayerMeta | null;
}

interface Plan {
  model: string | null;
  layers: PlannedLayer[];
}

/**
 * Decodes every captured layer of a chat completion response.
 *
 * @param response The parsed response object, the raw body as a string, or
 *   the raw body bytes (`Uint8Array`/`ArrayBuffer`; the fast path, and the
 *   only one for bodies over 512 MiB).
 * @param options Output dtype, layer selection, worker count.
 * @returns `null` when the response carries no attention
 *   (`attn_capture_data` null, absent or empty), else the layers by index.
 * @throws {TypeError} On a malformed capture (not a list, a layer that is not
 *   an object, a bad `layer_idx`, `shape` or `dtype`, data that is not gzip).
 * @throws {RangeError} On a payload that inflates to the wrong size, a shape
 *   whose size is past exact integers or more than its payload could inflate
 *   to, a capture larger than `maxBytes`, or memory that cannot be had; all
 *   checked before the scores are allocated.
 * @throws {SyntaxError} On a body that is not JSON or data that is not base64.
 *
 * @example
 * ```ts
 * import { extractAttentionFromResponse } from "./extract.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const halves = new Float16Array([1, 0, 0.25, 0.75]);
 * const data = gzipSync(new Uint8Array(halves.buffer)).toBase64();
 * const body = JSON.stringify({
 *   model: "demo",
 *   attn_capture_data: [{ layer_idx: 3, data, shape: [2, 1, 2], token_meta: { prompt_len: 1, total_len: 2 } }],
 * });
 * const capture = await extractAttentionFromResponse(new TextEncoder().encode(body));
 * assert.equal(capture?.[3].scores.get(1, 0, 1), 0.75);
 * assert.equal(capture?.[3].model, "demo");
 * assert.equal(await extractAttentionFromResponse({ attn_capture_data: null }), null);
 * ```
 */
export async function extractAttentionFromResponse(
  response: ResponseInput,
  options: ExtractOptions = {},
): Promise<AttentionCapture | null> {
  // Workers take tens of milliseconds to load: for a large body, start them
  // now so they load while this thread scans the body.
  const size = isBytes(response) ? response.byteLength : 0;
  const early = !options.pool && size >= EARLY_POOL &&
      (options.workers ?? (decodeWorkersPermitted() ? 1 : 0)) > 0
    ? new DecodePool(options.workers)
    : undefined;
  const pool = options.pool ?? early;
  try {
    // With workers at hand, a body's layers go to them one by one as the
    // scan passes them, so inflating overlaps scanning.
    const streamed: Promise<ScoresArray>[] = [];
    const onLayer = pool && isBytes(response)
      ? (l: PlannedLayer) => {
        const result = pool.decode([layerJob(l)], { dtype: options.dtype })
          .then((
            [scores],
          ) => scores);
        // Awaited below; until then a failure must not count as unhandled.
        result.catch(() => {});
        streamed.push(result);
      }
      : undefined;
    const plan = planExtraction(response, options, onLayer);
    if (!plan) return null;
    if (onLayer) return assemble(plan, await Promise.all(streamed));
    const jobs: DecodeJob[] = plan.layers.map(layerJob);
    const arrays = await decodeScoresBatch(jobs, {
      dtype: options.dtype,
      workers: options.workers,
      pool,
    });
    return assemble(plan, arrays);
  } finally {
    early?.close();
  }
}

/** The decode job of a planned layer: the one per-layer path of every entry point. */
function layerJob(l: PlannedLayer): DecodeJob {
  const where = `layer ${l.layer}`;
  const job: DecodeJob = {
    where,
    shape: l.shape,
    gzip: () => decodeBase64(l.data, where),
  };
  const data = l.data;
  // A streamed span's slices go to a worker as they are, each emptied
  // there once inflated.
  if (data instanceof Base64Span && data.slices) {
    job.gzipSlices = () => takeDecodedSlices(data) ?? [job.gzip()];
  }
  return job;
}

function isBytes(
  response: ResponseInput,
): response is Uint8Array | ArrayBuffer {
  return response instanceof Uint8Array || response instanceof ArrayBuffer;
}

/** Bodies at least this large get their decode workers started early. */
const EARLY_POOL = 32 << 20;

/**
 * {@linkcode extractAttentionFromResponse} on the calling thread, without
 * awaiting: fine for the small captures of a demo or a test; the async
 * function is faster for large ones (it decodes layers in parallel).
 *
 * @param response The parsed response, its body as a string, or its bytes.
 * @param options Output dtype and layer selection.
 * @returns `null` when there is no attention, else the layers by index.
 * @throws {TypeError | RangeError | SyntaxError} As {@linkcode extractAttentionFromResponse}.
 *
 * @example
 * ```ts
 * import { extractAttentionFromResponseSync } from "./extract.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const data = gzipSync(new Uint8Array(new Float16Array([1]).buffer)).toBase64();
 * const capture = extractAttentionFromResponseSync(
 *   { attn_capture_data: [{ layer_idx: 0, data, shape: [1, 1, 1] }] },
 *   { dtype: "float16" },
 * );
 * assert.equal(capture?.[0].scores.dtype, "float16");
 * ```
 */
export function extractAttentionFromResponseSync(
  response: ResponseInput,
  options: Omit<ExtractOptions, "workers" | "pool"> = {},
): AttentionCapture | null {
  const plan = planExtraction(response, options);
  if (!plan) return null;
  const dtype = options.dtype ?? "float32";
  const arrays = plan.layers.map((l) => {
    const where = `layer ${l.layer}`;
    return decodeScores(decodeBase64(l.data, where), l.shape, {
      dtype,
      where,
    });
  });
  return assemble(plan, arrays);
}

/**
 * Parses the input and validates every layer. With `onLayer`, a byte body's
 * layers are handed over as the scan passes them; otherwise they are all
 * validated before anything is decoded.
 */
function planExtraction(
  response: ResponseInput,
  options: ExtractOptions,
  onLayer?: (layer: PlannedLayer) => void,
): Plan | null {
  const planner = new LayerPlanner(options, onLayer);
  const parsed = parseInput(
    response,
    onLayer ? (item, i) => planner.take(item, i) : undefined,
  );
  return planner.finish(parsed);
}

/**
 * Validates layers as they come (during a scan, or from the parsed list at
 * the end), for the whole-body and the streaming paths alike.
 */
class LayerPlanner {
  #wanted: Set<number> | null;
  #onLayer: ((layer: PlannedLayer) => void) | undefined;
  #layers: PlannedLayer[] = [];
  #seen = new Map<number, number>();
  #present = new Set<number>();
  #taken = new Set<number>();
  #dtype: "float32" | "float16";
  #budget: DecodeBudget;

  constructor(
    options: ExtractOptions,
    onLayer?: (layer: PlannedLayer) => void,
  ) {
    this.#wanted = options.layers ? new Set(options.layers) : null;
    this.#onLayer = onLayer;
    this.#dtype = options.dtype ?? "float32";
    this.#budget = new DecodeBudget(
      readMaxBytes(options.maxBytes, "decode the capture"),
      "pass a larger maxBytes",
    );
  }

  /** One entry of `attn_capture_data`, by its index. */
  take(item: unknown, i: number): void {
    this.#taken.add(i);
    const planned = planLayer(item, i, this.#seen, this.#present);
    if (planned && (!this.#wanted || this.#wanted.has(planned.layer))) {
      // Counted before it is handed to a decoder: past the budget, nothing
      // is allocated for it.
      this.#budget.take(
        planned.count,
        this.#dtype,
        `decode layer ${planned.layer}`,
      );
      this.#layers.push(planned);
      this.#onLayer?.(planned);
    }
  }

  /** The parsed response: takes the entries not taken yet, and plans. */
  finish(parsed: Record<string, unknown>): Plan | null {
    const list = parsed.attn_capture_data;
    if (list === undefined || list === null) return null;
    if (!Array.isArray(list)) {
      throw new TypeError(
        `Cannot read attn_capture_data: expected a list of layers, got ${
          describe(list)
        }; pass the response exactly as the server sent it`,
      );
    }
    if (list.length === 0) return null;
    // Entries taken during the scan are not taken twice; the scan reports
    // objects only, so anything else in the list is checked here.
    list.forEach((item, i) => {
      if (!this.#taken.has(i)) this.take(item, i);
    });
    if (this.#wanted) {
      for (const l of this.#wanted) {
        if (!this.#present.has(l)) {
          warn(
            `Layer ${l} was requested but the response has no such layer; the server leaves out layers it does not have, so check the layer index`,
          );
        }
      }
    }
    const model = typeof parsed.model === "string" ? parsed.model : null;
    // As the reference: a response whose layers were all skipped has none.
    return this.#layers.length ? { model, layers: this.#layers } : null;
  }
}

function parseInput(
  response: ResponseInput,
  onCaptureEntry?: (entry: unknown, index: number) => void,
): Record<string, unknown> {
  let parsed: unknown = response;
  if (response instanceof ArrayBuffer) {
    parsed = parseResponseBytes(new Uint8Array(response), { onCaptureEntry });
  } else if (response instanceof Uint8Array) {
    parsed = parseResponseBytes(response, { onCaptureEntry });
  } else if (typeof response === "string") {
    try {
      parsed = JSON.parse(response);
    } catch (error) {
      throw new SyntaxError(
        `Cannot parse the response body: ${
          (error as Error).message
        }; pass the body exactly as the server sent it`,
      );
    }
  }
  return asResponseObject(parsed);
}

function asResponseObject(parsed: unknown): Record<string, unknown> {
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new TypeError(
      `Cannot read the response: expected a JSON object, got ${
        describe(parsed)
      }; pass the parsed response, its body text or its bytes`,
    );
  }
  return parsed as Record<string, unknown>;
}

/** Validates one list entry; `null` for an entry skipped as the reference skips it. */
function planLayer(
  item: unknown,
  i: number,
  seen: Map<number, number>,
  present: Set<number>,
): PlannedLayer | null {
  const entry = `attn_capture_data[${i}]`;
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new TypeError(
      `Cannot read ${entry}: expected a layer object, got ${
        describe(item)
      }; check the server's response`,
    );
  }
  const raw = item as Record<string, unknown>;
  const li = raw.layer_idx;
  const validIndex = Number.isInteger(li) && (li as number) >= 0;
  const { data, shape } = raw;
  // The reference skips entries whose data or shape is missing or empty.
  const noData = data === undefined || data === null || data === "" ||
    (data instanceof Base64Span && data.length === 0);
  const noShape = shape === undefined || shape === null ||
    (Array.isArray(shape) && shape.length === 0);
  if (noData || noShape) {
    if (validIndex) present.add(li as number);
    warn(
      `Skipped ${validIndex ? `layer ${li}` : entry}: it has no ${
        noData ? "data" : "shape"
      }, so it is left out as the reference client leaves it out; the server captured nothing usable for it`,
    );
    return null;
  }
  if (!validIndex) {
    throw new TypeError(
      `Cannot read ${entry}: layer_idx is ${
        li === undefined ? "missing" : describe(li)
      }, not a non-negative integer; check the server's response`,
    );
  }
  const layer = li as number;
  if (seen.has(layer)) {
    throw new TypeError(
      `Cannot read ${entry}: layer ${layer} appears twice (also at attn_capture_data[${
        seen.get(layer)
      }]); check the server's response`,
    );
  }
  seen.set(layer, i);
  present.add(layer);
  if (typeof data !== "string" && !(data instanceof Base64Span)) {
    throw new TypeError(
      `Cannot decode layer ${layer}: data is ${
        describe(data)
      }, not a base64 string; check the server's response`,
    );
  }
  if (
    Array.isArray(shape) && shape.length === 3 && shape[0] === 0 &&
    shape.slice(1).every((n) => Number.isInteger(n) && n > 0)
  ) {
    // vLLM slices rows with attn_capture_prefix as Python does: a range past
    // the last row leaves none.
    warn(
      `Skipped layer ${layer}: it holds no query rows (shape [${shape}]); the requested attn_capture_prefix starts past the last row, so ask for rows below token_meta.total_len`,
    );
    return null;
  }
  // Evidence before allocation: an exact count, and a payload that could
  // inflate to it (the base64 length bounds the gzip size from above).
  const count = checkWireLayer(
    shape,
    data instanceof Base64Span && data.decodedLength !== null
      ? data.decodedLength
      : base64DecodedBound(data.length),
    { action: `decode layer ${layer}` },
  );
  const dtype = raw.dtype;
  if (
    dtype !== undefined && dtype !== null && dtype !== "torch.float16" &&
    dtype !== "float16"
  ) {
    throw new TypeError(
      `Cannot decode layer ${layer}: dtype ${
        JSON.stringify(dtype)
      } is not float16; the wire format carries float16 scores only, so check the server version`,
    );
  }
  const [tq, h, tk] = shape as number[];
  return {
    layer,
    shape: [tq, h, tk],
    count,
    data,
    tokenMeta: TokenMeta.from(raw.token_meta, layer),
    layerMeta: readLayerMeta(raw.layer_meta, `layer ${layer}`, h),
  };
}

function assemble(plan: Plan, arrays: ScoresArray[]): AttentionCapture {
  const capture: AttentionCapture = {};
  plan.layers.forEach((l, i) => {
    const scores = new AttentionScores(
      arrays[i],
      l.shape,
      positionsOf(l),
    );
    checkRowSums(scores, l.layer);
    capture[l.layer] = new AttentionLayer({
      layer: l.layer,
      model: plan.model,
      scores,
      tokenMeta: l.tokenMeta,
      layerMeta: l.layerMeta,
    });
  });
  // The sanity report on a sample of rows (a full pass costs about as much
  // as decoding); row sums are already warned above in the decoder's words.
  if (plan.layers.length > 0) {
    warnFindings(checkCapture(capture, { sampleRows: 64 }), "response", {
      skip: ["row-sum"],
    });
  }
  return capture;
}

/**
 * Row positions: `token_idx` when it has one entry per row, keys offset by
 * `total_len - Tk` when positive (missing rows are a leading prefix).
 */
function positionsOf(
  l: PlannedLayer,
): { queryPositions?: readonly number[]; keyOffset: number } {
  const [tq, , tk] = l.shape;
  const meta = l.tokenMeta;
  const keyOffset = Math.max(0, meta.totalLen - tk);
  if (meta.tokenIdx && meta.tokenIdx.length !== tq) {
    warn(
      `Layer ${l.layer}: token_meta.token_idx has ${meta.tokenIdx.length} entries for ${tq} rows, so it is ignored and rows are placed at the end of the ${
        meta.totalLen || tk
      } positions; check the server's response`,
    );
    return { keyOffset };
  }
  return meta.tokenIdx
    ? { queryPositions: meta.tokenIdx, keyOffset }
    : { keyOffset };
}

/** Rows sampled per head by {@linkcode checkRowSums}. */
const SAMPLED_ROWS = 3;

/**
 * Warns when sampled rows (first, middle, last query of every head) do not
 * sum to about 1; a full check would read every value again.
 */
function checkRowSums(scores: AttentionScores, layer: number): void {
  const [tq, heads] = scores.shape;
  const rows = new Set(
    Array.from(
      { length: SAMPLED_ROWS },
      (_, i) => Math.round(i * (tq - 1) / (SAMPLED_ROWS - 1)),
    ),
  );
  for (const q of rows) {
    for (let h = 0; h < heads; h++) {
      const row = scores.row(q, h);
      let sum = 0;
      for (let k = 0; k < row.length; k++) sum += row[k];
      // float16 rounding leaves sums within about 1e-3 of 1 at T=4096.
      if (!(Math.abs(sum - 1) <= 0.01)) {
        warn(
          `Layer ${layer}: row ${q} of head ${h} sums to ${
            sum.toPrecision(4)
          }, not 1; these may not be softmax probabilities (or the server buffered no query for that row)`,
        );
        return;
      }
    }
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Base64Span) return "a string";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.slice(0, 40))}`;
  }
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

/** Options for {@linkcode readAttentionStream}. */
export interface StreamExtractOptions extends ExtractOptions {
  /**
   * Stops reading and decoding; the promise then rejects with a
   * `DOMException` named as the signal's reason (`AbortError`, or
   * `TimeoutError` for `AbortSignal.timeout`), and the decode workers end.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Receives progress: phase, bytes (of `totalBytes`), layers decoded of
   * those announced so far.
   * @default {undefined}
   */
  onProgress?: OnProgress;
  /**
   * The `performance.now()` at which the work began, when earlier than this
   * call (a client that reported `waiting` while the headers came): the
   * progress clock goes on from there instead of restarting.
   * @default {undefined} now
   */
  since?: number;
  /**
   * The body's size, for progress.
   * @default {undefined} a `Response`'s `Content-Length`, else unknown
   */
  totalBytes?: number;
  /**
   * Called with each chunk as it arrives, before it is scanned (to save or
   * keep the raw body); awaited, so a slow writer slows the reading.
   * @default {undefined}
   */
  onChunk?: (chunk: Uint8Array) => void | Promise<void>;
}

/** What {@linkcode readAttentionStream} gives. */
export interface StreamedResponse {
  /** The parsed response, each large `data` as a {@linkcode Base64Span}. */
  response: Record<string, unknown>;
  /** The decoded layers, or `null` when the response carries no attention. */
  attention: AttentionCapture | null;
}

/** Layers announced before this many output bytes decode on this thread. */
const STREAM_WORKER_THRESHOLD = 16 << 20;

/**
 * Reads a response body as it arrives and decodes each layer as soon as its
 * `data` string is complete, on worker threads for large captures, while
 * the rest is still arriving. Only the layers not yet decoded are held, not
 * the body: each layer's payload is kept in 2 MiB slices that its worker
 * empties as it inflates them, so the compressed bytes shrink while the
 * output grows, and peak memory is the decoded output plus a small window
 * (at most one waiting layer per worker; reading pauses when decoding falls
 * behind): 1.02-1.14x the output on the 373 MB and 561 MiB bodies of
 * `deno task bench:large`.
 *
 * @param source A `Response` (from your own `fetch`) or its body stream.
 * @param options As {@linkcode extractAttentionFromResponse}, plus signal,
 *   progress and a chunk tap.
 * @returns The parsed response and the decoded attention.
 * @throws {TypeError | RangeError | SyntaxError} As {@linkcode extractAttentionFromResponse}.
 * @throws {Error} When a `Response` has an error status.
 * @throws {DOMException} `AbortError` (or `TimeoutError`) when `signal` aborts.
 *
 * @example
 * ```ts
 * import { readAttentionStream } from "./extract.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const data = gzipSync(new Uint8Array(new Float16Array([1, 0, 0.5, 0.5]).buffer)).toBase64();
 * const body = JSON.stringify({ model: "m", attn_capture_data: [{ layer_idx: 0, data, shape: [2, 1, 2] }] });
 * const phases: string[] = [];
 * const { response, attention } = await readAttentionStream(new Response(body), {
 *   onProgress: (e) => phases.push(e.phase),
 * });
 * assert.equal(response.model, "m");
 * assert.equal(attention?.[0].scores.get(1, 0, 1), 0.5);
 * assert.equal(phases.at(-1), "done");
 * ```
 */
export async function readAttentionStream(
  source: ReadableStream<Uint8Array> | Response,
  options: StreamExtractOptions = {},
): Promise<StreamedResponse> {
  const { signal, dtype } = options;
  let stream: ReadableStream<Uint8Array>;
  let total = options.totalBytes ?? null;
  if (source instanceof Response) {
    if (!source.ok) {
      const said = (await source.text().catch(() => "")).slice(0, 300);
      throw new Error(
        `Cannot read the response: the server answered ${source.status}${
          said ? `: ${said}` : ""
        }; check the request`,
      );
    }
    const length = Number(source.headers.get("content-length"));
    if (total === null && length > 0) total = length;
    stream = source.body ?? new Response("").body!;
  } else stream = source;
  if (signal?.aborted) throw abortError(signal);
  const tracker = new ProgressTracker(options.onProgress, {
    totalBytes: total,
    since: options.since,
  });
  const workersAllowed = (options.workers ?? 1) > 0 &&
    decodeWorkersPermitted();
  let pool = options.pool;
  let own: DecodePool | undefined;
  // A large body known in advance: the workers load while it arrives.
  if (!pool && workersAllowed && (total ?? 0) >= EARLY_POOL) {
    pool = own = new DecodePool(options.workers);
  }
  let announced = 0;
  const results: Promise<ScoresArray>[] = [];
  // Layers handed to the pool whose gzip bytes no worker has taken yet.
  let queued = 0;
  let wake: (() => void) | null = null;
  const planner = new LayerPlanner(options, (l) => {
    tracker.announced();
    announced += l.shape[0] * l.shape[1] * l.shape[2] * 2;
    if (
      !pool && workersAllowed && announced >= STREAM_WORKER_THRESHOLD
    ) {
      pool = own = new DecodePool(options.workers);
    }
    const job = layerJob(l);
    let result: Promise<ScoresArray>;
    if (pool) {
      queued++;
      const taken = () => {
        queued--;
        wake?.();
      };
      const { gzip, gzipSlices } = job;
      job.gzip = () => {
        taken();
        return gzip();
      };
      if (gzipSlices) {
        job.gzipSlices = () => {
          taken();
          return gzipSlices();
        };
      }
      result = pool.decode([job], { dtype }).then(([scores]) => scores);
    } else {
      // Small layers: decoding here costs less than a worker's start-up.
      result = Promise.resolve(
        decodeScores(job.gzipSlices?.() ?? job.gzip(), job.shape, {
          dtype,
          where: job.where,
          releaseInput: true,
        }),
      );
    }
    result.then(() => tracker.finished(), () => {});
    results.push(result);
  });
  const scanner = new ResponseScanner({
    onCaptureEntry: (item, i) => planner.take(item, i),
  });
  const reader = stream.getReader();
  let aborted: () => void = () => {};
  const abortion = new Promise<never>((_, reject) => {
    aborted = () => {
      reject(abortError(signal!));
      reader.cancel(signal!.reason).catch(() => {});
      own?.close();
      wake?.();
    };
  });
  abortion.catch(() => {});
  signal?.addEventListener("abort", aborted, { once: true });
  try {
    for (;;) {
      while (pool && queued > pool.size && !signal?.aborted) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
      // Not raced against `abortion`: a race per chunk would leave a
      // reaction on that long-lived promise holding each chunk (the whole
      // body, measured in bench/large_response.ts). An abort cancels the
      // reader instead, which ends this read.
      const { done, value } = await reader.read();
      if (signal?.aborted) throw abortError(signal);
      if (done) break;
      tracker.received(value.length);
      await options.onChunk?.(value);
      scanner.push(value);
    }
    tracker.decoding();
    const response = asResponseObject(scanner.finish());
    const plan = planner.finish(response);
    const arrays = await Promise.race([Promise.all(results), abortion]);
    const attention = plan ? assemble(plan, arrays) : null;
    tracker.done();
    return { response, attention };
  } catch (error) {
    reader.cancel().catch(() => {});
    if (signal?.aborted) throw abortError(signal);
    throw error;
  } finally {
    signal?.removeEventListener("abort", aborted);
    for (const r of results) r.catch(() => {});
    own?.close();
  }
}

/**
 * {@linkcode readAttentionStream} for the attention alone: the streaming
 * counterpart of {@linkcode extractAttentionFromResponse}, for a body you
 * fetch yourself.
 *
 * @param source A `Response` or its body stream.
 * @param options As {@linkcode readAttentionStream}.
 * @returns `null` when there is no attention, else the layers by index.
 *
 * @example
 * ```ts
 * import { extractAttentionFromStream } from "./extract.ts";
 * import { gzipSync } from "node:zlib";
 * import assert from "node:assert/strict";
 *
 * const data = gzipSync(new Uint8Array(new Float16Array([1]).buffer)).toBase64();
 * const body = JSON.stringify({ attn_capture_data: [{ layer_idx: 2, data, shape: [1, 1, 1] }] });
 * const capture = await extractAttentionFromStream(new Blob([body]).stream());
 * assert.equal(capture?.[2].scores.get(0, 0, 0), 1);
 * ```
 */
export async function extractAttentionFromStream(
  source: ReadableStream<Uint8Array> | Response,
  options: StreamExtractOptions = {},
): Promise<AttentionCapture | null> {
  return (await readAttentionStream(source, options)).attention;
}

/**
 * The error an aborted read rejects with: a `DOMException` named after the
 * signal's reason (`AbortError`, or `TimeoutError`).
 */
function abortError(signal: AbortSignal): DOMException {
  const reason = signal.reason;
  const name = reason instanceof DOMException ? reason.name : "AbortError";
  const why = reason instanceof Error ? reason.message : String(reason);
  return new DOMException(
    `Cannot read the response: ${
      name === "TimeoutError" ? "it timed out" : "it was aborted"
    } (${why}); nothing was decoded, so retry or raise the timeout`,
    name,
  );
}
