/**
 * Shaded token text laid out as SVG, for images of the token text view.
 * There are no font metrics without a browser, so the text is set in a
 * monospace font (DejaVu Sans Mono advances 0.602 em per character) and
 * wrapped by counting cells: wide characters (CJK, emoji) take two, marks
 * none. Each token is placed on its own, so a glyph drawn from a fallback
 * font never shifts the tokens after it.
 *
 * @module
 */

import { escapeXml, type FigureBlock, SVG_NS } from "./_figure.ts";
import type { ChartPalette } from "./_theme.ts";

/** A token to draw. */
export interface TextToken {
  /** Its text (newlines break lines). */
  text: string;
  /** Hover text (an SVG title). */
  hover: string;
  /** Background, or null. */
  rgb: readonly [number, number, number] | null;
  /** White text (on a dark shade). */
  light: boolean;
  /** After the query (drawn in the `after` colour). */
  after: boolean;
  /** The query (outlined). */
  query: boolean;
  /** Marked (underlined, bold). */
  marked: boolean;
  /** A vision token (dotted underline). */
  vision: boolean;
}

/** Layout and colours of {@linkcode shadedTextBlock}. */
export interface TextBlockOptions {
  /** Width in pixels. */
  width: number;
  /** Background, text and border colours. */
  palette: ChartPalette;
  /** Colour of tokens after the query. */
  after: string;
  /** Colour of the marked underline. */
  mark: string;
  /** Colour of the vision underline. */
  vision: string;
  /** Font size in pixels. @default {13} */
  fontSize?: number;
}

const MONO = "DejaVu Sans Mono, ui-monospace, Menlo, Consolas, monospace";
const ADVANCE = 0.602;
const PAD = 6;

// Characters XML 1.0 cannot hold (resvg would refuse the document).
const NOT_XML =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
const WIDE =
  /[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]|\p{Extended_Pictographic}/u;
const ZERO = /\p{M}|[\u200b-\u200f\u2060\ufeff]/u;

/**
 * How many monospace cells a character takes.
 *
 * @param c One code point.
 * @returns 0, 1 or 2.
 *
 * @example
 * ```ts
 * import { cellsOf } from "./_text_svg.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(["a", "猫", "\u0301"].map(cellsOf), [1, 2, 0]);
 * ```
 */
export function cellsOf(c: string): number {
  if (ZERO.test(c)) return 0;
  return WIDE.test(c) ? 2 : 1;
}

/**
 * Lays tokens out as shaded monospace text wrapped to a width.
 *
 * @param tokens The tokens, in order.
 * @param options Width and colours.
 * @returns An SVG block.
 *
 * @example
 * ```ts
 * import { shadedTextBlock } from "./_text_svg.ts";
 * import { LIGHT_PALETTE } from "./_theme.ts";
 * import assert from "node:assert/strict";
 *
 * const t = { hover: "", light: false, after: false, query: false, marked: false, vision: false };
 * const block = shadedTextBlock(
 *   [{ ...t, text: "a<b", rgb: [8, 48, 107], light: true }, { ...t, text: "\ncd", rgb: null }],
 *   { width: 200, palette: LIGHT_PALETTE, after: "#999", mark: "#e0115f", vision: "#f28e2b" },
 * );
 * assert.match(block.svg, /fill="rgb\(8,48,107\)"/);
 * assert.match(block.svg, />a&lt;b<\/text>/);
 * assert.equal(block.height, 2 * 22 + 12); // two lines and the padding
 * ```
 */
export function shadedTextBlock(
  tokens: readonly TextToken[],
  options: TextBlockOptions,
): FigureBlock {
  const size = options.fontSize ?? 13;
  const cw = size * ADVANCE;
  const lh = Math.round(size * 1.7);
  const width = Math.max(60, Math.round(options.width));
  const cols = Math.max(4, Math.floor((width - 2 * PAD) / cw));
  const p = options.palette;
  const shapes: string[] = [];
  let line = 0;
  let col = 0;
  const x = (c: number) => (PAD + c * cw).toFixed(1);
  const top = (l: number) => PAD + l * lh;
  for (const token of tokens) {
    const chars = [...token.text.replace(NOT_XML, "\ufffd")];
    const cells = chars.reduce(
      (n, c) => n + (c === "\n" ? 1 : c === "\t" ? 2 : cellsOf(c)),
      0,
    );
    // Whole tokens move to the next line when they fit on one.
    if (
      col > 0 && col + cells > cols && cells <= cols && !/\n/.test(token.text)
    ) {
      line++;
      col = 0;
    }
    // Runs of the token, one per line it spans.
    const runs: { line: number; col: number; text: string; cells: number }[] =
      [];
    let run = { line, col, text: "", cells: 0 };
    const flush = () => {
      if (run.cells > 0 || run.text) runs.push(run);
    };
    for (const c of chars) {
      const n = c === "\n" ? 1 : c === "\t" ? 2 : cellsOf(c);
      if (col + n > cols && col > 0) {
        flush();
        line++;
        col = 0;
        run = { line, col, text: "", cells: 0 };
      }
      run.text += c === "\n" ? "\u21b5" : c === "\t" ? "  " : c;
      run.cells += n;
      col += n;
      if (c === "\n") {
        flush();
        line++;
        col = 0;
        run = { line, col, text: "", cells: 0 };
      }
    }
    flush();
    const fg = token.rgb
      ? (token.light ? "#ffffff" : "#111111")
      : token.after
      ? options.after
      : p.text;
    const title = token.hover ? `<title>${escapeXml(token.hover)}</title>` : "";
    const parts: string[] = [];
    for (const r of runs) {
      const y0 = top(r.line);
      const w = (r.cells * cw).toFixed(1);
      if (token.rgb) {
        parts.push(
          `<rect x="${x(r.col)}" y="${y0 + 2}" width="${w}" height="${
            lh - 4
          }" rx="2" fill="rgb(${token.rgb.join(",")})"/>`,
        );
      }
      if (token.query) {
        parts.push(
          `<rect x="${x(r.col)}" y="${y0 + 2}" width="${w}" height="${
            lh - 4
          }" fill="none" stroke="${p.text}" stroke-width="2"/>`,
        );
      }
      if (token.marked) {
        parts.push(
          `<rect x="${x(r.col)}" y="${
            y0 + lh - 5
          }" width="${w}" height="3" fill="${options.mark}"/>`,
        );
      }
      if (token.vision) {
        parts.push(
          `<line x1="${x(r.col)}" x2="${
            (PAD + (r.col + r.cells) * cw).toFixed(1)
          }" y1="${y0 + lh - 2}" y2="${
            y0 + lh - 2
          }" stroke="${options.vision}" stroke-width="2" stroke-dasharray="2 2"/>`,
        );
      }
      const shown = r.text;
      if (shown.trim()) {
        parts.push(
          `<text x="${x(r.col)}" y="${
            (y0 + lh / 2 + size * 0.36).toFixed(1)
          }" fill="${fg}"${token.marked ? ' font-weight="bold"' : ""}>${
            escapeXml(shown)
          }</text>`,
        );
      }
    }
    if (parts.length) shapes.push(`<g>${title}${parts.join("")}</g>`);
  }
  const height = top(line + (col > 0 || line === 0 ? 1 : 0)) + PAD;
  return {
    svg:
      `<svg xmlns="${SVG_NS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${MONO}" font-size="${size}" xml:space="preserve"><rect x="0.5" y="0.5" width="${
        width - 1
      }" height="${height - 1}" fill="${p.background}" stroke="${p.border}"/>${
        shapes.join("")
      }</svg>`,
    width,
    height,
  };
}
