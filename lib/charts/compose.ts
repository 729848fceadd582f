/**
 * Figures of your own: an Observable Plot chart drawn the way attnscope's
 * charts are (server-side document, SVG legends, title and caption in one
 * standalone SVG), figures side by side, and a PNG shown as a figure. Each
 * returns a {@linkcode Figure}, so it displays itself in Jupyter and saves
 * as `.svg`, `.html` or `.png` like every other chart.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import {
  escapeXml,
  Figure,
  type FigureBlock,
  nestSvg,
  plotBlock,
  plotDocument,
  type PlotOptionsPassThrough,
  rampLegend,
  type ScaleOptionsPassThrough,
  SVG_NS,
  svgSize,
  swatchLegend,
} from "./_figure.ts";
import { isPng, pngDataUrl } from "../png.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";

/** Options for {@linkcode plotFigure}: Plot's options plus the figure's text. */
export interface PlotFigureOptions extends PlotOptionsPassThrough {
  /** Bold heading above the chart. */
  title?: string;
  /** A line under the title. */
  subtitle?: string;
  /** Lines under the chart (split at newlines). */
  caption?: string;
  /**
   * The `text/plain` summary Jupyter shows where HTML is not rendered.
   * @default {title, else "Observable Plot chart"}
   */
  summary?: string;
  /**
   * Plot's color scale options; `legend: true` (or `"ramp"`,
   * `"swatches"`) draws the legend above the chart as SVG.
   */
  color?: ScaleOptionsPassThrough;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them: `"light"`, `"dark"`, or `"auto"` (light, turning dark under
   * `prefers-color-scheme: dark` where the SVG is shown inline).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

/** Plot scale types whose legend is a list of swatches, not a ramp. */
const CATEGORICAL = new Set(["ordinal", "categorical", "point", "band"]);

/**
 * Draws an Observable Plot chart as an attnscope figure: `Plot.plot` with
 * your options, rendered without a browser, with the title, subtitle,
 * caption and color legend composed into one SVG. Use it for any chart the
 * built-in ones do not draw.
 *
 * @param options Any `Plot.plot` options, plus `title`, `subtitle`,
 * `caption` and `summary`.
 * @returns The figure.
 * @throws {TypeError} When Plot returns something other than one `<svg>`
 * (a legend other than color's, for example); the message says which option
 * to move.
 *
 * @example A bar chart with a color legend
 * ```ts
 * import * as Plot from "@observablehq/plot";
 * import { plotFigure } from "./compose.ts";
 * import assert from "node:assert/strict";
 *
 * const data = [{ head: "h0", w: 0.8 }, { head: "h1", w: 0.2 }];
 * const figure = plotFigure({
 *   title: "Attention to the needle",
 *   color: { legend: true },
 *   marks: [Plot.barY(data, { x: "head", y: "w", fill: "head" })],
 * });
 * assert.match(figure.toSVG(), /Attention to the needle/);
 * assert.match(figure.toSVG(), />h1<\/text>/); // the swatch legend
 * assert.equal(String(figure), "Attention to the needle");
 * ```
 */
export function plotFigure(options: PlotFigureOptions): Figure {
  const { title, subtitle, caption, summary, color, theme, ...plotOptions } =
    options;
  chartPalette(theme);
  const legend = color?.legend;
  // Plot's own legends are HTML beside the SVG; attnscope draws them as SVG
  // so the figure stays one document that saves and rasterizes whole.
  const node = Plot.plot({
    ...plotOptions,
    ...(color ? { color: { ...color, legend: false } } : {}),
    document: plotDocument(),
  } as Plot.PlotOptions) as unknown as HTMLishPlot;
  const legends: FigureBlock[] = [];
  if (legend) {
    const scale = node.scale("color");
    // The materialized scale forgets its label; take it from the options.
    const label = typeof color?.label === "string" ? color.label : undefined;
    if (scale) legends.push(colorLegend({ ...scale, label }, legend));
  }
  return new Figure({
    theme,
    kind: "plot",
    summary: summary ?? title ?? "Observable Plot chart",
    title,
    subtitle,
    caption,
    legends,
    chart: plotBlock(node),
  });
}

interface MaterializedScale {
  type: string;
  domain: unknown[];
  label?: string;
  apply(value: unknown): string;
}

interface HTMLishPlot {
  readonly outerHTML: string;
  scale(name: "color"): MaterializedScale | undefined;
}

function colorLegend(scale: MaterializedScale, kind: unknown): FigureBlock {
  if (kind === "swatches" || CATEGORICAL.has(scale.type)) {
    return swatchLegend(
      scale.domain.map((d) => ({ label: String(d), color: scale.apply(d) })),
      { label: scale.label },
    );
  }
  return rampLegend({ ...scale });
}

/** Options for {@linkcode figureRow}. */
export interface FigureRowOptions {
  /**
   * Space between figures in pixels.
   * @default {16}
   */
  gap?: number;
  /**
   * The `text/plain` summary.
   * @default {the figures' summaries, one per line}
   */
  summary?: string;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them: `"light"`, `"dark"`, or `"auto"` (light, turning dark under
   * `prefers-color-scheme: dark` where the SVG is shown inline).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

/**
 * Puts figures side by side, top-aligned: one SVG when every figure is SVG
 * (so the row saves as `.svg` or `.png`), else an HTML row that wraps on
 * narrow screens.
 *
 * @param figures The figures, left to right.
 * @param options Gap and summary.
 * @returns The row as one figure.
 * @throws {RangeError} When no figure is given.
 *
 * @example Two heatmaps, with and without the sink
 * ```ts
 * import { attentionHeatmap, AttentionScores, figureRow } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.6, 0.4]), [2, 1, 2]);
 * const a = attentionHeatmap(scores, { width: 200 });
 * const b = attentionHeatmap(scores, { width: 200, dropSink: true });
 * const width = (f: { toSVG(): string }) => Number(/width="(\d+)"/.exec(f.toSVG())![1]);
 * assert.equal(width(figureRow([a, b], { gap: 10 })), width(a) + 10 + width(b));
 * ```
 */
export function figureRow(
  figures: readonly Figure[],
  options: FigureRowOptions = {},
): Figure {
  if (figures.length === 0) {
    throw new RangeError(
      "Cannot lay out a figure row: no figures were given; pass at least one figure",
    );
  }
  const gap = options.gap ?? 16;
  const summary = options.summary ?? figures.map(String).join("\n");
  if (!figures.every((f) => f.hasSvg)) {
    return new Figure({
      kind: "figure row",
      summary,
      html:
        `<div style="display:flex;flex-wrap:wrap;gap:${gap}px;align-items:flex-start">${
          figures.map((f) => f.toHTML()).join("")
        }</div>`,
    });
  }
  const nested: string[] = [];
  let x = 0, height = 0;
  for (const figure of figures) {
    const svg = figure.toSVG();
    const size = svgSize(svg);
    nested.push(nestSvg(svg, x, 0, size.width, size.height));
    x += size.width + gap;
    height = Math.max(height, size.height);
  }
  const width = x - gap;
  return new Figure({
    theme: options.theme,
    kind: "figure row",
    summary,
    chart: {
      svg:
        `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${
          nested.join("")
        }</svg>`,
      width,
      height,
    },
  });
}

/** Options for {@linkcode imageFigure}. */
export interface ImageFigureOptions {
  /**
   * Display size as a multiple of the image's pixels, drawn nearest-neighbour
   * so small images stay sharp.
   * @default {1}
   */
  scale?: number;
  /** Bold heading above the image. */
  title?: string;
  /** Lines under the image. */
  caption?: string;
  /** Alternative text, also the `text/plain` summary. */
  alt?: string;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them: `"light"`, `"dark"`, or `"auto"` (light, turning dark under
   * `prefers-color-scheme: dark` where the SVG is shown inline).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

/**
 * Shows a PNG (an image prompt, say) as a figure.
 *
 * @param png The PNG file's bytes.
 * @param options Scale, title, caption, alternative text.
 * @returns The figure.
 * @throws {TypeError} When the bytes are not a PNG.
 * @throws {RangeError} When `scale` is not positive.
 *
 * @example
 * ```ts
 * import { encodePng, imageFigure } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const png = encodePng(new Uint8Array([255, 0, 0, 255]), 1);
 * const figure = imageFigure(png, { scale: 8, alt: "one red pixel" });
 * assert.match(figure.toSVG(), /<image [^>]*width="8" height="8"/);
 * assert.throws(() => imageFigure(new Uint8Array(4)), TypeError);
 * ```
 */
export function imageFigure(
  png: Uint8Array,
  options: ImageFigureOptions = {},
): Figure {
  if (png.length < 24 || !isPng(png)) {
    throw new TypeError(
      "Cannot show the image: the bytes are not a PNG file; pass the bytes of a .png (encodePng makes one)",
    );
  }
  const scale = options.scale ?? 1;
  if (!(scale > 0)) {
    throw new RangeError(
      `Cannot show the image at scale ${scale}; pass a positive scale`,
    );
  }
  // The IHDR chunk, always first, holds the size at bytes 16-23.
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const [pixelsWide, pixelsHigh] = [view.getUint32(16), view.getUint32(20)];
  const width = Math.round(pixelsWide * scale);
  const height = Math.round(pixelsHigh * scale);
  const alt = options.alt ?? `${pixelsWide}x${pixelsHigh} PNG`;
  return new Figure({
    theme: options.theme,
    kind: "image",
    summary: alt,
    title: options.title,
    caption: options.caption,
    chart: {
      svg:
        `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${
          escapeXml(alt)
        }"><image width="${width}" height="${height}" preserveAspectRatio="none" image-rendering="optimizeSpeed" href="${
          pngDataUrl(png)
        }"/></svg>`,
      width,
      height,
    },
  });
}
