/**
 * The smallest canvas Observable Plot needs outside a browser.
 *
 * Server-side DOMs such as linkedom return `null` from
 * `canvas.getContext("2d")`, and Plot's `raster` mark and continuous color
 * legends (`ramp`) then throw. Those two only fill rectangles with CSS colors,
 * read and write `ImageData`, and ask for `toDataURL()`; this stand-in keeps
 * an RGBA buffer for that and encodes it as PNG.
 *
 * @module
 */

import { encodePng, pngDataUrl } from "./png.ts";
import { warn } from "./warn.ts";

/** Pixels as Plot's raster mark reads and writes them. */
export interface ImageDataLike {
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
  /** RGBA bytes, row by row. */
  readonly data: Uint8ClampedArray;
}

/**
 * The 2D context subset Plot uses: `fillStyle` + `fillRect`, and image data.
 *
 * @example
 * ```ts
 * import { CanvasStandIn } from "./canvas.ts";
 * import assert from "node:assert/strict";
 *
 * const canvas = new CanvasStandIn(2, 1);
 * const context = canvas.getContext("2d")!;
 * context.fillStyle = "rgb(255, 0, 0)";
 * context.fillRect(1, 0, 1, 1);
 * assert.deepEqual([...context.getImageData(0, 0, 2, 1).data], [0, 0, 0, 0, 255, 0, 0, 255]);
 * ```
 */
export class CanvasContext2D {
  /** The canvas drawn on. */
  readonly canvas: CanvasStandIn;
  #fill: [number, number, number, number] = [0, 0, 0, 255];
  #fillStyle = "#000000";

  /**
   * A context for one canvas; use `canvas.getContext("2d")`.
   *
   * @param canvas The canvas.
   *
   * @example
   * ```ts
   * import { CanvasContext2D, CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * const canvas = new CanvasStandIn(1, 1);
   * assert.equal(new CanvasContext2D(canvas).canvas, canvas);
   * ```
   */
  constructor(canvas: CanvasStandIn) {
    this.canvas = canvas;
  }

  /** The fill color, a CSS color string (hex, `rgb()` or `rgba()`). */
  get fillStyle(): string {
    return this.#fillStyle;
  }

  set fillStyle(value: string) {
    const rgba = parseCssColor(value);
    if (!rgba) {
      warn(
        `Canvas stand-in cannot parse the color ${
          JSON.stringify(value)
        }; it draws black instead. Use hex, rgb() or rgba() colors`,
      );
    }
    this.#fill = rgba ?? [0, 0, 0, 255];
    this.#fillStyle = value;
  }

  /**
   * Fills a rectangle with {@linkcode fillStyle} (no blending: the pixels
   * take the color).
   *
   * @param x Left edge.
   * @param y Top edge.
   * @param width Width.
   * @param height Height.
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * const canvas = new CanvasStandIn(1, 1);
   * const context = canvas.getContext("2d")!;
   * context.fillStyle = "#0f0";
   * context.fillRect(0, 0, 1, 1);
   * assert.deepEqual([...canvas.pixels], [0, 255, 0, 255]);
   * ```
   */
  fillRect(x: number, y: number, width: number, height: number): void {
    const { width: w, height: h, pixels } = this.canvas;
    const x0 = Math.max(0, Math.round(x));
    const y0 = Math.max(0, Math.round(y));
    const x1 = Math.min(w, Math.round(x + width));
    const y1 = Math.min(h, Math.round(y + height));
    for (let yy = y0; yy < y1; yy++) {
      for (let xx = x0; xx < x1; xx++) {
        pixels.set(this.#fill, (yy * w + xx) * 4);
      }
    }
  }

  /**
   * Fresh transparent pixels.
   *
   * @param width Width in pixels.
   * @param height Height in pixels.
   * @returns Zeroed image data.
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * const image = new CanvasStandIn(1, 1).getContext("2d")!.createImageData(3, 2);
   * assert.equal(image.data.length, 24);
   * ```
   */
  createImageData(width: number, height: number): ImageDataLike {
    return { width, height, data: new Uint8ClampedArray(width * height * 4) };
  }

  /**
   * Copies pixels onto the canvas.
   *
   * @param image The pixels.
   * @param dx Left edge on the canvas.
   * @param dy Top edge on the canvas.
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * const canvas = new CanvasStandIn(1, 1);
   * canvas.getContext("2d")!.putImageData({ width: 1, height: 1, data: new Uint8ClampedArray([1, 2, 3, 4]) }, 0, 0);
   * assert.deepEqual([...canvas.pixels], [1, 2, 3, 4]);
   * ```
   */
  putImageData(image: ImageDataLike, dx: number, dy: number): void {
    const { width: w, height: h, pixels } = this.canvas;
    for (let y = 0; y < image.height; y++) {
      const ty = y + dy;
      if (ty < 0 || ty >= h) continue;
      const x0 = Math.max(0, -dx);
      const x1 = Math.min(image.width, w - dx);
      if (x1 <= x0) continue;
      pixels.set(
        image.data.subarray(
          (y * image.width + x0) * 4,
          (y * image.width + x1) * 4,
        ),
        (ty * w + dx + x0) * 4,
      );
    }
  }

  /**
   * Copies pixels off the canvas (outside it reads as transparent).
   *
   * @param sx Left edge.
   * @param sy Top edge.
   * @param width Width.
   * @param height Height.
   * @returns The pixels.
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * const canvas = new CanvasStandIn(1, 1);
   * assert.equal(canvas.getContext("2d")!.getImageData(0, 0, 2, 2).data.length, 16);
   * ```
   */
  getImageData(
    sx: number,
    sy: number,
    width: number,
    height: number,
  ): ImageDataLike {
    const out = this.createImageData(width, height);
    const { width: w, height: h, pixels } = this.canvas;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const cx = sx + x, cy = sy + y;
        if (cx < 0 || cy < 0 || cx >= w || cy >= h) continue;
        out.data.set(
          pixels.subarray((cy * w + cx) * 4, (cy * w + cx) * 4 + 4),
          (y * width + x) * 4,
        );
      }
    }
    return out;
  }
}

/**
 * A canvas element stand-in: a resizable RGBA buffer with a 2D context and
 * PNG `toDataURL()`.
 *
 * @example
 * ```ts
 * import { CanvasStandIn } from "./canvas.ts";
 * import assert from "node:assert/strict";
 *
 * const canvas = new CanvasStandIn();
 * canvas.width = 4;
 * canvas.height = 2;
 * assert.equal(canvas.pixels.length, 32);
 * assert.match(canvas.toDataURL(), /^data:image\/png;base64,/);
 * ```
 */
export class CanvasStandIn {
  #width: number;
  #height: number;
  #pixels: Uint8ClampedArray;
  #context: CanvasContext2D | null = null;

  /**
   * An empty (transparent) canvas.
   *
   * @param width Width in pixels.
   * @param height Height in pixels.
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new CanvasStandIn().width, 300); // the HTML default
   * ```
   */
  constructor(width = 300, height = 150) {
    this.#width = width;
    this.#height = height;
    this.#pixels = new Uint8ClampedArray(width * height * 4);
  }

  /** Width in pixels; setting it clears the canvas, as in browsers. */
  get width(): number {
    return this.#width;
  }

  set width(value: number) {
    this.#width = Math.max(0, Math.floor(value));
    this.#pixels = new Uint8ClampedArray(this.#width * this.#height * 4);
  }

  /** Height in pixels; setting it clears the canvas, as in browsers. */
  get height(): number {
    return this.#height;
  }

  set height(value: number) {
    this.#height = Math.max(0, Math.floor(value));
    this.#pixels = new Uint8ClampedArray(this.#width * this.#height * 4);
  }

  /** The RGBA buffer, row by row. */
  get pixels(): Uint8ClampedArray {
    return this.#pixels;
  }

  /**
   * The 2D context; other kinds are not supported.
   *
   * @param kind `"2d"`.
   * @returns The context, or `null` for other kinds (as browsers do).
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new CanvasStandIn().getContext("webgl"), null);
   * ```
   */
  getContext(kind: string): CanvasContext2D | null {
    if (kind !== "2d") return null;
    return this.#context ??= new CanvasContext2D(this);
  }

  /**
   * The canvas as a PNG data URL.
   *
   * @returns `data:image/png;base64,...`.
   *
   * @example
   * ```ts
   * import { CanvasStandIn } from "./canvas.ts";
   * import assert from "node:assert/strict";
   *
   * assert.match(new CanvasStandIn(1, 1).toDataURL(), /^data:image\/png;base64,iVBOR/);
   * ```
   */
  toDataURL(): string {
    // A zero-sized canvas gives this in browsers too.
    if (this.#width === 0 || this.#height === 0) return "data:,";
    return pngDataUrl(encodePng(this.#pixels, this.#width, this.#height));
  }
}

/** A DOM document whose `createElement` can be patched. */
export interface PatchableDocument {
  /** Creates an element by tag name. */
  createElement(tagName: string, ...rest: never[]): unknown;
}

/**
 * Makes a server-side DOM document hand out {@linkcode CanvasStandIn}s for
 * `createElement("canvas")`; other elements are untouched. Patching twice is
 * harmless.
 *
 * @param document The document (e.g. linkedom's).
 * @returns The same document.
 *
 * @example
 * ```ts
 * import { CanvasStandIn, withCanvas } from "./canvas.ts";
 * import { parseHTML } from "linkedom";
 * import assert from "node:assert/strict";
 *
 * // linkedom's types lean on DOM lib types that Deno does not load.
 * const window = parseHTML("<html><body></body></html>") as unknown as {
 *   document: { createElement(tagName: string): unknown };
 * };
 * const document = withCanvas(window.document);
 * assert.ok(document.createElement("canvas") instanceof CanvasStandIn);
 * assert.equal((document.createElement("div") as { tagName: string }).tagName, "DIV");
 * ```
 */
export function withCanvas<D extends PatchableDocument>(document: D): D {
  const marked = document as D & { [PATCHED]?: true };
  if (marked[PATCHED]) return document;
  const original = document.createElement.bind(document);
  document.createElement =
    ((tagName: string, ...rest: never[]) =>
      tagName.toLowerCase() === "canvas"
        ? new CanvasStandIn()
        : original(tagName, ...rest)) as D["createElement"];
  marked[PATCHED] = true;
  return document;
}

const PATCHED = Symbol("attnscope.canvas");

/**
 * Parses the CSS colors d3 and Plot produce: `#rgb`, `#rrggbb`,
 * `#rrggbbaa`, `rgb(r, g, b)`, `rgba(r, g, b, a)`.
 *
 * @param color A CSS color string.
 * @returns `[r, g, b, a]` bytes, or `null` for other forms.
 *
 * @example
 * ```ts
 * import { parseCssColor } from "./canvas.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseCssColor("rgb(68, 1, 84)"), [68, 1, 84, 255]);
 * assert.deepEqual(parseCssColor("#fff"), [255, 255, 255, 255]);
 * assert.equal(parseCssColor("papayawhip"), null);
 * ```
 */
export function parseCssColor(
  color: string,
): [number, number, number, number] | null {
  const s = color.trim().toLowerCase();
  if (s.startsWith("#")) {
    const hex = s.slice(1);
    if (!/^[0-9a-f]+$/.test(hex)) return null;
    if (hex.length === 3) {
      return [
        ...[...hex].map((c) => parseInt(c + c, 16)),
        255,
      ] as [number, number, number, number];
    }
    if (hex.length === 6 || hex.length === 8) {
      const n = (i: number) => parseInt(hex.slice(i, i + 2), 16);
      return [n(0), n(2), n(4), hex.length === 8 ? n(6) : 255];
    }
    return null;
  }
  const m =
    /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)(?:[\s,/]+([\d.]+%?))?\s*\)$/
      .exec(s);
  if (!m) return null;
  const byte = (v: string) => Math.max(0, Math.min(255, Math.round(+v)));
  let alpha = 255;
  if (m[4] !== undefined) {
    const a = m[4].endsWith("%") ? parseFloat(m[4]) / 100 : +m[4];
    alpha = Math.round(Math.max(0, Math.min(1, a)) * 255);
  }
  return [byte(m[1]), byte(m[2]), byte(m[3]), alpha];
}
