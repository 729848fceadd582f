/**
 * The image copy in a chart's notebook display. Untrusted notebooks
 * (classic and JupyterLab), GitHub and nbviewer sanitize HTML outputs:
 * `<svg>` and `<style>` go, `<img>` with a data URL, `class` and `hidden`
 * stay. So a {@linkcode Figure}'s `text/html` bundle entry carries the
 * inline SVG in a `hidden` box plus a PNG `<img>` of it, and a scoped
 * `<style>` that shows the box and hides the image. Trusted front ends keep
 * the style and show the SVG alone; a sanitizer strips the style and the
 * SVG, leaving the image (the SVG's leftover labels stay hidden).
 *
 * The copy is on inside Deno's Jupyter kernel, where importing this module
 * loads the rasterizer once; elsewhere it is off (so HTML stays the same
 * from run to run) until {@linkcode setImageFallback} turns it on.
 *
 * @module
 */

import {
  prepareRasterizer,
  rasterizerReady,
  rasterizeSvgSync,
} from "./_rasterize.ts";
import { warn } from "../warn.ts";

/** Options for {@linkcode setImageFallback}. */
export interface ImageFallbackOptions {
  /**
   * Pixels per SVG unit of the copy (1 keeps notebooks small; 2 is sharp
   * on high-density screens at about three times the bytes).
   * @default {1}
   */
  scale?: number;
  /**
   * A chart whose PNG would be larger than this many bytes gets no copy.
   * @default {400000}
   */
  maxBytes?: number;
}

interface Settings {
  on: boolean;
  scale: number;
  maxBytes: number;
}

const settings: Settings = {
  on: inJupyterKernel(),
  scale: 1,
  maxBytes: 400_000,
};

if (settings.on) {
  try {
    await prepareRasterizer();
  } catch (error) {
    settings.on = false;
    warn(
      `Cannot add image copies to chart outputs: the rasterizer did not load (${error}); charts show as inline SVG only`,
    );
  }
}

function inJupyterKernel(): boolean {
  try {
    return typeof (Deno as unknown as { jupyter?: unknown }).jupyter ===
      "object";
  } catch {
    return false; // Outside the kernel, touching Deno.jupyter throws.
  }
}

/**
 * Turns the PNG copy in charts' notebook displays on or off, and sets its
 * scale and size cap. On by default inside Deno's Jupyter kernel.
 *
 * @param on Whether displays carry the copy.
 * @param options Scale and size cap.
 * @returns When the rasterizer is loaded (turning on needs it).
 * @throws {RangeError} For a scale or cap that is not positive.
 *
 * @example
 * ```ts
 * import { attentionHeatmap, AttentionScores, JUPYTER_DISPLAY, setImageFallback } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const figure = attentionHeatmap(new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]));
 * await setImageFallback(true);
 * assert.match(String(figure[JUPYTER_DISPLAY]()["text/html"]), /<img class="ax-fig-png"/);
 * await setImageFallback(false);
 * assert.doesNotMatch(String(figure[JUPYTER_DISPLAY]()["text/html"]), /<img/);
 * ```
 */
export async function setImageFallback(
  on: boolean,
  options: ImageFallbackOptions = {},
): Promise<void> {
  const { scale = settings.scale, maxBytes = settings.maxBytes } = options;
  if (!(scale > 0) || !(maxBytes > 0)) {
    throw new RangeError(
      `Cannot set the image fallback: scale ${scale} and maxBytes ${maxBytes} must be positive; pass e.g. { scale: 1, maxBytes: 400000 }`,
    );
  }
  if (on) await prepareRasterizer();
  settings.on = on;
  settings.scale = scale;
  settings.maxBytes = maxBytes;
}

/**
 * The display HTML with the image copy, or `null` when the copy is off,
 * the rasterizer is not loaded, or the PNG is over the cap.
 *
 * @param svg The figure's SVG.
 * @param width Its width.
 * @param height Its height.
 * @param alt The image's alt text (already escaped).
 * @returns The HTML, or `null`.
 *
 * @example
 * ```ts
 * import { fallbackHtml, setImageFallback } from "./_fallback.ts";
 * import assert from "node:assert/strict";
 *
 * const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="2"/>';
 * await setImageFallback(false);
 * assert.equal(fallbackHtml(svg, 4, 2, "x"), null);
 * await setImageFallback(true);
 * assert.match(fallbackHtml(svg, 4, 2, "x")!, /<div class="ax-fig-svg" hidden><svg/);
 * await setImageFallback(false);
 * ```
 */
export function fallbackHtml(
  svg: string,
  width: number,
  height: number,
  alt: string,
): string | null {
  if (!settings.on || !rasterizerReady()) return null;
  const png = rasterizeSvgSync(svg, { scale: settings.scale });
  if (png.length > settings.maxBytes) return null;
  return `<div class="attnscope-figure" style="overflow-x:auto"><style>.attnscope-figure image{image-rendering:pixelated}.attnscope-figure>.ax-fig-svg{display:block!important}.attnscope-figure>.ax-fig-png{display:none!important}</style><div class="ax-fig-svg" hidden>${svg}</div><img class="ax-fig-png" alt="${alt}" width="${width}" height="${height}" src="data:image/png;base64,${png.toBase64()}"></div>`;
}
