/**
 * Charts of the analysis results: head metrics as one layer x head heatmap
 * per metric (with a chosen head's own attention below), rollout and
 * difference matrices, and capture comparisons. Importing this module
 * registers them as the Jupyter display of `HeadSummary`,
 * `AttentionMatrix` and `CaptureComparison`.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import type { CaptureComparison } from "../analysis/compare.ts";
import type { InductionProbeResult } from "../client/induction_probe.ts";
import { JUPYTER_DISPLAY, registerRenderer } from "../jupyter.ts";
import type {
  HeadMetricName,
  HeadSummary,
} from "../analysis/metrics/head_summary.ts";
import type { AttentionMatrix } from "../analysis/rollout.ts";
import { AttentionScores } from "../data/scores.ts";
import {
  composeSvg,
  Figure,
  type FigureBlock,
  plotBlock,
  plotDocument,
  rampLegend,
  SVG_NS,
} from "./_figure.ts";
import { attentionHeatmap, type HeatmapOptions } from "./heatmap.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";

/** Options for {@linkcode headSummaryChart}. */
export interface HeadSummaryChartOptions {
  /**
   * Metrics drawn, in order.
   * @default {every metric the summary holds}
   */
  metrics?: readonly HeadMetricName[];
  /**
   * Width of each metric's panel in pixels.
   * @default {240}
   */
  panelWidth?: number;
  /**
   * Total width; panels wrap onto new rows beyond it.
   * @default {1000}
   */
  width?: number;
  /**
   * A head whose own attention heatmap is drawn below the panels.
   * @default {the summary's focus, if any}
   */
  focus?: { layer: number; head: number } | null;
  /**
   * Token text per position for the focus heatmap's axes.
   * @default {the summary's labels}
   */
  labels?: readonly string[];
  /**
   * Draw values as differences: a diverging scale centered on 0.
   * @default {false}
   */
  diverging?: boolean;
  /**
   * Heading; `""` for none.
   * @default {"Head metrics"}
   */
  title?: string;
  /**
   * Line under the heading; `""` for none.
   * @default {the layer and head counts}
   */
  subtitle?: string;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them: `"light"`, `"dark"`, or `"auto"` (light, turning dark under
   * `prefers-color-scheme: dark` where the SVG is shown inline).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

const METRIC_TITLES: Record<HeadMetricName, string> = {
  previousToken: "previous-token score",
  duplicateToken: "duplicate-token score",
  induction: "induction score",
  sinkMass: "sink mass",
  entropy: "attention entropy (nats)",
  maxWeight: "mean max weight",
};

/**
 * One layer x head heatmap per metric, each with its own color ramp, values
 * written in the cells when they fit, hover text on every cell; with a focus
 * head, that head's attention heatmap below.
 *
 * @param summary What {@linkcode headSummary} returns (or a comparison's deltas).
 * @param options Metrics, layout, focus head and color mode.
 * @returns The figure.
 *
 * @example
 * ```ts
 * import { headSummaryChart } from "./metrics.ts";
 * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const summary = new HeadSummary({
 *   layers: [0, 1],
 *   metrics: { induction: [new Float64Array([0.1, 0.2]), new Float64Array([0.05, 0.9])] },
 * });
 * const svg = headSummaryChart(summary).toSVG();
 * assert.match(svg, /induction score/);
 * assert.match(svg, /<title>layer 1 · head 1\ninduction score 0\.900<\/title>/);
 * ```
 */
export function headSummaryChart(
  summary: HeadSummary,
  options: HeadSummaryChartOptions = {},
): Figure {
  const names = options.metrics ?? summary.metricNames();
  const panelWidth = options.panelWidth ?? 240;
  const totalWidth = options.width ?? 1000;
  const focus = options.focus === undefined ? summary.focus : options.focus;
  const diverging = options.diverging ?? false;
  const theme = options.theme;
  chartPalette(theme);
  const panels = names.map((name) =>
    metricPanel(summary, name, panelWidth, diverging, theme)
  );
  const blocks: FigureBlock[] = [tile(panels, totalWidth)];
  if (focus) {
    const layer = summary.sourceLayers.find((l) => l.layer === focus.layer);
    if (!layer) {
      throw new RangeError(
        `Cannot draw layer ${focus.layer}: the summary holds layers ${
          summary.layers.join(", ")
        }; focus on one of those`,
      );
    }
    const heat = attentionHeatmap(layer, {
      head: focus.head,
      labels: options.labels ?? summary.labels ?? undefined,
      title: `Layer ${focus.layer} · head ${focus.head}`,
      theme,
    });
    const svg = heat.toSVG();
    blocks.push({
      svg,
      width: Number(/\bwidth="([\d.]+)"/.exec(svg)?.[1] ?? 0),
      height: Number(/\bheight="([\d.]+)"/.exec(svg)?.[1] ?? 0),
    });
  }
  const chart = stack(blocks);
  const captures = summary.captureCount > 1
    ? `, mean of ${summary.captureCount} captures`
    : "";
  return new Figure({
    theme,
    kind: "head-summary",
    summary: summary.toString(),
    title: options.title ??
      (diverging ? "Head metric changes" : "Head metrics"),
    subtitle: options.subtitle ??
      `Rows: layers, columns: heads; ${summary.layers.length} layer(s) × ${summary.numHeads} head(s)${captures}`,
    chart,
  });
}

/**
 * A rollout or difference matrix as a heatmap (differences on a diverging
 * scale centered on 0), drawn by `attentionHeatmap`.
 *
 * @param matrix What `attentionRollout` or `attentionDifference` returns.
 * @param options Heatmap options (labels, window, marks, Plot options).
 * @returns The figure.
 *
 * @example
 * ```ts
 * import { attentionMatrixChart } from "./metrics.ts";
 * import { AttentionMatrix } from "../analysis/rollout.ts";
 * import assert from "node:assert/strict";
 *
 * const m = new AttentionMatrix(new Float64Array([1, 0, -0.5, 0.5]), [2, 2]);
 * assert.match(attentionMatrixChart(m).toSVG(), /difference/);
 * ```
 */
export function attentionMatrixChart(
  matrix: AttentionMatrix,
  options: HeatmapOptions = {},
): Figure {
  const scores = new AttentionScores(
    Float32Array.from(matrix.data),
    [matrix.shape[0], 1, matrix.shape[1]],
    { queryPositions: matrix.queryPositions, keyOffset: matrix.keyOffset },
  );
  let lo = 0;
  let hi = 0;
  for (const v of matrix.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const isDifference = lo < 0;
  const m = Math.max(-lo, hi) || 1;
  const what = isDifference
    ? "difference b − a"
    : matrix.layers.length > 0
    ? "attention rollout"
    : "attention";
  const l = matrix.layers;
  const layers = l.length === 0
    ? ""
    : l.length === 1
    ? ` · layer ${l[0]}`
    : ` · layers ${l[0]}–${l[l.length - 1]}`;
  return attentionHeatmap(scores, {
    title: `${what[0].toUpperCase()}${what.slice(1)}${layers}`,
    ...options,
    color: isDifference
      ? {
        type: "diverging",
        scheme: "BuRd",
        domain: [-m, m],
        label: what,
        ...options.color,
      }
      : { label: what, ...options.color },
    ...(isDifference ? { saturate: 1 } : {}),
  });
}

/**
 * A comparison's per-head metric deltas (`b - a`) on diverging scales.
 *
 * @param comparison What `compareCaptures` returns.
 * @param options Chart options, as for {@linkcode headSummaryChart}.
 * @returns The figure.
 *
 * @example
 * ```ts
 * import { comparisonChart } from "./metrics.ts";
 * import { CaptureComparison } from "../analysis/compare.ts";
 * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const s = (v: number) => new HeadSummary({ layers: [0], metrics: { entropy: [new Float64Array([v])] } });
 * const c = new CaptureComparison({ a: s(1), b: s(0.5), layersA: [], layersB: [] });
 * assert.match(comparisonChart(c).toSVG(), /attention entropy \(nats\) -0\.500/);
 * ```
 */
export function comparisonChart(
  comparison: CaptureComparison,
  options: HeadSummaryChartOptions = {},
): Figure {
  return headSummaryChart(comparison.deltas, {
    diverging: true,
    title: "Head metric changes (b − a)",
    ...options,
  });
}

/**
 * An induction probe's head scores (second copy only): induction,
 * previous-token and duplicate-token panels, and the strongest induction
 * head's attention, whose off-diagonal stripe is the induction signature.
 *
 * @param result What `inductionProbe` returns.
 * @param options Chart options, as for {@linkcode headSummaryChart}.
 * @returns The figure.
 *
 * @example
 * ```ts
 * import { inductionProbeChart } from "./metrics.ts";
 * import { InductionProbeResult } from "../client/induction_probe.ts";
 * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
 * import assert from "node:assert/strict";
 *
 * const summary = new HeadSummary({ layers: [1], metrics: { induction: [new Float64Array([0.9])] } });
 * const r = new InductionProbeResult({ summary, repeat: { start: 4, length: 20 }, prompt: "", capture: null! });
 * assert.match(inductionProbeChart(r, { focus: null }).toSVG(), /Induction probe/);
 * ```
 */
export function inductionProbeChart(
  result: InductionProbeResult,
  options: HeadSummaryChartOptions = {},
): Figure {
  const wanted: HeadMetricName[] = [
    "induction",
    "previousToken",
    "duplicateToken",
  ];
  const [best] = result.summary.top("induction", 1);
  const { start, length } = result.repeat;
  return headSummaryChart(result.summary, {
    metrics: wanted.filter((m) => result.summary.metrics[m]),
    title:
      `Induction probe: ${result.words.length} random words (${length} tokens), repeated`,
    subtitle: `Scores over the second copy (positions ${start + length}–${
      start + 2 * length - 1
    }); rows: layers, columns: heads`,
    focus: best ? { layer: best.layer, head: best.head } : null,
    labels: result.capture?.labels,
    ...options,
  });
}

/** One metric's layer x head panel, with its title and ramp legend. */
function metricPanel(
  summary: HeadSummary,
  name: HeadMetricName,
  width: number,
  diverging: boolean,
  theme: ChartTheme | undefined,
): FigureBlock {
  const values = summary.values(name);
  const finite = values.map((v) => v.value).filter(Number.isFinite);
  const lo = Math.min(0, ...finite);
  const hi = Math.max(0, ...finite);
  const bounded = name !== "entropy";
  let domain: [number, number];
  if (diverging) {
    const m = Math.max(-lo, hi) || 1;
    domain = [-m, m];
  } else {
    domain = [lo, bounded ? Math.max(1, hi) : hi || 1];
  }
  const color: Plot.ScaleOptions = diverging
    ? { type: "diverging", scheme: "BuRd", domain }
    : { type: "linear", scheme: "viridis", domain };
  const heads = Array.from({ length: summary.numHeads }, (_, h) => h);
  const layers = [...summary.layers];
  const cellH = Math.max(12, Math.min(28, 400 / layers.length));
  const marginLeft = 30;
  const marginTop = 22;
  const height = Math.round(marginTop + 6 + cellH * layers.length);
  const cellW = (width - marginLeft - 6) / heads.length;
  const writeValues = cellW >= 22 && cellH >= 12;
  const title = METRIC_TITLES[name];
  const dark = (v: number) =>
    diverging
      ? Math.abs(v) > 0.6 * domain[1]
      : (v - domain[0]) / (domain[1] - domain[0]) < 0.55;
  const node = Plot.plot({
    document: plotDocument(),
    width,
    height,
    marginLeft,
    marginTop,
    marginRight: 6,
    marginBottom: 6,
    x: { domain: heads, type: "band", axis: "top", label: null, tickSize: 0 },
    y: {
      domain: layers,
      type: "band",
      label: null,
      tickSize: 0,
      ...(layers.length > 24
        ? {
          ticks: layers.filter((_, i) =>
            i % Math.ceil(layers.length / 24) === 0
          ),
        }
        : {}),
    },
    color: { ...color, clamp: true },
    marks: [
      Plot.cell(values, {
        x: "head",
        y: "layer",
        fill: "value",
        inset: 0,
        title: (d: { layer: number; head: number; value: number }) =>
          `layer ${d.layer} · head ${d.head}\n${title} ${d.value.toFixed(3)}`,
      }),
      ...(writeValues
        ? [
          Plot.text(values, {
            x: "head",
            y: "layer",
            text: (d: { value: number }) =>
              Number.isFinite(d.value) ? d.value.toFixed(2) : "–",
            fill: (d: { value: number }) =>
              diverging
                ? (dark(d.value) ? "white" : "black")
                : (dark(d.value) ? "white" : "black"),
            fontSize: cellW >= 28 ? 9 : 8,
          }),
        ]
        : []),
    ],
  } as Plot.PlotOptions);
  const svg = composeSvg({
    theme,
    kind: "head-metric",
    summary: title,
    title,
    legends: [
      rampLegend(
        { ...color, label: null } as Plot.ScaleOptions,
        Math.min(width, 220),
      ),
    ],
    chart: plotBlock(node),
  });
  return {
    svg,
    width: Number(/\bwidth="([\d.]+)"/.exec(svg)?.[1] ?? width),
    height: Number(/\bheight="([\d.]+)"/.exec(svg)?.[1] ?? height),
  };
}

/** Lays blocks left to right, wrapping at `width`. */
function tile(blocks: FigureBlock[], width: number): FigureBlock {
  const gap = 16;
  let x = 0;
  let y = 0;
  let rowH = 0;
  let maxW = 0;
  const parts: string[] = [];
  for (const b of blocks) {
    if (x > 0 && x + b.width > width) {
      x = 0;
      y += rowH + gap;
      rowH = 0;
    }
    parts.push(place(b, x, y));
    x += b.width + gap;
    maxW = Math.max(maxW, x - gap);
    rowH = Math.max(rowH, b.height);
  }
  const height = y + rowH;
  return {
    svg:
      `<svg xmlns="${SVG_NS}" width="${maxW}" height="${height}" viewBox="0 0 ${maxW} ${height}">${
        parts.join("")
      }</svg>`,
    width: maxW,
    height,
  };
}

/** Stacks blocks top to bottom. */
function stack(blocks: FigureBlock[]): FigureBlock {
  if (blocks.length === 1) return blocks[0];
  const gap = 20;
  let y = 0;
  const parts: string[] = [];
  for (const b of blocks) {
    parts.push(place(b, 0, y));
    y += b.height + gap;
  }
  const width = Math.max(...blocks.map((b) => b.width));
  const height = y - gap;
  return {
    svg:
      `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${
        parts.join("")
      }</svg>`,
    width,
    height,
  };
}

/** A complete `<svg>` positioned at (x, y) inside another. */
function place(block: FigureBlock, x: number, y: number): string {
  return block.svg.replace(
    /^<svg\b/,
    `<svg x="${x}" y="${y}"`,
  );
}

registerRenderer<HeadSummary>(
  "head-summary",
  (summary) => headSummaryChart(summary)[JUPYTER_DISPLAY](),
);
registerRenderer<AttentionMatrix>(
  "attention-matrix",
  (matrix) => attentionMatrixChart(matrix)[JUPYTER_DISPLAY](),
);
registerRenderer<InductionProbeResult>(
  "induction-probe",
  (result) => ({
    ...inductionProbeChart(result)[JUPYTER_DISPLAY](),
    "text/plain": result.toString(),
  }),
);
registerRenderer<CaptureComparison>(
  "capture-comparison",
  (comparison) => ({
    ...comparisonChart(comparison)[JUPYTER_DISPLAY](),
    "text/plain": comparison.toString(),
  }),
);
