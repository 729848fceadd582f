/// <reference lib="dom" />
/**
 * Photographs the explorer of the needle capture in Debian's Chromium
 * (npm:puppeteer-core), light and dark, and compare mode on two synthetic
 * captures, into .artifacts/photos/ (docs/ with ATTNSCOPE_UPDATE_DOCS=1),
 * and checks every picture has ink and the background its theme's
 * luminance.
 * Skipped with the reason where Chromium is missing; under `CI=true` that
 * fails.
 */

import assert from "node:assert/strict";
import { savePhoto } from "./_photos.ts";
import puppeteer from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { decodePng } from "../scripts/_png.ts";
import { inkIn } from "../scripts/render_notebook.ts";
import { explore } from "../lib/explorer/explorer.ts";
import { loadCapture } from "../lib/sources/files/capture_file.ts";
import { explorerCapture } from "./_explorer_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} explorer screenshots: ${chromium.reason}`,
  );
}
const NEEDLE = new URL("../notebooks/captures/needle.attn", import.meta.url);
const HOST = { light: "#ffffff", dark: "#1d1f24" } as const;

Deno.test({
  name:
    "explore() of the needle capture is photographed light and dark, and compare mode",
  ignore: !chromium.ok && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (!chromium.ok) assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
    const capture = await loadCapture(NEEDLE.pathname);
    const browser = await puppeteer.launch({
      executablePath: chromium.path,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
    });
    try {
      const shots = [
        ["light", "light"],
        ["dark", "dark"],
        ["compare", "light"],
      ] as const;
      for (const [name, theme] of shots) {
        // Compare mode: two seeded synthetic captures of the same 40 tokens.
        const html = await (name === "compare"
          ? explore(explorerCapture(40, 4, 2, { seed: 1 }), {
            compare: explorerCapture(40, 4, 2, { seed: 5 }),
            theme,
            title: "Compare mode: a - b of two synthetic captures",
          })
          : explore(capture, {
            theme,
            title: `Needle study: attention explorer (${theme})`,
          })).toHTML();
        const path = await Deno.makeTempFile({ suffix: ".html" });
        await Deno.writeTextFile(
          path,
          `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:12px;background:${
            HOST[theme]
          }">${html}</body></html>`,
        );
        const page = await browser.newPage();
        await page.setViewport({ width: 1240, height: 1000 });
        const errors: string[] = [];
        page.on("pageerror", (e) =>
          errors.push(String(e)));
        await page.goto(`file://${path}`, { waitUntil: "load" });
        await page.waitForFunction(
          () => {
            const r = document.querySelector<HTMLElement>(
              ".attnscope-explorer",
            );
            return r?.dataset.ready || r?.dataset.error;
          },
          { timeout: 15000 },
        );
        // The layer x head thumbnails draw after the first paint; each says
        // when it has.
        await page.waitForFunction(
          () =>
            document.querySelectorAll(".ax-thumb").length > 0 &&
            document.querySelector(".ax-thumb:not([data-drawn])") === null,
          { timeout: 60_000 },
        );
        assert.equal(
          await page.$eval(
            ".attnscope-explorer",
            (r) => (r as HTMLElement).dataset.theme,
          ),
          theme,
        );
        const root = (await page.$(".attnscope-explorer"))!;
        const shot = await root.screenshot({ type: "png" });
        await savePhoto(`explorer-${name}.png`, shot);
        const image = decodePng(shot);
        const whole = { x: 0, y: 0, width: image.width, height: image.height };
        assert.ok(inkIn(image, whole) > 0.02, `${name} picture has ink`);
        // The top-left corner is the explorer's own background.
        const px = image.rgba.subarray(0, 3);
        const lum = (0.2126 * px[0] + 0.7152 * px[1] + 0.0722 * px[2]) / 255;
        if (theme === "dark") assert.ok(lum < 0.3, `dark background ${lum}`);
        else assert.ok(lum > 0.8, `light background ${lum}`);
        assert.deepEqual(errors, []);
        await page.close();
        await Deno.remove(path);
      }
    } finally {
      await browser.close();
    }
  },
});
