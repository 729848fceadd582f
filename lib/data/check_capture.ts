/**
 * A sanity report for a capture from any source, so that a wrong capture is
 * caught rather than drawn: rows that do not sum to 1, weight on future keys
 * (no causal mask applied; not looked for in a capture declared
 * non-causal), NaN or negative values, rows that are all zero,
 * and a layer whose heads are all identical (one head broadcast, or the
 * head axis mixed up).
 *
 * @module
 */

import { type CaptureLike, normalizeCapture } from "./capture_input.ts";
import type { AttentionScores } from "./scores.ts";
import { warn } from "../warn.ts";

/** The defects {@linkcode checkCapture} looks for. */
export type FindingKind =
  | "row-sum"
  | "future-keys"
  | "nan"
  | "negative"
  | "zero-rows"
  | "identical-heads";

/** One defect in one layer. */
export interface CaptureFinding {
  /** What is wrong. */
  kind: FindingKind;
  /** The layer. */
  layer: number;
  /** How many (query, head) rows show it (every row for `identical-heads`). */
  rows: number;
  /** Rows checked in the layer (queries × heads). */
  of: number;
  /** The first row showing it, as query row and head. */
  first: { row: number; head: number };
  /** One sentence for people. */
  message: string;
}

/** Findings per layer index; a clean layer maps to an empty list. */
export type CaptureFindings = Record<number, CaptureFinding[]>;

/** Options for {@linkcode checkCapture}. */
export interface CheckCaptureOptions {
  /**
   * How far a row's sum may be from 1. float16 rounding leaves sums within
   * about 1e-3 of 1 at 4,096 keys.
   * @default {0.01}
   */
  tolerance?: number;
  /**
   * Check only this many query rows, evenly spaced (first and last
   * included), for a quick look at a large capture; `undefined` checks
   * every row.
   * @default {undefined}
   */
  sampleRows?: number;
  /**
   * Whether the attention is causal. A non-causal capture (an encoder, a
   * bidirectional block such as Gemma 3's image tokens) may weigh keys
   * after the query, so no `future-keys` finding is made for it.
   * @default {undefined} each layer's `layerMeta.causal`, else `true`
   */
  causal?: boolean;
}

const DESCRIPTIONS: Record<FindingKind, string> = {
  "row-sum": "rows that do not sum to 1",
  "future-keys": "weight on future keys (no causal mask applied)",
  nan: "NaN values",
  negative: "negative values",
  "zero-rows": "rows that are all zero",
  "identical-heads": "heads that are all identical",
};

const ADVICE: Record<FindingKind, string> = {
  "row-sum":
    "these may not be softmax probabilities (logits, or a renormalized slice)",
  "future-keys":
    "the model attended bidirectionally, or query and key axes are swapped (check the layout)",
  nan: "the capture overflowed or is corrupt",
  negative: "these are not probabilities (logits or differences?)",
  "zero-rows": "rows were never written (padding, or missing query buffers)",
  "identical-heads":
    "one head was broadcast, or the head axis is not where the layout says",
};

/** Findings recorded per scores object, for chart captions. */
const recorded = new WeakMap<AttentionScores, CaptureFinding[]>();

/**
 * Checks every layer of a capture and returns the findings per layer. The
 * findings are also remembered with each layer's scores, so charts drawn
 * from them say so in their captions.
 *
 * @param capture What a decoder or loader returns (a layer record or `{ attention, ... }`).
 * @param options The row-sum tolerance.
 * @returns Findings keyed by layer index; clean layers have empty lists.
 * @throws {TypeError} When the capture holds no layers.
 *
 * @example A planted defect is caught; a clean layer is silent
 * ```ts
 * import { checkCapture } from "./check_capture.ts";
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = (i: number, values: number[]) =>
 *   new AttentionLayer({
 *     layer: i,
 *     model: null,
 *     scores: new AttentionScores(new Float32Array(values), [2, 1, 2]),
 *     tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
 *   });
 * const findings = checkCapture({ 0: layer(0, [1, 0, 0.5, 0.5]), 1: layer(1, [0.5, 0.5, 0.5, 0.5]) });
 * assert.deepEqual(findings[0], []);
 * assert.deepEqual(findings[1].map((f) => f.kind), ["future-keys"]);
 * ```
 *
 * @example A bidirectional (encoder) capture may weigh later keys
 * ```ts
 * import { checkCapture } from "./check_capture.ts";
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 0,
 *   model: null,
 *   scores: new AttentionScores(new Float32Array([0.5, 0.5, 0.5, 0.5]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
 *   layerMeta: { attention: "full_attention", slidingWindow: null, numKeyValueHeads: 1, causal: false },
 * });
 * assert.deepEqual(checkCapture({ 0: layer })[0], []);
 * ```
 */
export function checkCapture(
  capture: CaptureLike,
  options: CheckCaptureOptions = {},
): CaptureFindings {
  const tolerance = options.tolerance ?? 0.01;
  const out: CaptureFindings = {};
  for (const layer of normalizeCapture(capture, "check capture").layers) {
    const causal = options.causal ?? layer.layerMeta?.causal ?? true;
    const findings = checkScores(
      layer.scores,
      layer.layer,
      tolerance,
      causal,
      options,
    );
    recorded.set(layer.scores, findings);
    out[layer.layer] = findings;
  }
  return out;
}

/** Options for {@linkcode warnFindings}. */
export interface WarnFindingsOptions {
  /**
   * Kinds not to warn about (already reported another way).
   * @default {[]}
   */
  skip?: readonly FindingKind[];
}

/**
 * Reports the findings through the warning handler, one warning per kind.
 *
 * @param findings What {@linkcode checkCapture} returned.
 * @param source The file or response, named in the warning.
 * @param options Kinds to leave out.
 * @returns How many warnings were raised.
 *
 * @example
 * ```ts
 * import { warnFindings } from "./check_capture.ts";
 * import { collectWarnings } from "../warn.ts";
 * import assert from "node:assert/strict";
 *
 * const finding = {
 *   kind: "nan" as const, layer: 3, rows: 1, of: 4, first: { row: 0, head: 0 }, message: "",
 * };
 * const { warnings } = collectWarnings(() => warnFindings({ 3: [finding] }, "a.npz"));
 * assert.match(warnings[0], /^a\.npz: NaN values in layer 3 \(1 of 4 rows; first: row 0 of head 0\)/);
 * ```
 */
export function warnFindings(
  findings: CaptureFindings,
  source: string,
  options: WarnFindingsOptions = {},
): number {
  const byKind = new Map<FindingKind, CaptureFinding[]>();
  for (const list of Object.values(findings)) {
    for (const f of list) {
      if (options.skip?.includes(f.kind)) continue;
      byKind.set(f.kind, [...byKind.get(f.kind) ?? [], f]);
    }
  }
  for (const [kind, list] of byKind) {
    const layers = list.map((f) => f.layer);
    const f = list[0];
    warn(
      `${source}: ${DESCRIPTIONS[kind]} in layer${
        layers.length > 1 ? "s" : ""
      } ${
        layers.join(", ")
      } (${f.rows} of ${f.of} rows; first: row ${f.first.row} of head ${f.first.head}); ${
        ADVICE[kind]
      }`,
    );
  }
  return byKind.size;
}

/**
 * The caption line for a chart of scores with findings, or `null` when the
 * scores were checked clean or never checked.
 *
 * @param scores A layer's scores.
 * @returns E.g. `"Check: rows that do not sum to 1; NaN values (checkCapture)."`.
 *
 * @example
 * ```ts
 * import { checkCapture, findingsNote } from "./check_capture.ts";
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([0.5, 0.4]), [1, 1, 2]);
 * assert.equal(findingsNote(scores), null);
 * checkCapture({ 0: new AttentionLayer({ layer: 0, model: null, scores, tokenMeta: TokenMeta.from({}) }) });
 * assert.equal(findingsNote(scores), "Check: rows that do not sum to 1 (see checkCapture).");
 * ```
 */
export function findingsNote(scores: AttentionScores): string | null {
  const findings = recorded.get(scores);
  if (!findings || findings.length === 0) return null;
  return `Check: ${
    findings.map((f) => DESCRIPTIONS[f.kind]).join("; ")
  } (see checkCapture).`;
}

/** One pass over a layer's rows, then the head comparison. */
function checkScores(
  scores: AttentionScores,
  layer: number,
  tolerance: number,
  causal: boolean,
  options: CheckCaptureOptions,
): CaptureFinding[] {
  const [tq, heads, tk] = scores.shape;
  const data = scores.data;
  const sample = options.sampleRows;
  const of = (sample === undefined ? tq : Math.min(tq, sample)) * heads;
  const counts: Partial<Record<FindingKind, number>> = {};
  const firsts: Partial<Record<FindingKind, { row: number; head: number }>> =
    {};
  const sums: Partial<Record<FindingKind, number>> = {};
  const note = (kind: FindingKind, row: number, head: number, sum = 0) => {
    if (counts[kind] === undefined) {
      counts[kind] = 0;
      firsts[kind] = { row, head };
      sums[kind] = sum;
    }
    counts[kind]!++;
  };
  const rows = sampledRows(tq, sample);
  for (const q of rows) {
    // Keys at or before the query's own position are allowed (every key
    // when the attention is not causal).
    const allowed = causal
      ? Math.max(
        0,
        Math.min(tk, scores.queryPositions[q] - scores.keyOffset + 1),
      )
      : tk;
    for (let h = 0; h < heads; h++) {
      const base = (q * heads + h) * tk;
      // Two tight loops; NaN propagates into the sums, so it needs no test
      // of its own per value.
      let sum = 0;
      let min = 0;
      for (let k = base, end = base + allowed; k < end; k++) {
        const v = data[k];
        sum += v;
        if (v < min) min = v;
      }
      let future = 0;
      for (let k = base + allowed, end = base + tk; k < end; k++) {
        const v = data[k];
        future += v < 0 ? -v : v;
        if (v < min) min = v;
      }
      const nan = sum !== sum || future !== future;
      sum += future;
      if (nan) note("nan", q, h);
      if (min < 0) note("negative", q, h);
      if (future > 1e-6) note("future-keys", q, h);
      if (sum === 0 && !nan) note("zero-rows", q, h);
      else if (!nan && !(Math.abs(sum - 1) <= tolerance)) {
        note("row-sum", q, h, sum);
      }
    }
  }
  // With one key per row every softmax is [1]: heads agree trivially.
  const informative = scores.queryPositions.some((p) =>
    p - scores.keyOffset >= 1
  );
  if (
    heads > 1 && tk > 1 && informative &&
    identicalHeads(data, rows, heads, tk)
  ) {
    counts["identical-heads"] = of;
    firsts["identical-heads"] = { row: 0, head: 1 };
  }
  const order: FindingKind[] = [
    "nan",
    "negative",
    "zero-rows",
    "row-sum",
    "future-keys",
    "identical-heads",
  ];
  return order.filter((kind) => counts[kind] !== undefined).map((kind) => {
    const first = firsts[kind]!;
    const rows = counts[kind]!;
    const detail = kind === "row-sum"
      ? `, e.g. row ${first.row} of head ${first.head} sums to ${
        sums[kind]!.toPrecision(4)
      }`
      : `, first: row ${first.row} of head ${first.head}`;
    return {
      kind,
      layer,
      rows,
      of,
      first,
      message: `Layer ${layer}: ${DESCRIPTIONS[kind]} (${rows} of ${of} rows${
        kind === "identical-heads" ? "" : detail
      }); ${ADVICE[kind]}`,
    };
  });
}

/** The query rows to check: all, or `sample` evenly spaced. */
function sampledRows(tq: number, sample: number | undefined): number[] {
  if (sample === undefined || sample >= tq) {
    return Array.from({ length: tq }, (_, i) => i);
  }
  const n = Math.max(1, Math.floor(sample));
  if (n === 1) return [tq - 1];
  return [
    ...new Set(
      Array.from({ length: n }, (_, i) => Math.round(i * (tq - 1) / (n - 1))),
    ),
  ];
}

/** Whether every head equals head 0 on every checked row (to 1e-6). */
function identicalHeads(
  data: ArrayLike<number>,
  rows: readonly number[],
  heads: number,
  tk: number,
): boolean {
  for (const q of rows) {
    const row0 = q * heads * tk;
    for (let h = 1; h < heads; h++) {
      const base = row0 + h * tk;
      for (let k = 0; k < tk; k++) {
        if (!(Math.abs(data[base + k] - data[row0 + k]) <= 1e-6)) return false;
      }
    }
  }
  return true;
}
