/**
 * Attention by token type (vision, language, generated) per head, for
 * cross-modal analysis: for the queries of each type, where their attention
 * goes, as stacked bars per head.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import type { AttentionScores } from "../data/scores.ts";
import type { TokenMeta, TokenType } from "../data/token_meta.ts";
import {
  Figure,
  plotBlock,
  plotDocument,
  type PlotOptionsPassThrough,
  swatchLegend,
} from "./_figure.ts";
import { type AttentionSource, resolveSource } from "./_source.ts";
import { formatWeight, TOKEN_TYPE_COLORS } from "./_tokens.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";

/** One bar segment: how much of a query type's attention goes to a key type. */
export interface TypeAttention {
  /** Head index, or `"mean"` for the head average. */
  head: number | "mean";
  /** Type of the queries averaged over. */
  query: TokenType;
  /** Type of the keys summed over. */
  key: TokenType;
  /** Mean over those queries of the attention they give those keys. */
  weight: number;
  /** How many query rows were averaged. */
  queries: number;
}

const TYPES = Object.keys(TOKEN_TYPE_COLORS) as TokenType[];

/**
 * For each head and query type, the average share of attention that goes to
 * each key type. Shares of one head and query type sum to the rows' sums
 * (1 for softmax rows).
 *
 * @param scores One layer's scores.
 * @param tokenMeta What each position is.
 * @returns One entry per head (then `"mean"`), query type present and key type present.
 *
 * @example Vision queries give a quarter of their attention to language
 * ```ts
 * import { attentionByTokenType } from "./token_types.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * const meta = TokenMeta.from({ prompt_len: 2, lang_ranges: [{ start: 0, end: 1 }], vision_ranges: [{ start: 1, end: 2 }] });
 * const rows = attentionByTokenType(scores, meta);
 * const v = rows.find((r) => r.head === 0 && r.query === "vision" && r.key === "language");
 * assert.equal(v?.weight, 0.25);
 * ```
 */
export function attentionByTokenType(
  scores: AttentionScores,
  tokenMeta: TokenMeta,
): TypeAttention[] {
  const [tq, heads, tk] = scores.shape;
  const keyType = Array.from(
    { length: tk },
    (_, k) => TYPES.indexOf(tokenMeta.tokenType(scores.keyPosition(k))),
  );
  const rowType = Array.from(
    scores.queryPositions,
    (p) => TYPES.indexOf(tokenMeta.tokenType(p)),
  );
  const nT = TYPES.length;
  // sums[(h * nT + queryType) * nT + keyType]
  const sums = new Float64Array(heads * nT * nT);
  const counts = new Int32Array(nT);
  for (let r = 0; r < tq; r++) {
    const qt = rowType[r];
    counts[qt]++;
    for (let h = 0; h < heads; h++) {
      const row = scores.row(r, h);
      const base = (h * nT + qt) * nT;
      for (let k = 0; k < tk; k++) sums[base + keyType[k]] += row[k];
    }
  }
  const keyPresent = TYPES.map((_, i) => keyType.includes(i));
  const out: TypeAttention[] = [];
  const push = (head: number | "mean", q: number, k: number, w: number) =>
    out.push({
      head,
      query: TYPES[q],
      key: TYPES[k],
      weight: w,
      queries: counts[q],
    });
  for (let h = 0; h <= heads; h++) {
    for (let q = 0; q < nT; q++) {
      if (!counts[q]) continue;
      for (let k = 0; k < nT; k++) {
        if (!keyPresent[k]) continue;
        let total = 0;
        if (h < heads) total = sums[(h * nT + q) * nT + k];
        else {
          for (let hh = 0; hh < heads; hh++) {
            total += sums[(hh * nT + q) * nT + k];
          }
          total /= heads;
        }
        push(h < heads ? h : "mean", q, k, total / counts[q]);
      }
    }
  }
  return out;
}

/** Options for {@linkcode tokenTypeChart}; other Plot options pass through. */
export interface TokenTypeChartOptions extends PlotOptionsPassThrough {
  /**
   * Metadata, when the source is bare scores.
   * @default {undefined} the layer's own
   */
  tokenMeta?: TokenMeta;
  /**
   * Heading; `""` for none.
   * @default {"Where each token type's attention goes"}
   */
  title?: string;
  /**
   * Line under the heading; `""` for none.
   * @default {the layer and how to read the bars}
   */
  subtitle?: string;
  /**
   * Line under the chart; `""` for none.
   * @default {""}
   */
  caption?: string;
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them (`"auto"`: light, dark under `prefers-color-scheme: dark` where
   * shown as inline SVG).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

/**
 * Draws, for each query type, each head's attention split by key type.
 *
 * @param source A decoded layer, or its scores with `tokenMeta` in options.
 * @param options Metadata, labels and Plot options.
 * @returns The figure.
 * @throws {TypeError} When there is no token metadata.
 *
 * @example
 * ```ts
 * import { tokenTypeChart } from "./token_types.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * const tokenMeta = TokenMeta.from({ prompt_len: 2, lang_ranges: [{ start: 0, end: 1 }], vision_ranges: [{ start: 1, end: 2 }] });
 * const figure = tokenTypeChart(scores, { tokenMeta });
 * assert.match(figure.toSVG(), /<title>head 0 · vision queries → language keys\n0.250/);
 * ```
 */
export function tokenTypeChart(
  source: AttentionSource,
  options: TokenTypeChartOptions = {},
): Figure {
  const {
    tokenMeta,
    title,
    subtitle,
    caption,
    marks: extraMarks = [],
    theme,
    ...plotOptions
  } = options;
  chartPalette(theme);
  const src = resolveSource(source, tokenMeta, "attention by token type");
  if (!src.tokenMeta) {
    throw new TypeError(
      "Cannot draw attention by token type: no token metadata; pass a decoded layer or { tokenMeta }",
    );
  }
  const rows = attentionByTokenType(src.scores, src.tokenMeta);
  const heads = [
    ...Array.from({ length: src.scores.numHeads }, (_, h) => String(h)),
    "mean",
  ];
  const data = rows.map((r) => ({ ...r, headName: String(r.head) }));
  const queryTypes = [...new Set(rows.map((r) => r.query))];
  const keyTypes = TYPES.filter((t) => rows.some((r) => r.key === t));
  const width = plotOptions.width ??
    Math.max(360, Math.min(960, 120 + heads.length * 36));
  const height = plotOptions.height ?? 40 + queryTypes.length * 150;
  const node = Plot.plot({
    ...plotOptions,
    document: plotDocument(),
    width,
    height,
    marginLeft: plotOptions.marginLeft ?? 50,
    marginRight: plotOptions.marginRight ?? 110,
    marginBottom: plotOptions.marginBottom ?? 34,
    x: {
      type: "band",
      domain: heads,
      label: "head",
      tickSize: 0,
      ...(plotOptions.x ?? {}),
    },
    y: {
      label: "share of attention",
      domain: [0, 1],
      grid: true,
      tickFormat: "%",
      ...(plotOptions.y ?? {}),
    },
    fy: {
      domain: queryTypes,
      label: null,
      padding: 0.12,
      tickFormat: (t: string) => `${t} queries`,
      ...(plotOptions.fy ?? {}),
    },
    color: {
      domain: keyTypes,
      range: keyTypes.map((t) => TOKEN_TYPE_COLORS[t]),
    },
    marks: [
      Plot.barY(data, {
        x: "headName",
        y: "weight",
        fy: "query",
        fill: "key",
        order: TYPES,
        inset: 0.5,
        title: (d: TypeAttention) =>
          `${
            d.head === "mean" ? "head mean" : `head ${d.head}`
          } · ${d.query} queries → ${d.key} keys\n${
            formatWeight(d.weight)
          } (over ${d.queries} queries)`,
      }),
      Plot.ruleY([0]),
      ...(extraMarks as Plot.Markish[]),
    ],
  } as Plot.PlotOptions);
  const vision = rows.find((r) =>
    r.head === "mean" && r.query === "vision" && r.key === "language"
  );
  const layerName = src.layer === null ? "" : `Layer ${src.layer} · `;
  return new Figure({
    theme,
    kind: "token types",
    summary: `Attention by token type${
      src.layer === null ? "" : ` in layer ${src.layer}`
    }: ${queryTypes.join(", ")} queries x ${src.scores.numHeads} heads${
      vision
        ? `; vision→language (head mean) ${formatWeight(vision.weight)}`
        : ""
    }`,
    title: title ?? "Where each token type's attention goes",
    subtitle: subtitle ??
      `${layerName}bars: each head's attention from queries of one type, split by key type`,
    legends: [
      swatchLegend(
        keyTypes.map((t) => ({ label: t, color: TOKEN_TYPE_COLORS[t] })),
        { label: "keys" },
      ),
    ],
    chart: plotBlock(node),
    caption: caption ?? "",
  });
}
