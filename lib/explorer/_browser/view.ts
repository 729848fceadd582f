/// <reference lib="dom" />
/**
 * One explorer on the page: token text, layer and head controls, the matrix
 * canvas with zoom, the layer x head thumbnails and the filters. All state
 * lives in this closure and all elements under its root, so any number of
 * explorers share a page without touching each other (no globals, no ids).
 *
 * @module
 */

import {
  binMap,
  lutColorizer,
  poolRowMax,
  quantile,
} from "../../charts/_scale.ts";
import type { ExplorerMeta } from "../_protocol.ts";
import { Capture, type Combine } from "./data.ts";
import {
  type CaptureView,
  Compared,
  loadCompared,
  sideToggle,
  spread,
} from "./compare.ts";
import { bindKeys } from "./keys.ts";
import { resolveScheme } from "./theme.ts";
import { createAxes, createLegend } from "./matrix_axes.ts";

const MARK = "#e0115f";
/** Canvas side in CSS pixels; the matrix is drawn at most this many cells a side. */
const SIDE = 520;
const THUMB = 44;
/** Masked cells' colour, from the theme's `--ax-masked` at mount. */
let MASKED: [number, number, number] = [238, 238, 238];

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text = "",
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

function lutBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

const fmt = (w: number) => w.toFixed(4);

/** An RGBA colour table back to front. */
function reverseLut(lut: Uint8Array): Uint8Array {
  const out = new Uint8Array(lut.length);
  const n = lut.length / 4;
  for (let i = 0; i < n; i++) {
    out.set(lut.subarray(i * 4, i * 4 + 4), (n - 1 - i) * 4);
  }
  return out;
}

/** Mounts the explorer whose header and blob sit inside `root`. */
export async function mountExplorer(root: HTMLElement): Promise<void> {
  const meta: ExplorerMeta = JSON.parse(
    root.querySelector(".ax-meta")!.textContent!,
  );
  const t0 = performance.now();
  // Compare mode: `cap` shows capture a, b, or a - b (signed).
  const cap: CaptureView = await loadCompared(
    root,
    meta,
    await Capture.load(meta, root.querySelector(".ax-blob")!.textContent!),
  );
  const diffLut = meta.compare ? lutBytes(meta.compare.lut) : null;
  const signed = () => cap instanceof Compared && cap.signed;
  const tDecoded = performance.now();
  const matrixLut = lutBytes(meta.lut.matrix);
  const tokenLut = lutBytes(meta.lut.tokens);
  // On a dark theme the token scale runs the other way (dark navy for little
  // attention, light for much), so weak tokens stay near the panel colour.
  const tokenLutDark = reverseLut(tokenLut);
  const nHeads = meta.layers[0].heads.length;
  const { tq, tk, keyOffset, labels } = meta;
  // The theme first, so every colour read below is the host's.
  root.dataset.themeOption = meta.theme ?? "auto";
  const scheme = resolveScheme(root, meta.theme ?? "auto");
  root.dataset.theme = scheme.scheme;
  if (scheme.host) root.dataset.themeHost = "1";
  const masked = getComputedStyle(root).getPropertyValue("--ax-masked")
    .trim().match(/^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i);
  if (masked) {
    MASKED = [1, 2, 3].map((i) => parseInt(masked[i], 16)) as typeof MASKED;
  }
  const arch = (li: number) =>
    meta.arch?.[li] ?? { window: 0, kvHeads: nHeads, causal: true };

  // ---- state
  let layer = meta.initial.layer;
  let heads: number[] = Array.from({ length: nHeads }, (_, h) => h);
  let combine: Combine = "mean";
  let mode: "query" | "received" = "query";
  let pins: number[] = [];
  let hover: number | null = null;
  let threshold = 0;
  let topN = 0;
  let sinkOut = true;
  let zoom = { r0: 0, r1: tq, c0: 0, c1: tk };

  // ---- layout
  const app = el("div", { class: "ax-app" });
  const bar = el("div", { class: "ax-bar" });
  const layerSel = el("select", { class: "ax-layer", title: "layer" });
  meta.layers.forEach((l, i) =>
    layerSel.append(el("option", { value: String(i) }, `layer ${l.layer}`))
  );
  layerSel.value = String(layer);
  const chips = el("span", { class: "ax-chips" });
  // Grouped-query attention: query heads that share a KV head sit together.
  const kvHeads = arch(layer).kvHeads;
  const perGroup = nHeads / kvHeads;
  const groups = Array.from({ length: kvHeads }, (_, g) => {
    if (kvHeads === nHeads) return chips;
    const box = el("span", {
      class: "ax-kv",
      "data-kv-group": String(g),
      title: `KV head ${g}: query heads ${g * perGroup} to ${
        (g + 1) * perGroup - 1
      } share it`,
    });
    chips.append(box);
    return box;
  });
  const chipEls = Array.from({ length: nHeads }, (_, h) => {
    const g = Math.floor(h / perGroup);
    const b = el("button", {
      class: "ax-chip",
      "data-head": String(h),
      "data-kv-group": String(g),
      title:
        `head ${h} (KV head ${g}): click toggles, double-click shows it alone`,
    }, String(h));
    b.style.setProperty(
      "--hue",
      String((g * 360) / kvHeads + (h % perGroup) * 8),
    );
    groups[g].append(b);
    return b;
  });
  const combineSel = el("select", {
    class: "ax-combine",
    title: "combine heads",
  });
  combineSel.append(el("option", { value: "mean" }, "mean of heads"));
  combineSel.append(el("option", { value: "max" }, "max of heads"));
  const modeBtn = el("button", {
    class: "ax-mode",
    title: "shade by the row (query) or the column (received)",
  });
  bar.append(layerSel, el("span", {}, " heads "), chips, combineSel, modeBtn);
  if (cap instanceof Compared) {
    root.dataset.side = cap.side;
    bar.append(sideToggle(cap, meta.compare!.names, () => {
      root.dataset.side = cap.side;
      refreshAll();
    }));
  }

  const filters = el("div", { class: "ax-bar ax-filters" });
  const thrIn = el("input", {
    class: "ax-threshold",
    type: "number",
    min: "0",
    max: "1",
    step: "0.01",
    value: "0",
  });
  const topIn = el("input", {
    class: "ax-topk",
    type: "number",
    min: "0",
    step: "1",
    value: "0",
  });
  const sinkIn = el("input", { class: "ax-sink", type: "checkbox" });
  sinkIn.checked = true;
  const resetBtn = el("button", { class: "ax-reset" }, "reset zoom");
  const pngBtn = el("button", { class: "ax-png" }, "save PNG");
  const lbl = (text: string, input: HTMLElement) => {
    const l = el("label", {}, text);
    l.append(input);
    return l;
  };
  filters.append(
    lbl("hide below ", thrIn),
    lbl(" top-k ", topIn),
    lbl(" key 0 out of the color scale ", sinkIn),
    resetBtn,
    pngBtn,
  );

  const status = el("div", { class: "ax-status" });
  const note = el("div", { class: "ax-note" });
  note.textContent = meta.reduced;

  const main = el("div", { class: "ax-main" });
  const left = el("div", { class: "ax-left" });
  const canvas = el("canvas", { class: "ax-matrix" });
  const tip = el("div", { class: "ax-tip" });
  const wrap = el("div", { class: "ax-canvas-wrap" });
  const band = el("div", { class: "ax-band" });
  wrap.append(canvas, band, tip);
  const axes = createAxes(wrap);
  const ramp = createLegend();
  const thumbs = el("div", { class: "ax-thumbs" });
  left.append(wrap, ramp.el, thumbs);
  const text = el("div", { class: "ax-text" });
  main.append(left, text);

  const legend = el("div", { class: "ax-legend" });
  for (
    const [cls, name] of [["l", "language"], ["v", "vision"], [
      "g",
      "generated",
    ]]
  ) {
    const s = el("span", { class: `ax-key ax-t-${cls}` }, name);
    legend.append(s, document.createTextNode(" "));
  }
  legend.append(
    document.createTextNode(
      "· hover a token, click to pin, shift-click to add · keys: arrows move the query, [ and ] change layer, Escape clears",
    ),
  );

  // Tokens: text with newlines kept; image tokens as one block of squares.
  const tokenEls: HTMLElement[] = [];
  let block: HTMLElement | null = null;
  for (let p = 0; p < labels.length; p++) {
    const type = meta.types[p] ?? "u";
    const span = el("span", {
      class: `ax-tok ax-t-${type}`,
      "data-index": String(p),
    });
    if (type === "v") {
      span.textContent = "\u00a0";
      span.title = `${p} · image token`;
      if (!block) {
        block = el("span", { class: "ax-image", title: "image" });
        text.append(block);
      }
      block.append(span);
    } else {
      block = null;
      span.textContent = labels[p];
      text.append(span);
      // A token that is a newline ("\n", or "↵" as tokenizers print it)
      // breaks the line, so the prompt keeps its shape.
      if (/\n$|↵$/.test(labels[p]) && !labels[p].endsWith("\n")) {
        text.append("\n");
      }
    }
    tokenEls.push(span);
  }
  app.append(bar, filters, note, main, legend, status);
  root.querySelector(".ax-fallback")?.setAttribute("hidden", "");
  root.append(app);
  root.tabIndex = 0;

  // ---- token shading
  const selection = (): number[] =>
    pins.length ? pins : hover !== null ? [hover] : [meta.initial.query];
  const weights = new Float64Array(labels.length);
  const shown:
    ({ weight: string; bg: string; fg: string; flags: number } | null)[] =
      new Array(labels.length).fill(null);
  const scratch = new Float64Array(Math.max(tq, tk));

  function computeWeights(): void {
    weights.fill(NaN);
    const sel = selection();
    if (mode === "query") {
      const sum = new Float64Array(tk);
      let any = false;
      for (const p of sel) {
        const r = cap.rowOf[p] ?? -1;
        if (r < 0) continue;
        any = true;
        const row = cap.row(layer, heads, combine, r, scratch.subarray(0, tk));
        for (let c = 0; c < tk; c++) sum[c] += row[c];
      }
      if (!any) return;
      for (let c = 0; c < tk; c++) {
        if (keyOffset + c < weights.length) weights[keyOffset + c] = sum[c];
      }
    } else {
      const sum = new Float64Array(tq);
      let any = false;
      for (const p of sel) {
        const c = p - keyOffset;
        if (c < 0 || c >= tk) continue;
        any = true;
        const col = cap.column(
          layer,
          heads,
          combine,
          c,
          scratch.subarray(0, tq),
        );
        for (let r = 0; r < tq; r++) sum[r] += col[r];
      }
      if (!any) return;
      for (let r = 0; r < tq; r++) {
        const p = meta.queryPositions[r];
        if (p < weights.length) weights[p] = sum[r];
      }
    }
    // A sliding window: a (query, key) pair outside every selected pair's
    // window is masked (no data-weight, no shade), not zero attention.
    const win = arch(layer).window;
    if (win > 0) {
      for (let p = 0; p < weights.length; p++) {
        if (Number.isNaN(weights[p])) continue;
        const seen = sel.some((s) => {
          const [q, k] = mode === "query" ? [s, p] : [p, s];
          return k > q - win;
        });
        if (!seen) weights[p] = NaN;
      }
    }
    // Filters: weak weights hidden by threshold and by top-k.
    let cut = threshold;
    if (topN > 0) {
      const finite = weights.filter((v) => !Number.isNaN(v)).sort((a, b) =>
        b - a
      );
      if (finite.length > topN) cut = Math.max(cut, finite[topN - 1]);
    }
    if (cut > 0) {
      for (let i = 0; i < weights.length; i++) {
        if (weights[i] < cut) weights[i] = 0;
      }
    }
  }

  function shadeTokens(): void {
    computeWeights();
    let top = 0, all = 0;
    for (let p = 0; p < weights.length; p++) {
      const w = weights[p];
      if (Number.isNaN(w)) continue;
      all = Math.max(all, w);
      if (!(sinkOut && p === 0)) top = Math.max(top, w);
    }
    const tokenTop = signed() ? spread(weights) : top > 0 ? top : (all || 1);
    const colors = signed()
      ? lutColorizer(diffLut!, -tokenTop, tokenTop)
      : lutColorizer(
        root.dataset.theme === "dark" ? tokenLutDark : tokenLut,
        0,
        tokenTop,
      );
    const rgb = new Uint8Array(4);
    const sel = new Set(selection());
    const pinned = new Set(pins);
    // Only tokens whose shading changed are touched: at 4,096 tokens a hover
    // changes a few dozen, and DOM writes are what costs.
    for (let p = 0; p < tokenEls.length; p++) {
      const w = weights[p];
      let weight = "", bg = "", fg = "";
      if (!Number.isNaN(w)) weight = fmt(w);
      // Below 2% of the scale a token keeps the page's own background (a
      // near-white shade would be a glaring slab on a dark theme).
      if (!Number.isNaN(w) && Math.abs(w) >= 0.02 * tokenTop) {
        colors.put(w, rgb, 0);
        bg = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
        // Dark shades need light text to stay readable (as the static view).
        const lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
        fg = lum < 120 ? "white" : "#111";
      }
      const flags = (sel.has(p) ? 1 : 0) | (pinned.has(p) ? 2 : 0);
      const last = shown[p];
      if (
        last && last.weight === weight && last.bg === bg && last.fg === fg &&
        last.flags === flags
      ) continue;
      const e = tokenEls[p];
      if (!last || last.weight !== weight) {
        if (weight) e.dataset.weight = weight;
        else e.removeAttribute("data-weight");
      }
      if (!last || last.bg !== bg) e.style.background = bg;
      if (!last || last.fg !== fg) e.style.color = fg;
      if (!last || last.flags !== flags) {
        e.classList.toggle("ax-sel", (flags & 1) !== 0);
        e.classList.toggle("ax-pin", (flags & 2) !== 0);
      }
      shown[p] = { weight, bg, fg, flags };
    }
  }

  // ---- matrix
  const image = document.createElement("canvas");
  let grid: Float32Array = new Float32Array(0);
  let gridRows = 1, gridCols = 1;
  let pooledView = false;

  function buildGrid(): void {
    const { r0, r1, c0, c1 } = zoom;
    const whole = r0 === 0 && r1 === tq && c0 === 0 && c1 === tk;
    if (whole && !cap.allFull(layer, heads)) {
      // Reduced heads: the max-pooled overview, as the capture was embedded.
      grid = cap.pooledGrid(layer, heads, combine);
      gridRows = meta.pooled.rows;
      gridCols = meta.pooled.cols;
      pooledView = gridRows < tq || gridCols < tk;
      return;
    }
    gridRows = Math.min(r1 - r0, SIDE);
    gridCols = Math.min(c1 - c0, SIDE);
    pooledView = gridRows < r1 - r0 || gridCols < c1 - c0;
    grid = new Float32Array(gridRows * gridCols).fill(NaN);
    const colBin = binMap(c1 - c0, gridCols);
    const row = new Float64Array(c1 - c0);
    const { window, causal } = arch(layer);
    for (let r = r0; r < r1; r++) {
      cap.row(layer, heads, combine, r, row, c0, c1);
      if (window > 0) {
        // Keys outside the sliding window are masked, not zero attention.
        const first = meta.queryPositions[r] - window + 1 - keyOffset - c0;
        for (let j = 0; j < Math.min(first, row.length); j++) row[j] = NaN;
      }
      poolRowMax(
        row,
        0,
        c1 - c0,
        1,
        grid,
        Math.floor(((r - r0) * gridRows) / (r1 - r0)) * gridCols,
        colBin,
        causal ? meta.queryPositions[r] + 1 - keyOffset - c0 : Infinity,
      );
    }
  }

  function paintGrid(): void {
    const shown = grid.slice();
    const sinkCol = sinkOut && keyOffset === 0 && zoom.c0 === 0 &&
      gridCols === zoom.c1 - zoom.c0;
    if (sinkCol) {
      for (let r = 0; r < gridRows; r++) {
        shown[r * gridCols] = NaN;
      }
    }
    let max = 0;
    for (const v of grid) if (v > max) max = v;
    // Saturate at the 99.5th percentile, as the static heatmap does.
    const q = quantile(shown, 0.995);
    const [lo, hi] = signed()
      ? [-spread(shown, 0.995), spread(shown, 0.995)]
      : [0, q > 0 ? q : (max || 1)];
    const colors = lutColorizer(signed() ? diffLut! : matrixLut, lo, hi);
    ramp.update(colors, lo, hi, max);
    image.width = gridCols;
    image.height = gridRows;
    const ctx = image.getContext("2d")!;
    const data = ctx.createImageData(gridCols, gridRows);
    const px = data.data as unknown as Uint8Array;
    for (let i = 0; i < grid.length; i++) {
      const v = grid[i];
      let w = v;
      if (topN > 0 || threshold > 0) w = v >= threshold ? v : 0;
      if (Number.isNaN(v)) {
        px.set([...MASKED, 255], i * 4);
      } else colors.put(w, px, i * 4);
    }
    if (topN > 0 && !pooledView) {
      // Per row, only the top-k cells keep their color.
      for (let r = 0; r < gridRows; r++) {
        const rowVals = Array.from(
          grid.subarray(r * gridCols, (r + 1) * gridCols),
        );
        const sorted = rowVals.filter((v) => !Number.isNaN(v)).sort((a, b) =>
          b - a
        );
        const cut = sorted[Math.min(topN, sorted.length) - 1] ?? 0;
        for (let c = 0; c < gridCols; c++) {
          const v = rowVals[c];
          if (!Number.isNaN(v) && v < cut) {
            colors.put(0, px, (r * gridCols + c) * 4);
          }
        }
      }
    }
    ctx.putImageData(data, 0, 0);
  }

  function drawMatrix(): void {
    const { r0, r1, c0, c1 } = zoom;
    const h = Math.max(
      60,
      Math.min(SIDE, Math.round((SIDE * (r1 - r0)) / (c1 - c0))),
    );
    const dpr = globalThis.devicePixelRatio || 1;
    if (
      canvas.width !== Math.round(SIDE * dpr) ||
      canvas.height !== Math.round(h * dpr)
    ) {
      canvas.width = Math.round(SIDE * dpr);
      canvas.height = Math.round(h * dpr);
      canvas.style.width = `${SIDE}px`;
      canvas.style.height = `${h}px`;
    }
    const ctx = canvas.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(image, 0, 0, SIDE, h);
    const x = (c: number) => ((c - c0) / (c1 - c0)) * SIDE;
    const y = (r: number) => ((r - r0) / (r1 - r0)) * h;
    // The causal diagonal (key position = query position), and a sliding
    // window's far edge, dashed.
    const { window, causal } = arch(layer);
    const edge = (shift: number) => {
      ctx.beginPath();
      const step = Math.max(1, Math.floor((r1 - r0) / 64));
      for (let r = r0; r <= r1; r += step) {
        const rr = Math.min(r, tq - 1);
        const c = meta.queryPositions[rr] + 1 - keyOffset - shift;
        if (r === r0) ctx.moveTo(x(c), y(r));
        else ctx.lineTo(x(c), y(r));
      }
      ctx.stroke();
    };
    ctx.strokeStyle = "rgba(127,127,127,0.6)";
    ctx.lineWidth = 1;
    if (causal) edge(0);
    if (window > 0) {
      ctx.setLineDash([4, 3]);
      ctx.strokeStyle = MARK;
      edge(window);
      ctx.setLineDash([]);
    }
    // Selected tokens: their rows (query) or columns (received).
    ctx.strokeStyle = MARK;
    ctx.lineWidth = 1.5;
    for (const p of selection()) {
      if (mode === "query") {
        const r = cap.rowOf[p] ?? -1;
        if (r >= r0 && r < r1) {
          ctx.strokeRect(0.5, y(r), SIDE - 1, Math.max(1, y(r + 1) - y(r)));
        }
      } else {
        const c = p - keyOffset;
        if (c >= c0 && c < c1) {
          ctx.strokeRect(x(c), 0.5, Math.max(1, x(c + 1) - x(c)), h - 1);
        }
      }
    }
    axes.update(
      { r0, r1, c0, c1, width: SIDE, height: h },
      (r) => meta.queryPositions[r],
      (c) => keyOffset + c,
      axisLabel,
    );
  }

  /** A token for an axis: its text when a cell has room, else its position. */
  const axisLabel = (p: number, room: number) =>
    meta.hasLabels && room >= 11
      ? JSON.stringify(labels[p] ?? "").slice(1, -1).slice(0, 10)
      : String(p);

  function cellAt(ev: MouseEvent): { r: number; c: number } {
    const rect = canvas.getBoundingClientRect();
    const fx = Math.min(
      0.9999,
      Math.max(0, (ev.clientX - rect.left) / rect.width),
    );
    const fy = Math.min(
      0.9999,
      Math.max(0, (ev.clientY - rect.top) / rect.height),
    );
    return {
      r: zoom.r0 + Math.floor(fy * (zoom.r1 - zoom.r0)),
      c: zoom.c0 + Math.floor(fx * (zoom.c1 - zoom.c0)),
    };
  }

  function showTip(ev: MouseEvent): void {
    const { r, c } = cellAt(ev);
    const qPos = meta.queryPositions[r], kPos = keyOffset + c;
    let value: number | null = 0;
    let missing = false;
    for (const h of heads) {
      const v = cap.cell(layer, h, r, c);
      if (v === null) missing = true;
      const x = v ?? 0;
      value = combine === "mean" ? value + x : Math.max(value, x);
    }
    if (combine === "mean") value /= heads.length;
    const name = (p: number) =>
      meta.hasLabels
        ? `${JSON.stringify(labels[p] ?? "").slice(1, -1)} ${p}`
        : String(p);
    const { window: win, causal: isCausal } = arch(layer);
    const future = isCausal && kPos > qPos;
    const outside = win > 0 && kPos <= qPos - win;
    tip.textContent = `q ${name(qPos)} → k ${name(kPos)}: ${
      future
        ? "masked (future)"
        : outside
        ? `masked (outside the ${win}-key window)`
        : fmt(value)
    }${missing ? " (below the top-k kept for a reduced head: ≤ shown)" : ""}`;
    tip.dataset.query = String(qPos);
    tip.dataset.key = String(kPos);
    tip.dataset.value = fmt(value);
    tip.hidden = false;
    const rect = wrap.getBoundingClientRect();
    tip.style.left = `${Math.min(ev.clientX - rect.left + 12, SIDE - 160)}px`;
    tip.style.top = `${ev.clientY - rect.top + 12}px`;
  }

  // ---- thumbnails (bertviz's model view), drawn after the first paint
  const thumbEls: HTMLCanvasElement[][] = [];
  function buildThumbs(): void {
    const table = el("div", { class: "ax-thumb-grid" });
    table.style.gridTemplateColumns = `auto repeat(${nHeads}, ${THUMB}px)`;
    table.append(el("span", {}, ""));
    for (let h = 0; h < nHeads; h++) {
      table.append(el("span", { class: "ax-th" }, `h${h}`));
    }
    meta.layers.forEach((l, li) => {
      table.append(el("span", { class: "ax-th" }, `L${l.layer}`));
      thumbEls[li] = [];
      for (let h = 0; h < nHeads; h++) {
        const t = el("canvas", {
          class: "ax-thumb",
          "data-layer": String(l.layer),
          "data-head": String(h),
          title: `layer ${l.layer} head ${h}: click to open`,
        });
        t.width = THUMB;
        t.height = THUMB;
        thumbEls[li][h] = t;
        table.append(t);
      }
    });
    thumbs.append(
      el("div", { class: "ax-sub" }, "layers × heads (click one to open it)"),
      table,
    );
    let li = 0, h = 0;
    const step = () => {
      const start = performance.now();
      while (li < meta.layers.length && performance.now() - start < 12) {
        drawThumb(li, h);
        if (++h === nHeads) {
          h = 0;
          li++;
        }
      }
      if (li < meta.layers.length) setTimeout(step, 0);
    };
    setTimeout(step, 0);
  }

  function drawThumb(li: number, h: number): void {
    // Compare mode: the thumbnails are capture a's (the overview to pick from).
    const g = (cap instanceof Compared ? cap.a : cap).pooledGrid(
      li,
      [h],
      "mean",
    );
    const { rows, cols } = meta.pooled;
    const small = new Float32Array(THUMB * THUMB).fill(NaN);
    const n = Math.min(THUMB, rows), m = Math.min(THUMB, cols);
    const colBin = binMap(cols, m);
    for (let r = 0; r < rows; r++) {
      poolRowMax(
        g,
        r * cols,
        cols,
        1,
        small,
        Math.floor((r * n) / rows) * m,
        colBin,
        cols,
      );
    }
    const q = quantile(small.subarray(0, n * m), 0.995);
    const colors = lutColorizer(matrixLut, 0, q || 1);
    const ctx = thumbEls[li][h].getContext("2d")!;
    const img = ctx.createImageData(m, n);
    const px = img.data as unknown as Uint8Array;
    for (let i = 0; i < n * m; i++) {
      if (Number.isNaN(small[i])) px.set([...MASKED, 255], i * 4);
      else colors.put(small[i], px, i * 4);
    }
    const tmp = document.createElement("canvas");
    tmp.width = m;
    tmp.height = n;
    tmp.getContext("2d")!.putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, THUMB, THUMB);
  }

  // ---- update
  function updateAttrs(): void {
    root.dataset.layer = String(meta.layers[layer].layer);
    root.dataset.heads = heads.join(",");
    root.dataset.mode = mode;
    root.dataset.combine = combine;
    root.dataset.window = arch(layer).window ? String(arch(layer).window) : "";
    root.dataset.causal = arch(layer).causal ? "1" : "0";
    root.dataset.query = String(selection()[selection().length - 1]);
    root.dataset.zoom = `${zoom.r0},${zoom.r1},${zoom.c0},${zoom.c1}`;
    modeBtn.textContent = mode === "query"
      ? "shading: query row"
      : "shading: received (column)";
    chipEls.forEach((b, h) =>
      b.setAttribute("aria-pressed", String(heads.includes(h)))
    );
    thumbEls.forEach((row, li) =>
      row.forEach((t, h) =>
        t.classList.toggle("ax-on", li === layer && heads.includes(h))
      )
    );
    const sel = selection();
    const what = pins.length
      ? "pinned"
      : hover !== null
      ? "hovered"
      : "last prompt token";
    status.textContent = `layer ${meta.layers[layer].layer} · ${
      heads.length === nHeads ? "all heads" : `heads ${heads.join(", ")}`
    } (${combine}) · ${
      mode === "query" ? "attention from" : "attention received by"
    } ${what} ${sel.join(" + ")}${
      pooledView ? " · matrix max-pooled to " + gridRows + "×" + gridCols : ""
    }`;
  }

  function refreshSelection(): void {
    shadeTokens();
    drawMatrix();
    updateAttrs();
  }

  function refreshAll(): void {
    buildGrid();
    paintGrid();
    refreshSelection();
  }

  // ---- events
  text.addEventListener("mouseover", (ev) => {
    const t = (ev.target as HTMLElement).closest?.(".ax-tok") as
      | HTMLElement
      | null;
    if (!t || pins.length) return;
    hover = Number(t.dataset.index);
    refreshSelection();
  });
  text.addEventListener("mouseleave", () => {
    if (hover === null) return;
    hover = null;
    if (!pins.length) refreshSelection();
  });
  text.addEventListener("click", (ev) => {
    const t = (ev.target as HTMLElement).closest?.(".ax-tok") as
      | HTMLElement
      | null;
    if (!t) return;
    const p = Number(t.dataset.index);
    if (ev.shiftKey) {
      pins = pins.includes(p) ? pins.filter((x) => x !== p) : [...pins, p];
    } else pins = pins.length === 1 && pins[0] === p ? [] : [p];
    if (!pins.length) hover = p;
    refreshSelection();
  });
  bindKeys(root, {
    moveQuery(delta) {
      const sel = selection();
      const at = sel[sel.length - 1];
      let row = cap.rowOf[at] ?? -1;
      if (row < 0) row = delta > 0 ? -1 : tq;
      row = Math.max(0, Math.min(tq - 1, row + delta));
      pins = [meta.queryPositions[row]];
      mode = "query";
      refreshSelection();
    },
    stepLayer(delta) {
      const next = Math.max(0, Math.min(meta.layers.length - 1, layer + delta));
      if (next === layer) return;
      layer = next;
      layerSel.value = String(layer);
      refreshAll();
    },
    clear() {
      pins = [];
      hover = null;
      refreshSelection();
    },
  });
  layerSel.addEventListener("change", () => {
    layer = Number(layerSel.value);
    refreshAll();
  });
  chipEls.forEach((b, h) => {
    b.addEventListener("click", () => {
      if (heads.includes(h)) {
        if (heads.length > 1) heads = heads.filter((x) => x !== h);
      } else heads = [...heads, h].sort((a, b) => a - b);
      refreshAll();
    });
    b.addEventListener("dblclick", () => {
      heads = [h];
      refreshAll();
    });
  });
  combineSel.addEventListener("change", () => {
    combine = combineSel.value as Combine;
    refreshAll();
  });
  modeBtn.addEventListener("click", () => {
    mode = mode === "query" ? "received" : "query";
    refreshSelection();
  });
  thrIn.addEventListener("input", () => {
    threshold = Math.max(0, Number(thrIn.value) || 0);
    paintGrid();
    refreshSelection();
  });
  topIn.addEventListener("input", () => {
    topN = Math.max(0, Math.floor(Number(topIn.value) || 0));
    paintGrid();
    refreshSelection();
  });
  sinkIn.addEventListener("change", () => {
    sinkOut = sinkIn.checked;
    paintGrid();
    refreshSelection();
  });
  resetBtn.addEventListener("click", () => {
    zoom = { r0: 0, r1: tq, c0: 0, c1: tk };
    refreshAll();
  });
  pngBtn.addEventListener("click", () => {
    const a = el("a", {
      download: `attention-layer${meta.layers[layer].layer}.png`,
      href: canvas.toDataURL("image/png"),
    });
    a.click();
  });
  thumbs.addEventListener("click", (ev) => {
    const t = ev.target as HTMLElement;
    if (!t.classList.contains("ax-thumb")) return;
    layer = meta.layers.findIndex((l) => String(l.layer) === t.dataset.layer);
    layerSel.value = String(layer);
    heads = [Number(t.dataset.head)];
    refreshAll();
  });

  // Matrix: hover shows the cell, drag zooms to a rectangle, wheel zooms
  // around the pointer, a click without drag pins the query row.
  let drag: { x: number; y: number; cell: { r: number; c: number } } | null =
    null;
  canvas.addEventListener("mousemove", (ev) => {
    showTip(ev);
    if (drag) {
      const rect = wrap.getBoundingClientRect();
      band.hidden = false;
      const x0 = Math.min(drag.x, ev.clientX) - rect.left;
      const y0 = Math.min(drag.y, ev.clientY) - rect.top;
      band.style.left = `${x0}px`;
      band.style.top = `${y0}px`;
      band.style.width = `${Math.abs(ev.clientX - drag.x)}px`;
      band.style.height = `${Math.abs(ev.clientY - drag.y)}px`;
    }
  });
  canvas.addEventListener("mouseleave", () => {
    tip.hidden = true;
  });
  canvas.addEventListener("mousedown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, cell: cellAt(ev) };
    ev.preventDefault();
  });
  canvas.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    band.hidden = true;
    const moved = Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y);
    const a = drag.cell, b = cellAt(ev);
    drag = null;
    if (moved < 5) {
      pins = [meta.queryPositions[b.r]];
      refreshSelection();
      return;
    }
    zoom = {
      r0: Math.min(a.r, b.r),
      r1: Math.max(a.r, b.r) + 1,
      c0: Math.min(a.c, b.c),
      c1: Math.max(a.c, b.c) + 1,
    };
    refreshAll();
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const { r, c } = cellAt(ev);
    const f = ev.deltaY < 0 ? 0.5 : 2;
    const span = (lo: number, hi: number, at: number, n: number) => {
      const w = Math.max(1, Math.min(n, Math.round((hi - lo) * f)));
      const start = Math.max(
        0,
        Math.min(n - w, Math.round(at - ((at - lo) * w) / (hi - lo))),
      );
      return [start, start + w];
    };
    const [r0, r1] = span(zoom.r0, zoom.r1, r, tq);
    const [c0, c1] = span(zoom.c0, zoom.c1, c, tk);
    zoom = { r0, r1, c0, c1 };
    refreshAll();
  }, { passive: false });

  tip.hidden = true;
  band.hidden = true;
  const tBuilt = performance.now();
  refreshAll();
  root.dataset.ready = String(performance.now());
  // Where first paint went (ms): decode, DOM build, first draw.
  root.dataset.timings = [
    tDecoded - t0,
    tBuilt - tDecoded,
    performance.now() - tBuilt,
  ]
    .map((v) => v.toFixed(0)).join(",");
  buildThumbs();
}
