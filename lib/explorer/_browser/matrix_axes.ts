/// <reference lib="dom" />
/**
 * What the matrix needs to be read: token axes (query rows on the left, key
 * columns below) that follow the zoom, and a colour legend that names the
 * saturation point. Pure DOM under the given wrapper; the view calls
 * `update` after every redraw.
 *
 * @module
 */

/** The part of the matrix on screen, and how tall it is drawn. */
export interface AxesView {
  r0: number;
  r1: number;
  c0: number;
  c1: number;
  /** Drawn size in CSS pixels. */
  width: number;
  height: number;
}

/** Text of a position on an axis: the token when it fits, else the number. */
export type AxisLabel = (position: number, room: number) => string;

const MAX_TICKS = 24;

function ticks(n: number): number[] {
  const step = Math.max(1, Math.ceil(n / MAX_TICKS));
  const out: number[] = [];
  for (let i = 0; i < n; i += step) out.push(i);
  return out;
}

/** Axes for rows (query positions) and columns (key positions). */
export function createAxes(wrap: HTMLElement) {
  const rows = document.createElement("div");
  rows.className = "ax-axis ax-axis-q";
  const cols = document.createElement("div");
  cols.className = "ax-axis ax-axis-k";
  wrap.append(rows, cols);
  return {
    update(
      v: AxesView,
      rowPos: (r: number) => number,
      colPos: (c: number) => number,
      label: AxisLabel,
      colLabel: AxisLabel = label,
    ): void {
      const nr = v.r1 - v.r0, nc = v.c1 - v.c0;
      const rh = v.height / nr, cw = v.width / nc;
      const rowTicks = ticks(nr), colTicks = ticks(nc);
      rows.replaceChildren(...rowTicks.map((i) => {
        const e = document.createElement("span");
        const p = rowPos(v.r0 + i);
        e.textContent = label(p, rh);
        e.title = `query ${p}`;
        e.style.top = `${(i + 0.5) * rh}px`;
        return e;
      }));
      cols.replaceChildren(...colTicks.map((i) => {
        const e = document.createElement("span");
        const p = colPos(v.c0 + i);
        e.textContent = colLabel(p, cw);
        e.title = `key ${p}`;
        e.style.left = `${(i + 0.5) * cw}px`;
        return e;
      }));
      cols.style.top = `${v.height + 2}px`;
    },
  };
}

/** Puts the colour of `v` (in [0, 1]) at `px[at..at+3]`. */
export interface Colorizer {
  put(v: number, px: Uint8Array, at: number): void;
}

/** A colour ramp from its low to its high end, with the numbers. */
export function createLegend() {
  const box = document.createElement("div");
  box.className = "ax-ramp";
  const ramp = document.createElement("canvas");
  ramp.width = 160;
  ramp.height = 1;
  const low = document.createElement("span");
  const text = document.createElement("span");
  box.append(low, ramp, text);
  const ctx = ramp.getContext("2d")!;
  return {
    el: box,
    /**
     * Redraws the ramp for `colors` over [lo, hi] and names `hi` as the
     * saturation point when larger cells (up to `max`) are clipped.
     */
    update(colors: Colorizer, lo: number, hi: number, max: number): void {
      const img = ctx.createImageData(160, 1);
      for (let i = 0; i < 160; i++) {
        colors.put(
          lo + ((hi - lo) * i) / 159,
          img.data as unknown as Uint8Array,
          i * 4,
        );
      }
      ctx.putImageData(img, 0, 0);
      box.dataset.saturation = hi.toFixed(4);
      low.textContent = `${lo === 0 ? "0" : lo.toFixed(3)} `;
      text.textContent = ` ${hi.toFixed(3)}${
        max > hi * 1.0005
          ? ` = saturation (99.5th percentile of the cells shown; the largest is ${
            max.toFixed(3)
          })`
          : " (the largest cell shown)"
      }`;
    },
  };
}
