/// <reference lib="dom" />
/**
 * The explorer in headless Chromium at T = 4096 (8 heads, 3 layers): when
 * it is ready (from navigation start, `performance.timeOrigin`, against
 * the 1.5 s issue 20 asks at T = 4096; and after load), and how long a
 * token hover, a pin and a head change take to update the page, measured
 * inside the page with `performance.now()` through the DevTools protocol
 * (npm:puppeteer-core, Debian's Chromium).
 *
 * With `--anchor=PAGE.html` (the same capture saved by another commit's
 * explorer, e.g. `deno run -A bench/explorer_page.ts --save=old.html` run
 * in that commit's tree) runs alternate between the anchor and this page,
 * and the medians print side by side with their ratio.
 *
 * Run: `deno task bench:explorer-page [T] [--anchor=PAGE.html] [--save=PAGE.html]`
 */

import { parseArgs } from "node:util";
import puppeteer from "puppeteer-core";
import { explore } from "../mod.ts";
import { findChromium } from "../scripts/jupyter_env.ts";
import { syntheticLayer } from "../tests/charts_fixtures.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { anchor: { type: "string" }, save: { type: "string" } },
  allowPositionals: true,
});
const t = Number(positionals[0] ?? 4096);
const chromium = await findChromium();
if (!chromium.ok) {
  throw new Error(`Cannot measure the page: ${chromium.reason}`);
}
const capture = Object.fromEntries(
  [2, 18, 27].map((layer, i) => [
    layer,
    syntheticLayer({ tokens: t, heads: 8, layer, seed: i + 1 }),
  ]),
);
const view = explore(capture);
const path = values.save ?? await Deno.makeTempFile({ suffix: ".html" });
await view.save(path);
const stats = await view.stats();
const kept = stats.reduced.match(/the (\d+) strongest keys/)?.[1];
console.log(
  `T=${t}: ${
    (stats.bytes / 1024 / 1024).toFixed(2)
  } MiB, ${stats.fullHeads} heads full, ${stats.reducedHeads} reduced${
    kept ? ` (top ${kept} keys per row)` : ""
  }`,
);
/** Ready within this long of navigation start at T = 4096 (issue 20). */
const READY_MS = 1500;
const browser = await puppeteer.launch({
  executablePath: chromium.path,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu"],
});
const pages = values.anchor
  ? [["anchor", values.anchor], ["this", path]]
  : [["this", path]];
const ready: Record<string, number[]> = {};
try {
  for (let i = 0; i < 3 * pages.length; i++) {
    const [name, file] = pages[i % pages.length];
    const run = Math.floor(i / pages.length);
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 1000 });
    await page.goto(`file://${file}`, { waitUntil: "load" });
    await page.waitForFunction(() => {
      const r = document.querySelector<HTMLElement>(".attnscope-explorer");
      return r?.dataset.ready || r?.dataset.error;
    }, { timeout: 60000 });
    const timings = await page.evaluate(() => {
      const root = document.querySelector<HTMLElement>(".attnscope-explorer")!;
      const nav = performance.getEntriesByType(
        "navigation",
      )[0] as PerformanceNavigationTiming;
      const toks = root.querySelectorAll<HTMLElement>(".ax-tok");
      const time = (f: () => void) => {
        const s = performance.now();
        f();
        return performance.now() - s;
      };
      const hover = [] as number[];
      for (const i of [toks.length - 5, 100, toks.length >> 1]) {
        hover.push(
          time(() =>
            toks[i].dispatchEvent(
              new MouseEvent("mouseover", { bubbles: true }),
            )
          ),
        );
      }
      const pin = time(() =>
        toks[200].dispatchEvent(new MouseEvent("click", { bubbles: true }))
      );
      const chip = root.querySelector<HTMLElement>('.ax-chip[data-head="3"]')!;
      const head = time(() =>
        chip.dispatchEvent(new MouseEvent("click", { bubbles: true }))
      );
      const mode = time(() =>
        root.querySelector<HTMLElement>(".ax-mode")!.click()
      );
      return {
        firstPaint: Number(root.dataset.ready) - nav.loadEventStart,
        phases: root.dataset.timings,
        sinceNavigation: Number(root.dataset.ready),
        hover: Math.max(...hover),
        pin,
        head,
        mode,
      };
    });
    const verdict = t === 4096
      ? timings.sinceNavigation <= READY_MS
        ? " [within 1.5 s]"
        : " [OVER 1.5 s]"
      : "";
    (ready[name] ??= []).push(timings.sinceNavigation);
    console.log(
      `${name} run ${run + 1}${verdict}: ready ${
        timings.firstPaint.toFixed(0)
      } ms after load (${
        timings.sinceNavigation.toFixed(0)
      } ms after navigation start; decode, DOM, draw: ${timings.phases} ms); hover ${
        timings.hover.toFixed(1)
      } ms, pin ${timings.pin.toFixed(1)} ms, head toggle ${
        timings.head.toFixed(1)
      } ms, received toggle ${timings.mode.toFixed(1)} ms`,
    );
    await page.close();
  }
  const median = (xs: number[]) =>
    xs.slice().sort((a, b) => a - b)[xs.length >> 1];
  const mine = median(ready.this);
  console.log(
    `ready after navigation start, median of 3: ${mine.toFixed(0)} ms${
      ready.anchor
        ? `; anchor ${median(ready.anchor).toFixed(0)} ms; ratio ${
          (mine / median(ready.anchor)).toFixed(2)
        }`
        : ""
    }`,
  );
} finally {
  await browser.close();
  if (!values.save) await Deno.remove(path);
}
