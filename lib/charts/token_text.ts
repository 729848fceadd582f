/**
 * The prompt and output as text, each token's background shaded by the
 * attention one query gives it (the view CircuitsVis and Ecco users know),
 * with hover text showing position, type and weight. HTML, not SVG: text
 * wraps like text.
 *
 * @module
 */

import type * as Plot from "npm:@observablehq/plot@^0.6.17";
import type { TokenMeta } from "../data/token_meta.ts";
import { colorizer, quantile } from "./_colorize.ts";
import {
  escapeXml,
  Figure,
  rampLegend,
  type ScaleOptionsPassThrough,
} from "./_figure.ts";
import { type AttentionSource, resolveSource } from "./_source.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";
import { shadedTextBlock } from "./_text_svg.ts";
import {
  formatWeight,
  MARK_COLOR,
  markedSet,
  positionLabel,
  TOKEN_TYPE_COLORS,
} from "./_tokens.ts";

/** Options for {@linkcode tokenTextView}. */
export interface TokenTextOptions {
  /**
   * The query row whose attention shades the text (negative counts from
   * the end, as in the analyzer).
   * @default {-1} the last captured query
   */
  query?: number;
  /**
   * A head index, or `"mean"` for the head average.
   * @default {"mean"}
   */
  head?: number | "mean";
  /**
   * Leave the first-token sink unshaded and scale the rest without it.
   * @default {false}
   */
  dropSink?: boolean;
  /**
   * Absolute positions to outline (e.g. the needle).
   * @default {[]}
   */
  mark?: Iterable<number>;
  /**
   * Metadata, when the source is bare scores (token types in hover text).
   * @default {undefined} the layer's own
   */
  tokenMeta?: TokenMeta;
  /**
   * Quantile of the query's weights where shading saturates (1: the
   * maximum). By default shading spans the largest weight after position 0,
   * so the first-token sink, when it dominates, does not wash out the rest.
   * @default {undefined}
   */
  saturate?: number;
  /**
   * Plot color scale options merged over the defaults (`blues`).
   * @default {{}}
   */
  color?: ScaleOptionsPassThrough;
  /**
   * Heading; `""` for none.
   * @default {"Attention from query Q"}
   */
  title?: string;
  /**
   * Background and text colours, as `explore(x, { theme })` takes them.
   * @default {"light"}
   */
  theme?: ChartTheme;
}

/** Options for {@linkcode tokenTextImage}: the view's, plus a width. */
export interface TokenTextImageOptions extends TokenTextOptions {
  /**
   * Width of the image in pixels; the text wraps to it.
   * @default {880}
   */
  width?: number;
}

/** One token as both renderings draw it. */
interface ShadedToken {
  text: string;
  hover: string;
  /** Background, or null for none. */
  rgb: [number, number, number] | null;
  /** White text on a dark shade. */
  light: boolean;
  after: boolean;
  query: boolean;
  marked: boolean;
  vision: boolean;
}

interface Shading {
  tokens: ShadedToken[];
  color: Plot.ScaleOptions;
  heading: string;
  notes: string;
  legend: boolean;
  summary: string;
  plain: string;
}

/**
 * Shows token text shaded by one query's attention.
 *
 * @param source A decoded layer, or its scores.
 * @param labels Token text per absolute position (prompt and output).
 * @param options Query, head, marks and colors.
 * @returns An HTML figure.
 * @throws {TypeError} When labels are missing.
 *
 * @example
 * ```ts
 * import { tokenTextView } from "./token_text.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * const view = tokenTextView(scores, ["Hello", " world"]);
 * assert.match(view.toHTML(), /title="0 · Hello · attention 0.250"/);
 * assert.equal(view.hasSvg, false);
 * ```
 */
export function tokenTextView(
  source: AttentionSource,
  labels: readonly string[],
  options: TokenTextOptions = {},
): Figure {
  const shading = shade(source, labels, options);
  const palette = chartPalette(options.theme);
  const after = options.theme === "dark" ? "#8d93a1" : "#999";
  const spans = shading.tokens.map((t) => {
    const style: string[] = [];
    if (t.rgb) {
      style.push(`background:rgb(${t.rgb[0]},${t.rgb[1]},${t.rgb[2]})`);
      style.push(t.light ? "color:white" : "color:#111");
    } else if (t.after) {
      style.push(`color:${after}`);
    }
    if (t.query) {
      style.push(`outline:2px solid ${palette.text};outline-offset:-1px`);
    }
    if (t.marked) {
      style.push(`box-shadow:inset 0 -3px 0 ${MARK_COLOR};font-weight:bold`);
    }
    if (t.vision) {
      style.push(`border-bottom:2px dotted ${TOKEN_TYPE_COLORS.vision}`);
    }
    return `<span title="${escapeXml(t.hover)}" style="${style.join(";")}">${
      escapeXml(t.text)
    }</span>`;
  });
  const legend = shading.legend
    ? rampLegend(shading.color, 240).svg.replace(
      /^<svg /,
      `<svg style="display:block;margin:4px 0 8px;color:${palette.text}" `,
    )
    : "";
  const html =
    `<div class="attnscope-token-text" style="font-family:system-ui,sans-serif;max-width:900px;color:${palette.text};background:${palette.background}">` +
    (shading.heading
      ? `<div style="font-weight:bold;font-size:15px">${
        escapeXml(shading.heading)
      }</div>`
      : "") +
    `<div style="color:${palette.muted};font-size:12px">${
      escapeXml(shading.notes)
    }</div>${legend}` +
    `<div style="font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;white-space:pre-wrap;word-break:break-word;color:${palette.text};background:${palette.background};padding:6px;border:1px solid ${palette.border}">${
      spans.join("")
    }</div></div>`;
  return new Figure({
    kind: "token text view",
    summary: shading.summary,
    html,
  });
}

/**
 * The token text view as an image: the same shading, heading, notes and
 * legend, laid out in a monospace font as one SVG (so it saves as `.svg`
 * and `.png`, and survives where HTML styles are stripped: an untrusted
 * notebook, GitHub). Hover text becomes SVG titles.
 *
 * @param source A decoded layer, or its scores.
 * @param labels Token text per absolute position (prompt and output).
 * @param options The view's options, and the image's width.
 * @returns An SVG figure.
 * @throws {TypeError} When labels are missing.
 *
 * @example
 * ```ts
 * import { tokenTextImage } from "./token_text.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]);
 * const image = tokenTextImage(scores, ["Hello", " world"], { theme: "dark" });
 * assert.match(image.toSVG(), /<title>0 · Hello · attention 0.250<\/title>/);
 * assert.match(image.toSVG(), /fill="#1d1f24"/); // the dark background
 * assert.equal((await image.toPNG({ scale: 1 }))[1], 0x50);
 * ```
 */
export function tokenTextImage(
  source: AttentionSource,
  labels: readonly string[],
  options: TokenTextImageOptions = {},
): Figure {
  const shading = shade(source, labels, options);
  const palette = chartPalette(options.theme);
  const width = options.width ?? 880;
  return new Figure({
    kind: "token text image",
    summary: shading.summary,
    title: shading.heading || undefined,
    subtitle: shading.notes,
    legends: shading.legend ? [rampLegend(shading.color, 240)] : [],
    chart: shadedTextBlock(shading.tokens, {
      width,
      palette,
      after: options.theme === "dark" ? "#8d93a1" : "#6e6e6e",
      mark: MARK_COLOR,
      vision: TOKEN_TYPE_COLORS.vision,
    }),
    theme: options.theme,
  });
}

/**
 * The plain text of the view's tokens, for alt text and copying.
 *
 * @param labels Token text per position.
 * @returns The text, joined.
 *
 * @example
 * ```ts
 * import { tokenText } from "./token_text.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(tokenText(["a", " b"]), "a b");
 * ```
 */
export function tokenText(labels: readonly string[]): string {
  return labels.join("");
}

function shade(
  source: AttentionSource,
  labels: readonly string[],
  options: TokenTextOptions,
): Shading {
  const {
    query = -1,
    head = "mean",
    dropSink = false,
    mark,
    tokenMeta,
    saturate,
    color: colorOptions = {},
    title,
  } = options;
  chartPalette(options.theme);
  if (!Array.isArray(labels)) {
    throw new TypeError(
      "Cannot draw the token text view: no labels; pass the token text of every position (prompt and output) as the second argument",
    );
  }
  const src = resolveSource(source, tokenMeta, "the token text view");
  const scores = src.scores;
  const row = scores.rowIndex(query);
  const qPos = scores.queryPositions[row];
  const weights = head === "mean"
    ? scores.meanHeads(row)
    : Float64Array.from(scores.row(row, head));
  const headName = head === "mean"
    ? "head mean"
    : `head ${scores.headIndex(head)}`;
  const sinkDropped = dropSink && scores.keyOffset === 0;
  if (sinkDropped) {
    const rest = 1 - weights[0];
    weights[0] = NaN;
    for (let k = 1; k < weights.length; k++) {
      weights[k] = rest > 0 ? weights[k] / rest : 0;
    }
  }
  const shown = Float32Array.from(weights);
  const max = Math.max(0, ...shown.filter((v) => !Number.isNaN(v)));
  let top = max;
  if (saturate !== undefined) {
    if (!(saturate > 0 && saturate <= 1)) {
      throw new RangeError(
        `Cannot draw the token text view with saturate ${saturate}: expected a quantile in (0, 1]`,
      );
    }
    top = saturate >= 1 ? max : quantile(shown, saturate);
  } else if (shown.length > 1 && scores.keyOffset === 0) {
    top = Math.max(0, ...shown.subarray(1).filter((v) => !Number.isNaN(v)));
  }
  const color: Plot.ScaleOptions = {
    type: "linear",
    scheme: "blues",
    domain: [0, top > 0 ? top : (max || 1)],
    clamp: true,
    label: sinkDropped ? "attention (sink dropped)" : "attention",
    ...colorOptions,
  };
  const colors = colorizer(color);
  const marked = markedSet(mark);
  const rgb = new Uint8Array(4);
  const tokens: ShadedToken[] = [];
  for (let p = 0; p < labels.length; p++) {
    const k = p - scores.keyOffset;
    const w = k >= 0 && k < weights.length ? weights[k] : NaN;
    const type = src.tokenMeta?.tokenType(p);
    const text = labels[p];
    const hover = [
      `${p}`,
      JSON.stringify(text).slice(1, -1),
      type ?? "",
      p > qPos
        ? "after the query"
        : Number.isNaN(w)
        ? (k === 0 && sinkDropped ? "sink (dropped)" : "not captured")
        : `attention ${formatWeight(w)}`,
    ].filter(Boolean).join(" · ");
    let shadeRgb: [number, number, number] | null = null;
    let light = false;
    if (!Number.isNaN(w) && p <= qPos) {
      colors.put(w, rgb, 0);
      shadeRgb = [rgb[0], rgb[1], rgb[2]];
      // Dark shades need light text to stay readable.
      light = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] < 120;
    }
    tokens.push({
      text,
      hover,
      rgb: shadeRgb,
      light,
      after: p > qPos,
      query: p === qPos,
      marked: marked.has(p),
      vision: type === "vision",
    });
  }
  const layerName = src.layer === null ? "" : `Layer ${src.layer} · `;
  const heading = title ??
    `Attention from query ${positionLabel(qPos, labels, 30)}`;
  const notes = [
    `${layerName}${headName}`,
    "outlined: the query; grey: after it",
    marked.size ? "underlined: marked" : "",
    src.tokenMeta?.visionRanges.length ? "dotted: vision tokens" : "",
    top < max ? `shading saturates at ${formatWeight(top)}` : "",
  ].filter(Boolean).join(" · ");
  return {
    tokens,
    color,
    heading,
    notes,
    legend: (colorOptions as { legend?: unknown }).legend !== false,
    summary: `Token text shaded by attention from query ${qPos} (${headName}${
      src.layer === null ? "" : `, layer ${src.layer}`
    }): ${labels.length} tokens, max ${formatWeight(max)}`,
    plain: tokenText(labels),
  };
}
