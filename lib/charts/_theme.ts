/**
 * The static charts' colours for the `theme` option the explorer takes:
 * `"light"`, `"dark"`, or `"auto"`, which draws light and, where the chart
 * is shown as inline SVG in a browser, switches to dark under the page's
 * `prefers-color-scheme: dark` (a PNG, or SVG in an image viewer, stays
 * light). The palettes are the explorer's (lib/explorer/_style.ts).
 *
 * @module
 */

/** What the `theme` option takes. */
export type ChartTheme = "light" | "dark" | "auto";

/** The colours a static chart is drawn with. */
export interface ChartPalette {
  /** Page background. */
  background: string;
  /** Text, axes and ticks. */
  text: string;
  /** Subtitles, captions, notes. */
  muted: string;
  /** Frames around text blocks. */
  border: string;
}

/** Light colours (the explorer's light palette). */
export const LIGHT_PALETTE: Readonly<ChartPalette> = {
  background: "#ffffff",
  text: "#1b1b1f",
  muted: "#4f5360",
  border: "#c9ccd4",
};

/** Dark colours (the explorer's dark palette). */
export const DARK_PALETTE: Readonly<ChartPalette> = {
  background: "#1d1f24",
  text: "#e8e9ed",
  muted: "#b4b8c4",
  border: "#4a4e5a",
};

/**
 * The palette a chart is drawn with for a theme (`"auto"` draws light; see
 * {@linkcode autoDarkStyle} for the switch in a browser).
 *
 * @param theme The option.
 * @returns The palette.
 * @throws {TypeError} For anything but `"light"`, `"dark"`, `"auto"` or `undefined`.
 *
 * @example
 * ```ts
 * import { chartPalette } from "./_theme.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(chartPalette("dark").background, "#1d1f24");
 * assert.equal(chartPalette(undefined).background, "#ffffff");
 * assert.throws(() => chartPalette("blue" as "dark"), /^TypeError: Cannot draw with theme "blue"/);
 * ```
 */
export function chartPalette(theme: ChartTheme | undefined): ChartPalette {
  if (theme === undefined || theme === "light" || theme === "auto") {
    return LIGHT_PALETTE;
  }
  if (theme === "dark") return DARK_PALETTE;
  throw new TypeError(
    `Cannot draw with theme ${
      JSON.stringify(theme)
    }: unknown theme; use "light", "dark" or "auto"`,
  );
}

/**
 * For `"auto"`: a `<style>` for inside an SVG root with class `cls` that
 * repaints the light palette's background, text and muted colours dark
 * under `prefers-color-scheme: dark`. Elements opt in by the classes
 * `ax-bg` (fill: background), `ax-fg` (fill: text), `ax-mu` (fill:
 * muted) and `ax-mark` (marked labels, lightened); the root's `color` (Plot's `currentColor`) follows too.
 *
 * @param cls The root's class.
 * @returns The style element's markup.
 *
 * @example
 * ```ts
 * import { autoDarkStyle } from "./_theme.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(autoDarkStyle("f1"), /prefers-color-scheme:dark/);
 * ```
 */
export function autoDarkStyle(cls: string): string {
  const d = DARK_PALETTE;
  return `<style>@media (prefers-color-scheme:dark){svg.${cls}{color:${d.text}!important;background:${d.background}!important}svg.${cls} .ax-bg{fill:${d.background}}svg.${cls} .ax-fg{fill:${d.text}}svg.${cls} .ax-mu{fill:${d.muted}}svg.${cls} .ax-mark{fill:#ff6fa0;color:#ff6fa0}}</style>`;
}

/**
 * WCAG contrast ratio of two `#rrggbb` colours.
 *
 * @param a A colour.
 * @param b Another.
 * @returns From 1 (same) to 21 (black on white).
 *
 * @example
 * ```ts
 * import { contrastRatio, DARK_PALETTE } from "./_theme.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Math.round(contrastRatio("#000000", "#ffffff")), 21);
 * assert.ok(contrastRatio(DARK_PALETTE.muted, DARK_PALETTE.background) >= 4.5);
 * ```
 */
export function contrastRatio(a: string, b: string): number {
  const lum = (hex: string) => {
    const n = parseInt(hex.slice(1), 16);
    const lin = (c: number) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(n >> 16 & 255) + 0.7152 * lin(n >> 8 & 255) +
      0.0722 * lin(n & 255);
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}
