/**
 * Charts of a sweep (`runSweep` / `loadSweep`): the Kamradt needle heatmap,
 * needle mass per layer, retrieval heads, lost in the middle, and sinks and
 * entropy against length. Each returns a {@linkcode Figure} (SVG, PNG,
 * HTML, Jupyter display), like every attnscope chart.
 *
 * @module
 */

import * as Plot from "npm:@observablehq/plot@^0.6.17";
import {
  Figure,
  plotBlock,
  plotDocument,
  rampLegend,
  swatchLegend,
} from "./_figure.ts";
import type { Sweep } from "../studies/sweep.ts";
import { retrievalScores } from "../studies/reduce.ts";
import { chartPalette, type ChartTheme } from "./_theme.ts";

/** Options every sweep chart takes. */
export interface SweepChartOptions {
  /**
   * Background, text and axis colours, as `explore(x, { theme })` takes
   * them: `"light"`, `"dark"`, or `"auto"` (light, turning dark under
   * `prefers-color-scheme: dark` where the SVG is shown inline).
   * @default {"light"}
   */
  theme?: ChartTheme;
}

const PALETTE = [
  "#4269d0",
  "#efb118",
  "#ff725c",
  "#6cc5b0",
  "#3ca951",
  "#ff8ab7",
  "#a463f2",
  "#97bbf5",
];

/** {@linkcode PALETTE} lightened to read on the dark background (7:1 and up). */
const DARK_SERIES = [
  "#8fa9ec",
  "#f5c94f",
  "#ff9a8a",
  "#8ed8c6",
  "#6fcf7e",
  "#ffb0d0",
  "#c29af7",
  "#b9d1f9",
];

/** The series colours for a theme. */
const series = (theme: ChartTheme | undefined) =>
  theme === "dark" ? DARK_SERIES : PALETTE;

/** Kamradt's red, yellow, green. */
export const NEEDLE_COLORS = ["#F0496E", "#EBB839", "#0CD79F"] as const;

const mean = (xs: number[]) =>
  xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;

function groupMean<T>(
  rows: readonly T[],
  key: (r: T) => string,
  value: (r: T) => number | null,
): Map<string, number | null> {
  const g = new Map<string, number[]>();
  for (const r of rows) {
    const k = key(r);
    const v = value(r);
    if (!g.has(k)) g.set(k, []);
    if (v !== null && Number.isFinite(v)) g.get(k)!.push(v);
  }
  return new Map([...g].map(([k, xs]) => [k, mean(xs)]));
}

/**
 * The needle heatmap: x = context length, y = depth, one cell per mean
 * score, red to yellow to green; cells whose trials all failed are grey and
 * say "missing".
 *
 * @example
 * ```ts
 * import { needleHeatmap } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * const row = (length: number, depth: number, score: number | null) =>
 *   ({ length, depth, seed: 0, score, error: score === null ? "timeout" : null });
 * const sweep = { study: "needle", trials: [row(64, 0, 1), row(64, 100, 0), row(128, 0, null)], heads: [] };
 * const svg = needleHeatmap(sweep as never).toSVG();
 * assert.match(svg, /#0cd79f|#0CD79F|rgb\(12, 215, 159\)/i);
 * assert.match(svg, /missing/);
 * ```
 */
export function needleHeatmap(
  sweep: Pick<Sweep, "study" | "trials">,
  options: { title?: string } & SweepChartOptions = {},
): Figure {
  chartPalette(options.theme);
  const lengths = [...new Set(sweep.trials.map((t) => t.length))].sort((a, b) =>
    a - b
  );
  const depths = [...new Set(sweep.trials.map((t) => t.depth))].sort((a, b) =>
    a - b
  );
  const means = groupMean(
    sweep.trials,
    (t) => `${t.length}|${t.depth}`,
    (t) => (t.error === null ? t.score : null),
  );
  const cells = lengths.flatMap((length) =>
    depths.map((depth) => ({
      length,
      depth,
      score: means.get(`${length}|${depth}`) ?? null,
    }))
  );
  const width = Math.max(320, 80 + 56 * lengths.length);
  const node = Plot.plot({
    document: plotDocument(),
    width,
    height: 60 + 32 * depths.length,
    marginLeft: 56,
    marginBottom: 40,
    x: { domain: lengths, type: "band", label: "context length (tokens)" },
    y: { domain: depths, type: "band", label: "needle depth (%)" },
    color: {
      type: "linear",
      domain: [0, 0.5, 1],
      range: [...NEEDLE_COLORS],
    },
    marks: [
      Plot.cell(cells.filter((c) => c.score === null), {
        x: "length",
        y: "depth",
        fill: "#ddd",
        inset: 1,
      }),
      Plot.cell(cells.filter((c) => c.score !== null), {
        x: "length",
        y: "depth",
        fill: "score",
        inset: 1,
        title: (c) =>
          `length ${c.length} · depth ${c.depth}%\nscore ${c.score.toFixed(2)}`,
      }),
      Plot.text(cells, {
        x: "length",
        y: "depth",
        text: (c) => (c.score === null ? "missing" : c.score.toFixed(2)),
        fill: "black",
        fontSize: 11,
      }),
    ],
  });
  const ok = sweep.trials.filter((t) => t.error === null).length;
  return new Figure({
    theme: options.theme,
    kind: "needle-heatmap",
    summary:
      `Needle heatmap: ${lengths.length} lengths x ${depths.length} depths, ${ok} of ${sweep.trials.length} trials answered`,
    title: options.title ?? `Needle in a haystack (${sweep.study})`,
    subtitle: `mean score per cell over ${
      new Set(sweep.trials.map((t) => t.seed)).size
    } seed(s); grey = every trial failed`,
    legends: [rampLegend({
      type: "linear",
      domain: [0, 0.5, 1],
      range: [...NEEDLE_COLORS],
      label: "score",
    } as Plot.ScaleOptions)],
    chart: plotBlock(node),
  });
}

/**
 * Needle mass per layer: one heatmap cell per layer (rows) and depth x
 * length (columns), the largest head's mean attention on the needle.
 *
 * @example
 * ```ts
 * import { needleMassChart } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * const h = (layer: number, head: number, needle_mass: number) => ({ length: 64, depth: 50, seed: 0, layer, head, needle_mass });
 * const svg = needleMassChart({ study: "needle", heads: [h(0, 0, 0.1), h(0, 1, 0.3), h(1, 0, 0.9)] } as never).toSVG();
 * assert.match(svg, /0\.90/);
 * ```
 */
export function needleMassChart(
  sweep: Pick<Sweep, "study" | "heads">,
  options: SweepChartOptions = {},
): Figure {
  chartPalette(options.theme);
  // Max over heads per trial and layer, then mean over seeds.
  const perTrial = new Map<string, { layer: number; col: string; v: number }>();
  for (const h of sweep.heads) {
    const k = `${h.layer}|${h.length}|${h.depth}|${h.seed}`;
    const col = `${h.length}@${h.depth}%`;
    const e = perTrial.get(k);
    if (!e || h.needle_mass > e.v) {
      perTrial.set(k, { layer: h.layer, col, v: h.needle_mass });
    }
  }
  const means = groupMean(
    [...perTrial.values()],
    (e) => `${e.layer}|${e.col}`,
    (e) => e.v,
  );
  const layers = [...new Set(sweep.heads.map((h) => h.layer))].sort((a, b) =>
    a - b
  );
  const cols = [...new Set([...perTrial.values()].map((e) => e.col))].sort(
    (a, b) => {
      const [la, da] = a.split(/[@%]/).map(Number),
        [lb, db] = b.split(/[@%]/).map(Number);
      return la - lb || da - db;
    },
  );
  const cells = [...means].map(([k, v]) => {
    const [layer, col] = k.split("|");
    return { layer: Number(layer), col, v: v ?? 0 };
  });
  const node = Plot.plot({
    document: plotDocument(),
    width: Math.max(360, 70 + 44 * cols.length),
    height: 80 + 26 * layers.length,
    marginLeft: 50,
    marginBottom: 60,
    x: { domain: cols, type: "band", label: "length @ depth", tickRotate: -40 },
    y: { domain: layers, type: "band", label: "layer" },
    color: { type: "linear", scheme: "viridis", domain: [0, 1] },
    marks: [
      Plot.cell(cells, {
        x: "col",
        y: "layer",
        fill: "v",
        inset: 0.5,
        title: (c) =>
          `layer ${c.layer} · ${c.col}\nneedle mass ${c.v.toFixed(3)}`,
      }),
      Plot.text(cells, {
        x: "col",
        y: "layer",
        text: (c) => c.v.toFixed(2),
        fill: (c) => (c.v < 0.55 ? "white" : "black"),
        fontSize: 10,
      }),
    ],
  });
  return new Figure({
    theme: options.theme,
    kind: "needle-mass",
    summary:
      `Needle mass per layer: ${layers.length} layers x ${cols.length} cells`,
    title: "Attention on the needle, per layer",
    subtitle:
      "answer rows' mass on the needle span, max over heads, mean over seeds",
    legends: [
      rampLegend(
        {
          type: "linear",
          scheme: "viridis",
          domain: [0, 1],
          label: "needle mass",
        } as Plot.ScaleOptions,
      ),
    ],
    chart: plotBlock(node),
  });
}

/**
 * Retrieval heads (Wu et al.): a layer x head heatmap of retrieval scores
 * beside the sorted score curve with the 0.1 line.
 *
 * @example
 * ```ts
 * import { retrievalHeadsChart } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * const trials = [{ length: 8, depth: 0, seed: 0, correct: true, answer_start: 1, answer_end: 3 }];
 * const heads = [0, 1].map((head) => ({ length: 8, depth: 0, seed: 0, layer: 0, head, retrieval_hits: head * 2, needle_mass: 0 }));
 * const fig = retrievalHeadsChart({ study: "needle", trials, heads } as never);
 * assert.match(fig.toString(), /1 of 2 heads above 0.1/);
 * assert.match(fig.toSVG(), /L0 h1/);
 * ```
 */
export function retrievalHeadsChart(
  sweep: Pick<Sweep, "study" | "trials" | "heads">,
  options: SweepChartOptions = {},
): Figure {
  chartPalette(options.theme);
  const ink = options.theme === "dark" ? chartPalette("dark").text : "#333";
  const scores = retrievalScores(sweep.trials, sweep.heads);
  const layers = [...new Set(sweep.heads.map((h) => h.layer))].sort((a, b) =>
    a - b
  );
  const heads = [...new Set(sweep.heads.map((h) => h.head))].sort((a, b) =>
    a - b
  );
  const hi = Math.max(0.1, ...scores.map((s) => s.score));
  const grid = Plot.plot({
    document: plotDocument(),
    width: Math.max(300, 50 + 28 * heads.length),
    height: 70 + 26 * layers.length,
    marginLeft: 40,
    x: { domain: heads, type: "band", axis: "top", label: "head" },
    y: { domain: layers, type: "band", label: "layer" },
    color: { type: "linear", scheme: "magma", domain: [0, hi] },
    marks: [
      Plot.cell(scores, {
        x: "head",
        y: "layer",
        fill: "score",
        inset: 0.5,
        title: (s) =>
          `L${s.layer} h${s.head}\nretrieval score ${s.score.toFixed(3)}`,
      }),
      Plot.text(scores.filter((s) => s.score >= 0.05), {
        x: "head",
        y: "layer",
        text: (s) => s.score.toFixed(2),
        fill: (s) => (s.score < 0.6 * hi ? "white" : "black"),
        fontSize: 10,
      }),
    ],
  });
  const ranked = scores.map((s, rank) => ({
    ...s,
    rank: rank + 1,
    name: `L${s.layer} h${s.head}`,
  }));
  const curve = Plot.plot({
    document: plotDocument(),
    width: 420,
    height: 70 + 26 * Math.max(layers.length, 4),
    marginLeft: 44,
    x: { label: "head rank", domain: [1, Math.max(2, ranked.length)] },
    y: { label: "retrieval score", domain: [0, hi], grid: true },
    marks: [
      Plot.ruleY([0.1], { stroke: "#F0496E", strokeDasharray: "4 3" }),
      Plot.line(ranked, { x: "rank", y: "score", stroke: ink }),
      Plot.dot(ranked, {
        x: "rank",
        y: "score",
        r: 2.5,
        fill: ink,
        title: (s) => `${s.name}: ${s.score.toFixed(3)}`,
      }),
      Plot.text(ranked.slice(0, 3), {
        x: "rank",
        y: "score",
        text: "name",
        dx: 8,
        textAnchor: "start",
        fontSize: 11,
      }),
    ],
  });
  const a = plotBlock(grid), b = plotBlock(curve);
  const gap = 24;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${
    a.width + gap + b.width
  }" height="${Math.max(a.height, b.height)}">${
    a.svg.replace("<svg", `<svg x="0" y="0"`)
  }${b.svg.replace("<svg", `<svg x="${a.width + gap}" y="0"`)}</svg>`;
  const above = scores.filter((s) => s.score > 0.1).length;
  const trialsOk = sweep.trials.filter((t) => t.correct).length;
  return new Figure({
    theme: options.theme,
    kind: "retrieval-heads",
    summary:
      `Retrieval heads: ${above} of ${scores.length} heads above 0.1; top ${
        ranked.slice(0, 3).map((s) => `${s.name} ${s.score.toFixed(3)}`).join(
          ", ",
        )
      }`,
    title: "Retrieval heads (Wu et al. 2024)",
    subtitle:
      `copies / answer span, mean over ${trialsOk} correct trials; ${above} of ${scores.length} heads above 0.1 (dashed)`,
    legends: [
      rampLegend(
        {
          type: "linear",
          scheme: "magma",
          domain: [0, hi],
          label: "retrieval score",
        } as Plot.ScaleOptions,
      ),
    ],
    chart: {
      svg,
      width: a.width + gap + b.width,
      height: Math.max(a.height, b.height),
    },
  });
}

/**
 * Lost in the middle: accuracy and the attention on the gold record
 * (needle mass, max over heads) against the record's position.
 *
 * @example
 * ```ts
 * import { lostInTheMiddleChart } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * const trials = [0, 50, 100].map((depth) => ({ length: 64, depth, seed: 0, correct: depth !== 50, error: null }));
 * const heads = [0, 50, 100].map((depth) => ({ length: 64, depth, seed: 0, layer: 0, head: 0, needle_mass: depth / 100 }));
 * assert.match(lostInTheMiddleChart({ study: "kv", trials, heads } as never).toSVG(), /gold record position/);
 * ```
 */
export function lostInTheMiddleChart(
  sweep: Pick<Sweep, "study" | "trials" | "heads">,
  options: SweepChartOptions = {},
): Figure {
  chartPalette(options.theme);
  const acc = groupMean(
    sweep.trials,
    (t) => `${t.length}|${t.depth}`,
    (t) => (t.error === null ? (t.correct ? 1 : 0) : null),
  );
  const best = new Map<string, number>();
  for (const h of sweep.heads) {
    const k = `${h.length}|${h.depth}|${h.seed}`;
    best.set(k, Math.max(best.get(k) ?? 0, h.needle_mass));
  }
  const gold = groupMean(
    [...best],
    ([k]) => k.split("|").slice(0, 2).join("|"),
    ([, v]) => v,
  );
  const rows = [...acc].flatMap(([k, v]) => {
    const [length, depth] = k.split("|").map(Number);
    return [
      { length: String(length), depth, measure: "accuracy", value: v },
      {
        length: String(length),
        depth,
        measure: "gold attention",
        value: gold.get(k) ?? null,
      },
    ];
  }).filter((r) => r.value !== null);
  const lengths = [...new Set(rows.map((r) => r.length))].sort((a, b) =>
    Number(a) - Number(b)
  );
  const node = Plot.plot({
    document: plotDocument(),
    width: 640,
    height: 300,
    marginRight: 20,
    x: { label: "gold record position (% of records)", domain: [0, 100] },
    y: { label: "accuracy / attention mass", domain: [0, 1], grid: true },
    color: { domain: lengths, range: series(options.theme) },
    marks: [
      Plot.line(rows.filter((r) => r.measure === "accuracy"), {
        x: "depth",
        y: "value",
        stroke: "length",
      }),
      Plot.line(rows.filter((r) => r.measure !== "accuracy"), {
        x: "depth",
        y: "value",
        stroke: "length",
        strokeDasharray: "4 3",
      }),
      Plot.dot(rows, {
        x: "depth",
        y: "value",
        stroke: "length",
        symbol: "measure",
        title: (r) =>
          `${r.measure} at ${r.depth}% (length ${r.length}): ${
            r.value.toFixed(3)
          }`,
      }),
    ],
  });
  return new Figure({
    theme: options.theme,
    kind: "lost-in-the-middle",
    summary: `Lost in the middle: ${rows.length / 2} positions x lengths`,
    title: `Lost in the middle (${sweep.study})`,
    legends: [
      swatchLegend(
        lengths.map((l, i) => ({
          label: `${l} tokens`,
          color: series(options.theme)[i % PALETTE.length],
        })),
        { label: "length" },
      ),
    ],
    subtitle:
      "solid: accuracy; dashed: attention on the gold record (max over heads); colour = length",
    chart: plotBlock(node),
  });
}

/**
 * Sinks and entropy against length, per layer: mean over heads and trials
 * of the answer rows' mass on token 0 and their normalized entropy.
 *
 * @example
 * ```ts
 * import { sinksChart } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * const heads = [64, 128].flatMap((length) => [0, 1].map((layer) => ({ length, depth: 50, seed: 0, layer, head: 0, sink_mass: layer, entropy: 0.5 })));
 * assert.match(sinksChart({ study: "sinks", heads } as never).toSVG(), /sink mass/);
 * ```
 */
export function sinksChart(
  sweep: Pick<Sweep, "study" | "heads">,
  options: SweepChartOptions = {},
): Figure {
  chartPalette(options.theme);
  const sink = groupMean(
    sweep.heads,
    (h) => `${h.layer}|${h.length}`,
    (h) => h.sink_mass,
  );
  const ent = groupMean(
    sweep.heads,
    (h) => `${h.layer}|${h.length}`,
    (h) => h.entropy,
  );
  const rows = [...sink].flatMap(([k, v]) => {
    const [layer, length] = k.split("|").map(Number);
    return [
      { layer: `layer ${layer}`, length, measure: "sink mass", value: v ?? 0 },
      {
        layer: `layer ${layer}`,
        length,
        measure: "normalized entropy",
        value: ent.get(k) ?? 0,
      },
    ];
  });
  const node = Plot.plot({
    document: plotDocument(),
    width: 720,
    height: 280,
    marginRight: 70,
    fx: { label: null },
    x: { type: "log", label: "context length (tokens)" },
    y: { domain: [0, 1], grid: true, label: null },
    ...(options.theme === "dark" ? { color: { range: DARK_SERIES } } : {}),
    marks: [
      Plot.frame({ stroke: "#ccc" }),
      Plot.line(rows, {
        fx: "measure",
        x: "length",
        y: "value",
        stroke: "layer",
      }),
      Plot.dot(rows, {
        fx: "measure",
        x: "length",
        y: "value",
        fill: "layer",
        r: 3,
        title: (r) =>
          `${r.layer} · ${r.length} tokens\n${r.measure} ${r.value.toFixed(3)}`,
      }),
      Plot.text(
        rows,
        Plot.selectLast({
          fx: "measure",
          x: "length",
          y: "value",
          z: "layer",
          text: "layer",
          dx: 6,
          textAnchor: "start",
          fontSize: 10,
          // Series colours (yellow) are too faint for text; the label sits
          // at its line's end.
          fill: "currentColor",
        }),
      ),
    ],
  });
  return new Figure({
    theme: options.theme,
    kind: "sinks",
    summary: `Sinks and entropy: ${
      new Set(rows.map((r) => r.layer)).size
    } layers x ${new Set(rows.map((r) => r.length)).size} lengths`,
    title: "Attention sinks and entropy against length",
    subtitle: "answer rows, mean over heads and trials",
    chart: plotBlock(node),
  });
}

/**
 * The causal test: accuracy per length for the baseline, with the top-k
 * retrieval heads zeroed, and with k random heads zeroed.
 *
 * @example
 * ```ts
 * import { causalChart } from "./sweep.ts";
 * import assert from "node:assert/strict";
 *
 * const s = (correct: boolean) => ({ trials: [{ length: 64, correct }] });
 * const sweep = { study: "needle", trials: s(true).trials, causal: { ran: true, reason: null, topHeads: [[1, 0]], randomHeads: [[0, 5]], top: s(false), random: s(true) } };
 * assert.match(causalChart(sweep as never).toSVG(), /top-1 retrieval heads zeroed/);
 * ```
 */
export function causalChart(
  sweep: Pick<Sweep, "study" | "trials" | "causal">,
  options: SweepChartOptions = {},
): Figure {
  chartPalette(options.theme);
  const c = sweep.causal;
  if (!c || !c.ran || !c.top || !c.random) {
    throw new TypeError(
      `Cannot draw the causal test: ${
        c ? `it was skipped (${c.reason})` : "the sweep ran none"
      }; run the sweep with causalTest: "top-retrieval" against a server that supports attn_ablate_heads`,
    );
  }
  const k = c.topHeads.length;
  const arms = [
    ["baseline", sweep.trials],
    [`top-${k} retrieval heads zeroed`, c.top.trials],
    [`${k} random heads zeroed`, c.random.trials],
  ] as const;
  const rows = arms.flatMap(([arm, trials]) =>
    [...groupMean(
      trials,
      (t) => String(t.length),
      (t) => (t.correct === null ? null : t.correct ? 1 : 0),
    )]
      .map(([length, v]) => ({ arm, length, accuracy: v ?? 0 }))
  );
  const node = Plot.plot({
    document: plotDocument(),
    width: 640,
    height: 280,
    marginBottom: 40,
    fx: { label: "context length (tokens)" },
    x: { axis: null, domain: arms.map(([a]) => a) },
    y: { domain: [0, 1], grid: true, label: "accuracy" },
    color: {
      domain: arms.map(([a]) => a),
      range: ["#0CD79F", "#F0496E", "#EBB839"],
    },
    marks: [
      Plot.barY(rows, {
        fx: "length",
        x: "arm",
        y: "accuracy",
        fill: "arm",
        title: (r) => `${r.arm}, ${r.length} tokens: ${r.accuracy.toFixed(2)}`,
      }),
      Plot.ruleY([0]),
    ],
  });
  return new Figure({
    theme: options.theme,
    kind: "causal-test",
    summary: `Causal test: top heads ${
      c.topHeads.map(([l, h]) => `L${l}h${h}`).join(", ")
    }; random ${c.randomHeads.map(([l, h]) => `L${l}h${h}`).join(", ")}`,
    title: "Masking retrieval heads",
    subtitle: `zeroed: top ${
      c.topHeads.map(([l, h]) => `L${l} h${h}`).join(", ")
    } / random ${c.randomHeads.map(([l, h]) => `L${l} h${h}`).join(", ")}`,
    legends: [
      swatchLegend(
        arms.map(([a], i) => ({
          label: a,
          color: ["#0CD79F", "#F0496E", "#EBB839"][i],
        })),
      ),
    ],
    chart: plotBlock(node),
  });
}
