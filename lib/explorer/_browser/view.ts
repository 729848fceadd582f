/// <reference lib="dom" />
/**
 * One explorer on the page, put together from its parts: the state
 * (`state.ts`), the token strips (`tokens.ts`), the matrix (`matrix.ts`),
 * the thumbnails (`thumbs.ts`) and the controls (`controls.ts`). Every
 * part writes the state; after each update this module redraws as much as
 * the update says (`data` > `paint` > `selection`). All elements live under
 * the root, so any number of explorers share a page (no globals, no ids).
 *
 * @module
 */

import type { ExplorerMeta } from "../_protocol.ts";
import { Capture } from "./data.ts";
import { type CaptureView, Compared, loadCompared } from "./compare.ts";
import type { Arch, ViewContext } from "./context.ts";
import { el, lutBytes, reverseLut } from "./dom.ts";
import { geometryOf } from "./geometry.ts";
import { Store } from "./state.ts";
import { createTokens } from "./tokens.ts";
import { createMatrix } from "./matrix.ts";
import { createThumbs } from "./thumbs.ts";
import { createControls } from "./controls.ts";
import { resolveScheme } from "./theme.ts";

/** Mounts the explorer whose header and blob sit inside `root`. */
export async function mountExplorer(root: HTMLElement): Promise<void> {
  const meta: ExplorerMeta = JSON.parse(
    root.querySelector(".ax-meta")!.textContent!,
  );
  const t0 = performance.now();
  const a = await Capture.load(
    meta,
    root.querySelector(".ax-blob")!.textContent!,
  );
  // Compare mode: `cap` shows capture a, b, or a - b (signed).
  const cap: CaptureView = await loadCompared(root, meta, a);
  const tDecoded = performance.now();
  const nHeads = meta.layers[0].heads.length;
  // The theme first, so every colour read below is the host's.
  root.dataset.themeOption = meta.theme ?? "auto";
  const scheme = resolveScheme(root, meta.theme ?? "auto");
  root.dataset.theme = scheme.scheme;
  if (scheme.host) root.dataset.themeHost = "1";
  const maskedCss = getComputedStyle(root).getPropertyValue("--ax-masked")
    .trim().match(/^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i);
  const tokenLut = lutBytes(meta.lut.tokens);
  const geometry = geometryOf(meta, a.rowOf);
  const ctx: ViewContext = {
    root,
    meta,
    cap,
    geometry,
    nHeads,
    store: new Store({
      layer: meta.initial.layer,
      heads: Array.from({ length: nHeads }, (_, h) => h),
      combine: "mean",
      mode: "query",
      pins: [],
      hover: null,
      threshold: 0,
      topN: 0,
      sinkOut: true,
      zoom: { r0: 0, r1: meta.tq, c0: 0, c1: meta.tk },
    }, geometry.initialQuery),
    arch: (li): Arch =>
      meta.arch?.[li] ?? { window: 0, kvHeads: nHeads, causal: true },
    signed: () => cap instanceof Compared && cap.signed,
    lut: {
      matrix: lutBytes(meta.lut.matrix),
      tokens: tokenLut,
      // On a dark theme the token scale runs the other way (dark navy for
      // little attention, light for much), so weak tokens stay near the
      // panel colour.
      tokensDark: reverseLut(tokenLut),
      diff: meta.compare ? lutBytes(meta.compare.lut) : null,
    },
    masked: maskedCss
      ? [1, 2, 3].map((i) => parseInt(maskedCss[i], 16)) as [
        number,
        number,
        number,
      ]
      : [238, 238, 238],
  };

  const tokens = createTokens(ctx);
  const matrix = createMatrix(ctx);
  const thumbs = createThumbs(ctx);
  const controls = createControls(ctx, matrix.canvas);

  const app = el("div", { class: "ax-app" });
  const main = el("div", { class: "ax-main" });
  const left = el("div", { class: "ax-left" });
  left.append(matrix.el, matrix.legend, thumbs.el);
  main.append(left, tokens.el);
  app.append(...controls.top, main, ...controls.bottom);
  root.querySelector(".ax-fallback")?.setAttribute("hidden", "");
  root.append(app);
  root.tabIndex = 0;

  function redraw(change: "none" | "selection" | "paint" | "data"): void {
    if (change === "none") return;
    if (change === "data") matrix.rebuild();
    if (change !== "selection") matrix.repaint();
    tokens.refresh();
    matrix.redraw();
    controls.sync(matrix.pooled());
    thumbs.sync();
  }
  ctx.store.listen(redraw);

  const tBuilt = performance.now();
  redraw("data");
  root.dataset.ready = String(performance.now());
  // Where first paint went (ms): decode, DOM build, first draw.
  root.dataset.timings = [
    tDecoded - t0,
    tBuilt - tDecoded,
    performance.now() - tBuilt,
  ]
    .map((v) => v.toFixed(0)).join(",");
  thumbs.start();
}
