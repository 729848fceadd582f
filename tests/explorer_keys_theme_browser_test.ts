/// <reference lib="dom" />
/**
 * The explorer's keyboard and themes in Debian's Chromium (DevTools protocol
 * via npm:puppeteer-core): arrows, `[` `]`, Escape, and that its keys do not
 * reach the page (Jupyter's command mode listens on the document); light,
 * dark and auto (OS, JupyterLab, VS Code, host background) with the WCAG
 * contrast of labels and controls measured in the page.
 */

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { explore, type ExploreOptions } from "../lib/explorer/explorer.ts";
import type { AttentionLayer } from "../lib/data/layer.ts";
import { expectedRow, explorerCapture } from "./_explorer_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} explorer keys/theme tests: ${chromium.reason}`,
  );
}
const ignore = !chromium.ok && !CI;
const OPTS = { ignore, sanitizeOps: false, sanitizeResources: false };

async function withPage(
  body: string,
  fn: (page: Page) => Promise<void>,
  bodyAttrs = "",
  scheme: "light" | "dark" = "light",
): Promise<void> {
  if (!chromium.ok) assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
  const path = await Deno.makeTempFile({ suffix: ".html" });
  await Deno.writeTextFile(
    path,
    `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body ${bodyAttrs}>${body}</body></html>`,
  );
  const browser: Browser = await puppeteer.launch({
    executablePath: chromium.path,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 1000 });
    await page.emulateMediaFeatures([
      { name: "prefers-color-scheme", value: scheme },
    ]);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(`file://${path}`, { waitUntil: "load" });
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll<HTMLElement>(".attnscope-explorer")]
          .every((r) => r.dataset.ready || r.dataset.error),
      { timeout: 20000 },
    );
    await fn(page);
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await Deno.remove(path);
  }
}

function weights(page: Page): Promise<(number | null)[]> {
  return page.$$eval(".attnscope-explorer .ax-tok", (els) =>
    els.map((e) => {
      const w = (e as HTMLElement).dataset.weight;
      return w === undefined ? null : Number(w);
    }));
}

function rootData(page: Page) {
  return page.$eval(".attnscope-explorer", (r) => ({
    ...(r as HTMLElement).dataset,
  }));
}

function seen(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    (globalThis as unknown as { seen: string[] }).seen
  );
}

Deno.test({
  ...OPTS,
  name:
    "explore() keyboard: arrows move the query, [ and ] change layer, Escape clears, and no key reaches the page",
  async fn() {
    const capture = explorerCapture(24, 2, 3);
    const scores = (Object.values(capture.attention!)[2] as AttentionLayer)
      .scores;
    await withPage(await explore(capture).toHTML(), async (page) => {
      // What Jupyter's command mode would see: keys at the document.
      await page.evaluate(() => {
        (globalThis as unknown as { seen: string[] }).seen = [];
        document.addEventListener("keydown", (e) => {
          (globalThis as unknown as { seen: string[] }).seen.push(e.key);
        });
      });
      await page.focus(".attnscope-explorer");
      assert.equal((await rootData(page)).query, "19"); // last prompt token
      await page.keyboard.press("ArrowRight");
      assert.equal((await rootData(page)).query, "20");
      const shown = await weights(page);
      expectedRow(scores, 20, [0, 1], "mean").forEach((v, k) =>
        assert.ok(Math.abs(shown[k]! - v) <= 1e-3, `key ${k}`)
      );
      await page.keyboard.press("ArrowUp");
      await page.keyboard.press("ArrowUp");
      assert.equal((await rootData(page)).query, "18");
      await page.keyboard.press("[");
      assert.equal((await rootData(page)).layer, "3");
      await page.keyboard.press("[");
      await page.keyboard.press("[");
      assert.equal((await rootData(page)).layer, "0"); // stops at the first
      await page.keyboard.press("]");
      assert.equal((await rootData(page)).layer, "3");
      await page.keyboard.press("Escape");
      assert.equal((await rootData(page)).query, "19");
      for (const k of ["a", "b", "m", "Enter", "j", "k", "Shift"] as const) {
        await page.keyboard.press(k);
      }
      assert.deepEqual(await seen(page), [], "keys leaked to the document");
      // Outside the explorer, keys reach the page as usual.
      await page.evaluate(() => (document.activeElement as HTMLElement).blur());
      await page.keyboard.press("a");
      assert.deepEqual(await seen(page), ["a"]);
    });
  },
});

/** WCAG contrast of each element's text on its effective background. */
function contrasts(page: Page, selectors: string[]) {
  return page.evaluate((selectors: string[]) => {
    const rgb = (c: string) => c.match(/[\d.]+/g)!.slice(0, 3).map(Number);
    const lum = ([r, g, b]: number[]) =>
      [r, g, b].map((c) => {
        const s = c / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      }).reduce((a, c, i) => a + c * [0.2126, 0.7152, 0.0722][i], 0);
    const bgOf = (e: Element | null): string => {
      for (; e; e = e.parentElement) {
        const c = getComputedStyle(e).backgroundColor;
        const a = c.match(/[\d.]+/g)!;
        if (a.length < 4 || Number(a[3]) > 0.5) return c;
      }
      return "rgb(255, 255, 255)"; // the browser's canvas
    };
    return selectors.map((sel) => {
      const e = document.querySelector(`.attnscope-explorer ${sel}`)!;
      const a = lum(rgb(getComputedStyle(e).color));
      const b = lum(rgb(bgOf(e)));
      return {
        sel,
        ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
        bg: bgOf(e),
      };
    });
  }, selectors);
}

const CHECKED = [
  ".ax-status",
  ".ax-legend",
  ".ax-chip",
  ".ax-layer",
  ".ax-reset",
  ".ax-tok",
];

const CASES: [string, ExploreOptions, string, "light" | "dark", string][] = [
  ["dark option", { theme: "dark" }, "", "light", "dark"],
  ["light option", { theme: "light" }, "", "dark", "light"],
  ["auto, dark OS, plain page", {}, "", "dark", "dark"],
  ["auto, light OS, plain page", {}, "", "light", "light"],
  [
    "auto, JupyterLab dark",
    {},
    'data-jp-theme-light="false" style="background:#111;--jp-ui-font-color1:#ddd"',
    "light",
    "dark",
  ],
  [
    "auto, VS Code dark",
    {},
    'class="vscode-dark" style="background:#1e1e1e;--vscode-editor-foreground:#ccc"',
    "light",
    "dark",
  ],
  [
    "auto, dark host background",
    {},
    'style="background:#202020;color:#eee"',
    "light",
    "dark",
  ],
  ["auto, light host, dark OS", {}, 'style="background:#fff"', "dark", "light"],
];

for (const [label, options, bodyAttrs, scheme, want] of CASES) {
  Deno.test({
    ...OPTS,
    name:
      `explore() theme (${label}) resolves data-theme=${want} with text contrast >= 4.5:1`,
    async fn() {
      await withPage(
        await explore(explorerCapture(16, 2, 1), options).toHTML(),
        async (page) => {
          assert.equal((await rootData(page)).theme, want);
          const found = await contrasts(page, CHECKED);
          for (const c of found) {
            assert.ok(
              c.ratio >= 4.5,
              `${c.sel}: contrast ${c.ratio.toFixed(2)} on ${c.bg}`,
            );
          }
          const bg = found[0].bg.match(/[\d.]+/g)!.slice(0, 3).map(Number);
          const dark = bg.reduce((a, b) => a + b, 0) < 300;
          assert.equal(dark, want === "dark", `background ${found[0].bg}`);
          console.log(
            `  ${label}: ${
              found.map((c) => `${c.sel} ${c.ratio.toFixed(1)}`).join(", ")
            }`,
          );
        },
        bodyAttrs,
        scheme,
      );
    },
  });
}

Deno.test({
  ...OPTS,
  name:
    "explore() matrix has token axes that follow the zoom and a legend naming the saturation point",
  async fn() {
    const capture = explorerCapture(40, 2, 1);
    await withPage(await explore(capture).toHTML(), async (page) => {
      const axis = () =>
        page.$$eval(
          ".ax-axis-k span",
          (s) => s.map((e) => (e as HTMLElement).title),
        );
      const whole = await axis();
      assert.equal(whole[0], "key 0");
      assert.ok(whole.length >= 10, `${whole.length} key ticks`);
      const sat = await page.$eval(
        ".ax-ramp",
        (e) => (e as HTMLElement).dataset.saturation,
      );
      assert.ok(Number(sat) > 0 && Number(sat) <= 1, `saturation ${sat}`);
      assert.match(
        (await page.$eval(".ax-ramp", (e) => e.textContent))!,
        /saturation|largest cell/,
      );
      // Zoom into the lower right corner by dragging: the axes follow.
      const box = (await (await page.$(".ax-matrix"))!.boundingBox())!;
      await page.mouse.move(box.x + box.width * 0.8, box.y + box.height * 0.8);
      await page.mouse.down();
      await page.mouse.move(box.x + box.width - 2, box.y + box.height - 2, {
        steps: 4,
      });
      await page.mouse.up();
      const zoomed = await axis();
      assert.ok(Number(zoomed[0].slice(4)) >= 30, `first key ${zoomed[0]}`);
      // Few enough columns: the ticks carry the token text.
      const texts = await page.$$eval(
        ".ax-axis-k span",
        (s) => s.map((e) => e.textContent),
      );
      assert.ok(
        texts.some((t) => /cat|sat|mat/.test(t!)),
        `texts ${texts.join("|")}`,
      );
    });
  },
});
