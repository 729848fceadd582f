/**
 * attnscope's charts: Observable Plot figures of attention that display
 * themselves in Deno's Jupyter kernel and save as SVG, HTML or PNG.
 *
 * - {@linkcode attentionHeatmap}: one layer, one head or the head mean.
 * - {@linkcode headsGrid}: every layer x head as small heatmaps.
 * - {@linkcode topTokensChart}: the keys a query attends to most.
 * - {@linkcode tokenTextView}: token text shaded by one query's attention;
 *   {@linkcode tokenTextImage}: the same as an SVG/PNG image.
 *
 * Every figure takes `theme` (`"light"`, `"dark"`, `"auto"`) where noted,
 * and {@linkcode Figure.asImage} turns one into a PNG `<img>` that survives
 * untrusted notebooks and GitHub.
 * - {@linkcode tokenTypeChart}: attention by token type per head.
 *
 * @example
 * ```ts
 * import { attentionHeatmap } from "./mod.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
 * assert.match(attentionHeatmap(scores).toSVG(), /^<svg xmlns=/);
 * ```
 *
 * @module
 */

export {
  Figure,
  FigureImage,
  type PlotOptionsPassThrough,
  type PngOptions,
  type ScaleOptionsPassThrough,
} from "./_figure.ts";
export type { PositionRange } from "./_grid.ts";
export type { AttentionSource } from "./_source.ts";
export { MARK_COLOR, TOKEN_TYPE_COLORS } from "./_tokens.ts";
export {
  figureRow,
  type FigureRowOptions,
  imageFigure,
  type ImageFigureOptions,
  plotFigure,
  type PlotFigureOptions,
} from "./compose.ts";
export { attentionHeatmap, type HeatmapOptions } from "./heatmap.ts";
export { headsGrid, type HeadsGridOptions } from "./heads_grid.ts";
export { topTokensChart, type TopTokensOptions } from "./top_tokens.ts";
export {
  tokenTextImage,
  type TokenTextImageOptions,
  type TokenTextOptions,
  tokenTextView,
} from "./token_text.ts";
export type { ChartTheme } from "./_theme.ts";
export { type ImageFallbackOptions, setImageFallback } from "./_fallback.ts";
export {
  attentionByTokenType,
  tokenTypeChart,
  type TokenTypeChartOptions,
  type TypeAttention,
} from "./token_types.ts";
