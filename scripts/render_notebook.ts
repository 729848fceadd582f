/**
 * What a person sees: renders an executed notebook to HTML with nbconvert,
 * photographs the page with headless Chromium, and measures how much ink
 * each chart area holds, so that a chart that comes out blank (for example
 * an SVG that an HTML cleaner stripped down to its axis text) is caught.
 *
 * `deno run -A scripts/render_notebook.ts OUT_DIR NOTEBOOK...` renders each
 * notebook to `OUT_DIR/<name>.html` and `OUT_DIR/<name>.png` and prints the
 * ink of every chart.
 *
 * @module
 */

import { decodePng } from "./_png.ts";
import { findChromium, findJupyterPython } from "./jupyter_env.ts";

/** Where a chart sits on the rendered page, in CSS pixels. */
export interface ChartArea {
  /** Index of the notebook cell whose output holds the chart. */
  cell: number;
  /** Left edge. */
  x: number;
  /** Top edge, from the top of the page. */
  y: number;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** A chart area with the share of its pixels that are not near-white. */
export interface ChartInk extends ChartArea {
  /** Non-white pixels / all pixels of the area, 0 to 1. */
  ink: number;
}

/** A photographed notebook page. */
export interface Screenshot {
  /** The HTML page. */
  html: string;
  /** The PNG screenshot of the whole page. */
  png: string;
  /** Page height in CSS pixels (the screenshot may be cut at `maxHeight`). */
  pageHeight: number;
  /** Every output area that holds an `<svg>`, `<img>` or `<canvas>`, with its ink. */
  charts: ChartInk[];
  /** Every interactive explorer on the page, as its scripts left it. */
  explorers: ExplorerState[];
}

/** An explorer's state after the page's scripts ran. */
export interface ExplorerState {
  /** Index of its cell. */
  cell: number;
  /** Whether its script mounted the interactive view. */
  ready: boolean;
  /** The mount error, if any. */
  error: string;
  /** Whether the static fallback picture was hidden by the live view. */
  fallbackHidden: boolean;
  /** Whether the matrix canvas is there. */
  canvas: boolean;
}

/** Options for {@linkcode photographNotebook}. */
export interface PhotographOptions {
  /** Python with nbconvert; found with `findJupyterPython` when omitted. @default {undefined} */
  python?: string;
  /** Chromium binary; found with `findChromium` when omitted. @default {undefined} */
  chromium?: string;
  /** Browser window width in CSS pixels. @default {1100} */
  width?: number;
  /** Tallest screenshot taken; charts below it are measured as blank. @default {30000} */
  maxHeight?: number;
}

// Runs in the page after load: finds every output area holding a chart and
// records where its svg/img elements sit, so the screenshot can be measured
// where the charts are (and not where prose or code is).
const PROBE = `<script>
(() => {
// Interactive explorers mount asynchronously: measure once every one has.
const explorersMounted = () => [...document.querySelectorAll(".attnscope-explorer")]
  .every((e) => e.dataset.ready || e.dataset.error);
function measure(tries) {
  if (!explorersMounted() && tries < 100) return setTimeout(() => measure(tries + 1), 50);
  const cells = [...document.querySelectorAll(".jp-Cell")];
  const charts = [];
  const explorers = [];
  cells.forEach((cell, index) => {
    for (const e of cell.querySelectorAll(".attnscope-explorer")) {
      explorers.push({ cell: index, ready: !!e.dataset.ready, error: e.dataset.error ?? "",
        fallbackHidden: !!e.querySelector(".ax-fallback[hidden]"),
        canvas: !!e.querySelector("canvas.ax-matrix") });
    }
    for (const area of cell.querySelectorAll(".jp-OutputArea-output")) {
      const parts = [...area.querySelectorAll("svg, img, canvas")]
        .filter((e) => !e.parentElement.closest("svg"))
        .map((e) => e.getBoundingClientRect())
        .filter((r) => r.width * r.height > 0);
      if (!parts.length) continue;
      const left = Math.min(...parts.map((r) => r.left));
      const top = Math.min(...parts.map((r) => r.top)) + scrollY;
      const right = Math.max(...parts.map((r) => r.right));
      const bottom = Math.max(...parts.map((r) => r.bottom)) + scrollY;
      charts.push({ cell: index, x: Math.floor(left), y: Math.floor(top),
        width: Math.ceil(right - left), height: Math.ceil(bottom - top) });
    }
  });
  document.body.dataset.attnscopeLayout = JSON.stringify({
    height: document.documentElement.scrollHeight, charts, explorers });
}
addEventListener("load", () => measure(0));
})();
</script>`;

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--hide-scrollbars",
];

async function run(
  cmd: string,
  args: string[],
  what: string,
): Promise<string> {
  // A stuck browser or converter must fail the run, not hang it.
  const seconds = 180;
  const signal = AbortSignal.timeout(seconds * 1000);
  const result = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  if (signal.aborted) {
    throw new Error(
      `Cannot ${what}: ${cmd} did not finish in ${seconds} s; run it by hand to see where it stops`,
    );
  }
  const stdout = new TextDecoder().decode(result.stdout);
  if (!result.success) {
    const stderr = new TextDecoder().decode(result.stderr);
    throw new Error(
      `Cannot ${what}: ${cmd} exited with ${result.code}:\n${
        stderr.slice(-2000)
      }`,
    );
  }
  return stdout;
}

async function chromium(binary: string, args: string[], what: string) {
  // A fresh profile per run: no state leaks between runs, none is kept.
  const profile = await Deno.makeTempDir({ prefix: "attnscope-chromium-" });
  try {
    return await run(binary, [
      ...CHROMIUM_FLAGS,
      `--user-data-dir=${profile}`,
      ...args,
    ], what);
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/**
 * Renders an executed notebook to HTML (nbconvert) and photographs it
 * (headless Chromium), measuring the ink in every chart area.
 *
 * @param notebook The executed `.ipynb`.
 * @param outDir Folder for `<name>.html` and `<name>.png`.
 * @param options Tools, window width, height cap.
 * @returns The files and the chart areas with their ink.
 *
 * @example
 * ```ts ignore
 * import { photographNotebook } from "./render_notebook.ts";
 *
 * const shot = await photographNotebook(".artifacts/notebooks/needle.ipynb", ".artifacts/notebooks");
 * console.log(shot.png, shot.charts.map((c) => c.ink));
 * ```
 */
export async function photographNotebook(
  notebook: string,
  outDir: string,
  options: PhotographOptions = {},
): Promise<Screenshot> {
  const python = options.python ?? await required(findJupyterPython());
  const browser = options.chromium ?? await required(findChromium());
  const width = options.width ?? 1100;
  const maxHeight = options.maxHeight ?? 30000;
  outDir = outDir.replace(/\/+$/, "");
  await Deno.mkdir(outDir, { recursive: true });
  const name = notebook.replace(/^.*\//, "").replace(/\.ipynb$/, "");
  await run(python, [
    "-m",
    "nbconvert",
    "--to",
    "html",
    "--log-level",
    "ERROR",
    "--output-dir",
    outDir,
    "--output",
    name,
    notebook,
  ], `convert ${notebook} to HTML`);
  const html = `${outDir}/${name}.html`;
  const page = await Deno.readTextFile(html);
  await Deno.writeTextFile(html, page.replace(/<\/body>/i, `${PROBE}</body>`));
  const url = new URL(`file://${await Deno.realPath(html)}`).href;

  const dom = await chromium(browser, [
    `--window-size=${width},1000`,
    "--virtual-time-budget=10000",
    "--dump-dom",
    url,
  ], `lay out ${html}`);
  const attr = dom.match(/data-attnscope-layout="([^"]*)"/)?.[1];
  if (!attr) {
    throw new Error(
      `Cannot measure ${html}: the page never finished loading in Chromium; open it in a browser to see why`,
    );
  }
  const layout: {
    height: number;
    charts: ChartArea[];
    explorers?: ExplorerState[];
  } = JSON.parse(
    attr.replaceAll("&quot;", '"').replaceAll("&amp;", "&"),
  );
  const height = Math.min(layout.height, maxHeight);
  const png = `${outDir}/${name}.png`;
  await chromium(browser, [
    `--window-size=${width},${height}`,
    "--virtual-time-budget=10000",
    `--screenshot=${await Deno.realPath(outDir)}/${name}.png`,
    url,
  ], `photograph ${html}`);
  const image = decodePng(await Deno.readFile(png));
  return {
    html,
    png,
    pageHeight: layout.height,
    charts: layout.charts.map((area) => ({ ...area, ink: inkIn(image, area) })),
    explorers: layout.explorers ?? [],
  };
}

async function required(
  found: Promise<{ ok: boolean; path?: string; reason?: string }>,
) {
  const result = await found;
  if (!result.ok || !result.path) {
    throw new Error(`Cannot render notebooks: ${result.reason}`);
  }
  return result.path;
}

/**
 * The share of pixels in an area that are not near-white (any channel below
 * 235): a chart drawn in its area scores well above a few percent, an empty
 * or axis-only area close to zero. Parts outside the image count as blank.
 *
 * @param image Decoded RGBA pixels (from `decodePng`).
 * @param area The rectangle to measure, in pixels.
 * @returns 0 to 1.
 *
 * @example
 * ```ts
 * import { inkIn } from "./render_notebook.ts";
 * import assert from "node:assert/strict";
 *
 * // 2x1 image: one black pixel, one white
 * const image = { width: 2, height: 1, rgba: new Uint8Array([0, 0, 0, 255, 255, 255, 255, 255]) };
 * assert.equal(inkIn(image, { x: 0, y: 0, width: 2, height: 1 }), 0.5);
 * assert.equal(inkIn(image, { x: 0, y: 0, width: 2, height: 2 }), 0.25);
 * ```
 */
export function inkIn(
  image: { width: number; height: number; rgba: Uint8Array },
  area: { x: number; y: number; width: number; height: number },
): number {
  const total = area.width * area.height;
  if (total <= 0) return 0;
  let ink = 0;
  const x1 = Math.min(image.width, area.x + area.width);
  const y1 = Math.min(image.height, area.y + area.height);
  for (let y = Math.max(0, area.y); y < y1; y++) {
    for (let x = Math.max(0, area.x); x < x1; x++) {
      const i = (y * image.width + x) * 4;
      const { rgba } = image;
      if (rgba[i] < 235 || rgba[i + 1] < 235 || rgba[i + 2] < 235) ink++;
    }
  }
  return ink / total;
}

if (import.meta.main) {
  const [outDir, ...notebooks] = Deno.args;
  if (!outDir || !notebooks.length) {
    console.error(
      "Cannot render: no notebooks given; usage: render_notebook.ts OUT_DIR NOTEBOOK...",
    );
    Deno.exit(2);
  }
  for (const notebook of notebooks) {
    const shot = await photographNotebook(notebook, outDir);
    console.log(`${shot.png} (page ${shot.pageHeight} px)`);
    for (const c of shot.charts) {
      console.log(
        `  cell ${c.cell}: ${c.width}x${c.height} at y=${c.y}, ink ${
          (c.ink * 100).toFixed(1)
        }%`,
      );
    }
  }
}
