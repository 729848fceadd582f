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
  const spans: string[] = [];
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
    const style: string[] = [];
    if (!Number.isNaN(w) && p <= qPos) {
      colors.put(w, rgb, 0);
      style.push(`background:rgb(${rgb[0]},${rgb[1]},${rgb[2]})`);
      // Dark shades need light text to stay readable.
      const luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
      if (luminance < 120) style.push("color:white");
    } else if (p > qPos) {
      style.push("color:#999");
    }
    if (p === qPos) style.push("outline:2px solid #111;outline-offset:-1px");
    if (marked.has(p)) {
      style.push(`box-shadow:inset 0 -3px 0 ${MARK_COLOR};font-weight:bold`);
    }
    if (type === "vision") {
      style.push(`border-bottom:2px dotted ${TOKEN_TYPE_COLORS.vision}`);
    }
    spans.push(
      `<span title="${escapeXml(hover)}" style="${style.join(";")}">${
        escapeXml(text)
      }</span>`,
    );
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
  const legend = (colorOptions as { legend?: unknown }).legend === false
    ? ""
    : rampLegend(color, 240).svg.replace(
      /^<svg /,
      '<svg style="display:block;margin:4px 0 8px" ',
    );
  const html =
    `<div class="attnscope-token-text" style="font-family:system-ui,sans-serif;max-width:900px">` +
    (heading
      ? `<div style="font-weight:bold;font-size:15px">${
        escapeXml(heading)
      }</div>`
      : "") +
    `<div style="color:#555;font-size:12px">${
      escapeXml(notes)
    }</div>${legend}` +
    `<div style="font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;white-space:pre-wrap;word-break:break-word;color:#111;background:white;padding:6px;border:1px solid #ddd">${
      spans.join("")
    }</div></div>`;
  return new Figure({
    kind: "token text view",
    summary: `Token text shaded by attention from query ${qPos} (${headName}${
      src.layer === null ? "" : `, layer ${src.layer}`
    }): ${labels.length} tokens, max ${formatWeight(max)}`,
    html,
  });
}
