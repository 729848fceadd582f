/// <reference lib="dom" />
/**
 * The explorer page in Debian's Chromium, driven through the DevTools
 * protocol (npm:puppeteer-core, no browser download): hover, pin,
 * shift-click, heads, layers, modes, zoom, two explorers on one page, no
 * network and no scripts. Where Chromium is missing the tests are skipped
 * with the reason; under `CI=true` they fail.
 */

import assert from "node:assert/strict";
import { savePhoto } from "./_photos.ts";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { decodePng } from "../scripts/_png.ts";
import { inkIn } from "../scripts/render_notebook.ts";
import { explore } from "../lib/explorer/explorer.ts";
import { loadCapture } from "../lib/sources/files/capture_file.ts";
import type { AttentionLayer } from "../lib/data/layer.ts";
import { expectedRow, explorerCapture } from "./_explorer_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} explorer browser tests: ${chromium.reason}`,
  );
}
const ignore = !chromium.ok && !CI;
const NEEDLE = new URL("../notebooks/captures/needle.attn", import.meta.url);

async function launch(): Promise<Browser> {
  if (!chromium.ok) {
    assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
  }
  return await puppeteer.launch({
    executablePath: chromium.path,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
    ],
  });
}

/** A page built from fragments, written to a temporary file. */
async function pageFile(fragments: string[]): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".html" });
  await Deno.writeTextFile(
    path,
    `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${
      fragments.join("<hr>")
    }</body></html>`,
  );
  return path;
}

interface Opened {
  page: Page;
  requests: string[];
  errors: string[];
}

async function open(
  browser: Browser,
  path: string,
  js = true,
): Promise<Opened> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1000 });
  await page.setJavaScriptEnabled(js);
  const requests: string[] = [];
  const errors: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith("data:")) requests.push(r.url());
  });
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  // The network is off: anything the page fetches fails and is counted.
  await page.setOfflineMode(true);
  await page.goto(`file://${path}`, { waitUntil: "load" });
  if (js) {
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll(".attnscope-explorer")].every((r) =>
          (r as HTMLElement).dataset.ready || (r as HTMLElement).dataset.error
        ),
      { timeout: 60_000 },
    );
  }
  return { page, requests, errors };
}

/** `data-weight` of every token of explorer `n`, by position. */
function weights(page: Page, n = 0): Promise<(number | null)[]> {
  return page.$$eval(
    ".attnscope-explorer",
    (roots, n) =>
      [...roots[n as number].querySelectorAll<HTMLElement>(".ax-tok")].map((
        e,
      ) => e.dataset.weight === undefined ? null : Number(e.dataset.weight)),
    n,
  );
}

function rootAttrs(page: Page, n = 0) {
  return page.$$eval(".attnscope-explorer", (roots, n) => {
    const r = roots[n as number] as HTMLElement;
    return {
      layer: r.dataset.layer,
      heads: r.dataset.heads,
      mode: r.dataset.mode,
      zoom: r.dataset.zoom,
    };
  }, n);
}

async function token(page: Page, p: number, n = 0) {
  const roots = await page.$$(".attnscope-explorer");
  const el = await roots[n].$(`.ax-tok[data-index="${p}"]`);
  assert.ok(el, `token ${p} exists`);
  return el!;
}

function assertClose(
  actual: (number | null)[],
  expected: number[],
  what: string,
) {
  assert.equal(
    actual.length >= expected.length,
    true,
    `${what}: ${actual.length} tokens`,
  );
  for (let k = 0; k < expected.length; k++) {
    assert.ok(actual[k] !== null, `${what}: token ${k} has data-weight`);
    assert.ok(
      Math.abs(actual[k]! - expected[k]) <= 0.001,
      `${what}: token ${k} shows ${actual[k]}, the capture has ${
        expected[k].toFixed(4)
      }`,
    );
  }
}

Deno.test({
  name:
    "explore() page works in Chromium offline: hover, heads, pin, layers, modes, zoom, two explorers",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const a = explorerCapture(40, 3, 2, { seed: 1, vision: [9, 17] });
    const b = explorerCapture(24, 2, 1, { seed: 7 });
    const layersA = Object.values(a.attention!) as AttentionLayer[];
    const last = layersA[1].scores, first = layersA[0].scores;
    const path = await pageFile([
      await explore(a).toHTML(),
      await explore(b).toHTML(),
    ]);
    const browser = await launch();
    try {
      const { page, requests, errors } = await open(browser, path);

      await t.step("explore() page makes no request and logs no error", () => {
        assert.deepEqual(requests.filter((u) => u !== `file://${path}`), []);
        assert.deepEqual(errors, []);
      });

      await t.step(
        "explore() page replaces the fallback picture with the live view",
        async () => {
          const state = await page.$$eval(
            ".attnscope-explorer",
            (roots) =>
              roots.map((r) => ({
                fallbackHidden: r.querySelector(".ax-fallback")!.hasAttribute(
                  "hidden",
                ),
                canvas: !!r.querySelector("canvas.ax-matrix"),
                image: r.querySelectorAll(".ax-image .ax-tok").length,
              })),
          );
          assert.deepEqual(state.map((s) => s.fallbackHidden), [true, true]);
          assert.deepEqual(state.map((s) => s.canvas), [true, true]);
          assert.equal(
            state[0].image,
            8,
            "the 8 vision tokens sit in one image block",
          );
          assert.deepEqual(await rootAttrs(page), {
            layer: "3",
            heads: "0,1,2",
            mode: "query",
            zoom: "0,40,0,40",
          });
        },
      );

      await t.step(
        "explore() page shades tokens by the hovered query row, head mean",
        async () => {
          await (await token(page, 30)).hover();
          assertClose(
            await weights(page),
            expectedRow(last, 30, [0, 1, 2], "mean"),
            "hover 30",
          );
        },
      );

      await t.step(
        "explore() page shows one head on a chip double-click, the max of two heads on request",
        async () => {
          const root = (await page.$$(".attnscope-explorer"))[0];
          await (await root.$('.ax-chip[data-head="1"]'))!.click({ count: 2 });
          assert.equal((await rootAttrs(page)).heads, "1");
          await (await token(page, 25)).hover();
          assertClose(
            await weights(page),
            expectedRow(last, 25, [1], "mean"),
            "head 1",
          );
          await (await root.$('.ax-chip[data-head="2"]'))!.click();
          await root.$eval(".ax-combine", (s) => {
            (s as HTMLSelectElement).value = "max";
            s.dispatchEvent(new Event("change"));
          });
          assert.equal((await rootAttrs(page)).heads, "1,2");
          await (await token(page, 33)).hover();
          assertClose(
            await weights(page),
            expectedRow(last, 33, [1, 2], "max"),
            "max of 1, 2",
          );
          // Back to every head, mean.
          for (const h of [0]) {
            await (await root.$(`.ax-chip[data-head="${h}"]`))!.click();
          }
          await root.$eval(".ax-combine", (s) => {
            (s as HTMLSelectElement).value = "mean";
            s.dispatchEvent(new Event("change"));
          });
          assert.equal((await rootAttrs(page)).heads, "0,1,2");
        },
      );

      await t.step(
        "explore() page pins a click, sums shift-clicks, and clears on Escape",
        async () => {
          await (await token(page, 20)).click();
          await page.keyboard.down("Shift");
          await (await token(page, 34)).click();
          await page.keyboard.up("Shift");
          const r20 = expectedRow(last, 20, [0, 1, 2], "mean");
          const r34 = expectedRow(last, 34, [0, 1, 2], "mean");
          const sum = r20.map((v, k) => v + r34[k]);
          assertClose(await weights(page), sum, "pinned 20 + 34");
          await (await token(page, 5)).hover(); // hover does not move a pin
          assertClose(await weights(page), sum, "still pinned");
          await page.keyboard.press("Escape");
          await (await token(page, 12)).hover();
          assertClose(
            await weights(page),
            expectedRow(last, 12, [0, 1, 2], "mean"),
            "after Escape",
          );
          await (await token(page, 12)).click();
          await (await token(page, 12)).click(); // clicking again unpins
          await (await token(page, 14)).hover();
          assertClose(
            await weights(page),
            expectedRow(last, 14, [0, 1, 2], "mean"),
            "unpinned by a second click",
          );
        },
      );

      await t.step(
        "explore() page switches layers and to the received mode",
        async () => {
          const root = (await page.$$(".attnscope-explorer"))[0];
          await root.$eval(".ax-layer", (s) => {
            (s as HTMLSelectElement).value = "0";
            s.dispatchEvent(new Event("change"));
          });
          assert.equal((await rootAttrs(page)).layer, "0");
          await (await token(page, 31)).hover();
          assertClose(
            await weights(page),
            expectedRow(first, 31, [0, 1, 2], "mean"),
            "layer 0",
          );
          await (await root.$(".ax-mode"))!.click();
          assert.equal((await rootAttrs(page)).mode, "received");
          await (await token(page, 6)).hover();
          const column = Array.from(
            { length: 40 },
            (_, q) => [0, 1, 2].reduce((s, h) => s + first.get(q, h, 6), 0) / 3,
          );
          assertClose(await weights(page), column, "received by 6");
          await (await root.$(".ax-mode"))!.click();
        },
      );

      await t.step(
        "explore() page zooms by dragging and shows the capture's values in the region",
        async () => {
          const root = (await page.$$(".attnscope-explorer"))[0];
          const canvas = (await root.$("canvas.ax-matrix"))!;
          const box = (await canvas.boundingBox())!;
          const at = (q: number, k: number, n = 40) => ({
            x: box.x + ((k + 0.5) / n) * box.width,
            y: box.y + ((q + 0.5) / n) * box.height,
          });
          const from = at(20, 10), to = at(29, 19);
          await page.mouse.move(from.x, from.y);
          await page.mouse.down();
          await page.mouse.move(to.x, to.y, { steps: 4 });
          await page.mouse.up();
          assert.equal((await rootAttrs(page)).zoom, "20,30,10,20");
          const zoomed = (await canvas.boundingBox())!;
          // Cell (q 27, k 13) in the 10 x 10 region.
          await page.mouse.move(
            zoomed.x + ((13 - 10 + 0.5) / 10) * zoomed.width,
            zoomed.y + ((27 - 20 + 0.5) / 10) * zoomed.height,
          );
          const tip = await root.$eval(
            ".ax-tip",
            (e) => ({ ...(e as HTMLElement).dataset }),
          );
          assert.equal(tip.query, "27");
          assert.equal(tip.key, "13");
          const expected = [0, 1, 2].reduce((s, h) =>
            s + first.get(27, h, 13), 0) / 3;
          assert.ok(
            Math.abs(Number(tip.value) - expected) <= 0.001,
            `${tip.value} vs ${expected}`,
          );
          await (await root.$(".ax-reset"))!.click();
          assert.equal((await rootAttrs(page)).zoom, "0,40,0,40");
        },
      );

      await t.step(
        "explore() page zooms with the wheel, filters by threshold and top-k, opens a head from its thumbnail, saves PNG",
        async () => {
          const root = (await page.$$(".attnscope-explorer"))[0];
          const canvas = (await root.$("canvas.ax-matrix"))!;
          const box = (await canvas.boundingBox())!;
          await page.mouse.move(
            box.x + box.width * 0.5,
            box.y + box.height * 0.5,
          );
          await page.mouse.wheel({ deltaY: -100 });
          const [r0, r1, c0, c1] = (await rootAttrs(page)).zoom!.split(",").map(
            Number,
          );
          assert.equal(r1 - r0, 20, "one wheel step halves the rows");
          assert.equal(c1 - c0, 20);
          await (await root.$(".ax-reset"))!.click();

          await (await token(page, 30)).click(); // pin, so hovering inputs keeps it
          const row = expectedRow(first, 30, [0, 1, 2], "mean");
          await root.$eval(".ax-threshold", (e) => {
            (e as HTMLInputElement).value = "0.05";
            e.dispatchEvent(new Event("input"));
          });
          const thr = await weights(page);
          row.forEach((v, k) => {
            const want = v >= 0.05 ? v : 0;
            assert.ok(Math.abs(thr[k]! - want) <= 0.001, `threshold: key ${k}`);
          });
          await root.$eval(".ax-threshold", (e) => {
            (e as HTMLInputElement).value = "0";
            e.dispatchEvent(new Event("input"));
          });
          await root.$eval(".ax-topk", (e) => {
            (e as HTMLInputElement).value = "3";
            e.dispatchEvent(new Event("input"));
          });
          const top = await weights(page);
          const strongest = [...row].sort((a, b) => b - a).slice(0, 3);
          assert.equal(top.filter((w) => w! > 0).length, 3);
          for (const v of strongest) {
            assert.ok(
              top.some((w) => Math.abs(w! - v) <= 0.001),
              `top-3 keeps ${v}`,
            );
          }
          await root.$eval(".ax-topk", (e) => {
            (e as HTMLInputElement).value = "0";
            e.dispatchEvent(new Event("input"));
          });
          await (await token(page, 30)).click(); // unpin

          await root.waitForSelector(
            '.ax-thumb[data-layer="3"][data-head="2"]',
          );
          await (await root.$('.ax-thumb[data-layer="3"][data-head="2"]'))!
            .click();
          assert.deepEqual(
            {
              layer: (await rootAttrs(page)).layer,
              heads: (await rootAttrs(page)).heads,
            },
            { layer: "3", heads: "2" },
          );
          await (await token(page, 21)).hover();
          assertClose(
            await weights(page),
            expectedRow(last, 21, [2], "mean"),
            "thumbnail head",
          );

          const png = await root.$eval(
            "canvas.ax-matrix",
            (c) => (c as HTMLCanvasElement).toDataURL("image/png"),
          );
          assert.match(png, /^data:image\/png;base64,/);
          await (await root.$(".ax-png"))!.click(); // downloads; must not throw
          // Back to layer 0, every head, for the steps after.
          await root.$eval(".ax-layer", (s) => {
            (s as HTMLSelectElement).value = "0";
            s.dispatchEvent(new Event("change"));
          });
          for (const h of [0, 1]) {
            await (await root.$(`.ax-chip[data-head="${h}"]`))!.click();
          }
          assert.equal((await rootAttrs(page)).heads, "0,1,2");
          assert.deepEqual(errors, []);
        },
      );

      await t.step(
        "explore() page keeps two explorers independent",
        async () => {
          const before = await rootAttrs(page, 1);
          const second = await weights(page, 1);
          await (await token(page, 22)).hover(); // the first explorer
          assert.deepEqual(await rootAttrs(page, 1), before);
          assert.deepEqual(await weights(page, 1), second);
          await (await token(page, 10, 1)).hover();
          const bLayer = Object.values(b.attention!)[0] as AttentionLayer;
          assertClose(
            await weights(page, 1),
            expectedRow(bLayer.scores, 10, [0, 1], "mean"),
            "second explorer",
          );
          assert.equal(
            (await rootAttrs(page, 0)).layer,
            "0",
            "the first keeps its layer",
          );
          assert.deepEqual(errors, []);
        },
      );
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name:
    "explore() output without scripts shows the static picture with ink and the trusted-notebook line",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const html = await explore(explorerCapture(40, 3, 2)).toHTML();
    // As GitHub and an untrusted JupyterLab do: scripts removed.
    const stripped = html.replace(/<script\b[\s\S]*?<\/script>/g, "");
    assert.doesNotMatch(stripped, /<script/);
    const path = await pageFile([stripped]);
    const browser = await launch();
    try {
      const { page, errors } = await open(browser, path, false);
      const img = (await page.$(".ax-fallback img"))!;
      const box = (await img.boundingBox())!;
      assert.ok(
        box.width > 200 && box.height > 100,
        `picture is ${box.width}x${box.height}`,
      );
      const shot = decodePng(
        await page.screenshot({ type: "png", fullPage: true }),
      );
      const ink = inkIn(shot, {
        x: box.x,
        y: box.y,
        width: box.width,
        height: box.height,
      });
      assert.ok(ink > 0.2, `the heatmap picture has ink (${ink.toFixed(2)})`);
      const text = await page.$eval(
        ".ax-fallback",
        (e) => (e as HTMLElement).innerText,
      );
      assert.match(text, /needs scripts: run the notebook \(or trust it\)/);
      // The shaded text is a picture now (sanitizers keep <img>); its alt
      // text names the query: the last prompt token.
      const alt = await page.$eval(
        ".ax-fallback img.ax-fb-text",
        (e) => (e as HTMLImageElement).alt,
      );
      assert.match(alt, /Attention from query 35/);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name:
    "explore() keeps a too-big capture within maxBytes as pooled overview + top-k, says so, and hovers the kept values exactly",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const capture = explorerCapture(600, 2, 1, { seed: 3 });
    const view = explore(capture, { maxBytes: 1_200_000, topK: 16 });
    const html = await view.toHTML();
    const stats = await view.stats();
    assert.ok(stats.bytes <= 1_200_000, `${stats.bytes} bytes`);
    assert.ok(stats.reducedHeads >= 1);
    assert.match(
      stats.reduced,
      /max-pooled overview plus the 16 strongest keys/,
    );
    const path = await pageFile([html]);
    const browser = await launch();
    try {
      const { page, errors } = await open(browser, path);
      const note = await page.$eval(".ax-note", (e) => e.textContent);
      assert.match(note!, /^Reduced to fit/);
      const scores =
        (Object.values(capture.attention!)[0] as AttentionLayer).scores;
      const root = (await page.$$(".attnscope-explorer"))[0];
      await (await root.$('.ax-chip[data-head="1"]'))!.click({ count: 2 });
      await (await token(page, 500)).hover();
      const shown = await weights(page);
      const truth = expectedRow(scores, 500, [1], "mean");
      const kept = truth.map((v, k) => [v, k]).sort((x, y) => y[0] - x[0])
        .slice(0, 16);
      for (const [v, k] of kept) {
        assert.ok(
          Math.abs(shown[k]! - v) <= 0.001,
          `key ${k}: ${shown[k]} vs ${v}`,
        );
      }
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name:
    "explore() of the needle capture fits in 400 KB and is photographed for the README",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const capture = await loadCapture(NEEDLE.pathname);
    const view = explore(capture, {
      title: "Needle study: attention explorer",
    });
    const stats = await view.stats();
    assert.ok(stats.bytes <= 400_000, `${stats.bytes} bytes`);
    assert.equal(stats.reducedHeads, 0);
    const path = await Deno.makeTempFile({ suffix: ".html" });
    await view.save(path);
    const browser = await launch();
    try {
      const { page, errors, requests } = await open(browser, path);
      assert.deepEqual(errors, []);
      assert.deepEqual(requests.filter((u) => u !== `file://${path}`), []);
      const root = (await page.$(".attnscope-explorer"))!;
      await root.$eval(".ax-chip", () => {}); // present
      const shot = await root.screenshot({ type: "png" });
      await savePhoto("explorer.png", shot);
      const image = decodePng(shot);
      assert.ok(
        inkIn(image, { x: 0, y: 0, width: image.width, height: image.height }) >
          0.05,
      );
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});
