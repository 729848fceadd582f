/// <reference lib="dom" />
/**
 * The matrix: a canvas of the selected layer and heads (max-pooled to at
 * most `SIDE` cells a side, the embedded overview for reduced heads), with
 * token axes, a colour legend, the causal diagonal and a sliding window's
 * edge, the selection's rows or columns, a hover tooltip, and zoom (drag a
 * rectangle, wheel) and pin (click) written to the state.
 *
 * @module
 */

import {
  binMap,
  lutColorizer,
  poolRowMax,
  quantile,
} from "../../charts/_scale.ts";
import { spread } from "./compare.ts";
import type { ViewContext } from "./context.ts";
import { el, fmt, MARK } from "./dom.ts";
import { createAxes, createLegend } from "./matrix_axes.ts";

/** Canvas side in CSS pixels; the matrix is drawn at most this many cells a side. */
export const SIDE = 520;

/** The matrix part of one explorer. */
export interface MatrixView {
  /** The canvas with its axes, band and tooltip. */
  el: HTMLElement;
  /** The colour legend. */
  legend: HTMLElement;
  /** The canvas (PNG export reads it). */
  canvas: HTMLCanvasElement;
  /** Recomputes the cells (layer, heads, combine, zoom, side changed). */
  rebuild(): void;
  /** Recolours them (filters changed). */
  repaint(): void;
  /** Redraws the canvas and overlays (selection changed). */
  redraw(): void;
  /** When pooled: the grid's rows x cols, else null. */
  pooled(): string | null;
}

/** Builds the matrix and binds its events. */
export function createMatrix(ctx: ViewContext): MatrixView {
  const { meta, cap, store, geometry } = ctx;
  const { tq, tk } = meta;
  const canvas = el("canvas", { class: "ax-matrix" });
  const tip = el("div", { class: "ax-tip" });
  const wrap = el("div", { class: "ax-canvas-wrap" });
  const band = el("div", { class: "ax-band" });
  wrap.append(canvas, band, tip);
  const axes = createAxes(wrap);
  const ramp = createLegend();
  tip.hidden = true;
  band.hidden = true;

  const image = document.createElement("canvas");
  let grid: Float32Array = new Float32Array(0);
  let gridRows = 1, gridCols = 1;
  let pooledView = false;

  /** Key column `c`'s offset from its row's query position (for masks). */
  const keyPos = (c: number) => geometry.cross ? c : meta.keyOffset + c;

  function rebuild(): void {
    const { layer, heads, combine, zoom } = store.get();
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
    const { window, causal } = ctx.arch(layer);
    for (let r = r0; r < r1; r++) {
      cap.row(layer, heads, combine, r, row, c0, c1);
      const q = geometry.queryPos(r);
      if (window > 0) {
        // Keys outside the sliding window are masked, not zero attention.
        const first = q - window + 1 - keyPos(c0);
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
        causal ? q + 1 - keyPos(c0) : Infinity,
      );
    }
  }

  function repaint(): void {
    const { sinkOut, zoom, topN, threshold } = store.get();
    const signed = ctx.signed();
    const shown = grid.slice();
    const sinkCol = sinkOut && keyPos(0) === 0 && zoom.c0 === 0 &&
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
    const [lo, hi] = signed
      ? [-spread(shown, 0.995), spread(shown, 0.995)]
      : [0, q > 0 ? q : (max || 1)];
    const colors = lutColorizer(
      signed ? ctx.lut.diff! : ctx.lut.matrix,
      lo,
      hi,
    );
    ramp.update(colors, lo, hi, max);
    image.width = gridCols;
    image.height = gridRows;
    const g = image.getContext("2d")!;
    const data = g.createImageData(gridCols, gridRows);
    const px = data.data as unknown as Uint8Array;
    for (let i = 0; i < grid.length; i++) {
      const v = grid[i];
      let w = v;
      if (topN > 0 || threshold > 0) w = v >= threshold ? v : 0;
      if (Number.isNaN(v)) {
        px.set([...ctx.masked, 255], i * 4);
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
    g.putImageData(data, 0, 0);
  }

  function redraw(): void {
    const { zoom, layer, mode } = store.get();
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
    const g = canvas.getContext("2d")!;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(image, 0, 0, SIDE, h);
    const x = (c: number) => ((c - c0) / (c1 - c0)) * SIDE;
    const y = (r: number) => ((r - r0) / (r1 - r0)) * h;
    // The causal diagonal (key position = query position), and a sliding
    // window's far edge, dashed.
    const { window, causal } = ctx.arch(layer);
    const edge = (shift: number) => {
      g.beginPath();
      const step = Math.max(1, Math.floor((r1 - r0) / 64));
      for (let r = r0; r <= r1; r += step) {
        const rr = Math.min(r, tq - 1);
        const c = geometry.queryPos(rr) + 1 - keyPos(0) - shift;
        if (r === r0) g.moveTo(x(c), y(r));
        else g.lineTo(x(c), y(r));
      }
      g.stroke();
    };
    g.strokeStyle = "rgba(127,127,127,0.6)";
    g.lineWidth = 1;
    if (causal) edge(0);
    if (window > 0) {
      g.setLineDash([4, 3]);
      g.strokeStyle = MARK;
      edge(window);
      g.setLineDash([]);
    }
    // Selected tokens: their rows (query) or columns (received).
    g.strokeStyle = MARK;
    g.lineWidth = 1.5;
    for (const p of store.selection()) {
      if (mode === "query") {
        const r = geometry.rowOf(p);
        if (r >= r0 && r < r1) {
          g.strokeRect(0.5, y(r), SIDE - 1, Math.max(1, y(r + 1) - y(r)));
        }
      } else {
        const c = geometry.colOf(p);
        if (c >= c0 && c < c1) {
          g.strokeRect(x(c), 0.5, Math.max(1, x(c + 1) - x(c)), h - 1);
        }
      }
    }
    axes.update(
      { r0, r1, c0, c1, width: SIDE, height: h },
      geometry.rowToken,
      geometry.colToken,
      axisLabel(geometry.queries.labels),
      axisLabel(geometry.keys.labels),
    );
  }

  /** A token for an axis: its text when a cell has room, else its index. */
  const axisLabel = (labels: readonly string[]) => (p: number, room: number) =>
    (meta.hasLabels || geometry.cross) && room >= 11
      ? JSON.stringify(labels[p] ?? "").slice(1, -1).slice(0, 10)
      : String(p);

  function cellAt(ev: MouseEvent): { r: number; c: number } {
    const { zoom } = store.get();
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
    const { layer, heads, combine } = store.get();
    const { r, c } = cellAt(ev);
    const qTok = geometry.rowToken(r), kTok = geometry.colToken(c);
    const qPos = geometry.queryPos(r), kPos = keyPos(c);
    let value: number | null = 0;
    let missing = false;
    for (const h of heads) {
      const v = cap.cell(layer, h, r, c);
      if (v === null) missing = true;
      const x = v ?? 0;
      value = combine === "mean" ? value + x : Math.max(value, x);
    }
    if (combine === "mean") value /= heads.length;
    const name = (labels: readonly string[]) => (p: number) =>
      meta.hasLabels || geometry.cross
        ? `${JSON.stringify(labels[p] ?? "").slice(1, -1)} ${p}`
        : String(p);
    const { window: win, causal: isCausal } = ctx.arch(layer);
    const future = isCausal && kPos > qPos;
    const outside = win > 0 && kPos <= qPos - win;
    tip.textContent = `q ${name(geometry.queries.labels)(qTok)} → k ${
      name(geometry.keys.labels)(kTok)
    }: ${
      future
        ? "masked (future)"
        : outside
        ? `masked (outside the ${win}-key window)`
        : fmt(value)
    }${missing ? " (below the top-k kept for a reduced head: ≤ shown)" : ""}`;
    tip.dataset.query = String(qTok);
    tip.dataset.key = String(kTok);
    tip.dataset.value = fmt(value);
    tip.hidden = false;
    const rect = wrap.getBoundingClientRect();
    tip.style.left = `${Math.min(ev.clientX - rect.left + 12, SIDE - 160)}px`;
    tip.style.top = `${ev.clientY - rect.top + 12}px`;
  }

  // Hover shows the cell, drag zooms to a rectangle, wheel zooms around
  // the pointer, a click without drag pins the query row.
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
      store.update(
        {
          pins: [geometry.rowToken(b.r)],
          ...(geometry.cross ? { mode: "query" as const } : {}),
        },
        "selection",
      );
      return;
    }
    store.update({
      zoom: {
        r0: Math.min(a.r, b.r),
        r1: Math.max(a.r, b.r) + 1,
        c0: Math.min(a.c, b.c),
        c1: Math.max(a.c, b.c) + 1,
      },
    }, "data");
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const { zoom } = store.get();
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
    store.update({ zoom: { r0, r1, c0, c1 } }, "data");
  }, { passive: false });

  return {
    el: wrap,
    legend: ramp.el,
    canvas,
    rebuild,
    repaint,
    redraw,
    pooled: () => pooledView ? `${gridRows}×${gridCols}` : null,
  };
}
