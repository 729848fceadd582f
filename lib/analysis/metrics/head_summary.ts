/**
 * `headSummary`: every head metric for every captured layer and head, on one
 * capture or averaged over several, as an object that shows itself in
 * Jupyter as one layer x head heatmap per metric.
 *
 * @module
 */

import {
  type CaptureLike,
  normalizeCapture,
} from "../../data/capture_input.ts";
import {
  displayBundle,
  JUPYTER_DISPLAY,
  type MimeBundle,
} from "../../jupyter.ts";
import type { AttentionLayer } from "../../data/layer.ts";
import { AttentionScores } from "../../data/scores.ts";
import { warn } from "../../warn.ts";
import {
  type ProgressOptions,
  progressReporter,
  ProgressTracker,
} from "../../progress.ts";
import {
  type QueryRange,
  type TokenSequence,
  tokensFromLabels,
} from "./_common.ts";
import { detectionScores, type ErrorMeasure } from "./detection.ts";
import { rowPass } from "./_row_pass.ts";
import { selectRows } from "./_common.ts";
import { entropyFromPass, maxWeightFromPass, sinkMass } from "./row_stats.ts";

/** The metrics a {@linkcode HeadSummary} holds. */
export type HeadMetricName =
  | "previousToken"
  | "duplicateToken"
  | "induction"
  | "sinkMass"
  | "entropy"
  | "maxWeight";

/**
 * Every metric name, in display order.
 *
 * @example
 * ```ts
 * import { HEAD_METRICS } from "./head_summary.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(HEAD_METRICS.includes("induction"));
 * assert.ok(Object.isFrozen(HEAD_METRICS));
 * ```
 */
export const HEAD_METRICS: readonly HeadMetricName[] = Object.freeze([
  "previousToken",
  "duplicateToken",
  "induction",
  "sinkMass",
  "entropy",
  "maxWeight",
]);

/**
 * Options for {@linkcode headSummary}. Progress: `decoding` with layers
 * done of layers (times captures), then `done`; the Jupyter bar shows only
 * when the summary takes over about a second.
 */
export interface HeadSummaryOptions extends ProgressOptions {
  /**
   * One token id or label per absolute position, for the duplicate-token and
   * induction scores (single capture only).
   * @default {the capture's labels; without any, those two scores are left out with a warning}
   */
  tokens?: TokenSequence;
  /** Detection-score error measure. @default {"mul"} */
  errorMeasure?: ErrorMeasure;
  /** Leave attention to position 0 out of the detection scores. @default {false} */
  excludeBos?: boolean;
  /** Leave attention to the query itself out of the detection scores. @default {false} */
  excludeCurrentToken?: boolean;
  /** Absolute query positions counted by every metric. @default {every captured row} */
  queryRange?: QueryRange;
  /** Key position whose received attention is the sink mass. @default {0} */
  sinkPosition?: number;
  /** Normalize entropy by `ln(i + 1)`. @default {false} */
  normalizeEntropy?: boolean;
  /**
   * A head whose own attention heatmap the display adds below the summary.
   * @default {none}
   */
  focus?: { layer: number; head: number };
}

/** One head's value of one metric. */
export interface HeadValue {
  /** The layer index. */
  layer: number;
  /** The head index. */
  head: number;
  /** The metric value. */
  value: number;
}

/**
 * Metric values per layer and head, with the layers they came from (for the
 * drill-down heatmap).
 *
 * @example
 * ```ts
 * import { HeadSummary } from "./head_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const summary = new HeadSummary({
 *   layers: [0, 1],
 *   metrics: { maxWeight: [new Float64Array([0.2, 0.9]), new Float64Array([0.5, 0.1])] },
 * });
 * assert.equal(summary.get("maxWeight", 0, 1), 0.9);
 * assert.deepEqual(summary.top("maxWeight", 1), [{ layer: 0, head: 1, value: 0.9 }]);
 * ```
 */
export class HeadSummary {
  /** Layer indices, ascending; `metrics[name][n]` belongs to `layers[n]`. */
  readonly layers: readonly number[];
  /** The largest head count over the layers. */
  readonly numHeads: number;
  /** Per metric, one array of per-head values per layer. */
  readonly metrics: Readonly<
    Partial<Record<HeadMetricName, readonly Float64Array[]>>
  >;
  /** How many captures were averaged. */
  readonly captureCount: number;
  /** The first capture's layers, for {@linkcode HeadSummary.headScores}. */
  readonly sourceLayers: readonly AttentionLayer[];
  /** The head shown in detail by the display, if any. */
  readonly focus: { layer: number; head: number } | null;
  /** The first capture's token labels, for chart axes, or `null`. */
  readonly labels: readonly string[] | null;

  /**
   * Groups computed values; most callers use {@linkcode headSummary}.
   *
   * @param parts Layers, metric arrays and context.
   *
   * @example
   * ```ts
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [3], metrics: { entropy: [new Float64Array([1, 2])] } });
   * assert.equal(s.numHeads, 2);
   * ```
   */
  constructor(parts: {
    layers: readonly number[];
    metrics: Partial<Record<HeadMetricName, readonly Float64Array[]>>;
    captureCount?: number;
    sourceLayers?: readonly AttentionLayer[];
    focus?: { layer: number; head: number } | null;
    labels?: readonly string[] | null;
  }) {
    this.layers = Object.freeze([...parts.layers]);
    this.metrics = parts.metrics;
    let heads = 0;
    for (const arrays of Object.values(parts.metrics)) {
      for (const a of arrays ?? []) heads = Math.max(heads, a.length);
    }
    this.numHeads = heads;
    this.captureCount = parts.captureCount ?? 1;
    this.sourceLayers = parts.sourceLayers ?? [];
    this.focus = parts.focus ?? null;
    this.labels = parts.labels ?? null;
  }

  /**
   * One value.
   *
   * @param metric The metric.
   * @param layer The layer index (as captured, not its position in `layers`).
   * @param head The head.
   * @returns The value.
   * @throws {RangeError} When the metric, layer or head is not in the summary.
   *
   * @example
   * ```ts
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [5], metrics: { sinkMass: [new Float64Array([0.7])] } });
   * assert.equal(s.get("sinkMass", 5, 0), 0.7);
   * assert.throws(() => s.get("sinkMass", 4, 0), /layer 4 is not in the summary/);
   * ```
   */
  get(metric: HeadMetricName, layer: number, head: number): number {
    const values = this.#values(metric, layer);
    if (!Number.isInteger(head) || head < 0 || head >= values.length) {
      throw new RangeError(
        `Cannot read ${metric} of layer ${layer} head ${head}: the layer has heads 0 to ${
          values.length - 1
        }`,
      );
    }
    return values[head];
  }

  /**
   * The heads with the highest values of a metric (NaN values skipped).
   *
   * @param metric The metric.
   * @param k How many heads.
   * @returns Up to `k` heads, highest first.
   *
   * @example
   * ```ts
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [0], metrics: { induction: [new Float64Array([0.1, 0.8, 0.3])] } });
   * assert.deepEqual(s.top("induction", 2).map((v) => v.head), [1, 2]);
   * ```
   */
  top(metric: HeadMetricName, k: number = 5): HeadValue[] {
    return this.values(metric)
      .filter((v) => !Number.isNaN(v.value))
      .sort((a, b) => b.value - a.value)
      .slice(0, k);
  }

  /**
   * Every head's value of a metric, layer by layer, as tidy rows for charts.
   *
   * @param metric The metric.
   * @returns One row per layer and head; empty when the metric was not computed.
   *
   * @example
   * ```ts
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [2], metrics: { entropy: [new Float64Array([1.5])] } });
   * assert.deepEqual(s.values("entropy"), [{ layer: 2, head: 0, value: 1.5 }]);
   * assert.deepEqual(s.values("induction"), []);
   * ```
   */
  values(metric: HeadMetricName): HeadValue[] {
    const arrays = this.metrics[metric];
    if (!arrays) return [];
    const out: HeadValue[] = [];
    arrays.forEach((a, n) =>
      a.forEach((value, head) =>
        out.push({ layer: this.layers[n], head, value })
      )
    );
    return out;
  }

  /**
   * The metrics this summary holds, in display order.
   *
   * @returns Metric names.
   *
   * @example
   * ```ts
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [0], metrics: { maxWeight: [new Float64Array(1)], sinkMass: [new Float64Array(1)] } });
   * assert.deepEqual(s.metricNames(), ["sinkMass", "maxWeight"]);
   * ```
   */
  metricNames(): HeadMetricName[] {
    return HEAD_METRICS.filter((m) => this.metrics[m] !== undefined);
  }

  /**
   * One head's attention as `[Tq, 1, Tk]` scores (a copy), from the first
   * capture, for a detailed heatmap.
   *
   * @param layer The layer index.
   * @param head The head.
   * @returns The head's scores, with the layer's positions.
   * @throws {RangeError} When the summary holds no such layer or head.
   *
   * @example
   * ```ts
   * import { AttentionLayer } from "../../data/layer.ts";
   * import { AttentionScores } from "../../data/scores.ts";
   * import { TokenMeta } from "../../data/token_meta.ts";
   * import { headSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * // Rows 0 and 1, heads 0 and 1: head 1 moves from key 0 to key 1.
   * const scores = new AttentionScores(new Float32Array([1, 0, 1, 0, 1, 0, 0, 1]), [2, 2, 2]);
   * const layer = new AttentionLayer({ layer: 0, model: null, scores, tokenMeta: TokenMeta.from({}) });
   * const one = headSummary({ 0: layer }, { tokens: ["a", "b"] }).headScores(0, 1);
   * assert.deepEqual(one.shape, [2, 1, 2]);
   * assert.deepEqual([...one.data], [1, 0, 0, 1]);
   * ```
   */
  headScores(layer: number, head: number): AttentionScores {
    const source = this.sourceLayers.find((l) => l.layer === layer);
    if (!source) {
      throw new RangeError(
        `Cannot show layer ${layer}: the summary holds layers ${
          this.sourceLayers.map((l) => l.layer).join(", ") || "none"
        }; pick one of those`,
      );
    }
    const s = source.scores;
    const [tq, heads, tk] = s.shape;
    const h = s.headIndex(head);
    const data = s.dtype === "float16"
      ? new Float16Array(tq * tk)
      : new Float32Array(tq * tk);
    for (let r = 0; r < tq; r++) {
      data.set(
        s.data.subarray((r * heads + h) * tk, (r * heads + h + 1) * tk),
        r * tk,
      );
    }
    return new AttentionScores(data, [tq, 1, tk], {
      queryPositions: s.queryPositions,
      keyOffset: s.keyOffset,
    });
  }

  /**
   * A compact text table: per metric, the three strongest heads.
   *
   * @returns Multi-line text.
   *
   * @example
   * ```ts
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [1], metrics: { induction: [new Float64Array([0.25, 0.75])] } });
   * assert.match(s.toString(), /induction: L1H1 0\.750, L1H0 0\.250/);
   * ```
   */
  toString(): string {
    const head =
      `HeadSummary: ${this.layers.length} layer(s) x ${this.numHeads} head(s)` +
      (this.captureCount > 1 ? `, mean of ${this.captureCount} captures` : "");
    const lines = this.metricNames().map((m) =>
      `  ${m}: ` +
      this.top(m, 3).map((v) => `L${v.layer}H${v.head} ${v.value.toFixed(3)}`)
        .join(", ")
    );
    return [head, ...lines].join("\n");
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows: a layer x head heatmap per
   * metric once the chart layer is loaded (lib/charts/metrics.ts).
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../../jupyter.ts";
   * import { HeadSummary } from "./head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [0], metrics: { maxWeight: [new Float64Array([1])] } });
   * const bundle = await s[JUPYTER_DISPLAY]();
   * assert.match(String(bundle["text/plain"]), /HeadSummary: 1 layer/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("head-summary", this, this.toString());
  }

  #values(metric: HeadMetricName, layer: number): Float64Array {
    const arrays = this.metrics[metric];
    if (!arrays) {
      throw new RangeError(
        `Cannot read ${metric}: the summary holds ${
          this.metricNames().join(", ")
        }; token-identity metrics need options.tokens or capture labels`,
      );
    }
    const n = this.layers.indexOf(layer);
    if (n < 0) {
      throw new RangeError(
        `Cannot read ${metric} of layer ${layer}: layer ${layer} is not in the summary (it holds ${
          this.layers.join(", ")
        })`,
      );
    }
    return arrays[n];
  }
}

/**
 * Computes every head metric for every layer and head: previous-token,
 * duplicate-token and induction scores (TransformerLens detection patterns),
 * sink mass, attention entropy and mean max weight. Given several captures,
 * each metric is the mean over captures (as TransformerLens averages over a
 * batch of sequences); their layers must match.
 *
 * @param captures One capture, or several to average.
 * @param options Metric options and the display's focus head.
 * @returns The summary; in Jupyter it shows a heatmap per metric.
 * @throws {TypeError} When captures hold different layers.
 *
 * @example
 * ```ts
 * import { AttentionLayer } from "../../data/layer.ts";
 * import { AttentionScores } from "../../data/scores.ts";
 * import { TokenMeta } from "../../data/token_meta.ts";
 * import { headSummary } from "./head_summary.ts";
 * import assert from "node:assert/strict";
 *
 * // Head 0 looks one back, head 1 at itself.
 * const scores = new AttentionScores(new Float32Array([1, 0, 1, 0, 1, 0, 0, 1]), [2, 2, 2]);
 * const layer = new AttentionLayer({ layer: 0, model: null, scores, tokenMeta: TokenMeta.from({}) });
 * const summary = headSummary({ attention: { 0: layer }, labels: ["a", "b"] });
 * assert.deepEqual(summary.top("previousToken", 1), [{ layer: 0, head: 0, value: 0.5 }]);
 * assert.deepEqual(summary.metricNames().length, 6);
 * ```
 */
export function headSummary(
  captures: CaptureLike | readonly CaptureLike[],
  options: HeadSummaryOptions = {},
): HeadSummary {
  const list = Array.isArray(captures)
    ? captures as readonly CaptureLike[]
    : [captures as CaptureLike];
  if (list.length === 0) {
    throw new TypeError(
      "Cannot compute headSummary: no captures given; pass a capture or a non-empty array of captures",
    );
  }
  if (list.length > 1 && options.tokens) {
    throw new TypeError(
      "Cannot compute headSummary: options.tokens applies to one capture but several were given; give each capture its labels ({ attention, labels })",
    );
  }
  const normalized = list.map((c) =>
    normalizeCapture(c, "compute headSummary")
  );
  const layerIds = normalized[0].layers.map((l) => l.layer);
  for (const [n, c] of normalized.entries()) {
    const ids = c.layers.map((l) => l.layer);
    if (ids.join() !== layerIds.join()) {
      throw new TypeError(
        `Cannot compute headSummary: capture ${n} holds layers [${ids}] but capture 0 holds [${layerIds}]; capture the same layers each time`,
      );
    }
  }
  const reporter = progressReporter(options, "headSummary");
  const tracker = new ProgressTracker(reporter.onProgress, {
    phase: "decoding",
    layersTotal: layerIds.length * normalized.length,
  });
  try {
    const summary = summarize(normalized, layerIds, options, tracker);
    tracker.done();
    reporter.finish("headSummary over");
    return summary;
  } catch (error) {
    reporter.finish(null);
    throw error;
  }
}

/** The metrics of every layer of every capture, averaged over captures. */
function summarize(
  normalized: ReturnType<typeof normalizeCapture>[],
  layerIds: number[],
  options: HeadSummaryOptions,
  tracker: ProgressTracker,
): HeadSummary {
  const sums: Partial<Record<HeadMetricName, Float64Array[]>> = {};
  let haveTokens = true;
  for (const capture of normalized) {
    const tokens = options.tokens ??
      (capture.labels ? tokensFromLabels(capture.labels) : null) ?? undefined;
    haveTokens &&= tokens !== undefined;
    if (!tokens) {
      warn(
        "headSummary: the capture has no token labels (or only position placeholders), so duplicateToken and induction scores are left out; pass options.tokens or capture with labels",
      );
    }
    capture.layers.forEach((layer, n) => {
      const values = layerMetrics(layer.scores, tokens, options);
      for (
        const [name, v] of Object.entries(values) as [
          HeadMetricName,
          Float64Array,
        ][]
      ) {
        const slot = sums[name] ??= [];
        if (!slot[n]) slot[n] = new Float64Array(v.length);
        for (let h = 0; h < v.length; h++) slot[n][h] += v[h];
      }
      tracker.finished();
    });
  }
  for (const arrays of Object.values(sums)) {
    for (const a of arrays ?? []) {
      for (let h = 0; h < a.length; h++) a[h] /= normalized.length;
    }
  }
  // A metric missing in some captures (no labels there) would be averaged
  // over fewer captures than counted, so it is dropped entirely.
  if (!haveTokens) {
    delete sums.duplicateToken;
    delete sums.induction;
  }
  return new HeadSummary({
    layers: layerIds,
    metrics: sums,
    captureCount: normalized.length,
    sourceLayers: normalized[0].layers,
    focus: options.focus ?? null,
    labels: normalized[0].labels,
  });
}

function layerMetrics(
  scores: AttentionScores,
  tokens: TokenSequence | undefined,
  options: HeadSummaryOptions,
): Partial<Record<HeadMetricName, Float64Array>> {
  // One full read of the scores serves every metric but the sink mass
  // (which reads one column).
  const rows = selectRows(scores, options.queryRange, "headSummary");
  const pass = rowPass(scores, rows, { entropy: true, max: true });
  const detection = detectionScores(scores, {
    errorMeasure: options.errorMeasure,
    excludeBos: options.excludeBos,
    excludeCurrentToken: options.excludeCurrentToken,
    tokens,
  }, pass);
  return {
    ...detection,
    sinkMass: sinkMass(scores, {
      position: options.sinkPosition,
      queryRange: options.queryRange,
    }),
    entropy: entropyFromPass(scores, pass, options.normalizeEntropy ?? false),
    maxWeight: maxWeightFromPass(scores, pass),
  };
}
