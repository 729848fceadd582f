/// <reference lib="dom" />
/**
 * Cross-attention in the explorer: `explore(x, { queryLabels, keyLabels })`
 * for a layer whose query tokens are not its key tokens ([Tq, H, Tk], Tq !=
 * Tk) shows two strips; hovering a query shades the keys by its row, a key
 * shades the queries by its column, and the matrix axes name each. Driven
 * in Debian's Chromium through npm:puppeteer-core; skipped with the reason
 * where it is missing, failing under `CI=true`.
 */

import assert from "node:assert/strict";
import puppeteer, { type Page } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { explore } from "../lib/explorer/explorer.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { seededRandom } from "../lib/random.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${
      CI ? "FAIL" : "Skipping"
    } explorer cross-attention tests: ${chromium.reason}`,
  );
}
const ignore = !chromium.ok && !CI;

/** A decoder layer's cross-attention: every row a softmax over all keys. */
function crossLayer(tq: number, heads: number, tk: number): AttentionLayer {
  const random = seededRandom(5);
  const data = new Float32Array(tq * heads * tk);
  for (let i = 0; i < tq * heads; i++) {
    let sum = 0;
    for (let k = 0; k < tk; k++) {
      const v = Math.exp(3 * random());
      data[i * tk + k] = v;
      sum += v;
    }
    for (let k = 0; k < tk; k++) data[i * tk + k] /= sum;
  }
  return new AttentionLayer({
    layer: 1,
    model: "test",
    scores: new AttentionScores(data, [tq, heads, tk], {
      queryPositions: Array.from({ length: tq }, (_, i) => i),
    }),
    tokenMeta: TokenMeta.from({}),
  });
}

const QUERIES = ["<s>", " Le", " chat", " est", " assis", " <b>"];
const KEYS = ["The", " cat", " sat", " on", " the", " mat", ".", "</s>", "&"];

Deno.test("explore() refuses cross-attention labels that do not fit the shape, saying what to pass", () => {
  const layer = crossLayer(6, 2, 9);
  assert.throws(
    () => explore(layer, { queryLabels: QUERIES }),
    /^TypeError: Cannot explore cross-attention: only queryLabels given; pass both/,
  );
  assert.throws(
    () => explore(layer, { queryLabels: QUERIES, keyLabels: KEYS.slice(1) }),
    /^RangeError: Cannot explore cross-attention: 6 queryLabels and 8 keyLabels for shape \[6,2,9\]; pass 6 and 9$/,
  );
});

async function texts(page: Page, selector: string): Promise<string[]> {
  return await page.$$eval(selector, (es) => es.map((e) => e.textContent!));
}

async function weightsOf(page: Page, selector: string) {
  return await page.$$eval(
    selector,
    (es) =>
      es.map((e) => {
        const w = (e as HTMLElement).dataset.weight;
        return w === undefined ? null : Number(w);
      }),
  );
}

for (const [tq, tk] of [[6, 9], [9, 6]]) {
  Deno.test({
    name:
      `explore() with queryLabels and keyLabels shows two strips of a [${tq}, 2, ${tk}] layer, shading keys by a query's row and queries by a key's column`,
    ignore,
    sanitizeOps: false,
    sanitizeResources: false,
    async fn(t) {
      const layer = crossLayer(tq, 2, tk);
      const queryLabels = Array.from(
        { length: tq },
        (_, i) => QUERIES[i % QUERIES.length] + (i >= QUERIES.length ? i : ""),
      );
      const keyLabels = Array.from(
        { length: tk },
        (_, i) => KEYS[i % KEYS.length] + (i >= KEYS.length ? i : ""),
      );
      const html = await explore(layer, { queryLabels, keyLabels }).toHTML();
      const path = await Deno.makeTempFile({ suffix: ".html" });
      await Deno.writeTextFile(
        path,
        `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${html}</body></html>`,
      );
      if (!chromium.ok) assert.fail(chromium.reason);
      const browser = await puppeteer.launch({
        executablePath: chromium.path,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
      });
      try {
        const page = await browser.newPage();
        await page.setViewport({ width: 1200, height: 1000 });
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(String(e)));
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
        const s = layer.scores;
        const mean = (r: number, k: number) =>
          (s.get(r, 0, k) + s.get(r, 1, k)) / 2;

        await t.step(
          "explore() shows the query and the key tokens as two strips",
          async () => {
            assert.equal(
              await page.$eval(
                ".attnscope-explorer",
                (r) => (r as HTMLElement).dataset.error ?? "",
              ),
              "",
            );
            assert.deepEqual(
              await texts(page, ".ax-queries .ax-tok"),
              queryLabels,
            );
            assert.deepEqual(await texts(page, ".ax-keys .ax-tok"), keyLabels);
            assert.equal(
              await page.$eval(
                ".attnscope-explorer",
                (r) => (r as HTMLElement).dataset.causal,
              ),
              "0",
            );
          },
        );

        await t.step(
          "explore() hovering query 2 shades every key by row 2 (data-weight, 1e-3)",
          async () => {
            await (await page.$('.ax-queries .ax-tok[data-index="2"]'))!
              .hover();
            const shown = await weightsOf(page, ".ax-keys .ax-tok");
            assert.equal(shown.length, tk);
            for (let k = 0; k < tk; k++) {
              assert.ok(
                Math.abs(shown[k]! - mean(2, k)) <= 1e-3,
                `key ${k}: ${shown[k]} vs ${mean(2, k)}`,
              );
            }
            assert.ok(
              (await weightsOf(page, ".ax-queries .ax-tok")).every((w) =>
                w === null
              ),
            );
            assert.ok(
              await page.$eval(
                '.ax-queries .ax-tok[data-index="2"]',
                (e) => e.classList.contains("ax-sel"),
              ),
            );
          },
        );

        await t.step(
          "explore() hovering key 4 shades every query by column 4",
          async () => {
            await (await page.$('.ax-keys .ax-tok[data-index="4"]'))!.hover();
            assert.equal(
              await page.$eval(
                ".attnscope-explorer",
                (r) => (r as HTMLElement).dataset.mode,
              ),
              "received",
            );
            const shown = await weightsOf(page, ".ax-queries .ax-tok");
            for (let r = 0; r < tq; r++) {
              assert.ok(
                Math.abs(shown[r]! - mean(r, 4)) <= 1e-3,
                `query ${r}: ${shown[r]} vs ${mean(r, 4)}`,
              );
            }
          },
        );

        await t.step(
          "explore() labels the matrix rows by queries, the columns by keys, and the tooltip by both",
          async () => {
            const rows = await texts(page, ".ax-axis-q span");
            const cols = await texts(page, ".ax-axis-k span");
            assert.deepEqual(
              rows,
              queryLabels.map((l) =>
                JSON.stringify(l).slice(1, -1).slice(0, 10)
              ),
            );
            assert.deepEqual(
              cols,
              keyLabels.map((l) => JSON.stringify(l).slice(1, -1).slice(0, 10)),
            );
            const box = (await (await page.$(".ax-matrix"))!.boundingBox())!;
            await page.mouse.move(
              box.x + 3.5 * box.width / tk,
              box.y + 1.5 * box.height / tq,
            );
            const tip = await page.$eval(".ax-tip", (e) => e.textContent ?? "");
            assert.equal(
              tip,
              `q ${JSON.stringify(queryLabels[1]).slice(1, -1)} 1 → k ${
                JSON.stringify(keyLabels[3]).slice(1, -1)
              } 3: ${mean(1, 3).toFixed(4)}`,
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
}
