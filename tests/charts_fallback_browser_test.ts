/// <reference lib="dom" />
/**
 * A chart's notebook display with its PNG copy (`setImageFallback`): the
 * bundle's `text/html` holds the SVG in a `hidden` box, a PNG `<img>` of
 * it and a scoped `<style>` that shows the box and hides the image. In
 * Chromium, a plain page shows exactly one chart (the SVG); with `<style>`
 * and `<svg>` removed as sanitize-html does (tags dropped, text kept), the
 * image loads and the leftover labels stay hidden. Where Chromium is
 * missing the browser test is skipped with the reason; under `CI=true` it
 * fails.
 */

import assert from "node:assert/strict";
import puppeteer, { type Browser } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { attentionHeatmap } from "../lib/charts/heatmap.ts";
import { tokenTextView } from "../lib/charts/token_text.ts";
import { setImageFallback } from "../lib/charts/_fallback.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { syntheticLabels, syntheticLayer } from "./charts_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${
      CI ? "FAIL" : "Skipping"
    } chart fallback browser test: ${chromium.reason}`,
  );
}

const T = 16;
const layer = syntheticLayer({ tokens: T, heads: 2 });
const labels = syntheticLabels(T);
const html = (figure: { [JUPYTER_DISPLAY](): Record<string, unknown> }) =>
  String(figure[JUPYTER_DISPLAY]()["text/html"]);

Deno.test("Figure[JUPYTER_DISPLAY]() carries no image copy outside the kernel until setImageFallback(true)", async () => {
  const figure = attentionHeatmap(layer, { labels, title: "A <b> & c" });
  assert.equal(html(figure), figure.toHTML());
  try {
    await setImageFallback(true);
    const out = html(figure);
    assert.match(out, /<div class="ax-fig-svg" hidden><svg xmlns=/);
    assert.match(
      out,
      /<img class="ax-fig-png" alt="Heatmap of layer[^"<>]*" width="\d+" height="\d+" src="data:image\/png;base64,iVBOR/,
    );
    assert.match(
      out,
      /\.attnscope-figure>\.ax-fig-png\{display:none!important\}/,
    );
    // toHTML() (embedded by figureRow, saved pages) stays SVG only.
    assert.doesNotMatch(figure.toHTML(), /<img/);
    // Token text is HTML already: unchanged.
    const text = tokenTextView(layer, labels);
    assert.equal(html(text), text.toHTML());
    // Over the cap: no copy.
    await setImageFallback(true, { maxBytes: 10 });
    assert.equal(html(figure), figure.toHTML());
    await assert.rejects(
      setImageFallback(true, { scale: 0 }),
      /^RangeError: Cannot set the image fallback: scale 0/,
    );
  } finally {
    await setImageFallback(false, { maxBytes: 400_000, scale: 1 });
  }
  assert.equal(html(figure), figure.toHTML());
});

Deno.test({
  name:
    "Figure display HTML shows one chart (the SVG) on a plain page, and its PNG copy once <style> and <svg> are stripped",
  ignore: !chromium.ok && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (!chromium.ok) assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
    const figure = attentionHeatmap(layer, { labels, mark: [5] });
    let out: string;
    try {
      await setImageFallback(true);
      out = html(figure);
    } finally {
      await setImageFallback(false);
    }
    let browser: Browser | null = null;
    try {
      browser = await puppeteer.launch({
        executablePath: chromium.path,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
      });
      const page = await browser.newPage();
      await page.setViewport({ width: 900, height: 900 });
      const visible = () =>
        page.evaluate(() => {
          const shown = (e: Element | null) =>
            e !== null && (e as HTMLElement).getBoundingClientRect().width > 0;
          const img = document.querySelector("img");
          return {
            svg: shown(document.querySelector("svg")),
            img: shown(img),
            width: img?.naturalWidth ?? 0,
            complete: img?.complete ?? false,
            text: document.body.innerText.trim(),
          };
        });
      await page.setContent(
        `<!DOCTYPE html><html><body style="margin:0">${out}</body></html>`,
        { waitUntil: "load" },
      );
      const plain = await visible();
      assert.deepEqual([plain.svg, plain.img], [true, false], "SVG only");
      await Deno.mkdir(".artifacts", { recursive: true });
      await Deno.writeFile(
        ".artifacts/chart-fallback-plain.png",
        await page.screenshot({ type: "png" }),
      );
      // What sanitize-html does: <style> goes with its content; <svg> and
      // its children go, their text stays; `hidden` and `class` stay.
      await page.evaluate(() => {
        for (const s of document.querySelectorAll("style")) s.remove();
        for (const s of document.querySelectorAll("svg")) {
          s.replaceWith(document.createTextNode(s.textContent ?? ""));
        }
      });
      await page.waitForFunction(() => document.querySelector("img")?.complete);
      const stripped = await visible();
      assert.deepEqual([stripped.svg, stripped.img], [false, true], "image");
      assert.ok(stripped.width > 100, `naturalWidth ${stripped.width}`);
      assert.equal(stripped.text, "", "the leftover labels stay hidden");
      await Deno.writeFile(
        ".artifacts/chart-fallback-stripped.png",
        await page.screenshot({ type: "png" }),
      );
    } finally {
      await browser?.close();
    }
  },
});
