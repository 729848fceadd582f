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

import { Base64Span, decodeBase64 } from "./base64.ts";
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
import { warn } from "../../warn.ts";
import { parseResponseBytes } from "./wire.ts";
import { checkCapture, warnFindings } from "../../analysis/check_capture.ts";

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
}

/** A layer validated and ready to decode. */
interface PlannedLayer {
  layer: number;
  shape: ScoresShape;
  data: string | Base64Span;
  tokenMeta: TokenMeta;
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
 * @throws {RangeError} On a payload that inflates to the wrong size.
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
        const where = `layer ${l.layer}`;
        const job = {
          where,
          shape: l.shape,
          gzip: () => decodeBase64(l.data, where),
        };
        const result = pool.decode([job], { dtype: options.dtype }).then((
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
    const jobs: DecodeJob[] = plan.layers.map((l) => ({
      where: `layer ${l.layer}`,
      shape: l.shape,
      gzip: () => decodeBase64(l.data, `layer ${l.layer}`),
    }));
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

/** Parses the input and validates every layer before anything is decoded. */
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
  const wanted = options.layers ? new Set(options.layers) : null;
  const layers: PlannedLayer[] = [];
  const seen = new Map<number, number>();
  const present = new Set<number>();
  const taken = new Set<number>();
  const take = (item: unknown, i: number) => {
    taken.add(i);
    const planned = planLayer(item, i, seen, present);
    if (planned && (!wanted || wanted.has(planned.layer))) {
      layers.push(planned);
      onLayer?.(planned);
    }
  };
  const parsed = parseInput(response, onLayer ? take : undefined);
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
    if (!taken.has(i)) take(item, i);
  });
  if (wanted) {
    for (const l of wanted) {
      if (!present.has(l)) {
        warn(
          `Layer ${l} was requested but the response has no such layer; the server leaves out layers it does not have, so check the layer index`,
        );
      }
    }
  }
  const model = typeof parsed.model === "string" ? parsed.model : null;
  // As the reference: a response whose layers were all skipped has none.
  return layers.length ? { model, layers } : null;
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
    !Array.isArray(shape) || shape.length !== 3 ||
    !shape.every((n) => Number.isInteger(n) && n > 0)
  ) {
    throw new TypeError(
      `Cannot decode layer ${layer}: shape ${
        JSON.stringify(shape)
      } is not three positive integers [Tq, H, Tk]; check the server's response`,
    );
  }
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
  return {
    layer,
    shape: [shape[0], shape[1], shape[2]],
    data,
    tokenMeta: TokenMeta.from(raw.token_meta, layer),
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
