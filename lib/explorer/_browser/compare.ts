/// <reference lib="dom" />
/**
 * Compare mode: two captures of the same tokens behind the one interface the
 * view reads (`row`, `column`, `cell`, `pooledGrid`, `allFull`, `rowOf`).
 * It shows capture a, capture b, or the signed difference a - b of what each
 * alone would show; the view picks the diverging colours when `signed`.
 * The overview of a - b pools by the value of largest magnitude, sign kept.
 *
 * @module
 */

import type { ExplorerMeta } from "../_protocol.ts";
import { binMap } from "../../charts/_scale.ts";
import { Capture, type Combine } from "./data.ts";

/** What the view reads from its data: one capture, or a comparison. */
export type CaptureView = Pick<
  Capture,
  "rowOf" | "row" | "column" | "cell" | "pooledGrid" | "allFull"
>;

/** Which side of a comparison is shown. */
export type Side = "a" | "b" | "diff";

/** Two captures over the same tokens; `side` picks what the view sees. */
export class Compared implements CaptureView {
  readonly a: Capture;
  readonly b: Capture;
  side: Side = "diff";
  readonly rowOf: Int32Array;
  #scratch: Float64Array;
  #pooled = new Map<string, Float32Array>();

  constructor(a: Capture, b: Capture) {
    this.a = a;
    this.b = b;
    this.rowOf = a.rowOf;
    this.#scratch = new Float64Array(Math.max(a.meta.tq, a.meta.tk));
  }

  /** Whether values are signed differences (diverging colours). */
  get signed(): boolean {
    return this.side === "diff";
  }

  allFull(layer: number, heads: readonly number[]): boolean {
    return this.a.allFull(layer, heads) && this.b.allFull(layer, heads);
  }

  cell(layer: number, h: number, r: number, c: number): number | null {
    if (this.side === "a") return this.a.cell(layer, h, r, c);
    if (this.side === "b") return this.b.cell(layer, h, r, c);
    const x = this.a.cell(layer, h, r, c), y = this.b.cell(layer, h, r, c);
    return x === null || y === null ? null : x - y;
  }

  row(
    layer: number,
    heads: readonly number[],
    combine: Combine,
    r: number,
    out: Float64Array,
    c0 = 0,
    c1 = this.a.meta.tk,
  ): Float64Array {
    if (this.side === "a") {
      return this.a.row(layer, heads, combine, r, out, c0, c1);
    }
    if (this.side === "b") {
      return this.b.row(layer, heads, combine, r, out, c0, c1);
    }
    this.a.row(layer, heads, combine, r, out, c0, c1);
    const other = this.b.row(
      layer,
      heads,
      combine,
      r,
      this.#scratch.subarray(0, c1 - c0),
      c0,
      c1,
    );
    for (let i = 0; i < out.length; i++) out[i] -= other[i];
    return out;
  }

  column(
    layer: number,
    heads: readonly number[],
    combine: Combine,
    c: number,
    out: Float64Array,
  ): Float64Array {
    if (this.side === "a") return this.a.column(layer, heads, combine, c, out);
    if (this.side === "b") return this.b.column(layer, heads, combine, c, out);
    this.a.column(layer, heads, combine, c, out);
    const other = this.b.column(
      layer,
      heads,
      combine,
      c,
      this.#scratch.subarray(0, out.length),
    );
    for (let i = 0; i < out.length; i++) out[i] -= other[i];
    return out;
  }

  pooledGrid(
    layer: number,
    heads: readonly number[],
    combine: Combine,
  ): Float32Array {
    if (this.side === "a") return this.a.pooledGrid(layer, heads, combine);
    if (this.side === "b") return this.b.pooledGrid(layer, heads, combine);
    if (this.a.allFull(layer, heads) && this.b.allFull(layer, heads)) {
      return this.#pooledDiff(layer, heads, combine);
    }
    // Reduced heads hold only their max-pooled overviews: the difference
    // of those is all there is.
    const x = this.a.pooledGrid(layer, heads, combine);
    const y = this.b.pooledGrid(layer, heads, combine);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] - y[i];
    return out;
  }

  /**
   * The difference a - b of the combined heads, cell by cell, pooled to the
   * overview by the value of largest magnitude with its sign (a max would
   * hide where b reads more than a); masked bins are `NaN`. Cached.
   */
  #pooledDiff(
    layer: number,
    heads: readonly number[],
    combine: Combine,
  ): Float32Array {
    const key = `${layer}/${heads.join(",")}/${combine}`;
    const done = this.#pooled.get(key);
    if (done) return done;
    const { tq, tk, pooled: { rows, cols } } = this.a.meta;
    const out = new Float32Array(rows * cols).fill(NaN);
    const colBin = binMap(tk, cols);
    const x = new Float64Array(tk), y = new Float64Array(tk);
    for (let r = 0; r < tq; r++) {
      this.a.row(layer, heads, combine, r, x);
      this.b.row(layer, heads, combine, r, y);
      for (let c = 0; c < tk; c++) x[c] -= y[c];
      poolSignedMax(x, out, Math.floor((r * rows) / tq) * cols, colBin);
    }
    for (let br = 0; br < rows; br++) {
      for (let bc = 0; bc < cols; bc++) {
        if (this.a.binMasked(layer, br, bc)) out[br * cols + bc] = NaN;
      }
    }
    this.#pooled.set(key, out);
    return out;
  }
}

/**
 * Pools one row of signed values into a grid row by the value of largest
 * magnitude, keeping its sign: item `j` goes to `out[outBase + colBin[j]]`
 * (`NaN` cells are empty).
 *
 * @param row Signed values, one per column.
 * @param out The grid, `NaN`-filled before the first row.
 * @param outBase Index in `out` of the grid row.
 * @param colBin The bin of each column.
 *
 * @example
 * ```ts
 * import { poolSignedMax } from "./compare.ts";
 * import assert from "node:assert/strict";
 *
 * const out = new Float32Array(2).fill(NaN);
 * poolSignedMax([0.25, -0.5, 0.125, 0], out, 0, Int32Array.of(0, 0, 1, 1));
 * assert.deepEqual([...out], [-0.5, 0.125]);
 * ```
 */
export function poolSignedMax(
  row: ArrayLike<number>,
  out: Float32Array,
  outBase: number,
  colBin: Int32Array,
): void {
  for (let j = 0; j < row.length; j++) {
    const v = row[j];
    if (Number.isNaN(v)) continue;
    const at = outBase + colBin[j];
    const cur = out[at];
    if (Number.isNaN(cur) || Math.abs(v) > Math.abs(cur)) out[at] = v;
  }
}

/**
 * The comparison an explorer root carries (a `.ax-blob-b` element and
 * `meta.compare`), else the capture alone.
 *
 * @param root The explorer's root element.
 * @param meta Its header.
 * @param a Capture a, already loaded.
 * @returns What the view reads.
 */
export async function loadCompared(
  root: HTMLElement,
  meta: ExplorerMeta,
  a: Capture,
): Promise<Capture | Compared> {
  const spec = meta.compare;
  const blob = root.querySelector(".ax-blob-b")?.textContent;
  if (!spec || blob == null) return a;
  const b = await Capture.load({ ...meta, ...spec.packing }, blob);
  return new Compared(a, b);
}

/**
 * The a | b | a − b toggle; calls `changed` after switching.
 *
 * @param compared The comparison.
 * @param names What a and b are called.
 * @param changed Called after a switch.
 * @returns The control.
 */
export function sideToggle(
  compared: Compared,
  names: { a: string; b: string },
  changed: () => void,
): HTMLElement {
  const box = document.createElement("span");
  box.className = "ax-sides";
  box.setAttribute("role", "group");
  box.title = "compare: show a, b, or the difference a - b";
  const buttons: HTMLButtonElement[] = [];
  const sync = () =>
    buttons.forEach((b) => {
      const on = b.dataset.side === compared.side;
      b.setAttribute("aria-pressed", String(on));
      // Inline, so the pressed side shows whatever the theme's buttons are.
      b.style.fontWeight = on ? "700" : "";
      b.style.boxShadow = on ? "inset 0 -3px 0 currentColor" : "";
    });
  for (
    const [side, label] of [
      ["a", names.a],
      ["b", names.b],
      ["diff", `${names.a} − ${names.b}`],
    ] as const
  ) {
    const b = document.createElement("button");
    b.className = "ax-side";
    b.dataset.side = side;
    b.textContent = label;
    b.addEventListener("click", () => {
      compared.side = side;
      sync();
      changed();
    });
    buttons.push(b);
    box.append(b);
  }
  sync();
  return box;
}

/**
 * The half-width of a diverging colour scale for signed values: the
 * q-quantile of their magnitudes (NaN cells are masked), else their
 * largest magnitude, else 1.
 *
 * @param values Signed values.
 * @param q The quantile that saturates.
 * @returns A positive half-width.
 */
export function spread(values: ArrayLike<number>, q = 1): number {
  const mags: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isNaN(v)) mags.push(Math.abs(v));
  }
  if (!mags.length) return 1;
  mags.sort((x, y) => x - y);
  const at = mags[Math.min(mags.length - 1, Math.floor(q * (mags.length - 1)))];
  return at > 0 ? at : (mags[mags.length - 1] || 1);
}
