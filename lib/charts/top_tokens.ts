/**
 * Bar charts of the keys one query attends to most (results of
 * `AttentionAnalyzer.topAttendedTokens`): one panel for the head mean and
 * one per head, bars labeled with token text and index, colored by token
 * type, marked tokens (the needle) outlined.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import type { TopAttendedTokens } from "../analysis/analyzer.ts";
import { attendedRow } from "../client/compact.ts";
import type { TokenType } from "../data/token_meta.ts";
import {
  estimateTextWidth,
  Figure,
  plotBlock,
  plotDocument,
  type PlotOptionsPassThrough,
  swatchLegend,
} from "./_figure.ts";
import {
  formatWeight,
  MARK_COLOR,
  markedSet,
  positionLabel,
  TOKEN_TYPE_COLORS,
} from "./_tokens.ts";
import { chartPalette, type ChartTheme, contrastRatio } from "./_theme.ts";

/** Options for {@linkcode topTokensChart}; other Plot options pass through. */
export interface TopTokensOptions extends PlotOptionsPassThrough {
  /**
   * Token text per absolute position, for bar labels.
   * @default {undefined} indices only
   */
  labels?: readonly string[];
  /**
   * Absolute positions to highlight (e.g. the needle).
   * @default {[]}
   */
  mark?: Iterable<number>;
  /**
   * Panels per row when several results are drawn.
   * @default {3}
   */
  columns?: number;
  /**
   * Heading; `""` for none.
   * @default {"Top attended keys of query Q"}
   */
  title?: string;
  /**
   * Line under the heading; `""` for none.
   * @default {"Layer L" when given}
   */
  subtitle?: string;
  /**
   * Line under the chart; `""` for none.
   * @default {marked positions, if any}
   */
  caption?: string;
  /**
   * The layer the results come from, named in the subtitle.
   * @default {undefined}
   */
  layer?: number;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them (`"auto"`: light, dark under `prefers-color-scheme: dark` where
   * shown as inline SVG).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

interface Bar {
  panel: string;
  col: number;
  row: number;
  rank: number;
  index: number;
  weight: number;
  type: TokenType;
  text: string;
  marked: boolean;
  inside?: boolean;
}

/**
 * Draws top-attended keys as labeled bars.
 *
 * @param results One result, or several (e.g. head mean then each head).
 * @param options Labels, marks, panel layout and Plot options.
 * @returns The figure.
 * @throws {TypeError} When no result is given.
 *
 * @example
 * ```ts
 * import { topTokensChart } from "./top_tokens.ts";
 * import { AttentionAnalyzer } from "../analysis/analyzer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const analyzer = new AttentionAnalyzer(
 *   new AttentionScores(new Float32Array([0.2, 0.5, 0.3]), [1, 1, 3]),
 *   TokenMeta.from({ prompt_len: 3, lang_ranges: [{ start: 0, end: 3 }] }),
 * );
 * const top = analyzer.topAttendedTokens(0, { avgHeads: true, topK: 2 });
 * const figure = topTokensChart(top, { labels: ["a", "b", "c"], mark: [1] });
 * assert.match(figure.toSVG(), /b 1 · 0.500/);
 * assert.equal(String(figure), "Top 2 keys of query 2, head mean: b(1)=0.50◀ c(2)=0.30");
 * ```
 */
export function topTokensChart(
  results: TopAttendedTokens | readonly TopAttendedTokens[],
  options: TopTokensOptions = {},
): Figure {
  const {
    labels,
    mark,
    columns = 3,
    title,
    subtitle,
    caption,
    layer,
    marks: extraMarks = [],
    theme,
    ...plotOptions
  } = options;
  const palette = chartPalette(theme);
  // Labels beside short bars sit on the background: light on dark.
  const dark = theme === "dark";
  const ink = dark ? palette.text : "#111";
  const markInk = dark ? "#ff6fa0" : MARK_COLOR;
  const list = isSingle(results) ? [results] : [...results];
  if (list.length === 0 || list.every((r) => r.length === 0)) {
    throw new TypeError(
      "Cannot draw top attended tokens: no results given; pass analyzer.topAttendedTokens(q, { avgHeads: true }) or a list of such results",
    );
  }
  const marked = markedSet(mark);
  const cols = Math.max(1, Math.min(list.length, Math.floor(columns)));
  const panelName = (r: TopAttendedTokens) =>
    r.head === "mean" ? "head mean" : `head ${r.head}`;
  const bars: Bar[] = list.flatMap((r, i) =>
    [...r].map((t, rank) => ({
      panel: panelName(r),
      col: i % cols,
      row: Math.floor(i / cols),
      rank: rank + 1,
      index: t.index,
      weight: t.weight,
      type: t.type,
      text: `${positionLabel(t.index, labels, 20)} · ${formatWeight(t.weight)}`,
      marked: marked.has(t.index),
    }))
  );
  const panels = list.map((r, i) => ({
    col: i % cols,
    row: Math.floor(i / cols),
    name: panelName(r),
  }));
  const k = Math.max(...list.map((r) => r.length));
  const rowsOfPanels = Math.ceil(list.length / cols);
  const faceted = list.length > 1;
  const width = plotOptions.width ?? Math.min(960, 40 + cols * 300);
  const marginTop = plotOptions.marginTop ?? (faceted ? 26 : 10);
  const height = plotOptions.height ??
    Math.round(marginTop + 34 + rowsOfPanels * (k * 20 + (faceted ? 34 : 8)));
  const maxWeight = Math.max(...bars.map((b) => b.weight), 1e-9);
  // Whether a bar is long enough to hold its label (Plot's nice domain
  // rounds the end up a little, so this errs toward outside labels).
  const marginLeft = plotOptions.marginLeft ?? 28;
  const marginRight = plotOptions.marginRight ?? 16;
  const panelPx = ((width - marginLeft - marginRight) / cols) *
    (faceted ? 0.88 : 1);
  for (const b of bars) {
    b.inside = (b.weight / maxWeight) * panelPx * 0.9 >=
      estimateTextWidth(b.text, 11) + 10;
  }
  const facet = faceted ? { fx: "col", fy: "row" } : {};

  const node = Plot.plot({
    ...plotOptions,
    document: plotDocument(),
    width,
    height,
    marginTop,
    marginLeft,
    marginRight,
    marginBottom: plotOptions.marginBottom ?? 34,
    fx: { axis: null, paddingInner: 0.12, ...(plotOptions.fx ?? {}) },
    fy: {
      axis: null,
      paddingInner: faceted ? 0.3 : 0,
      ...(plotOptions.fy ?? {}),
    },
    x: {
      domain: [0, maxWeight],
      nice: true,
      grid: true,
      label: "attention weight",
      ...(plotOptions.x ?? {}),
    },
    y: {
      type: "band",
      domain: Array.from({ length: k }, (_, i) => i + 1),
      label: "rank",
      tickSize: 0,
      ...(plotOptions.y ?? {}),
    },
    color: {
      domain: Object.keys(TOKEN_TYPE_COLORS),
      range: Object.values(TOKEN_TYPE_COLORS),
    },
    marks: [
      Plot.barX(bars, {
        ...facet,
        x: "weight",
        y: "rank",
        fill: "type",
        inset: 2,
        title: (b: Bar) =>
          `${b.panel} · rank ${b.rank}\nkey ${
            positionLabel(b.index, labels, 40)
          } (${b.type})\nattention ${formatWeight(b.weight)}${
            b.marked ? "\nmarked" : ""
          }`,
      }),
      Plot.barX(bars.filter((b) => b.marked), {
        ...facet,
        x: "weight",
        y: "rank",
        fill: "none",
        stroke: MARK_COLOR,
        strokeWidth: 2.5,
        inset: 1,
      }),
      // Labels sit inside long bars and after short ones: no halo needed.
      ...[false, true].flatMap((isMarked) => [
        Plot.text(bars.filter((b) => b.marked === isMarked && b.inside), {
          ...facet,
          x: 0,
          y: "rank",
          text: "text",
          textAnchor: "start",
          dx: 5,
          // White or near-black, whichever reads better on the bar.
          fill: (b: Bar) =>
            contrastRatio("#ffffff", TOKEN_TYPE_COLORS[b.type]) >
                contrastRatio("#111111", TOKEN_TYPE_COLORS[b.type])
              ? "white"
              : "#111",
          fontWeight: isMarked ? "bold" : "normal",
          fontSize: 11,
        }),
        Plot.text(bars.filter((b) => b.marked === isMarked && !b.inside), {
          ...facet,
          x: "weight",
          y: "rank",
          text: "text",
          textAnchor: "start",
          dx: 5,
          fill: isMarked ? markInk : ink,
          fontWeight: isMarked ? "bold" : "normal",
          fontSize: 11,
        }),
      ]),
      ...(faceted
        ? [
          Plot.text(panels, {
            fx: "col",
            fy: "row",
            text: "name",
            frameAnchor: "top-left",
            dy: -16,
            fontWeight: "bold",
            fontSize: 12,
          }),
        ]
        : []),
      Plot.ruleX([0]),
      ...(extraMarks as Plot.Markish[]),
    ],
  } as Plot.PlotOptions);

  const types = [...new Set(bars.map((b) => b.type))].sort((a, b) =>
    Object.keys(TOKEN_TYPE_COLORS).indexOf(a) -
    Object.keys(TOKEN_TYPE_COLORS).indexOf(b)
  );
  const legendItems: { label: string; color: string; outline?: boolean }[] =
    types.map((t) => ({ label: t, color: TOKEN_TYPE_COLORS[t] }));
  if (bars.some((b) => b.marked)) {
    legendItems.push({ label: "marked", color: MARK_COLOR, outline: true });
  }
  const query = list[0].query;
  const sameQuery = list.every((r) => r.query === query);
  const first = list[0];
  // With token text, the terminal's compact row (the reference's format);
  // without it, positions alone rather than the reference's "None(k)".
  const row = labels
    ? attendedRow(first, labels, marked)
    : [...first].map((t) => `${t.index}=${formatWeight(t.weight)}`).join(" ");
  const summary = `Top ${first.length} keys of query ${first.query}, ${
    panelName(first)
  }: ${row}${list.length > 1 ? ` (+${list.length - 1} more panels)` : ""}`;
  const markedNames = [...marked].map((m) => positionLabel(m, labels, 24));
  return new Figure({
    theme,
    kind: "top tokens",
    summary,
    title: title ??
      (sameQuery
        ? `Top attended keys of query ${positionLabel(query, labels, 30)}`
        : "Top attended keys"),
    subtitle: subtitle ??
      [
        layer === undefined ? "" : `Layer ${layer}`,
        `bars: attention weight, colored by token type`,
      ]
        .filter(Boolean).join(" · "),
    legends: [swatchLegend(legendItems)],
    chart: plotBlock(node),
    caption: caption ??
      (markedNames.length ? `Marked: ${markedNames.join(", ")}.` : ""),
  });
}

function isSingle(
  results: TopAttendedTokens | readonly TopAttendedTokens[],
): results is TopAttendedTokens {
  return results.length === 0 || !Array.isArray(results[0]);
}
