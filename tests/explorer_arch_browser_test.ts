/// <reference lib="dom" />
/**
 * The explorer knows the architecture it is given: `explore(x,
 * { layerMeta })` for sources without it, grouped-query attention (head
 * chips grouped by KV head), sliding windows (keys outside the window
 * masked, not zero; `data-window`), and `causal: false` (no future mask).
 * Driven in Debian's Chromium through npm:puppeteer-core; skipped with the
 * reason where it is missing, failing under `CI=true`.
 */

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { explore } from "../lib/explorer/explorer.ts";
import type { LayerMeta } from "../lib/data/layer_meta.ts";
import { explorerCapture } from "./_explorer_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${
      CI ? "FAIL" : "Skipping"
    } explorer architecture tests: ${chromium.reason}`,
  );
}
const ignore = !chromium.ok && !CI;

const T = 20;
const SLIDING: LayerMeta = {
  attention: "sliding_attention",
  slidingWindow: 5,
  numKeyValueHeads: 2,
  causal: true,
};
const BIDIRECTIONAL: LayerMeta = {
  attention: "full_attention",
  slidingWindow: null,
  numKeyValueHeads: 2,
  causal: false,
};

Deno.test("explore() refuses a layerMeta that does not fit the capture, saying what to pass", () => {
  const capture = explorerCapture(T, 4, 2);
  assert.throws(
    () => explore(capture, { layerMeta: [SLIDING] }),
    /^RangeError: Cannot explore with layerMeta: it has 1 entries for 2 layers; pass one per layer or a single one$/,
  );
  assert.throws(
    () => explore(capture, { layerMeta: { ...SLIDING, numKeyValueHeads: 3 } }),
    /Cannot explore layer 0: numKeyValueHeads is 3 but the layer has 4 query heads; pass a divisor of 4/,
  );
  assert.throws(
    () => explore(capture, { layerMeta: { ...SLIDING, slidingWindow: null } }),
    /needs a slidingWindow of at least 1/,
  );
});

async function launch(): Promise<Browser> {
  if (!chromium.ok) assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
  return await puppeteer.launch({
    executablePath: chromium.path,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
}

async function openHtml(browser: Browser, html: string) {
  const path = await Deno.makeTempFile({ suffix: ".html" });
  await Deno.writeTextFile(
    path,
    `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${html}</body></html>`,
  );
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1000 });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`file://${path}`, { waitUntil: "load" });
  await page.waitForFunction(
    () => {
      const r = document.querySelector<HTMLElement>(".attnscope-explorer");
      return r?.dataset.ready || r?.dataset.error;
    },
    { timeout: 15000 },
  );
  return { page, path, errors };
}

/** The matrix pixel at the centre of cell (query row, key column). */
function cellPixel(page: Page, row: number, col: number): Promise<number[]> {
  return page.$eval(
    ".ax-matrix",
    (c, row, col, t) => {
      const canvas = c as HTMLCanvasElement;
      const x = Math.floor(
        ((col as number) + 0.5) * canvas.width / (t as number),
      );
      const y = Math.floor(
        ((row as number) + 0.5) * canvas.height / (t as number),
      );
      return [...canvas.getContext("2d")!.getImageData(x, y, 1, 1).data];
    },
    row,
    col,
    T,
  );
}

/** Hovers cell (row, col) of the matrix and returns the tooltip's text. */
async function tipAt(page: Page, row: number, col: number): Promise<string> {
  const box = (await (await page.$(".ax-matrix"))!.boundingBox())!;
  await page.mouse.move(
    box.x + (col + 0.5) * box.width / T,
    box.y + (row + 0.5) * box.height / T,
  );
  return await page.$eval(".ax-tip", (e) => e.textContent ?? "");
}

function rootData(page: Page) {
  return page.$eval(".attnscope-explorer", (r) => ({
    ...(r as HTMLElement).dataset,
  }));
}

Deno.test({
  name:
    "explore() with layerMeta groups head chips by KV head, masks keys outside a sliding window, and drops the future mask for causal:false",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    // Layers 0 (sliding, window 5) and 3 (bidirectional); the last opens.
    const capture = explorerCapture(T, 4, 2, { seed: 9 });
    const html = await explore(capture, {
      layerMeta: [SLIDING, BIDIRECTIONAL],
    }).toHTML();
    const browser = await launch();
    const { page, path, errors } = await openHtml(browser, html);
    try {
      await t.step(
        "explore() groups 4 query heads under 2 KV heads",
        async () => {
          const groups = await page.$$eval(
            ".ax-chip",
            (cs) => cs.map((c) => (c as HTMLElement).dataset.kvGroup),
          );
          assert.deepEqual(groups, ["0", "0", "1", "1"]);
          const boxes = await page.$$eval(
            ".ax-kv",
            (bs) =>
              bs.map((b) =>
                [...b.querySelectorAll<HTMLElement>(".ax-chip")].map((c) =>
                  c.dataset.head
                ).join(",")
              ),
          );
          assert.deepEqual(boxes, ["0,1", "2,3"]);
        },
      );

      await t.step(
        "explore() shows a causal:false layer's whole matrix, future keys as values",
        async () => {
          const d = await rootData(page);
          assert.equal(d.error, undefined);
          assert.equal(d.layer, "3");
          assert.equal(d.window, "");
          assert.equal(d.causal, "0");
          const tip = await tipAt(page, 2, 15);
          assert.doesNotMatch(tip, /masked/, tip);
          assert.match(tip, /: \d\.\d{4}/, tip);
          const masked = await page.$eval(
            ".attnscope-explorer",
            (r) => getComputedStyle(r).getPropertyValue("--ax-masked").trim(),
          );
          const future = await cellPixel(page, 2, 15);
          assert.notEqual(
            `#${
              future.slice(0, 3).map((v) => v.toString(16).padStart(2, "0"))
                .join("")
            }`,
            masked,
            "a future cell of a bidirectional layer is not painted masked",
          );
        },
      );

      await t.step(
        "explore() `[` opens the sliding layer: data-window, keys outside the window masked like the future",
        async () => {
          await page.focus(".attnscope-explorer");
          await page.keyboard.press("[");
          const d = await rootData(page);
          assert.equal(d.layer, "0");
          assert.equal(d.window, "5");
          assert.equal(d.causal, "1");
          // Query row 15 sees keys 11..15; key 2 is outside, key 13 inside.
          assert.match(
            await tipAt(page, 15, 2),
            /masked \(outside the 5-key window\)/,
          );
          assert.match(await tipAt(page, 15, 13), /: \d\.\d{4}/);
          assert.match(await tipAt(page, 2, 15), /masked \(future\)/);
          const outside = await cellPixel(page, 15, 2);
          const future = await cellPixel(page, 2, 15);
          const inside = await cellPixel(page, 15, 13);
          assert.deepEqual(
            outside,
            future,
            "outside the window is drawn as masked, as the future is",
          );
          assert.notDeepEqual(inside, future);
        },
      );

      await t.step(
        "explore() token shading masks keys outside the window of the query (no data-weight), keeps the rest",
        async () => {
          await (await page.$('.ax-app .ax-tok[data-index="15"]'))!.hover();
          const has = await page.$$eval(
            ".ax-app .ax-tok",
            (es) =>
              es.map((e) => (e as HTMLElement).dataset.weight !== undefined),
          );
          assert.deepEqual(
            has.slice(0, 16),
            Array.from({ length: 16 }, (_, k) => k >= 11),
            "keys 0..10 masked, 11..15 shaded",
          );
        },
      );
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name:
    "explore() reduced heads' overview and thumbnails mask keys outside a sliding window and the future, as the full matrix does",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const t = 48;
    const capture = explorerCapture(t, 4, 2, { seed: 9 });
    const layerMeta = [SLIDING, BIDIRECTIONAL];
    // The largest maxBytes at which every head is reduced (the page's own
    // size moves with its markup, so it is found, not fixed).
    const full = await explore(capture, { layerMeta }).stats();
    let html = "";
    for (let max = full.bytes; max > full.bytes / 4; max -= 500) {
      try {
        const view = explore(capture, { layerMeta, maxBytes: max, layer: 0 });
        if ((await view.stats()).fullHeads === 0) {
          html = await view.toHTML();
          break;
        }
      } catch { /* too small for even the reduced form: keep looking */ }
    }
    assert.ok(html, "some maxBytes reduces every head");
    const browser = await launch();
    const { page, path, errors } = await openHtml(browser, html);
    try {
      const d = await rootData(page);
      assert.equal(d.layer, "0");
      assert.match(
        await page.$eval(".ax-note", (e) => e.textContent!),
        /^Reduced/,
      );
      const masked = await page.$eval(
        ".attnscope-explorer",
        (r) => getComputedStyle(r).getPropertyValue("--ax-masked").trim(),
      );
      const hex = (px: number[]) =>
        `#${
          px.slice(0, 3).map((v) => v.toString(16).padStart(2, "0")).join("")
        }`;
      /** Pixel at the centre of (row, col) of a canvas showing t x t cells. */
      const pixel = (selector: string, row: number, col: number) =>
        page.$eval(
          selector,
          (c, row, col, t) => {
            const canvas = c as HTMLCanvasElement;
            const x = Math.floor(
              ((col as number) + 0.5) * canvas.width / (t as number),
            );
            const y = Math.floor(
              ((row as number) + 0.5) * canvas.height / (t as number),
            );
            return [...canvas.getContext("2d")!.getImageData(x, y, 1, 1).data];
          },
          row,
          col,
          t,
        );
      // Row 40 sees keys 36..40: key 3 is outside the window, 45 in the future.
      assert.equal(hex(await pixel(".ax-matrix", 40, 3)), masked, "outside");
      assert.equal(hex(await pixel(".ax-matrix", 3, 45)), masked, "future");
      assert.notEqual(hex(await pixel(".ax-matrix", 40, 39)), masked, "inside");
      // Drawn in idle slices: each thumbnail says so when it is.
      await page.waitForFunction(() =>
        document.querySelectorAll(".ax-thumb[data-drawn]").length === 8
      );
      const thumb = '.ax-thumb[data-layer="0"][data-head="0"]';
      assert.equal(hex(await pixel(thumb, 44, 2)), masked, "thumb outside");
      assert.equal(hex(await pixel(thumb, 2, 44)), masked, "thumb future");
      assert.notEqual(hex(await pixel(thumb, 44, 43)), masked, "thumb inside");
      // The bidirectional layer's thumbnail: nothing masked.
      const open = '.ax-thumb[data-layer="3"][data-head="0"]';
      assert.notEqual(hex(await pixel(open, 2, 44)), masked, "no future mask");
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});
