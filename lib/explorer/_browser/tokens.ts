/// <reference lib="dom" />
/**
 * The token text: one strip (self attention) or two (cross-attention:
 * queries, then keys), shaded by the selection's attention. Hover, click and
 * shift-click change the selection in the state; `refresh` repaints only
 * tokens whose shading changed.
 *
 * @module
 */

import { lutColorizer } from "../../charts/_scale.ts";
import { spread } from "./compare.ts";
import type { ViewContext } from "./context.ts";
import { el, fmt } from "./dom.ts";
import type { Strip } from "./geometry.ts";

interface Shown {
  weight: string;
  bg: string;
  fg: string;
  flags: number;
}

/** One strip's elements and what each shows now. */
class StripView {
  readonly el: HTMLElement;
  readonly tokens: HTMLElement[] = [];
  readonly weights: Float64Array;
  #shown: (Shown | null)[];

  constructor(strip: Strip, className: string) {
    this.el = el("div", { class: className });
    const { labels, types } = strip;
    this.weights = new Float64Array(labels.length);
    this.#shown = new Array(labels.length).fill(null);
    // Text with newlines kept; image tokens as one block of squares.
    let block: HTMLElement | null = null;
    for (let p = 0; p < labels.length; p++) {
      const type = types[p] ?? "u";
      const span = el("span", {
        class: `ax-tok ax-t-${type}`,
        "data-index": String(p),
      });
      if (type === "v") {
        span.textContent = "\u00a0";
        span.title = `${p} · image token`;
        if (!block) {
          block = el("span", { class: "ax-image", title: "image" });
          this.el.append(block);
        }
        block.append(span);
      } else {
        block = null;
        span.textContent = labels[p];
        this.el.append(span);
        // A token that is a newline ("\n", or "↵" as tokenizers print it)
        // breaks the line, so the prompt keeps its shape.
        if (/\n$|↵$/.test(labels[p]) && !labels[p].endsWith("\n")) {
          this.el.append("\n");
        }
      }
      this.tokens.push(span);
    }
  }

  /**
   * Writes shading (of `this.weights` when `shaded`, else none) and the
   * selection flags, touching only tokens that changed: at 4,096 tokens a
   * hover changes a few dozen, and DOM writes are what costs.
   */
  paint(
    shaded: boolean,
    colors: { put(v: number, px: Uint8Array, at: number): void },
    top: number,
    sel: Set<number>,
    pinned: Set<number>,
  ): void {
    const rgb = new Uint8Array(4);
    for (let p = 0; p < this.tokens.length; p++) {
      const w = shaded ? this.weights[p] : NaN;
      let weight = "", bg = "", fg = "";
      if (!Number.isNaN(w)) weight = fmt(w);
      // Below 2% of the scale a token keeps the page's own background (a
      // near-white shade would be a glaring slab on a dark theme).
      if (!Number.isNaN(w) && Math.abs(w) >= 0.02 * top) {
        colors.put(w, rgb, 0);
        bg = `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`;
        // Dark shades need light text to stay readable (as the static view).
        const lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
        fg = lum < 120 ? "white" : "#111";
      }
      const flags = (sel.has(p) ? 1 : 0) | (pinned.has(p) ? 2 : 0);
      const last = this.#shown[p];
      if (
        last && last.weight === weight && last.bg === bg && last.fg === fg &&
        last.flags === flags
      ) continue;
      const e = this.tokens[p];
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
      this.#shown[p] = { weight, bg, fg, flags };
    }
  }
}

/** The token strip(s) of one explorer. */
export interface TokenText {
  /** The strip(s). */
  el: HTMLElement;
  /** Reshades for the current state. */
  refresh(): void;
}

/** Builds the strips under one element and binds their events. */
export function createTokens(ctx: ViewContext): TokenText {
  const { geometry, store } = ctx;
  const queries = new StripView(
    geometry.queries,
    geometry.cross ? "ax-text ax-queries" : "ax-text",
  );
  const keys = geometry.cross
    ? new StripView(geometry.keys, "ax-text ax-keys")
    : queries;
  let box: HTMLElement = queries.el;
  if (geometry.cross) {
    box = el("div", { class: "ax-strips" });
    box.append(
      el("div", { class: "ax-sub" }, "queries"),
      queries.el,
      el("div", { class: "ax-sub" }, "keys"),
      keys.el,
    );
  }
  const scratch = new Float64Array(Math.max(ctx.meta.tq, ctx.meta.tk));

  /** The strip the current mode shades, with its weights computed. */
  function computeWeights(): StripView {
    const { cap, meta } = ctx;
    const { layer, heads, combine, mode, threshold, topN } = store.get();
    const { tq, tk } = meta;
    const target = mode === "query" ? keys : queries;
    const weights = target.weights;
    weights.fill(NaN);
    const sel = store.selection();
    if (mode === "query") {
      const sum = new Float64Array(tk);
      let any = false;
      for (const p of sel) {
        const r = geometry.rowOf(p);
        if (r < 0) continue;
        any = true;
        const row = cap.row(layer, heads, combine, r, scratch.subarray(0, tk));
        for (let c = 0; c < tk; c++) sum[c] += row[c];
      }
      if (!any) return target;
      for (let c = 0; c < tk; c++) {
        const p = geometry.colToken(c);
        if (p < weights.length) weights[p] = sum[c];
      }
    } else {
      const sum = new Float64Array(tq);
      let any = false;
      for (const p of sel) {
        const c = geometry.colOf(p);
        if (c < 0) continue;
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
      if (!any) return target;
      for (let r = 0; r < tq; r++) {
        const p = geometry.rowToken(r);
        if (p < weights.length) weights[p] = sum[r];
      }
    }
    // A sliding window: a (query, key) pair outside every selected pair's
    // window is masked (no data-weight, no shade), not zero attention.
    // (Self attention only: strip indices are positions.)
    const win = ctx.arch(layer).window;
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
    return target;
  }

  function refresh(): void {
    const target = computeWeights();
    const weights = target.weights;
    const { sinkOut, pins, mode } = store.get();
    let top = 0, all = 0;
    for (let p = 0; p < weights.length; p++) {
      const w = weights[p];
      if (Number.isNaN(w)) continue;
      all = Math.max(all, w);
      if (!(sinkOut && p === 0)) top = Math.max(top, w);
    }
    const signed = ctx.signed();
    const tokenTop = signed ? spread(weights) : top > 0 ? top : (all || 1);
    const colors = signed
      ? lutColorizer(ctx.lut.diff!, -tokenTop, tokenTop)
      : lutColorizer(
        ctx.root.dataset.theme === "dark" ? ctx.lut.tokensDark : ctx.lut.tokens,
        0,
        tokenTop,
      );
    const sel = new Set(store.selection());
    const pinned = new Set(pins);
    const none = new Set<number>();
    // The selection lives in the strip of the mode (queries for a row).
    const selected = mode === "query" ? queries : keys;
    for (const strip of new Set([queries, keys])) {
      const mine = strip === selected;
      strip.paint(
        strip === target,
        colors,
        tokenTop,
        mine ? sel : none,
        mine ? pinned : none,
      );
    }
  }

  // Events: hover shades, click pins, shift-click adds. With two strips,
  // a query token shades the keys by its row and a key token the queries
  // by its column.
  for (const strip of new Set([queries, keys])) {
    const stripMode = strip === queries ? "query" : "received";
    const tokenOf = (ev: Event) => {
      const t = (ev.target as HTMLElement).closest?.(".ax-tok") as
        | HTMLElement
        | null;
      return t ? Number(t.dataset.index) : null;
    };
    strip.el.addEventListener("mouseover", (ev) => {
      const p = tokenOf(ev);
      if (p === null || store.get().pins.length) return;
      store.update(
        geometry.cross ? { hover: p, mode: stripMode } : { hover: p },
        "selection",
      );
    });
    strip.el.addEventListener("mouseleave", () => {
      const { hover, pins } = store.get();
      if (hover === null) return;
      if (pins.length) store.update({ hover: null }, "none");
      else store.update({ hover: null }, "selection");
    });
    strip.el.addEventListener("click", (ev) => {
      const p = tokenOf(ev);
      if (p === null) return;
      const s = store.get();
      // Pins from the other strip do not mix with this one's.
      const prior = geometry.cross && s.mode !== stripMode ? [] : s.pins;
      let pins: number[];
      if (ev.shiftKey) {
        pins = prior.includes(p) ? prior.filter((x) => x !== p) : [...prior, p];
      } else pins = prior.length === 1 && prior[0] === p ? [] : [p];
      store.update({
        pins,
        ...(pins.length ? {} : { hover: p }),
        ...(geometry.cross ? { mode: stripMode } : {}),
      }, "selection");
    });
  }
  return { el: box, refresh };
}
