/// <reference lib="dom" />
/**
 * The controls around the matrix: layer select, head chips grouped by KV
 * head, combine and mode, the compare toggle, filters, reset and PNG, the
 * keyboard, the status line and the root's `data-*` attributes. Inputs
 * write the state; `sync` shows it.
 *
 * @module
 */

import { Compared, sideToggle } from "./compare.ts";
import type { ViewContext } from "./context.ts";
import type { Combine } from "./data.ts";
import { el } from "./dom.ts";
import { bindKeys } from "./keys.ts";

/** The controls of one explorer. */
export interface Controls {
  /** The bar above the matrix (selectors, then filters, then the note). */
  top: HTMLElement[];
  /** The token-type legend and the status line, below. */
  bottom: HTMLElement[];
  /** Shows the state in the controls, the status and the root's data. */
  sync(pooled: string | null): void;
}

/** Builds the controls and binds their events. */
export function createControls(
  ctx: ViewContext,
  canvas: HTMLCanvasElement,
): Controls {
  const { meta, store, root, cap, nHeads, geometry } = ctx;
  const { tq, tk } = meta;
  const bar = el("div", { class: "ax-bar" });
  const layerSel = el("select", { class: "ax-layer", title: "layer" });
  meta.layers.forEach((l, i) =>
    layerSel.append(el("option", { value: String(i) }, `layer ${l.layer}`))
  );
  layerSel.value = String(store.get().layer);
  const chips = el("span", { class: "ax-chips" });
  // Grouped-query attention: query heads that share a KV head sit together.
  const kvHeads = ctx.arch(store.get().layer).kvHeads;
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
      store.update({}, "data");
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
  const note = el("div", { class: "ax-note" });
  note.textContent = meta.reduced;

  const status = el("div", { class: "ax-status" });
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
      geometry.cross
        ? "· hover a query to shade the keys by its row, a key to shade the queries by its column; click to pin, shift-click to add · keys: arrows move the query, [ and ] change layer, Escape clears"
        : "· hover a token, click to pin, shift-click to add · keys: arrows move the query, [ and ] change layer, Escape clears",
    ),
  );

  // ---- events: every input writes the state
  const heads = () => store.get().heads;
  bindKeys(root, {
    moveQuery(delta) {
      const sel = store.selection();
      const at = sel[sel.length - 1];
      // (With two strips a key token has no row.)
      const keyToken = geometry.cross && store.get().mode !== "query";
      let row = keyToken ? -1 : geometry.rowOf(at);
      if (row < 0) row = delta > 0 ? -1 : tq;
      row = Math.max(0, Math.min(tq - 1, row + delta));
      store.update(
        { pins: [geometry.rowToken(row)], mode: "query" },
        "selection",
      );
    },
    stepLayer(delta) {
      const layer = store.get().layer;
      const next = Math.max(0, Math.min(meta.layers.length - 1, layer + delta));
      if (next !== layer) store.update({ layer: next }, "data");
    },
    clear() {
      store.update({ pins: [], hover: null }, "selection");
    },
  });
  layerSel.addEventListener("change", () => {
    store.update({ layer: Number(layerSel.value) }, "data");
  });
  chipEls.forEach((b, h) => {
    b.addEventListener("click", () => {
      const hs = heads();
      if (hs.includes(h)) {
        if (hs.length > 1) {
          store.update({ heads: hs.filter((x) => x !== h) }, "data");
        } else store.update({}, "data");
      } else store.update({ heads: [...hs, h].sort((a, b) => a - b) }, "data");
    });
    b.addEventListener("dblclick", () => {
      store.update({ heads: [h] }, "data");
    });
  });
  combineSel.addEventListener("change", () => {
    store.update({ combine: combineSel.value as Combine }, "data");
  });
  modeBtn.addEventListener("click", () => {
    const mode = store.get().mode === "query" ? "received" : "query";
    // With two strips the selection belongs to one of them: start afresh.
    store.update(
      geometry.cross ? { mode, pins: [], hover: null } : { mode },
      "selection",
    );
  });
  thrIn.addEventListener("input", () => {
    store.update({ threshold: Math.max(0, Number(thrIn.value) || 0) }, "paint");
  });
  topIn.addEventListener("input", () => {
    store.update(
      { topN: Math.max(0, Math.floor(Number(topIn.value) || 0)) },
      "paint",
    );
  });
  sinkIn.addEventListener("change", () => {
    store.update({ sinkOut: sinkIn.checked }, "paint");
  });
  resetBtn.addEventListener("click", () => {
    store.update({ zoom: { r0: 0, r1: tq, c0: 0, c1: tk } }, "data");
  });
  pngBtn.addEventListener("click", () => {
    const a = el("a", {
      download: `attention-layer${meta.layers[store.get().layer].layer}.png`,
      href: canvas.toDataURL("image/png"),
    });
    a.click();
  });

  function sync(pooled: string | null): void {
    const s = store.get();
    const arch = ctx.arch(s.layer);
    const sel = store.selection();
    layerSel.value = String(s.layer);
    root.dataset.layer = String(meta.layers[s.layer].layer);
    root.dataset.heads = s.heads.join(",");
    root.dataset.mode = s.mode;
    root.dataset.combine = s.combine;
    root.dataset.window = arch.window ? String(arch.window) : "";
    root.dataset.causal = arch.causal ? "1" : "0";
    root.dataset.query = String(sel[sel.length - 1]);
    root.dataset.zoom = `${s.zoom.r0},${s.zoom.r1},${s.zoom.c0},${s.zoom.c1}`;
    modeBtn.textContent = s.mode === "query"
      ? "shading: query row"
      : "shading: received (column)";
    chipEls.forEach((b, h) =>
      b.setAttribute("aria-pressed", String(s.heads.includes(h)))
    );
    const what = s.pins.length
      ? "pinned"
      : s.hover !== null
      ? "hovered"
      : "last prompt token";
    status.textContent = `layer ${meta.layers[s.layer].layer} · ${
      s.heads.length === nHeads ? "all heads" : `heads ${s.heads.join(", ")}`
    } (${s.combine}) · ${
      s.mode === "query" ? "attention from" : "attention received by"
    } ${what} ${sel.join(" + ")}${
      pooled ? " · matrix max-pooled to " + pooled : ""
    }${
      meta.compare?.align
        ? ` · compared on the aligned tokens ${meta.compare.align}`
        : ""
    }`;
  }

  return { top: [bar, filters, note], bottom: [legend, status], sync };
}
