/// <reference lib="dom" />
/**
 * The layer x head thumbnails (bertviz's model view): each head's overview,
 * masked cells as the matrix masks them, drawn a few at a time after the
 * first paint; a click opens that layer and head.
 *
 * @module
 */

import {
  binMap,
  lutColorizer,
  poolRowMax,
  quantile,
} from "../../charts/_scale.ts";
import { Compared } from "./compare.ts";
import type { ViewContext } from "./context.ts";
import { el } from "./dom.ts";

const THUMB = 44;

/** The thumbnails of one explorer. */
export interface Thumbs {
  /** The thumbnails' box. */
  el: HTMLElement;
  /** Builds the grid and draws it in idle slices. */
  start(): void;
  /** Marks the open layer's selected heads. */
  sync(): void;
}

/** The thumbnail grid; clicking one updates the state. */
export function createThumbs(ctx: ViewContext): Thumbs {
  const { meta, store, nHeads } = ctx;
  const box = el("div", { class: "ax-thumbs" });
  const thumbEls: HTMLCanvasElement[][] = [];

  function draw(li: number, h: number): void {
    // Compare mode: the thumbnails are capture a's (the overview to pick from).
    const cap = ctx.cap instanceof Compared ? ctx.cap.a : ctx.cap;
    const g = cap.pooledGrid(li, [h], "mean");
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
    const colors = lutColorizer(ctx.lut.matrix, 0, q || 1);
    const g2 = thumbEls[li][h].getContext("2d")!;
    const img = g2.createImageData(m, n);
    const px = img.data as unknown as Uint8Array;
    for (let i = 0; i < n * m; i++) {
      if (Number.isNaN(small[i])) px.set([...ctx.masked, 255], i * 4);
      else colors.put(small[i], px, i * 4);
    }
    const tmp = document.createElement("canvas");
    tmp.width = m;
    tmp.height = n;
    tmp.getContext("2d")!.putImageData(img, 0, 0);
    g2.imageSmoothingEnabled = false;
    g2.drawImage(tmp, 0, 0, THUMB, THUMB);
    // Said on the element, so a reader (a test, a screenshot) can wait for it.
    thumbEls[li][h].dataset.drawn = "1";
  }

  function start(): void {
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
    box.append(
      el("div", { class: "ax-sub" }, "layers × heads (click one to open it)"),
      table,
    );
    sync();
    let li = 0, h = 0;
    const step = () => {
      const t0 = performance.now();
      while (li < meta.layers.length && performance.now() - t0 < 12) {
        draw(li, h);
        if (++h === nHeads) {
          h = 0;
          li++;
        }
      }
      if (li < meta.layers.length) setTimeout(step, 0);
    };
    setTimeout(step, 0);
  }

  function sync(): void {
    const { layer, heads } = store.get();
    thumbEls.forEach((row, li) =>
      row.forEach((t, h) =>
        t.classList.toggle("ax-on", li === layer && heads.includes(h))
      )
    );
  }

  box.addEventListener("click", (ev) => {
    const t = ev.target as HTMLElement;
    if (!t.classList.contains("ax-thumb")) return;
    store.update({
      layer: meta.layers.findIndex((l) => String(l.layer) === t.dataset.layer),
      heads: [Number(t.dataset.head)],
    }, "data");
  });
  return { el: box, start, sync };
}
