/**
 * Comparing attention: two captures of the same token positions (two
 * prompts aligned by position, two models, a run before and after a change)
 * or two layers. Differences are `b - a`: positive where `b` attends more.
 *
 * @module
 */

import { type CaptureLike, normalizeCapture } from "../data/capture_input.ts";
import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import {
  type HeadMetricName,
  HeadSummary,
  headSummary,
  type HeadSummaryOptions,
} from "./metrics/head_summary.ts";
import { AttentionLayer } from "../data/layer.ts";
import { AttentionMatrix } from "./rollout.ts";
import type { AttentionScores } from "../data/scores.ts";
import type { TokenSequence } from "./metrics/_common.ts";
import { warn } from "../warn.ts";
import { progressReporter, ProgressTracker } from "../progress.ts";

/** Options for {@linkcode attentionDifference}. */
export interface DifferenceOptions {
  /**
   * The head compared (negative counts from the end).
   * @default {the mean over heads}
   */
  head?: number;
}

/**
 * The difference `b - a` of two layers' attention over the same positions,
 * for one head or the head mean, as a `[Tq, Tk]` matrix.
 *
 * @param a The first scores.
 * @param b The second scores, same shape and positions.
 * @param options Which head.
 * @returns `b - a` per query row and key column.
 * @throws {TypeError} When shapes or positions differ.
 *
 * @example
 * ```ts
 * import { attentionDifference } from "./compare.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const a = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
 * const b = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * assert.deepEqual([...attentionDifference(a, b).row(1)], [-0.25, 0.25]);
 * ```
 */
export function attentionDifference(
  a: AttentionScores,
  b: AttentionScores,
  options: DifferenceOptions = {},
): AttentionMatrix {
  checkSameShape(a, b, "compare attention");
  const [tq, heads, tk] = a.shape;
  const hs = options.head === undefined
    ? Array.from({ length: heads }, (_, h) => h)
    : [a.headIndex(options.head)];
  const out = new Float64Array(tq * tk);
  for (let r = 0; r < tq; r++) {
    for (const h of hs) {
      const base = (r * heads + h) * tk;
      for (let k = 0; k < tk; k++) {
        out[r * tk + k] += b.data[base + k] - a.data[base + k];
      }
    }
  }
  if (hs.length > 1) {
    for (let i = 0; i < out.length; i++) {
      out[i] /= hs.length;
    }
  }
  return new AttentionMatrix(out, [tq, tk], {
    queryPositions: a.queryPositions,
    keyOffset: a.keyOffset,
  });
}

/** Options for {@linkcode compareCaptures}. */
export interface CompareOptions
  extends Omit<HeadSummaryOptions, "tokens" | "focus"> {
  /** Tokens of capture `a`. @default {its labels} */
  tokensA?: TokenSequence;
  /** Tokens of capture `b`. @default {its labels} */
  tokensB?: TokenSequence;
  /**
   * Which layer of `a` is compared with which layer of `b`, as
   * `[layerOfA, layerOfB]` pairs: `[[2, 18]]` compares layer 2 with layer 18,
   * of two captures or of one capture passed twice. Results are indexed by
   * `a`'s layer.
   * @default {every layer both captures hold, each with itself}
   */
  layerPairs?: readonly (readonly [number, number])[];
}

/**
 * Two captures side by side: per-head metric summaries of each, their
 * deltas `b - a`, and difference matrices per layer on request.
 * {@linkcode compareCaptures} makes it.
 *
 * @example Two captures of one layer: a sink head against a head that reads itself
 * ```ts
 * import { AttentionLayer, AttentionScores, compareCaptures, TokenMeta } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = (data: number[]) => {
 *   const scores = new AttentionScores(new Float32Array(data), [2, 1, 2]);
 *   const tokenMeta = TokenMeta.from({ prompt_len: 2, total_len: 2 });
 *   return new AttentionLayer({ layer: 0, model: "m", scores, tokenMeta });
 * };
 * const sink = { 0: layer([1, 0, 1, 0]) };
 * const previous = { 0: layer([1, 0, 1, 0]) };
 * const selfish = { 0: layer([1, 0, 0, 1]) };
 * assert.equal(compareCaptures(sink, previous).difference(0).get(1, 0), 0);
 * const comparison = compareCaptures(sink, selfish);
 * assert.deepEqual(comparison.layers, [0]);
 * assert.equal(comparison.difference(0).get(1, 1), 1); // b - a
 * assert.ok(comparison.deltas.get("sinkMass", 0, 0) < 0);
 * ```
 */
export class CaptureComparison {
  /** Layers both captures hold, ascending. */
  readonly layers: readonly number[];
  /** Head metrics of capture `a`. */
  readonly a: HeadSummary;
  /** Head metrics of capture `b`. */
  readonly b: HeadSummary;
  /** Per-head metric deltas `b - a`, as a summary (shows as heatmaps). */
  readonly deltas: HeadSummary;
  readonly #layersA: Map<number, AttentionLayer>;
  readonly #layersB: Map<number, AttentionLayer>;

  /**
   * Groups the parts; callers use {@linkcode compareCaptures}.
   *
   * @param parts The two summaries and the layers compared.
   *
   * @example
   * ```ts
   * import { CaptureComparison } from "./compare.ts";
   * import { HeadSummary } from "./metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = (v: number) => new HeadSummary({ layers: [0], metrics: { maxWeight: [new Float64Array([v])] } });
   * const c = new CaptureComparison({ a: s(0.25), b: s(0.75), layersA: [], layersB: [] });
   * assert.equal(c.deltas.get("maxWeight", 0, 0), 0.5);
   * ```
   */
  constructor(parts: {
    a: HeadSummary;
    b: HeadSummary;
    layersA: readonly AttentionLayer[];
    layersB: readonly AttentionLayer[];
  }) {
    this.a = parts.a;
    this.b = parts.b;
    this.layers = parts.a.layers;
    this.#layersA = new Map(parts.layersA.map((l) => [l.layer, l]));
    this.#layersB = new Map(parts.layersB.map((l) => [l.layer, l]));
    const metrics: Partial<Record<HeadMetricName, Float64Array[]>> = {};
    for (const name of parts.a.metricNames()) {
      const before = parts.a.metrics[name]!;
      const after = parts.b.metrics[name];
      if (!after) continue;
      metrics[name] = before.map((x, n) => x.map((v, h) => after[n][h] - v));
    }
    this.deltas = new HeadSummary({
      layers: parts.a.layers,
      metrics,
      sourceLayers: parts.layersB,
    });
  }

  /**
   * The attention difference `b - a` of one layer.
   *
   * @param layer The layer index.
   * @param options Which head (default: the head mean).
   * @returns `[Tq, Tk]` differences.
   * @throws {RangeError} When the layer is not in both captures.
   *
   * @example
   * ```ts
   * import { compareCaptures } from "./compare.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = (row1: number[]) =>
   *   new AttentionLayer({
   *     layer: 0,
   *     model: null,
   *     scores: new AttentionScores(new Float32Array([1, 0, ...row1]), [2, 1, 2]),
   *     tokenMeta: TokenMeta.from({}),
   *   });
   * const c = compareCaptures({ 0: layer([1, 0]) }, { 0: layer([0, 1]) });
   * assert.deepEqual([...c.difference(0).row(1)], [-1, 1]);
   * ```
   */
  difference(layer: number, options: DifferenceOptions = {}): AttentionMatrix {
    const a = this.#layersA.get(layer);
    const b = this.#layersB.get(layer);
    if (!a || !b) {
      throw new RangeError(
        `Cannot compare layer ${layer}: the captures share layers ${
          this.layers.join(", ")
        }; pick one of those`,
      );
    }
    const m = attentionDifference(a.scores, b.scores, options);
    return new AttentionMatrix(m.data, m.shape, {
      queryPositions: m.queryPositions,
      keyOffset: m.keyOffset,
      layers: [layer],
    });
  }

  /**
   * Text: the heads whose metrics changed most.
   *
   * @returns Multi-line text.
   *
   * @example
   * ```ts
   * import { CaptureComparison } from "./compare.ts";
   * import { HeadSummary } from "./metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = (v: number) => new HeadSummary({ layers: [2], metrics: { entropy: [new Float64Array([v])] } });
   * const c = new CaptureComparison({ a: s(1), b: s(0.5), layersA: [], layersB: [] });
   * assert.match(c.toString(), /entropy: L2H0 -0\.500/);
   * ```
   */
  toString(): string {
    const lines = this.deltas.metricNames().map((m) => {
      const moved = this.deltas.values(m)
        .filter((v) => !Number.isNaN(v.value))
        .sort((x, y) => Math.abs(y.value) - Math.abs(x.value))
        .slice(0, 3)
        .map((v) =>
          `L${v.layer}H${v.head} ${v.value >= 0 ? "+" : ""}${
            v.value.toFixed(3)
          }`
        );
      return `  ${m}: ${moved.join(", ")}`;
    });
    return [
      `CaptureComparison (b - a): ${this.layers.length} layer(s), largest changes`,
      ...lines,
    ].join("\n");
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows: delta heatmaps once the
   * chart layer is loaded.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { CaptureComparison } from "./compare.ts";
   * import { HeadSummary } from "./metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const s = new HeadSummary({ layers: [0], metrics: { entropy: [new Float64Array([1])] } });
   * const c = new CaptureComparison({ a: s, b: s, layersA: [], layersB: [] });
   * assert.match(String((await c[JUPYTER_DISPLAY]())["text/plain"]), /CaptureComparison/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("capture-comparison", this, this.toString());
  }
}

/**
 * Compares two captures of the same token positions (two prompts aligned by
 * position, or two models), or two layers (`layerPairs`): every compared
 * pair of layers must have the same shape and positions. Without
 * `layerPairs`, layers only one capture holds are left out with a warning.
 *
 * @param a The first capture (the baseline).
 * @param b The second capture.
 * @param options Metric options and each capture's tokens.
 * @returns Summaries, deltas `b - a` and per-layer differences.
 * @throws {TypeError} When no layer is shared, a paired layer is missing, or
 * shapes differ.
 *
 * @example
 * ```ts
 * import { compareCaptures } from "./compare.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = (row1: number[]) =>
 *   new AttentionLayer({
 *     layer: 3,
 *     model: null,
 *     scores: new AttentionScores(new Float32Array([1, 0, ...row1]), [2, 1, 2]),
 *     tokenMeta: TokenMeta.from({}),
 *   });
 * const c = compareCaptures(
 *   { attention: { 3: layer([1, 0]) }, labels: ["a", "b"] },
 *   { attention: { 3: layer([0.5, 0.5]) }, labels: ["a", "b"] },
 * );
 * assert.equal(c.deltas.get("sinkMass", 3, 0), -0.5);
 * ```
 *
 * @example Two layers of one capture
 * ```ts
 * import { compareCaptures } from "./compare.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = (index: number, row1: number[]) =>
 *   new AttentionLayer({
 *     layer: index,
 *     model: null,
 *     scores: new AttentionScores(new Float32Array([1, 0, ...row1]), [2, 1, 2]),
 *     tokenMeta: TokenMeta.from({}),
 *   });
 * const capture = { 0: layer(0, [1, 0]), 1: layer(1, [0, 1]) };
 * const c = compareCaptures(capture, capture, { layerPairs: [[0, 1]] });
 * assert.deepEqual(c.layers, [0]);
 * assert.equal(c.deltas.get("sinkMass", 0, 0), -1);
 * ```
 */
export function compareCaptures(
  a: CaptureLike,
  b: CaptureLike,
  options: CompareOptions = {},
): CaptureComparison {
  const na = normalizeCapture(a, "compare captures");
  const nb = normalizeCapture(b, "compare captures");
  const {
    tokensA,
    tokensB,
    layerPairs,
    onProgress: _onProgress,
    progress: _progress,
    ...metricOptions
  } = options;
  const [shared, sharedB] = layerPairs
    ? pairedLayers(na.layers, nb.layers, layerPairs)
    : sameLayers(na.layers, nb.layers);
  shared.forEach((l, n) =>
    checkSameShape(l.scores, sharedB[n].scores, `compare layer ${l.layer}`)
  );
  const attentionA = Object.fromEntries(shared.map((l) => [l.layer, l]));
  const attentionB = Object.fromEntries(sharedB.map((l) => [l.layer, l]));
  // Both summaries count into one bar: layers of a, then layers of b.
  const reporter = progressReporter(options, "compareCaptures");
  const tracker = new ProgressTracker(reporter.onProgress, {
    phase: "decoding",
    layersTotal: shared.length * 2,
  });
  let summaryA: HeadSummary, summaryB: HeadSummary;
  try {
    summaryA = headSummary({ attention: attentionA, labels: na.labels }, {
      ...metricOptions,
      tokens: tokensA,
      progress: false,
      onProgress: tracker.relay(false),
    });
    summaryB = headSummary({ attention: attentionB, labels: nb.labels }, {
      ...metricOptions,
      tokens: tokensB,
      progress: false,
      onProgress: tracker.relay(false),
    });
  } catch (error) {
    reporter.finish(null);
    throw error;
  }
  tracker.done();
  reporter.finish("compareCaptures over");
  return new CaptureComparison({
    a: summaryA,
    b: summaryB,
    layersA: shared,
    layersB: sharedB,
  });
}

/** Each layer both captures hold, with itself; the rest left out, warned. */
function sameLayers(
  layersA: readonly AttentionLayer[],
  layersB: readonly AttentionLayer[],
): [AttentionLayer[], AttentionLayer[]] {
  const inB = new Map(layersB.map((l) => [l.layer, l]));
  const shared = layersA.filter((l) => inB.has(l.layer));
  if (shared.length === 0) {
    throw new TypeError(
      `Cannot compare captures: capture a holds layers [${
        layersA.map((l) => l.layer)
      }] and capture b [${
        layersB.map((l) => l.layer)
      }], none in common; capture the same layers, or pair layers with layerPairs`,
    );
  }
  const onlyOne = [...layersA, ...layersB]
    .map((l) => l.layer)
    .filter((i) => !shared.some((l) => l.layer === i));
  if (onlyOne.length > 0) {
    warn(
      `compareCaptures: layers ${
        [...new Set(onlyOne)].join(", ")
      } are in only one capture and are left out`,
    );
  }
  return [shared, shared.map((l) => inB.get(l.layer)!)];
}

/**
 * The layers `pairs` names; b's layers are re-indexed as their partners in a,
 * so summaries and differences line up.
 */
function pairedLayers(
  layersA: readonly AttentionLayer[],
  layersB: readonly AttentionLayer[],
  pairs: readonly (readonly [number, number])[],
): [AttentionLayer[], AttentionLayer[]] {
  if (pairs.length === 0) {
    throw new TypeError(
      "Cannot compare captures: layerPairs is empty; pass pairs like [[2, 18]] or leave it out",
    );
  }
  const find = (
    layers: readonly AttentionLayer[],
    i: number,
    which: string,
  ) => {
    const found = layers.find((l) => l.layer === i);
    if (!found) {
      throw new TypeError(
        `Cannot compare captures: capture ${which} holds layers [${
          layers.map((l) => l.layer)
        }], not layer ${i}; pair layers it holds`,
      );
    }
    return found;
  };
  const seen = new Set<number>();
  const fromA: AttentionLayer[] = [], fromB: AttentionLayer[] = [];
  for (const [ia, ib] of pairs) {
    if (seen.has(ia)) {
      throw new TypeError(
        `Cannot compare captures: layer ${ia} of a is paired twice in layerPairs; pair each of a's layers once`,
      );
    }
    seen.add(ia);
    const la = find(layersA, ia, "a");
    const lb = find(layersB, ib, "b");
    fromA.push(la);
    fromB.push(
      new AttentionLayer({
        layer: ia,
        model: lb.model,
        scores: lb.scores,
        tokenMeta: lb.tokenMeta,
      }),
    );
  }
  return [fromA, fromB];
}

function checkSameShape(
  a: AttentionScores,
  b: AttentionScores,
  action: string,
): void {
  const same = a.shape.every((n, i) => n === b.shape[i]) &&
    a.keyOffset === b.keyOffset &&
    a.queryPositions.every((p, i) => p === b.queryPositions[i]);
  if (!same) {
    const where = (s: AttentionScores) =>
      `[${s.shape.join(", ")}] at positions ${s.queryPositions[0]}..${
        s.queryPositions[s.queryLength - 1]
      } (keys from ${s.keyOffset})`;
    throw new TypeError(
      `Cannot ${action}: a is ${where(a)} but b is ${
        where(b)
      }; compare captures of the same token positions and head count (e.g. prompts of equal length)`,
    );
  }
}
