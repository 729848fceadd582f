/// <reference lib="dom" />
/**
 * The static charts' `theme` option, measured in Debian's Chromium: a dark
 * heatmap, token text image, heads grid, token-type chart, head metrics,
 * span, sweep and composed Plot charts paint the dark background on a
 * white page, every text is drawn light enough for WCAG AA (contrast at
 * least 4.5:1 against what is behind it, computed from the colours
 * Chromium resolves, `currentColor` included); light charts keep dark text
 * on white; `"auto"` turns dark under `prefers-color-scheme: dark`. The PNG
 * of a dark chart is dark too. Where Chromium is missing the test is
 * skipped with the reason; under `CI=true` it fails.
 */

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { decodePng } from "../scripts/_png.ts";
import { attentionHeatmap } from "../lib/charts/heatmap.ts";
import { tokenTextImage } from "../lib/charts/token_text.ts";
import { headsGrid } from "../lib/charts/heads_grid.ts";
import { tokenTypeChart } from "../lib/charts/token_types.ts";
import { DARK_PALETTE, LIGHT_PALETTE } from "../lib/charts/_theme.ts";
import * as Plot from "npm:@observablehq/plot@^0.6.17";
import { headSummaryChart } from "../lib/charts/metrics.ts";
import { HeadSummary } from "../lib/analysis/metrics/head_summary.ts";
import { spanAttentionChart } from "../lib/charts/span.ts";
import { SpanAttention } from "../lib/analysis/span.ts";
import { retrievalHeadsChart, sinksChart } from "../lib/charts/sweep.ts";
import { figureRow, plotFigure } from "../lib/charts/compose.ts";
import { topTokensChart } from "../lib/charts/top_tokens.ts";
import { AttentionAnalyzer } from "../lib/analysis/analyzer.ts";
import { syntheticLabels, syntheticLayer } from "./charts_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} chart theme browser test: ${chromium.reason}`,
  );
}

const T = 24;
const layer = syntheticLayer({ tokens: T, heads: 2 });
const labels = syntheticLabels(T);

function charts(theme: "light" | "dark" | "auto") {
  return {
    heatmap: attentionHeatmap(layer, { labels, mark: [8], theme }),
    text: tokenTextImage(layer, labels, { mark: [8], theme, width: 420 }),
    grid: headsGrid([layer], { theme }),
    types: tokenTypeChart(layer, { theme }),
    top: topTokensChart(
      new AttentionAnalyzer(layer.scores, layer.tokenMeta).topAttendedTokens(
        T - 1,
        { avgHeads: true, topK: 5 },
      ),
      { labels, mark: [8], theme },
    ),
    metrics: headSummaryChart(
      new HeadSummary({
        layers: [0, 1],
        metrics: {
          induction: [
            new Float64Array([0.1, 0.2]),
            new Float64Array([0.05, 0.9]),
          ],
        },
      }),
      { theme },
    ),
    span: spanAttentionChart(
      new SpanAttention({
        query: 9,
        positions: [1, 2],
        text: "alpha",
        layers: [0, 1],
        numHeads: 2,
        heads: [[0, 0, 0.1], [0, 1, 0.05], [1, 0, 0.95], [1, 1, 0.2]]
          .map(([layer, head, mass]) => ({ layer, head, mass })),
      }),
      { theme },
    ),
    sinks: sinksChart({ study: "sinks", heads: sweepHeads } as never, {
      theme,
    }),
    retrieval: retrievalHeadsChart(
      { study: "needle", trials: [], heads: sweepHeads } as never,
      { theme },
    ),
    plot: figureRow([
      plotFigure({
        title: "Bars",
        subtitle: "a plot",
        theme,
        marks: [Plot.barY([1, 3, 2]), Plot.ruleY([0])],
      }),
    ], { theme }),
  };
}

const sweepHeads = [64, 128].flatMap((length) =>
  [0, 1].map((layer) => ({
    length,
    depth: 50,
    seed: 0,
    layer,
    head: 0,
    sink_mass: layer * 0.4,
    entropy: 0.5,
    needle_mass: 0.3,
    retrieval: 0.2,
  }))
);

interface Measured {
  background: string;
  worst: number;
  worstText: string;
  texts: number;
}

/**
 * Loads an SVG inline into a white page and measures, for every `<text>`,
 * the contrast of its resolved fill against the fill of the shape behind
 * it (a token's shade, else the chart's background rectangle).
 */
async function measure(page: Page, svg: string): Promise<Measured> {
  await page.setContent(
    `<!DOCTYPE html><html><body style="background:white;margin:0">${svg}</body></html>`,
  );
  return await page.evaluate(() => {
    const rgb = (css: string) => {
      const m = css.match(/rgba?\(([^)]+)\)/);
      if (!m) return null;
      return m[1].split(/[\s,/]+/).filter(Boolean).slice(0, 3).map(Number);
    };
    const lum = ([r, g, b]: number[]) => {
      const lin = (c: number) => {
        const s = c / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    };
    const ratio = (a: number[], b: number[]) => {
      const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
      return (hi + 0.05) / (lo + 0.05);
    };
    const root = document.querySelector("svg")!;
    const backRect = root.querySelector(":scope > rect")!;
    const background = getComputedStyle(backRect).fill;
    let worst = Infinity;
    let worstText = "";
    let texts = 0;
    for (const text of root.querySelectorAll("text")) {
      if (!text.textContent?.trim()) continue;
      const fill = rgb(getComputedStyle(text).fill);
      if (!fill) continue;
      // Behind a text: the topmost filled rect under its centre, as
      // Chromium hit-tests it (a cell, a token's shade, a text block's
      // background); else the chart's background.
      const box = text.getBoundingClientRect();
      const covering = document.elementsFromPoint(
        box.x + box.width / 2,
        box.y + box.height / 2,
      ).find((r) =>
        r instanceof SVGRectElement && root.contains(r) &&
        getComputedStyle(r).fill.startsWith("rgb") &&
        Number(getComputedStyle(r).fillOpacity) > 0.5
      );
      const behind = rgb(getComputedStyle(covering ?? backRect).fill)!;
      const r = ratio(fill, behind);
      if (r < worst) {
        worst = r;
        worstText = `${JSON.stringify(text.textContent)} in ${
          getComputedStyle(text).fill
        }`;
      }
      texts++;
    }
    return { background, worst, worstText, texts };
  });
}

const hexRgb = (hex: string) => {
  const n = parseInt(hex.slice(1), 16);
  return `rgb(${n >> 16 & 255}, ${n >> 8 & 255}, ${n & 255})`;
};

Deno.test({
  name:
    "attentionHeatmap() and tokenTextImage() with theme: dark paint a dark background with text at 4.5:1 or more; light stays light; auto follows prefers-color-scheme",
  ignore: !chromium.ok && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (!chromium.ok) assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
    let browser: Browser | null = null;
    try {
      browser = await puppeteer.launch({
        executablePath: chromium.path,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
      });
      const page = await browser.newPage();
      const report: string[] = [];
      for (const theme of ["dark", "light"] as const) {
        const palette = theme === "dark" ? DARK_PALETTE : LIGHT_PALETTE;
        for (const [name, figure] of Object.entries(charts(theme))) {
          const m = await measure(page, figure.toSVG());
          report.push(`${theme} ${name}: ${m.worst.toFixed(2)}:1`);
          assert.equal(m.background, hexRgb(palette.background), name);
          assert.ok(m.texts > 2, `${name}: ${m.texts} texts measured`);
          assert.ok(
            m.worst >= 4.5,
            `${theme} ${name}: the least contrast is ${
              m.worst.toFixed(2)
            }:1 (${m.worstText})`,
          );
        }
      }
      console.log(`least text contrast: ${report.join(", ")}`);

      // "auto": light by default, dark under prefers-color-scheme: dark.
      const auto = charts("auto").heatmap.toSVG();
      await page.emulateMediaFeatures([
        { name: "prefers-color-scheme", value: "light" },
      ]);
      assert.equal(
        (await measure(page, auto)).background,
        hexRgb(LIGHT_PALETTE.background),
      );
      await page.emulateMediaFeatures([
        { name: "prefers-color-scheme", value: "dark" },
      ]);
      const dark = await measure(page, auto);
      assert.equal(dark.background, hexRgb(DARK_PALETTE.background));
      console.log(`auto under dark: ${dark.worst.toFixed(2)}:1`);
      assert.ok(dark.worst >= 4.5, `auto, dark: ${dark.worst.toFixed(2)}:1`);
    } finally {
      await browser?.close();
    }
  },
});

Deno.test("attentionHeatmap() with theme: dark rasterizes to a dark PNG", async () => {
  const png = decodePng(await charts("dark").heatmap.toPNG({ scale: 1 }));
  // The top-left corner is background.
  const [r, g, b] = [png.rgba[0], png.rgba[1], png.rgba[2]];
  assert.deepEqual([r, g, b], [0x1d, 0x1f, 0x24]);
});

Deno.test("attentionHeatmap() rejects an unknown theme", () => {
  assert.throws(
    () => attentionHeatmap(layer, { theme: "sepia" as "dark" }),
    /^TypeError: Cannot draw with theme "sepia": unknown theme; use "light", "dark" or "auto"/,
  );
});
