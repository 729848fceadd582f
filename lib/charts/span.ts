/**
 * The chart of {@linkcode spanAttention}: a layer x head grid of the weight
 * one query puts on a span, the top heads outlined and named. Importing this
 * module registers it as the Jupyter display of `SpanAttention`.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import type { HeadMass, SpanAttention } from "../analysis/span.ts";
import { JUPYTER_DISPLAY, registerRenderer } from "../jupyter.ts";
import { Figure, plotBlock, plotDocument, rampLegend } from "./_figure.ts";
import { MARK_COLOR } from "./_tokens.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";

/** Options for {@linkcode spanAttentionChart}. */
export interface SpanAttentionChartOptions {
  /**
   * How many of the heaviest heads to outline and name.
   * @default {3}
   */
  top?: number;
  /**
   * Width in pixels.
   * @default {fits the heads, 240 to 720}
   */
  width?: number;
  /**
   * Heading; `""` for none.
   * @default {"Which heads read <span>"}
   */
  title?: string;
  /**
   * Line under the heading; `""` for none.
   * @default {the query and the span's positions}
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

const percent = (m: number) => `${(100 * m).toFixed(1)}%`;

/**
 * Draws a span-attention result: one cell per layer and head, colored by the
 * share of the query's attention on the span (0 to 1), values written in the
 * cells, the top heads outlined and listed under the grid.
 *
 * @param result What {@linkcode spanAttention} returns.
 * @param options Top-k, size and headings.
 * @returns The figure.
 *
 * @example
 * ```ts
 * import { spanAttentionChart } from "./span.ts";
 * import { SpanAttention } from "../analysis/span.ts";
 * import assert from "node:assert/strict";
 *
 * const result = new SpanAttention({
 *   query: 9, positions: [1, 2], text: "alpha", layers: [0, 1], numHeads: 2,
 *   heads: [[0, 0, 0.1], [0, 1, 0.05], [1, 0, 0.95], [1, 1, 0.2]]
 *     .map(([layer, head, mass]) => ({ layer, head, mass })),
 * });
 * const svg = spanAttentionChart(result).toSVG();
 * assert.match(svg, /Which heads read &quot;alpha&quot;/);
 * assert.match(svg, /1\. layer 1 · head 0: 95\.0%/);
 * assert.match(svg, /<title>layer 1 · head 0\n95\.0% of query 9's attention/);
 * ```
 */
export function spanAttentionChart(
  result: SpanAttention,
  options: SpanAttentionChartOptions = {},
): Figure {
  chartPalette(options.theme);
  const heads = Array.from({ length: result.numHeads }, (_, h) => h);
  const layers = [...result.layers];
  const top = result.top(options.top ?? 3);
  const rank = new Map(top.map((h, i) => [`${h.layer}:${h.head}`, i + 1]));
  const marginLeft = 56, marginTop = 30;
  const width = options.width ??
    Math.max(240, Math.min(720, marginLeft + 10 + 44 * heads.length));
  const cellW = (width - marginLeft - 10) / Math.max(1, heads.length);
  const cellH = Math.max(16, Math.min(32, 420 / Math.max(1, layers.length)));
  const height = Math.round(marginTop + 8 + cellH * layers.length);
  const color = {
    type: "linear" as const,
    scheme: "viridis" as const,
    domain: [0, 1],
    label: `share of query ${result.query}'s attention on the span`,
  };
  const dark = (m: number) => m < 0.55;
  const isTop = (d: HeadMass) => rank.has(`${d.layer}:${d.head}`);
  const node = Plot.plot({
    document: plotDocument(),
    width,
    height,
    marginLeft,
    marginTop,
    marginRight: 10,
    marginBottom: 8,
    x: {
      domain: heads,
      type: "band",
      axis: "top",
      label: "head",
      labelAnchor: "left",
      tickSize: 0,
    },
    y: {
      domain: layers,
      type: "band",
      label: "layer",
      tickSize: 0,
      tickFormat: (l: number) => `L${l}`,
    },
    color: { ...color, clamp: true },
    marks: [
      Plot.cell(result.heads, {
        x: "head",
        y: "layer",
        fill: "mass",
        inset: 0.5,
        title: (d: HeadMass) =>
          `layer ${d.layer} · head ${d.head}\n${
            percent(d.mass)
          } of query ${result.query}'s attention`,
      }),
      ...(cellW >= 26
        ? [Plot.text(result.heads, {
          x: "head",
          y: "layer",
          text: (d: HeadMass) => d.mass.toFixed(2),
          fill: (d: HeadMass) => dark(d.mass) ? "white" : "black",
          fontSize: 9,
        })]
        : []),
      Plot.cell(result.heads.filter(isTop), {
        x: "head",
        y: "layer",
        fill: "none",
        stroke: MARK_COLOR,
        strokeWidth: 2.5,
        inset: 1.5,
      }),
    ],
  });
  const span = result.describeSpan();
  const named = top.map((h, i) =>
    `${i + 1}. layer ${h.layer} · head ${h.head}: ${percent(h.mass)}`
  );
  return new Figure({
    theme: options.theme,
    kind: "span-attention",
    summary: result.toString(),
    title: options.title ??
      `Which heads read ${
        result.text === null ? "the span" : JSON.stringify(result.text)
      }`,
    subtitle: options.subtitle ??
      `Attention of query ${result.query}${
        result.labels?.[result.query] !== undefined
          ? ` (${JSON.stringify(result.labels[result.query])})`
          : ""
      } summed over ${span}`,
    legends: [rampLegend(color)],
    chart: plotBlock(node),
    caption: top.length > 0
      ? `Top heads (outlined): ${named.join("; ")}`
      : undefined,
  });
}

registerRenderer<SpanAttention>(
  "span-attention",
  (result) => ({
    ...spanAttentionChart(result)[JUPYTER_DISPLAY](),
    "text/plain": result.toString(),
  }),
);
