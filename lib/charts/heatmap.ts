/**
 * The attention heatmap of one layer: queries down, keys across, one head or
 * the head mean. Small grids are SVG cells with hover text; large ones a
 * raster image reduced by maximum, so a 4,096-token layer draws in about a
 * second and stays well under a megabyte.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import { colorizer, gridPng, quantile } from "./_colorize.ts";
import type { TokenMeta } from "../data/token_meta.ts";
import {
  escapeXml,
  estimateTextWidth,
  Figure,
  type FigureBlock,
  plotBlock,
  plotDocument,
  type PlotOptionsPassThrough,
  rampLegend,
  type RenderedElement,
  type ScaleOptionsPassThrough,
  SVG_NS,
} from "./_figure.ts";
import {
  type AttentionGrid,
  attentionGrid,
  gridExtent,
  type PositionRange,
} from "./_grid.ts";
import { type AttentionSource, resolveSource } from "./_source.ts";
import { findingsNote } from "../data/check_capture.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";
import {
  formatWeight,
  MARK_COLOR,
  markedSet,
  positionLabel,
  thinnedTicks,
} from "./_tokens.ts";

/** Options for {@linkcode attentionHeatmap}; other Plot options pass through. */
export interface HeatmapOptions extends PlotOptionsPassThrough {
  /**
   * A head index (negative counts from the end), or `"mean"`.
   * @default {"mean"}
   */
  head?: number | "mean";
  /**
   * Absolute position ranges to zoom into, half open `[start, end)`.
   * @default {{}} everything captured
   */
  window?: { query?: PositionRange; key?: PositionRange };
  /**
   * Drop key 0 (the first-token sink) and renormalize each row.
   * @default {false}
   */
  dropSink?: boolean;
  /**
   * Token text per absolute position, for axis labels and hover text.
   * @default {undefined} positions only
   */
  labels?: readonly string[];
  /**
   * Absolute positions to highlight (e.g. the needle).
   * @default {[]}
   */
  mark?: Iterable<number>;
  /**
   * Metadata, when the source is bare scores (named in hover text).
   * @default {undefined} the layer's own
   */
  tokenMeta?: TokenMeta;
  /**
   * `"cells"` draws one SVG rectangle per cell (with hover text),
   * `"raster"` one image; `"auto"` picks cells up to `cellLimit` cells.
   * @default {"auto"}
   */
  render?: "auto" | "cells" | "raster";
  /**
   * Largest grid (queries x keys) drawn as SVG rectangles under
   * `render: "auto"`. Cells cost about 110 bytes each with their hover
   * text (T=138: 1.1 MB, twice over in a notebook's bundle); a raster of the
   * same grid is about 50 KB and keeps hover text per row.
   * @default {10000}
   */
  cellLimit?: number;
  /**
   * Heading; `""` for none.
   * @default {"Layer L · head H"}
   */
  title?: string;
  /**
   * Line under the heading; `""` for none.
   * @default {a description of what is shown}
   */
  subtitle?: string;
  /**
   * Line under the chart; `""` for none.
   * @default {marked positions and raster reduction, when any}
   */
  caption?: string;
  /**
   * Quantile of the shown values where colors saturate, so that a few huge
   * cells (the sink, the first rows, which can only attend to themselves)
   * do not turn everything else dark; 1 spans the true maximum. The caption
   * says where colors saturate.
   * @default {0.995}
   */
  saturate?: number;
  /**
   * Plot color scale options, merged over the defaults (`viridis`, linear,
   * domain `[0, saturation value]`, clamped); `legend: false` hides the legend.
   * @default {{}}
   */
  color?: ScaleOptionsPassThrough;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them (`"auto"`: light, dark under `prefers-color-scheme: dark` where
   * shown as inline SVG).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

const DEFAULT_WIDTH = 640;
/** Marked labels on the dark background (the mark colour is 3.6:1 there). */
const MARK_TEXT_DARK = "#ff6fa0";
let hatchCounter = 0;

/**
 * Draws the attention heatmap of one layer.
 *
 * @param source A decoded layer, or its scores.
 * @param options Head, window, sink, labels, marks, render mode and Plot options.
 * @returns The figure.
 *
 * @example
 * ```ts
 * import { attentionHeatmap } from "./heatmap.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * const figure = attentionHeatmap(scores, { labels: ["a", "b"], mark: [1] });
 * assert.match(figure.toSVG(), /<title>q b 1 → k a 0: 0.250<\/title>/);
 * assert.match(String(figure), /^Heatmap, head mean: queries 0-1 x keys 0-1/);
 * ```
 */
export function attentionHeatmap(
  source: AttentionSource,
  options: HeatmapOptions = {},
): Figure {
  const {
    head = "mean",
    window,
    dropSink = false,
    labels,
    mark,
    tokenMeta,
    render = "auto",
    cellLimit = 10000,
    saturate = 0.995,
    title,
    subtitle,
    caption,
    color: colorOptions = {},
    marks: extraMarks = [],
    theme,
    ...plotOptions
  } = options;
  const dark = chartPalette(theme).background !== chartPalette("light")
    .background;
  const src = resolveSource(source, tokenMeta, "a heatmap");
  const marked = markedSet(mark);

  const probe = gridExtent(src.scores, { window, dropSink });
  if (head !== "mean") src.scores.headIndex(head);
  const nRows = probe.queryPositions.length;
  const [k0, k1] = probe.keyRange;
  const nCols = k1 - k0;
  const q0 = probe.queryPositions[0];
  const qEnd = probe.queryPositions[nRows - 1] + 1;

  // Layout: room for labels, square cells when the shape allows.
  const longest = (positions: Iterable<number>) => {
    let n = 0;
    for (const p of positions) n = Math.max(n, positionLabel(p, labels).length);
    return n;
  };
  const width = plotOptions.width ?? DEFAULT_WIDTH;
  const yLabelChars = longest(sample(probe.queryPositions));
  const rotate = labels !== undefined;
  const marginLeft = plotOptions.marginLeft ??
    Math.min(
      150,
      Math.max(40, estimateTextWidth("x".repeat(yLabelChars), 10) + 24),
    );
  const marginRight = plotOptions.marginRight ?? 12;
  const plotW = Math.max(40, width - marginLeft - marginRight);
  const roomX = plotW / (rotate ? 12 : 30);
  const xTicks = thinnedTicks(k0, nCols, roomX, marked);
  // The top margin fits the key labels actually drawn, not the longest
  // token in the window, which thinning may never show.
  const xLabelChars = longest(xTicks);
  const marginTop = plotOptions.marginTop ??
    (rotate
      ? Math.min(130, estimateTextWidth("x".repeat(xLabelChars), 10) + 30)
      : 40);
  const marginBottom = plotOptions.marginBottom ?? 8;
  const height = plotOptions.height ??
    Math.round(
      marginTop + marginBottom +
        Math.min(900, Math.max(120, (plotW * nRows) / nCols)),
    );
  const plotH = Math.max(20, height - marginTop - marginBottom);

  const mode = render === "auto"
    ? (nRows * nCols <= cellLimit ? "cells" : "raster")
    : render;
  const grid = mode === "cells"
    ? attentionGrid(src.scores, { head, window, dropSink })
    : attentionGrid(src.scores, {
      head,
      window,
      dropSink,
      maxRows: Math.round(plotH),
      maxCols: Math.round(plotW),
    });

  if (!(saturate > 0 && saturate <= 1)) {
    throw new RangeError(
      `Cannot draw a heatmap with saturate ${saturate}: expected a quantile in (0, 1]; use 1 for the true maximum`,
    );
  }
  const top = saturate >= 1 ? grid.max : quantile(grid.values, saturate);
  const colorMax = top > 0 ? top : (grid.max > 0 ? grid.max : 1);
  const color: Plot.ScaleOptions = {
    type: "linear",
    scheme: "viridis",
    domain: [0, colorMax],
    clamp: true,
    label: dropSink ? "attention (sink dropped)" : "attention",
    ...colorOptions,
  };
  const headName = grid.head === "mean"
    ? `mean of ${src.scores.numHeads} heads`
    : `head ${grid.head}`;
  const hatchId = `attnscope-masked-${++hatchCounter}`;
  const slot = { id: String(hatchCounter), markup: "" };

  const body: Plot.Markish[] = [
    maskedBackground(hatchId, k0, k1, q0, qEnd, dark),
  ];
  if (mode === "cells") {
    body.push(...cellMark(grid, k0, labels, color, slot));
  } else {
    body.push(rasterMark(grid, color, k0, k1, q0, qEnd));
    body.push(rowHoverMark(grid, k0, k1, labels, slot));
  }
  const roomY = plotH / 12;
  const yTicks = thinnedTicks(q0, qEnd - q0, roomY, marked);
  const tickFormat = (v: number) => positionLabel(Math.floor(v), labels);
  const axisCommon = { tickSize: 3, fontVariant: "normal" } as const;
  const split = (ticks: number[]) => [
    ticks.filter((t) => !marked.has(t)).map((t) => t + 0.5),
    ticks.filter((t) => marked.has(t)).map((t) => t + 0.5),
  ];
  const [xPlain, xMarked] = split(xTicks);
  const [yPlain, yMarked] = split(yTicks);
  const xAxis = (ticks: number[], extra: Plot.AxisXOptions = {}) =>
    Plot.axisX(ticks, {
      ...axisCommon,
      anchor: "top",
      tickFormat,
      tickRotate: rotate ? -90 : 0,
      textAnchor: rotate ? "start" : "middle",
      label: null,
      ...extra,
    });
  const yAxis = (ticks: number[], extra: Plot.AxisYOptions = {}) =>
    Plot.axisY(ticks, {
      ...axisCommon,
      anchor: "left",
      tickFormat,
      label: null,
      ...extra,
    });
  // The mark's magenta is 3.6:1 on the dark background; its text lightens.
  // (Under "auto" the class lets the dark scheme lighten it too.)
  const markStyle = {
    color: dark ? MARK_TEXT_DARK : MARK_COLOR,
    fontWeight: "bold",
    className: "ax-mark",
  } as const;
  const highlight: Plot.Markish[] = [];
  // Outlines only where cells are big enough to frame; thin columns get
  // markers in the margin instead, so the marked data stays visible.
  const cellPx = Math.min(plotW / nCols, plotH / nRows);
  const markedKeys = [...marked].filter((m) => m >= k0 && m < k1);
  const markedQueries = [...marked].filter((m) =>
    m >= q0 && m < qEnd && probe.queryPositions.includes(m)
  );
  highlight.push(marginMarkers(markedKeys, markedQueries));
  for (const m of cellPx >= 4 ? marked : []) {
    if (m >= k0 && m < k1) {
      highlight.push(Plot.rect([m], {
        x1: m,
        x2: m + 1,
        y1: q0,
        y2: qEnd,
        fill: "none",
        stroke: MARK_COLOR,
        strokeWidth: 1.5,
      }));
    }
    if (markedQueries.includes(m)) {
      highlight.push(Plot.rect([m], {
        x1: k0,
        x2: k1,
        y1: m,
        y2: m + 1,
        fill: "none",
        stroke: MARK_COLOR,
        strokeWidth: 1.5,
      }));
    }
  }

  const node = Plot.plot({
    ...plotOptions,
    document: plotDocument(),
    width,
    height,
    marginLeft,
    marginTop,
    marginRight,
    marginBottom,
    x: { domain: [k0, k1], ...(plotOptions.x ?? {}), axis: null },
    y: {
      domain: [q0, qEnd],
      reverse: true,
      ...(plotOptions.y ?? {}),
      axis: null,
    },
    color,
    marks: [
      ...body,
      Plot.frame({ stroke: "#999" }),
      xAxis(xPlain),
      xAxis(xMarked, markStyle),
      yAxis(yPlain),
      yAxis(yMarked, markStyle),
      ...highlight,
      ...(extraMarks as Plot.Markish[]),
    ],
  } as Plot.PlotOptions);

  const layerName = src.layer === null ? "" : `Layer ${src.layer} · `;
  const defaultSubtitle = [
    `Query (rows, ${q0}–${qEnd - 1}) × key (columns, ${k0}–${k1 - 1})`,
    dropSink ? "sink (key 0) dropped, rows renormalized" : "",
    "hatched: masked (future) keys",
  ].filter(Boolean).join(" · ");
  const notes: string[] = [];
  if (mode === "raster" && grid.reduced) {
    notes.push(
      `Each pixel shows the maximum of about ${
        Math.ceil(nRows / grid.rows)
      } × ${Math.ceil(nCols / grid.cols)} cells.`,
    );
  }
  if (colorMax < grid.max && colorOptions.domain === undefined) {
    notes.push(
      `Colors saturate at ${formatWeight(colorMax)} (${+(saturate * 100)
        .toFixed(2)}th percentile); the maximum is ${formatWeight(grid.max)}.`,
    );
  }
  const markedNames = [...marked].map((m) => positionLabel(m, labels, 24));
  if (markedNames.length) notes.push(`Marked: ${markedNames.join(", ")}.`);
  const findings = findingsNote(src.scores);
  if (findings) notes.push(findings);
  const legendOn = (colorOptions as { legend?: unknown }).legend !== false;
  return new Figure({
    kind: "heatmap",
    summary: `Heatmap${src.layer === null ? "" : ` of layer ${src.layer}`}, ${
      grid.head === "mean" ? "head mean" : `head ${grid.head}`
    }: queries ${q0}-${qEnd - 1} x keys ${k0}-${k1 - 1} (${
      mode === "cells" ? "SVG cells" : `raster ${grid.cols}x${grid.rows}`
    }), max ${formatWeight(grid.max)}`,
    title: title ?? `${layerName}${headName}`,
    subtitle: subtitle ?? defaultSubtitle,
    legends: legendOn ? [rampLegend(color)] : [],
    chart: spliced(plotBlock(node), slot),
    caption: caption ?? notes.join("\n"),
    theme,
  });
}

/** Hatching behind the grid: masked cells are left empty and show it. */
function maskedBackground(
  id: string,
  k0: number,
  k1: number,
  q0: number,
  qEnd: number,
  dark: boolean,
): Plot.RenderFunction {
  const [paper, line] = dark ? ["#2a2c32", "#4a4e5a"] : ["#f5f5f5", "#cdcdcd"];
  return (_index, scales, _values, _dimensions, context) => {
    const doc = context.document;
    const g = doc.createElementNS(SVG_NS, "g");
    const x = scales.x!(k0) as number;
    const y = Math.min(scales.y!(q0) as number, scales.y!(qEnd) as number);
    const w = (scales.x!(k1) as number) - x;
    const h = Math.abs((scales.y!(qEnd) as number) - (scales.y!(q0) as number));
    // linkedom parses this as HTML: every element needs a closing tag.
    g.innerHTML =
      `<defs><pattern id="${id}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="${paper}"></rect><rect x="0" y="0" width="1.5" height="6" fill="${line}"></rect></pattern></defs><rect x="${x}" y="${y}" width="${w}" height="${h}" fill="url(#${id})"></rect>`;
    return g as unknown as RenderedElement;
  };
}

/**
 * One `<rect>` with hover text per unmasked cell. The markup is written as a
 * string and spliced into Plot's output after serialization: building ~10k
 * DOM nodes in linkedom and serializing them took most of the time.
 */
function cellMark(
  grid: AttentionGrid,
  k0: number,
  labels: readonly string[] | undefined,
  color: Plot.ScaleOptions,
  slot: { id: string; markup: string },
): Plot.Markish[] {
  const colors = colorizer(color);
  const rgb = new Uint8Array(4);
  const hex = (i: number) => rgb[i].toString(16).padStart(2, "0");
  const render: Plot.RenderFunction = (_i, scales, _v, _d, context) => {
    const { values, cols, queryPositions } = grid;
    const x = (k: number) => scales.x!(k) as number;
    const y = (q: number) => scales.y!(q) as number;
    const keyLabels = Array.from(
      { length: cols },
      (_, c) => escapeXml(positionLabel(k0 + c, labels, 24)),
    );
    const parts: string[] = [];
    for (let r = 0; r < grid.rows; r++) {
      const q = queryPositions[r];
      const qLabel = escapeXml(positionLabel(q, labels, 24));
      // One decimal is plenty at crisp edges and keeps ~10k cells small.
      // Sizes are differences of rounded edges, so neighbours share edges
      // exactly and no seam opens between them at any zoom.
      const ya = r1(y(q));
      const yb = r1(y(q + 1));
      const top = Math.min(ya, yb);
      const h = r1(Math.abs(yb - ya));
      for (let c = 0; c < cols; c++) {
        const v = values[r * cols + c];
        if (Number.isNaN(v)) continue;
        colors.put(v, rgb, 0);
        parts.push(
          `<rect x="${r1(x(k0 + c))}" y="${top}" width="${
            r1(r1(x(k0 + c + 1)) - r1(x(k0 + c)))
          }" height="${h}" fill="#${hex(0)}${hex(1)}${
            hex(2)
          }"><title>q ${qLabel} → k ${keyLabels[c]}: ${
            formatWeight(v)
          }</title></rect>`,
        );
      }
    }
    slot.markup = parts.join("");
    const g = context.document.createElementNS(SVG_NS, "g");
    g.setAttribute("data-attnscope-cells", slot.id);
    return g as unknown as RenderedElement;
  };
  // An empty mark keeps Plot's color scale (and so the legend) defined.
  return [Plot.dot([] as number[], { fill: (d: number) => d }), render];
}

function spliced(
  block: FigureBlock,
  slot: { id: string; markup: string } | null,
): FigureBlock {
  return slot ? { ...block, svg: spliceCells(block.svg, slot) } : block;
}

/**
 * Hover text for a raster: one invisible band per grid row naming its
 * queries and where their strongest attention goes (an image has no
 * per-pixel `<title>`).
 */
function rowHoverMark(
  grid: AttentionGrid,
  k0: number,
  k1: number,
  labels: readonly string[] | undefined,
  slot: { id: string; markup: string },
): Plot.RenderFunction {
  return (_i, scales, _v, _d, context) => {
    const { values, rows, cols, queryPositions } = grid;
    const nRows = queryPositions.length;
    const nCols = k1 - k0;
    const x0 = r1(scales.x!(k0) as number);
    const width = r1((scales.x!(k1) as number) - x0);
    const span = (a: number, b: number) =>
      a === b ? escapeXml(positionLabel(a, labels, 24)) : `${a}–${b}`;
    const parts: string[] = [];
    for (let r = 0; r < rows; r++) {
      const first = Math.ceil((r * nRows) / rows);
      const last = Math.ceil(((r + 1) * nRows) / rows) - 1;
      const qa = queryPositions[first];
      const qb = queryPositions[last];
      let best = -1;
      for (let c = 0; c < cols; c++) {
        const v = values[r * cols + c];
        if (!Number.isNaN(v) && (best < 0 || v > values[r * cols + best])) {
          best = c;
        }
      }
      const ya = scales.y!(qa) as number;
      const yb = scales.y!(qb + 1) as number;
      const strongest = best < 0 ? "nothing unmasked" : `strongest ${
        span(
          k0 + Math.ceil((best * nCols) / cols),
          k0 + Math.ceil(((best + 1) * nCols) / cols) - 1,
        )
      }: ${formatWeight(values[r * cols + best])}`;
      parts.push(
        `<rect x="${x0}" y="${r1(Math.min(ya, yb))}" width="${width}" height="${
          r1(Math.abs(yb - ya))
        }" fill="white" fill-opacity="0"><title>q ${
          span(qa, qb)
        } → ${strongest}</title></rect>`,
      );
    }
    slot.markup = parts.join("");
    const g = context.document.createElementNS(SVG_NS, "g");
    g.setAttribute("data-attnscope-cells", slot.id);
    return g as unknown as RenderedElement;
  };
}

/** Puts the cells' markup into the placeholder group Plot serialized. */
function spliceCells(
  svg: string,
  slot: { id: string; markup: string },
): string {
  const open =
    `<g data-attnscope-cells="${slot.id}" shape-rendering="crispEdges">`;
  return svg.replace(
    new RegExp(`<g data-attnscope-cells="${slot.id}"\\s*/?>(</g>)?`),
    () => `${open}${slot.markup}</g>`,
  );
}

/** Triangles outside the frame at marked keys (top) and queries (left). */
function marginMarkers(
  keys: readonly number[],
  queries: readonly number[],
): Plot.RenderFunction {
  return (_index, scales, _values, dimensions, context) => {
    const g = context.document.createElementNS(SVG_NS, "g");
    const top = dimensions.marginTop;
    const left = dimensions.marginLeft;
    const parts: string[] = [];
    for (const k of keys) {
      const x = ((scales.x!(k) as number) + (scales.x!(k + 1) as number)) / 2;
      parts.push(
        `M${r2(x - 4)},${top - 7}L${r2(x + 4)},${top - 7}L${r2(x)},${top - 1}Z`,
      );
    }
    for (const q of queries) {
      const y = ((scales.y!(q) as number) + (scales.y!(q + 1) as number)) / 2;
      parts.push(
        `M${left - 7},${r2(y - 4)}L${left - 7},${r2(y + 4)}L${left - 1},${
          r2(y)
        }Z`,
      );
    }
    if (parts.length) {
      g.innerHTML = `<path d="${parts.join("")}" fill="${MARK_COLOR}"></path>`;
    }
    return g as unknown as RenderedElement;
  };
}

function r1(v: number): number {
  return Math.round(v * 10) / 10;
}

function r2(v: number): number {
  return Math.round(v * 100) / 100;
}

/** One `<image>` of the grid, colored through the chart's color scale. */
function rasterMark(
  grid: AttentionGrid,
  color: Plot.ScaleOptions,
  k0: number,
  k1: number,
  q0: number,
  qEnd: number,
): Plot.Markish[] {
  const href = gridPng(grid.values, grid.cols, colorizer(color));
  const image: Plot.RenderFunction = (_i, scales, _v, _d, context) => {
    const img = context.document.createElementNS(SVG_NS, "image");
    const x = scales.x!(k0) as number;
    const y = Math.min(scales.y!(q0) as number, scales.y!(qEnd) as number);
    img.setAttribute("x", String(x));
    img.setAttribute("y", String(y));
    img.setAttribute("width", String((scales.x!(k1) as number) - x));
    img.setAttribute(
      "height",
      String(Math.abs((scales.y!(qEnd) as number) - (scales.y!(q0) as number))),
    );
    img.setAttribute("preserveAspectRatio", "none");
    // optimizeSpeed: nearest-neighbour in browsers and in resvg, which
    // ignores "pixelated"; cells stay crisp when the image is upscaled.
    img.setAttribute("image-rendering", "optimizeSpeed");
    img.setAttribute("href", href);
    return img as unknown as RenderedElement;
  };
  // An empty mark keeps Plot's color scale (and so the legend) defined.
  return [Plot.dot([] as number[], { fill: (d: number) => d }), image];
}

/** Up to ~2,000 evenly spaced items: enough to size margins. */
function* sample(items: Iterable<number>): Generator<number> {
  const all = [...items];
  const step = Math.max(1, Math.floor(all.length / 2000));
  for (let i = 0; i < all.length; i += step) yield all[i];
}
