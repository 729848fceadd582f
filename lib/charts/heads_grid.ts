/**
 * Small multiples of every captured layer and head (bertviz's "model view"
 * as heatmaps): one raster tile per head, reduced by maximum, on one shared
 * color scale, with hover text naming the layer and head.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import type { AttentionCapture, AttentionLayer } from "../data/layer.ts";
import { colorizer, gridPng, quantile } from "./_colorize.ts";
import {
  Figure,
  plotBlock,
  plotDocument,
  type PlotOptionsPassThrough,
  rampLegend,
  type ScaleOptionsPassThrough,
} from "./_figure.ts";
import {
  type AttentionGrid,
  attentionGrid,
  type PositionRange,
} from "./_grid.ts";
import { formatWeight } from "./_tokens.ts";
import { findingsNote } from "../data/check_capture.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";

/** Options for {@linkcode headsGrid}; other Plot options pass through. */
export interface HeadsGridOptions extends PlotOptionsPassThrough {
  /**
   * Layer indices to show, in order.
   * @default {every layer given, ascending}
   */
  layers?: readonly number[];
  /**
   * Head indices to show.
   * @default {every head}
   */
  heads?: readonly number[];
  /**
   * Add a column with the head mean of each layer.
   * @default {false}
   */
  includeMean?: boolean;
  /**
   * Drop key 0 (the first-token sink) and renormalize rows in every tile.
   * @default {false}
   */
  dropSink?: boolean;
  /**
   * Absolute position ranges to zoom into, half open `[start, end)`.
   * @default {{}} everything captured
   */
  window?: { query?: PositionRange; key?: PositionRange };
  /**
   * Tile size in pixels.
   * @default {fits 900 px of width, between 48 and 160}
   */
  tileSize?: number;
  /**
   * Quantile of all tiles' values where colors saturate (1 for the maximum).
   * @default {0.995}
   */
  saturate?: number;
  /**
   * Heading; `""` for none.
   * @default {"Attention by layer and head"}
   */
  title?: string;
  /**
   * Line under the heading; `""` for none.
   * @default {what a tile shows}
   */
  subtitle?: string;
  /**
   * Line under the chart; `""` for none.
   * @default {where colors saturate}
   */
  caption?: string;
  /**
   * `"shared"`: one color scale for all tiles, so tiles compare. `"tile"`:
   * each tile scaled to its own saturation value, so weak heads show their
   * pattern too (colors then read as a fraction of that value).
   * @default {"shared"}
   */
  normalize?: "shared" | "tile";
  /**
   * Plot color scale options merged over the defaults (`viridis`, clamped).
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

interface Tile {
  layer: string;
  head: string;
  grid: AttentionGrid;
  /** The tile's largest value before any per-tile scaling. */
  max: number;
  src?: string;
  title?: string;
}

/**
 * Draws every layer x head as a grid of small heatmaps.
 *
 * @param capture Decoded layers: a capture record (`{ [layer]: layer }`) or a list.
 * @param options Layers, heads, tile size, sink, window and Plot options.
 * @returns The figure.
 * @throws {TypeError} When no layer is given.
 *
 * @example
 * ```ts
 * import { headsGrid } from "./heads_grid.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 3,
 *   model: null,
 *   scores: new AttentionScores(new Float32Array([1, 1, 0, 0, 0.5, 0.5, 0.9, 0.1]), [2, 2, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 2 }),
 * });
 * const figure = headsGrid([layer]);
 * assert.match(figure.toSVG(), /<title>layer 3 · head 1/);
 * assert.equal(String(figure), "Heads grid: 1 layer x 2 heads, T=2");
 * ```
 */
export function headsGrid(
  capture: AttentionCapture | Iterable<AttentionLayer>,
  options: HeadsGridOptions = {},
): Figure {
  const {
    layers: layerChoice,
    heads: headChoice,
    includeMean = false,
    dropSink = false,
    window,
    tileSize,
    saturate = 0.995,
    normalize = "shared",
    title,
    subtitle,
    caption,
    color: colorOptions = {},
    marks: extraMarks = [],
    theme,
    ...plotOptions
  } = options;
  chartPalette(theme);
  const all =
    (Symbol.iterator in Object(capture)
      ? [...(capture as Iterable<AttentionLayer>)]
      : Object.values(capture as AttentionCapture))
      .sort((a, b) => a.layer - b.layer);
  const layers = layerChoice
    ? layerChoice.map((l) => {
      const found = all.find((a) => a.layer === l);
      if (!found) {
        throw new RangeError(
          `Cannot draw layer ${l} in the heads grid: it was not captured; captured layers are ${
            all.map((a) => a.layer).join(", ")
          }`,
        );
      }
      return found;
    })
    : all;
  if (layers.length === 0) {
    throw new TypeError(
      "Cannot draw a heads grid: no layers given; pass the capture (or a list of decoded layers)",
    );
  }
  if (!(saturate > 0 && saturate <= 1)) {
    throw new RangeError(
      `Cannot draw a heads grid with saturate ${saturate}: expected a quantile in (0, 1]`,
    );
  }
  const maxHeads = Math.max(...layers.map((l) => l.scores.numHeads));
  const heads = headChoice ?? Array.from({ length: maxHeads }, (_, h) => h);
  const columns = [...heads.map(String), ...(includeMean ? ["mean"] : [])];

  const marginLeft = plotOptions.marginLeft ?? 48;
  const marginTop = plotOptions.marginTop ?? 36;
  const marginRight = plotOptions.marginRight ?? 8;
  const marginBottom = plotOptions.marginBottom ?? 8;
  const paddingInner = 0.08;
  const stepsFor = (n: number) => n - paddingInner + 2 * 0.02;
  const tile = Math.round(
    tileSize ??
      Math.max(
        48,
        Math.min(
          160,
          ((900 - marginLeft - marginRight) / stepsFor(columns.length)) *
            (1 - paddingInner),
        ),
      ),
  );
  const step = tile / (1 - paddingInner);

  const tiles: Tile[] = [];
  for (const layer of layers) {
    for (const column of columns) {
      if (column !== "mean" && Number(column) >= layer.scores.numHeads) {
        continue;
      }
      const grid = attentionGrid(layer.scores, {
        head: column === "mean" ? "mean" : Number(column),
        window,
        dropSink,
        maxRows: tile,
        maxCols: tile,
      });
      tiles.push({
        layer: String(layer.layer),
        head: column,
        grid,
        max: grid.max,
      });
    }
  }
  if (normalize === "tile") {
    for (const t of tiles) {
      const top = saturate >= 1
        ? t.grid.max
        : quantile(t.grid.values, saturate);
      const s = top > 0 ? 1 / top : 0;
      t.grid = {
        ...t.grid,
        values: t.grid.values.map((v) => Math.min(1, v * s)),
        max: t.grid.max * s,
      };
    }
  } else if (normalize !== "shared") {
    throw new TypeError(
      `Cannot draw a heads grid with normalize ${
        JSON.stringify(normalize)
      }: use "shared" or "tile"`,
    );
  }
  const globalMax = Math.max(0, ...tiles.map((t) => t.grid.max));
  const saturation = saturate >= 1 ? globalMax : Math.max(
    ...tiles.map((t) => quantile(t.grid.values, saturate)),
  );
  const colorMax = saturation > 0 ? saturation : (globalMax || 1);
  const color: Plot.ScaleOptions = {
    type: "linear",
    scheme: "viridis",
    domain: [0, colorMax],
    clamp: true,
    label: normalize === "tile"
      ? "attention / tile's saturation value"
      : dropSink
      ? "attention (sink dropped)"
      : "attention",
    ...colorOptions,
  };
  const colors = colorizer(color);
  for (const t of tiles) {
    t.src = gridPng(t.grid.values, t.grid.cols, colors);
    const name = t.head === "mean" ? "head mean" : `head ${t.head}`;
    t.title = `layer ${t.layer} · ${name}\nmax ${formatWeight(t.max)}`;
  }

  const layerNames = layers.map((l) => String(l.layer));
  const width = plotOptions.width ??
    Math.round(marginLeft + marginRight + step * stepsFor(columns.length));
  const height = plotOptions.height ??
    Math.round(marginTop + marginBottom + step * stepsFor(layerNames.length));
  const band = { paddingInner, paddingOuter: 0.02 };
  const node = Plot.plot({
    ...plotOptions,
    document: plotDocument(),
    width,
    height,
    marginLeft,
    marginTop,
    marginRight,
    marginBottom,
    x: {
      type: "band",
      domain: columns,
      ...band,
      axis: "top",
      label: "head",
      tickSize: 0,
      ...(plotOptions.x ?? {}),
    },
    y: {
      type: "band",
      domain: layerNames,
      ...band,
      label: "layer",
      tickSize: 0,
      ...(plotOptions.y ?? {}),
    },
    color,
    marks: [
      // Masked (future) cells are transparent and show this background.
      Plot.cell(tiles, { x: "head", y: "layer", fill: "#f0f0f0", inset: 0 }),
      Plot.image(tiles, {
        x: "head",
        y: "layer",
        src: (t: Tile) => t.src,
        width: tile,
        height: tile,
        preserveAspectRatio: "none",
        // Nearest-neighbour in browsers and resvg alike.
        imageRendering: "optimizeSpeed",
        title: (t: Tile) => t.title,
      }),
      Plot.dot([] as number[], { fill: (d: number) => d }),
      ...(extraMarks as Plot.Markish[]),
    ],
  } as Plot.PlotOptions);

  const t = layers[0].scores;
  const size = t.queryLength === t.keyLength
    ? `T=${t.keyLength}`
    : `Tq=${t.queryLength} Tk=${t.keyLength}`;
  const notes: string[] = [];
  if (
    normalize === "shared" && colorMax < globalMax &&
    colorOptions.domain === undefined
  ) {
    notes.push(
      `Colors saturate at ${formatWeight(colorMax)} (${+(saturate * 100)
        .toFixed(2)}th percentile); the maximum is ${formatWeight(globalMax)}.`,
    );
  }
  if (tiles.some((x) => x.grid.reduced)) {
    notes.push(
      `Tiles are ${tile} px: each pixel shows the maximum of the cells it covers.`,
    );
  }
  for (const layer of layers) {
    const findings = findingsNote(layer.scores);
    if (findings) notes.push(`Layer ${layer.layer}: ${findings}`);
  }
  const legendOn = (colorOptions as { legend?: unknown }).legend !== false;
  const layerWord = layers.length === 1 ? "layer" : "layers";
  return new Figure({
    theme,
    kind: "heads grid",
    summary:
      `Heads grid: ${layers.length} ${layerWord} x ${columns.length} heads, ${size}`,
    title: title ?? "Attention by layer and head",
    subtitle: subtitle ??
      `Each tile: query (down) × key (across), ${size}${
        dropSink ? ", sink dropped and rows renormalized" : ""
      }; grey: masked`,
    legends: legendOn ? [rampLegend(color)] : [],
    chart: plotBlock(node),
    caption: caption ?? notes.join("\n"),
  });
}
