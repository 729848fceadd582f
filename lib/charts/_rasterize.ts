/**
 * SVG to PNG with resvg compiled to WebAssembly (npm:@resvg/resvg-wasm):
 * no native addon, no browser, and its `.wasm` ships inside the npm package,
 * so it loads offline from Deno's npm cache.
 *
 * WebAssembly cannot see system fonts, so font files are read here and
 * handed over; without any, text is left out of the PNG (with a warning).
 *
 * @module
 */

import { initWasm, Resvg } from "npm:@resvg/resvg-wasm@^2.6.2";
import { warn } from "../warn.ts";

/** Options for {@linkcode rasterizeSvg}. */
export interface RasterizeOptions {
  /**
   * Pixels per SVG unit (2 for sharp text on high-density screens).
   * @default {2}
   */
  scale?: number;
  /**
   * Background color behind transparent areas.
   * @default {"white"}
   */
  background?: string;
  /**
   * TrueType/OpenType font files to draw text with, tried before the
   * system's fonts.
   * @default {[]}
   */
  fontFiles?: readonly string[];
}

/** Sans-serif fonts looked for, with their family names, in font folders. */
const FONT_CANDIDATES: readonly [string, string][] = [
  ["DejaVuSans.ttf", "DejaVu Sans"],
  ["DejaVuSans-Bold.ttf", "DejaVu Sans"],
  ["LiberationSans-Regular.ttf", "Liberation Sans"],
  ["LiberationSans-Bold.ttf", "Liberation Sans"],
  ["NotoSans-Regular.ttf", "Noto Sans"],
  ["NotoSans-Bold.ttf", "Noto Sans"],
  ["Arial.ttf", "Arial"],
  ["arial.ttf", "Arial"],
  ["Helvetica.ttc", "Helvetica"],
];

/** Monospace fonts (token text images), with their family names. */
const MONO_CANDIDATES: readonly [string, string][] = [
  ["DejaVuSansMono.ttf", "DejaVu Sans Mono"],
  ["DejaVuSansMono-Bold.ttf", "DejaVu Sans Mono"],
  ["LiberationMono-Regular.ttf", "Liberation Mono"],
  ["LiberationMono-Bold.ttf", "Liberation Mono"],
  ["NotoSansMono-Regular.ttf", "Noto Sans Mono"],
  ["NotoSansMono-Bold.ttf", "Noto Sans Mono"],
];

const FONT_DIRS = [
  "/usr/share/fonts",
  "/usr/local/share/fonts",
  "/System/Library/Fonts",
  "/Library/Fonts",
  "C:\\Windows\\Fonts",
];

let ready: Promise<void> | null = null;
let systemFonts:
  | { buffers: Uint8Array[]; family: string | null; mono: string | null }
  | null = null;

/**
 * Loads resvg's WebAssembly and the system fonts, once; after it,
 * {@linkcode rasterizeSvgSync} works.
 *
 * @returns When ready.
 *
 * @example
 * ```ts
 * import { prepareRasterizer, rasterizerReady } from "./_rasterize.ts";
 * import assert from "node:assert/strict";
 *
 * await prepareRasterizer();
 * assert.equal(rasterizerReady(), true);
 * ```
 */
export async function prepareRasterizer(): Promise<void> {
  await (ready ??= loadWasm());
  await findFonts();
  loaded = true;
}

let loaded = false;

/**
 * Whether {@linkcode prepareRasterizer} has finished.
 *
 * @returns `true` once SVG can be rasterized synchronously.
 *
 * @example
 * ```ts
 * import { prepareRasterizer, rasterizerReady } from "./_rasterize.ts";
 * import assert from "node:assert/strict";
 *
 * await prepareRasterizer();
 * assert.ok(rasterizerReady());
 * ```
 */
export function rasterizerReady(): boolean {
  return loaded;
}

/**
 * Rasterizes an SVG document to PNG.
 *
 * @param svg The SVG markup (with `xmlns`).
 * @param options Scale, background and fonts.
 * @returns The PNG file's bytes.
 *
 * @example
 * ```ts
 * import { rasterizeSvg } from "./_rasterize.ts";
 * import assert from "node:assert/strict";
 *
 * const png = await rasterizeSvg('<svg xmlns="http://www.w3.org/2000/svg" width="3" height="2"/>', { scale: 2 });
 * assert.equal(new DataView(png.buffer).getUint32(16), 6); // width x 2
 * ```
 */
export async function rasterizeSvg(
  svg: string,
  options: RasterizeOptions = {},
): Promise<Uint8Array> {
  checkScale(options.scale ?? 2);
  await prepareRasterizer();
  const extra = await Promise.all(
    (options.fontFiles ?? []).map((f) => Deno.readFile(f)),
  );
  return render(svg, options, extra);
}

/**
 * Rasterizes an SVG document to PNG without waiting, once
 * {@linkcode prepareRasterizer} has finished (for display methods, which
 * must answer synchronously).
 *
 * @param svg The SVG markup (with `xmlns`).
 * @param options Scale, background and fonts (font files are read synchronously).
 * @returns The PNG file's bytes.
 * @throws {Error} When the rasterizer is not prepared yet.
 *
 * @example
 * ```ts
 * import { prepareRasterizer, rasterizeSvgSync } from "./_rasterize.ts";
 * import assert from "node:assert/strict";
 *
 * await prepareRasterizer();
 * const png = rasterizeSvgSync('<svg xmlns="http://www.w3.org/2000/svg" width="3" height="2"/>', { scale: 1 });
 * assert.equal(new DataView(png.buffer).getUint32(16), 3);
 * ```
 */
export function rasterizeSvgSync(
  svg: string,
  options: RasterizeOptions = {},
): Uint8Array {
  checkScale(options.scale ?? 2);
  if (!loaded) {
    throw new Error(
      "Cannot rasterize SVG synchronously: the rasterizer is not loaded yet; await prepareRasterizer() first",
    );
  }
  const extra = (options.fontFiles ?? []).map((f) => Deno.readFileSync(f));
  return render(svg, options, extra);
}

function checkScale(scale: number): void {
  if (!(scale > 0)) {
    throw new RangeError(
      `Cannot rasterize SVG: scale ${scale} is not positive; pass e.g. { scale: 2 }`,
    );
  }
}

function render(
  svg: string,
  options: RasterizeOptions,
  extra: Uint8Array[],
): Uint8Array {
  const { scale = 2, background = "white" } = options;
  const fonts = systemFonts!;
  const buffers = [...extra, ...fonts.buffers];
  if (buffers.length === 0) {
    warn(
      "Cannot find a sans-serif font for PNG output; text is left out. Install one (e.g. Debian's fonts-dejavu-core) or pass { fontFiles }",
    );
  }
  const family = fonts.family ?? "DejaVu Sans";
  const resvg = new Resvg(svg, {
    fitTo: { mode: "zoom", value: scale },
    background,
    font: {
      fontBuffers: buffers,
      loadSystemFonts: false,
      defaultFontFamily: family,
      sansSerifFamily: family,
      ...(fonts.mono ? { monospaceFamily: fonts.mono } : {}),
    },
  });
  const image = resvg.render();
  try {
    return image.asPng();
  } finally {
    image.free();
    resvg.free();
  }
}

async function loadWasm(): Promise<void> {
  // The .wasm sits beside the package's JS in Deno's npm cache.
  const url = import.meta.resolve(
    "npm:@resvg/resvg-wasm@^2.6.2/index_bg.wasm",
  );
  const bytes = url.startsWith("file:")
    ? await Deno.readFile(new URL(url))
    : new Uint8Array(await (await fetch(url)).arrayBuffer());
  await initWasm(bytes);
}

async function findFonts(): Promise<
  { buffers: Uint8Array[]; family: string | null; mono: string | null }
> {
  if (systemFonts) return systemFonts;
  const wanted = new Map([...FONT_CANDIDATES, ...MONO_CANDIDATES]);
  const found = new Map<string, string>();
  const walk = async (dir: string, depth: number) => {
    if (depth > 4) return;
    let entries: AsyncIterable<Deno.DirEntry>;
    try {
      entries = Deno.readDir(dir);
      for await (const entry of entries) {
        const path = `${dir}/${entry.name}`;
        if (entry.isDirectory) await walk(path, depth + 1);
        else if (wanted.has(entry.name) && !found.has(entry.name)) {
          found.set(entry.name, path);
        }
      }
    } catch {
      // Missing or unreadable font folders are normal on most systems.
    }
  };
  for (const dir of FONT_DIRS) await walk(dir, 0);
  // The first family (in preference order) with any file found wins.
  const family = FONT_CANDIDATES.find(([file]) => found.has(file))?.[1] ??
    null;
  const mono = MONO_CANDIDATES.find(([file]) => found.has(file))?.[1] ?? null;
  const files = [
    ...FONT_CANDIDATES.filter(([file, fam]) =>
      fam === family && found.has(file)
    ),
    ...MONO_CANDIDATES.filter(([file, fam]) => fam === mono && found.has(file)),
  ].map(([file]) => found.get(file)!);
  systemFonts = {
    buffers: await Promise.all(files.map((f) => Deno.readFile(f))),
    family,
    mono,
  };
  return systemFonts;
}
