/**
 * The `Figure` every chart factory returns, and the shared plumbing: a
 * server-side DOM for Observable Plot (linkedom plus the canvas stand-in),
 * composition of title, legends, chart and caption into one standalone SVG,
 * and saving as SVG, HTML or PNG.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import { parseHTML } from "npm:linkedom@^0.18.15";
import { type PatchableDocument, withCanvas } from "../canvas.ts";
import { writeFileAtomic } from "../atomic_write.ts";
import { JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import { type RasterizeOptions, rasterizeSvg } from "./_rasterize.ts";
import { autoDarkStyle, chartPalette, type ChartTheme } from "./_theme.ts";
import { fallbackHtml } from "./_fallback.ts";

/** The SVG namespace, written on every SVG root so viewers that load the SVG as an image accept it. */
export const SVG_NS = "http://www.w3.org/2000/svg";

/** The DOM document type Plot renders into (Deno has no DOM types). */
export type PlotDocument = NonNullable<Plot.PlotOptions["document"]>;

/** What a render function returns to Plot: an SVG element. */
export type RenderedElement = ReturnType<Plot.RenderFunction>;

let sharedDocument: PlotDocument | null = null;

/**
 * The linkedom document Plot renders into, with canvas support for raster
 * marks and color ramps. One document is shared: Plot never attaches what it
 * renders, so nothing accumulates.
 *
 * @returns The document.
 *
 * @example
 * ```ts
 * import { plotDocument } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * const canvas = plotDocument().createElement("canvas") as unknown as { getContext(kind: string): unknown };
 * assert.notEqual(canvas.getContext("2d"), null);
 * ```
 */
export function plotDocument(): PlotDocument {
  if (!sharedDocument) {
    // linkedom's types lean on DOM lib types Deno does not load.
    const window = parseHTML(
      "<!DOCTYPE html><html><head></head><body></body></html>",
    ) as unknown as { document: PatchableDocument };
    sharedDocument = withCanvas(window.document) as unknown as PlotDocument;
  }
  return sharedDocument;
}

/**
 * Observable Plot scale options (`type`, `scheme`, `domain`, `range`,
 * `label`, `legend`, ...), passed to Plot as given; see Plot's scale docs.
 */
export interface ScaleOptionsPassThrough {
  /** Any Plot scale option. */
  [option: string]: unknown;
}

/**
 * Observable Plot `plot()` options passed through to Plot as given
 * (`width`, `height`, margins, `style`, scale options such as `x`, `y`,
 * and `marks` appended after the chart's own); see Plot's docs.
 */
export interface PlotOptionsPassThrough {
  /** Outer width in pixels. */
  width?: number;
  /** Outer height in pixels. */
  height?: number;
  /** Top margin in pixels. */
  marginTop?: number;
  /** Right margin in pixels. */
  marginRight?: number;
  /** Bottom margin in pixels. */
  marginBottom?: number;
  /** Left margin in pixels. */
  marginLeft?: number;
  /** Options of the x scale, merged over the chart's. */
  x?: ScaleOptionsPassThrough;
  /** Options of the y scale, merged over the chart's. */
  y?: ScaleOptionsPassThrough;
  /** Options of the fx facet scale, merged over the chart's. */
  fx?: ScaleOptionsPassThrough;
  /** Options of the fy facet scale, merged over the chart's. */
  fy?: ScaleOptionsPassThrough;
  /** Plot marks (or render functions) drawn on top of the chart's own. */
  marks?: readonly unknown[];
  /** Any other Plot option. */
  [option: string]: unknown;
}

/** Something that serializes to markup (an element Plot rendered). */
export interface HasOuterHTML {
  /** The element's markup. */
  readonly outerHTML: string;
}

/** One block of a figure's vertical layout: an SVG fragment of known size. */
export interface FigureBlock {
  /** A complete `<svg>` element's markup. */
  svg: string;
  /** Its width in pixels. */
  width: number;
  /** Its height in pixels. */
  height: number;
}

/** What a figure is made of, top to bottom. */
export interface FigureParts {
  /** What kind of chart, e.g. `"heatmap"` (for `text/plain` and errors). */
  kind: string;
  /** The short `text/plain` summary. */
  summary: string;
  /** Bold heading. */
  title?: string;
  /** A line under the title. */
  subtitle?: string;
  /** Legends, drawn above the chart. */
  legends?: readonly FigureBlock[];
  /** The chart itself. */
  chart?: FigureBlock;
  /** Lines under the chart (split at newlines). */
  caption?: string;
  /** For HTML-only figures (token text), the body; no SVG is made then. */
  html?: string;
  /**
   * Background, text and axis colours: `"light"`, `"dark"`, or `"auto"`
   * (light, turning dark under `prefers-color-scheme: dark` where the SVG
   * is shown inline in a browser).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

/** Options for {@linkcode Figure.toPNG} and {@linkcode Figure.save}. */
export type PngOptions = RasterizeOptions;

/**
 * A rendered chart: shows itself in Deno's Jupyter kernel, and saves as
 * SVG, standalone HTML or PNG.
 *
 * @example
 * ```ts
 * import { Figure } from "./_figure.ts";
 * import { JUPYTER_DISPLAY } from "../jupyter.ts";
 * import assert from "node:assert/strict";
 *
 * const figure = new Figure({
 *   kind: "demo",
 *   summary: "A demo figure",
 *   title: "Demo",
 *   chart: { svg: '<svg width="10" height="10"><rect width="10" height="10"/></svg>', width: 10, height: 10 },
 * });
 * const bundle = figure[JUPYTER_DISPLAY]();
 * assert.equal(bundle["text/plain"], "A demo figure");
 * assert.match(String(bundle["image/svg+xml"]), /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
 * assert.match(String(bundle["text/html"]), /<svg xmlns=/);
 * ```
 */
export class Figure {
  /** What kind of chart this is, e.g. `"heatmap"`. */
  readonly kind: string;
  #summary: string;
  #svg: string | null;
  #html: string;

  /**
   * Composes a figure from its parts; chart factories call this.
   *
   * @param parts Title, legends, chart, caption, or an HTML body.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * const figure = new Figure({ kind: "text", summary: "s", html: "<p>hi</p>" });
   * assert.equal(figure.hasSvg, false);
   * ```
   */
  constructor(parts: FigureParts) {
    this.kind = parts.kind;
    this.#summary = parts.summary;
    if (parts.html !== undefined) {
      this.#svg = null;
      this.#html = parts.html;
    } else {
      this.#svg = composeSvg(parts);
      // The SVG's image-rendering="optimizeSpeed" keeps raster cells crisp
      // in resvg and Firefox; Chromium only honours the CSS keyword, and
      // resvg would smooth with it, so browsers get it here, not in the SVG.
      this.#html =
        `<div class="attnscope-figure" style="overflow-x:auto"><style>.attnscope-figure image{image-rendering:pixelated}</style>${this.#svg}</div>`;
    }
  }

  /** Whether the figure is an SVG chart (the token text view is HTML only). */
  get hasSvg(): boolean {
    return this.#svg !== null;
  }

  /**
   * The figure as one standalone SVG document (title, legends, chart and
   * caption composed), `xmlns` on the root.
   *
   * @returns The SVG markup.
   * @throws {TypeError} When the figure is HTML only.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * const f = new Figure({ kind: "k", summary: "s", chart: { svg: "<svg></svg>", width: 5, height: 5 } });
   * assert.match(f.toSVG(), /width="5" height="5"/);
   * ```
   */
  toSVG(): string {
    if (this.#svg === null) {
      throw new TypeError(
        `Cannot make SVG of this ${this.kind}: it is an HTML figure; use toHTML() or save it as .html`,
      );
    }
    return this.#svg;
  }

  /**
   * The figure as an HTML fragment, as Jupyter shows it.
   *
   * @returns The HTML.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Figure({ kind: "k", summary: "s", html: "<b>x</b>" }).toHTML(), "<b>x</b>");
   * ```
   */
  toHTML(): string {
    return this.#html;
  }

  /**
   * The figure as a standalone HTML page.
   *
   * @returns A complete HTML document.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * const page = new Figure({ kind: "k", summary: "My <chart>", html: "<b>x</b>" }).toStandaloneHTML();
   * assert.match(page, /^<!DOCTYPE html>/);
   * assert.match(page, /<title>My &lt;chart&gt;<\/title>/);
   * ```
   */
  toStandaloneHTML(): string {
    const title = escapeXml(this.#summary.split("\n")[0]);
    return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${title}</title>\n</head>\n<body style="margin:16px;background:white;color:black;font-family:system-ui,sans-serif">\n${this.#html}\n</body>\n</html>\n`;
  }

  /**
   * The figure as a PNG, rasterized from the SVG with resvg (WebAssembly).
   *
   * @param options Scale, background and fonts.
   * @returns The PNG file's bytes.
   * @throws {TypeError} When the figure is HTML only.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * const f = new Figure({ kind: "k", summary: "s", chart: { svg: '<svg width="4" height="2"></svg>', width: 4, height: 2 } });
   * const png = await f.toPNG({ scale: 1 });
   * assert.equal(new DataView(png.buffer).getUint32(16), 4); // width
   * ```
   */
  toPNG(options: PngOptions = {}): Promise<Uint8Array> {
    return rasterizeSvg(this.toSVG(), options);
  }

  /**
   * Writes the figure to a file; the extension picks the format: `.svg`,
   * `.html` (standalone page) or `.png`.
   *
   * @param path Where to write.
   * @param options PNG options, used for `.png`.
   * @throws {TypeError} For another extension, or `.svg`/`.png` of an HTML figure.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * const f = new Figure({ kind: "k", summary: "s", chart: { svg: "<svg></svg>", width: 5, height: 5 } });
   * const path = await Deno.makeTempFile({ suffix: ".svg" });
   * await f.save(path);
   * assert.match(await Deno.readTextFile(path), /^<svg xmlns=/);
   * await assert.rejects(f.save("figure.jpg"), TypeError);
   * ```
   */
  async save(path: string | URL, options: PngOptions = {}): Promise<void> {
    const name = String(path).toLowerCase();
    if (name.endsWith(".svg")) return writeFileAtomic(path, this.toSVG());
    if (name.endsWith(".html") || name.endsWith(".htm")) {
      return writeFileAtomic(path, this.toStandaloneHTML());
    }
    if (name.endsWith(".png")) {
      return writeFileAtomic(path, await this.toPNG(options));
    }
    throw new TypeError(
      `Cannot save ${this.kind} to ${
        String(path)
      }: unknown extension; use .svg, .html or .png`,
    );
  }

  /**
   * The figure as a PNG image that survives where SVG and styles are
   * stripped: an untrusted notebook (classic or JupyterLab), GitHub's and
   * nbviewer's renderers keep an `<img>` with a data URL, but turn inline
   * SVG into a run of its tick labels. The summary is its alt text.
   *
   * @param options Scale (default 2, drawn at half size: sharp on
   * high-density screens), background, fonts.
   * @returns The image; it displays itself in Deno's Jupyter kernel.
   * @throws {TypeError} When the figure is HTML only (use `tokenTextImage`
   * for token text).
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import assert from "node:assert/strict";
   *
   * const f = new Figure({ kind: "k", summary: "A <chart>", chart: { svg: '<svg width="4" height="2"></svg>', width: 4, height: 2 } });
   * const image = await f.asImage();
   * const bundle = image[JUPYTER_DISPLAY]();
   * assert.match(String(bundle["text/html"]), /^<img alt="A &lt;chart&gt;" width="4" height="2" src="data:image\/png;base64,/);
   * assert.equal(typeof bundle["image/png"], "string");
   * ```
   */
  async asImage(options: PngOptions = {}): Promise<FigureImage> {
    const scale = options.scale ?? 2;
    const png = await this.toPNG({ ...options, scale });
    const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
    return new FigureImage(
      png,
      this.#summary,
      Math.round(view.getUint32(16) / scale),
      Math.round(view.getUint32(20) / scale),
    );
  }

  /**
   * The short summary (the `text/plain` entry).
   *
   * @returns The summary.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(String(new Figure({ kind: "k", summary: "sum", html: "" })), "sum");
   * ```
   */
  toString(): string {
    return this.#summary;
  }

  /**
   * The MIME bundle for Deno's Jupyter kernel: `text/html` (preferred by
   * nbconvert, which strips `image/svg+xml` of its drawing), `image/svg+xml`
   * for SVG charts, and a short `text/plain`. Inside the kernel (or after
   * `setImageFallback(true)`) an SVG chart's `text/html` also carries a PNG
   * copy that untrusted notebooks, GitHub and nbviewer show where they strip
   * the SVG; trusted front ends show the SVG alone. {@linkcode Figure.toHTML}
   * and saved pages are not sanitized and carry no copy.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { Figure } from "./_figure.ts";
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import assert from "node:assert/strict";
   *
   * const bundle = new Figure({ kind: "k", summary: "s", html: "<b>x</b>" })[JUPYTER_DISPLAY]();
   * assert.deepEqual(Object.keys(bundle).sort(), ["text/html", "text/plain"]);
   * ```
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    const bundle: MimeBundle = { "text/plain": this.#summary };
    bundle["text/html"] = this.#svg === null ? this.#html : this.#withImage();
    if (this.#svg !== null) bundle["image/svg+xml"] = this.#svg;
    return bundle;
  }

  /** The HTML with a PNG copy for sanitizers, when that is on. */
  #withImage(): string {
    const svg = this.#svg!;
    const { width, height } = svgSize(svg);
    return fallbackHtml(svg, width, height, escapeXml(this.#summary)) ??
      this.#html;
  }
}

/**
 * A figure as a PNG: what {@linkcode Figure.asImage} returns. Displays as
 * an `<img>` (kept by every notebook sanitizer) with `image/png` beside it.
 *
 * @example
 * ```ts
 * import { FigureImage } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * const image = new FigureImage(new Uint8Array([137, 80]), "chart", 10, 5);
 * assert.match(image.toHTML(), /width="10" height="5"/);
 * assert.equal(String(image), "chart");
 * ```
 */
export class FigureImage {
  /** The PNG file's bytes. */
  readonly png: Uint8Array;
  #alt: string;
  #width: number;
  #height: number;

  /**
   * Wraps a PNG; {@linkcode Figure.asImage} makes these.
   *
   * @param png The PNG file's bytes.
   * @param alt Its text (alt text and `text/plain`).
   * @param width Displayed width in CSS pixels.
   * @param height Displayed height in CSS pixels.
   *
   * @example
   * ```ts
   * import { FigureImage } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new FigureImage(new Uint8Array([1, 2]), "s", 1, 1).png.length, 2);
   * ```
   */
  constructor(png: Uint8Array, alt: string, width: number, height: number) {
    this.png = png;
    this.#alt = alt;
    this.#width = width;
    this.#height = height;
  }

  /**
   * The `<img>` element, with the PNG as a data URL.
   *
   * @returns The markup.
   *
   * @example
   * ```ts
   * import { FigureImage } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * assert.match(new FigureImage(new Uint8Array([1]), "a\"b", 1, 1).toHTML(), /alt="a&quot;b"/);
   * ```
   */
  toHTML(): string {
    return `<img alt="${
      escapeXml(this.#alt)
    }" width="${this.#width}" height="${this.#height}" src="data:image/png;base64,${this.png.toBase64()}">`;
  }

  /**
   * The alt text.
   *
   * @returns The figure's summary.
   *
   * @example
   * ```ts
   * import { FigureImage } from "./_figure.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new FigureImage(new Uint8Array(), "s", 1, 1).toString(), "s");
   * ```
   */
  toString(): string {
    return this.#alt;
  }

  /**
   * The MIME bundle: `text/html` (the `<img>`), `image/png`, `text/plain`.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { FigureImage } from "./_figure.ts";
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import assert from "node:assert/strict";
   *
   * const bundle = new FigureImage(new Uint8Array([1]), "s", 1, 1)[JUPYTER_DISPLAY]();
   * assert.deepEqual(Object.keys(bundle).sort(), ["image/png", "text/html", "text/plain"]);
   * ```
   */
  [JUPYTER_DISPLAY](): MimeBundle {
    return {
      "text/plain": this.#alt,
      "text/html": this.toHTML(),
      "image/png": this.png.toBase64(),
    };
  }
}

const TITLE_SIZE = 16;
const SUBTITLE_SIZE = 12;
const CAPTION_SIZE = 11;
const FONT = "system-ui, sans-serif";

/**
 * Stacks title, subtitle, legends, chart and caption into one SVG document.
 *
 * @param parts The parts.
 * @returns SVG markup with `xmlns` on the root.
 *
 * @example
 * ```ts
 * import { composeSvg } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * const svg = composeSvg({ kind: "k", summary: "s", title: "A & B", chart: { svg: "<svg></svg>", width: 100, height: 50 } });
 * assert.match(svg, />A &amp; B<\/text>/);
 * assert.match(svg, /height="76"/); // 22 title + 4 gap + 50 chart
 * ```
 */
export function composeSvg(parts: FigureParts): string {
  const palette = chartPalette(parts.theme);
  const auto = parts.theme === "auto";
  const body: string[] = [];
  let y = 0;
  let width = Math.max(
    parts.chart?.width ?? 0,
    ...(parts.legends ?? []).map((l) => l.width),
  );
  const text = (s: string, size: number, weight: string, muted: boolean) => {
    y += Math.round(size * 1.4);
    body.push(
      `<text x="0" y="${
        y - Math.round(size * 0.35)
      }" font-size="${size}" font-weight="${weight}" fill="${
        muted ? palette.muted : palette.text
      }"${auto ? ` class="${muted ? "ax-mu" : "ax-fg"}"` : ""}>${
        escapeXml(s)
      }</text>`,
    );
    width = Math.max(width, estimateTextWidth(s, size));
  };
  if (parts.title) text(parts.title, TITLE_SIZE, "bold", false);
  if (parts.subtitle) text(parts.subtitle, SUBTITLE_SIZE, "normal", true);
  if (parts.title || parts.subtitle) y += 4;
  const place = (block: FigureBlock) => {
    body.push(nestSvg(block.svg, 0, y, block.width, block.height));
    y += block.height;
  };
  for (const legend of parts.legends ?? []) place(legend);
  if (parts.chart) place(parts.chart);
  if (parts.caption) {
    y += 2;
    for (const line of parts.caption.split("\n")) {
      text(line, CAPTION_SIZE, "normal", true);
    }
  }
  width = Math.ceil(width);
  const cls = auto ? `attnscope-auto-${++autoCounter}` : "";
  // The root's color is Plot's currentColor (axes, ticks, legend text).
  return `<svg xmlns="${SVG_NS}" xmlns:xlink="http://www.w3.org/1999/xlink" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="${FONT}" color="${palette.text}"${
    cls ? ` class="${cls}"` : ""
  } style="background:${palette.background};color:${palette.text};max-width:none">${
    cls ? autoDarkStyle(cls) : ""
  }<rect width="${width}" height="${y}" fill="${palette.background}"${
    auto ? ' class="ax-bg"' : ""
  }/>${body.join("")}</svg>`;
}

let autoCounter = 0;

/**
 * A Plot-rendered `<svg>` as a block for {@linkcode composeSvg}; Plot's
 * `<figure>` wrappers are rejected, since every factory composes its own.
 *
 * @param node What Plot returned.
 * @returns Markup and size.
 * @throws {TypeError} When the node is not an `<svg>`.
 *
 * @example
 * ```ts
 * import * as Plot from "@observablehq/plot";
 * import { plotBlock, plotDocument } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * const node = Plot.plot({ document: plotDocument(), width: 200, height: 100, marks: [Plot.frame()] });
 * const block = plotBlock(node);
 * assert.deepEqual([block.width, block.height], [200, 100]);
 * ```
 */
export function plotBlock(node: HasOuterHTML | object): FigureBlock {
  const html = (node as HasOuterHTML).outerHTML;
  if (!html.startsWith("<svg")) {
    throw new TypeError(
      `Cannot place a Plot chart: expected an <svg>, got ${
        html.slice(0, 20)
      }; pass title, subtitle, caption and legend through the attnscope options, not Plot's`,
    );
  }
  return { svg: roundGeometry(html), ...svgSize(html) };
}

/**
 * The `width` and `height` on an `<svg>` root (0 where absent).
 *
 * @param svg Markup starting with `<svg`.
 * @returns The root's size in pixels.
 *
 * @example
 * ```ts
 * import { svgSize } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(svgSize('<svg height="2" width="4"><rect width="9"/></svg>'), { width: 4, height: 2 });
 * ```
 */
export function svgSize(svg: string): { width: number; height: number } {
  const open = /^<svg\b[^>]*>/.exec(svg)?.[0] ?? "";
  return {
    width: Number(/\swidth="([\d.]+)"/.exec(open)?.[1] ?? 0),
    height: Number(/\sheight="([\d.]+)"/.exec(open)?.[1] ?? 0),
  };
}

const GEOMETRY_ATTRIBUTE =
  /\s(x|y|x1|x2|y1|y2|width|height|cx|cy|r|d|transform|points)="([^"]*)"/g;

/**
 * Rounds numbers inside geometry attributes to 2 decimals: Plot writes
 * full doubles (`214.00000000000003`), which can double a large chart's size
 * for no visible change. Text content is left alone.
 *
 * @param svg SVG markup.
 * @returns The markup with rounded coordinates.
 *
 * @example
 * ```ts
 * import { roundGeometry } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   roundGeometry('<text x="214.00000000000003" y="0.71em">0.123456</text>'),
 *   '<text x="214" y="0.71em">0.123456</text>',
 * );
 * ```
 */
export function roundGeometry(svg: string): string {
  return svg.replace(
    GEOMETRY_ATTRIBUTE,
    (_, name: string, value: string) =>
      ` ${name}="${
        value.replace(/-?\d+\.\d{3,}(?:e-?\d+)?/g, (n) =>
          String(Math.round(Number(n) * 100) / 100))
      }"`,
  );
}

/**
 * A continuous color legend (Plot's ramp) as a figure block.
 *
 * @param color Plot color scale options (type, domain, scheme, label...).
 * @param width Legend width in pixels.
 * @returns The block.
 *
 * @example
 * ```ts
 * import { rampLegend } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * const legend = rampLegend({ domain: [0, 1], scheme: "viridis", label: "attention" });
 * assert.match(legend.svg, /data:image\/png;base64/);
 * ```
 */
export function rampLegend(
  color: Plot.ScaleOptions | ScaleOptionsPassThrough,
  width = 260,
): FigureBlock {
  const node = Plot.legend({
    document: plotDocument(),
    color: { ...color, legend: "ramp" } as Plot.ScaleOptions,
    width,
    // Room for the first tick label, which Plot centers on the left edge.
    marginLeft: 20,
  } as unknown as Plot.LegendOptions) as unknown as HasOuterHTML;
  return plotBlock(node);
}

/**
 * A categorical legend (colored squares and names) as an SVG block; Plot's
 * own swatches are HTML, which a standalone SVG cannot hold.
 *
 * @param items Names and colors.
 * @param options Optional heading and extra entries drawn as outlines.
 * @returns The block.
 *
 * @example
 * ```ts
 * import { swatchLegend } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * const legend = swatchLegend([{ label: "vision", color: "#f28e2b" }]);
 * assert.match(legend.svg, /vision/);
 * ```
 */
export function swatchLegend(
  items: readonly { label: string; color: string; outline?: boolean }[],
  options: { label?: string } = {},
): FigureBlock {
  const parts: string[] = [];
  let x = 0;
  if (options.label) {
    parts.push(
      `<text x="0" y="14" font-weight="bold">${
        escapeXml(options.label)
      }</text>`,
    );
    x += estimateTextWidth(options.label, 10) + 12;
  }
  for (const item of items) {
    parts.push(
      item.outline
        ? `<rect x="${
          x + 0.75
        }" y="5.75" width="10.5" height="10.5" fill="none" stroke="${item.color}" stroke-width="1.5"/>`
        : `<rect x="${x}" y="5" width="12" height="12" fill="${item.color}"/>`,
    );
    parts.push(`<text x="${x + 16}" y="14">${escapeXml(item.label)}</text>`);
    x += 16 + estimateTextWidth(item.label, 10) + 14;
  }
  const width = Math.ceil(x);
  return {
    svg:
      `<svg xmlns="${SVG_NS}" width="${width}" height="24" viewBox="0 0 ${width} 24" font-size="10" font-family="${FONT}" fill="currentColor">${
        parts.join("")
      }</svg>`,
    width,
    height: 24,
  };
}

/**
 * Escapes text for XML and HTML content and attributes.
 *
 * @param s The text.
 * @returns The escaped text.
 *
 * @example
 * ```ts
 * import { escapeXml } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(escapeXml(`<a href="x">&</a>`), "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;");
 * ```
 */
export function escapeXml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) =>
      ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[
        c
      ]!,
  );
}

/**
 * A rough text width for layout (no font metrics without a browser): 0.56
 * em per character, which errs wide for proportional fonts.
 *
 * @param s The text.
 * @param size Font size in pixels.
 * @returns Width in pixels.
 *
 * @example
 * ```ts
 * import { estimateTextWidth } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(Math.round(estimateTextWidth("abcde", 10)), 28);
 * ```
 */
export function estimateTextWidth(s: string, size: number): number {
  return [...s].length * size * 0.56;
}

/**
 * Places a complete `<svg>` at `(x, y)` inside another SVG document, keeping
 * its size.
 *
 * @param svg The element's markup.
 * @param x Left edge in the outer document.
 * @param y Top edge in the outer document.
 * @param width Its width in pixels.
 * @param height Its height in pixels.
 * @returns The nested element's markup.
 *
 * @example
 * ```ts
 * import { nestSvg } from "./_figure.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(nestSvg('<svg width="4" height="2"></svg>', 10, 0, 4, 2), /^<svg x="10" y="0"/);
 * ```
 */
export function nestSvg(
  svg: string,
  x: number,
  y: number,
  width: number,
  height: number,
): string {
  // Plot's root carries width/height/viewBox; the nested position needs x/y,
  // and the root of a standalone document needs xmlns.
  const open = /^<svg\b([^>]*)>/.exec(svg);
  if (!open) return svg;
  let attrs = open[1].replace(/\s(x|y)="[^"]*"/g, "");
  if (!/\sxmlns=/.test(attrs)) attrs = ` xmlns="${SVG_NS}"` + attrs;
  if (!/\swidth=/.test(attrs)) attrs += ` width="${width}"`;
  if (!/\sheight=/.test(attrs)) attrs += ` height="${height}"`;
  // Plot's class rule sets height:auto and max-width:100%, which browsers
  // apply to a nested <svg> too and would squash it; inline style wins.
  attrs = attrs.replace(/\sstyle="[^"]*"/, "") +
    ` style="width:${width}px;height:${height}px;max-width:none;overflow:visible"`;
  return `<svg x="${x}" y="${y}"${attrs}>${svg.slice(open[0].length)}`;
}
