/// <reference lib="dom" />
/**
 * No text can break or script an explorer page: token labels and the title
 * carry comment openers followed by script tags, closing script tags, CDATA
 * ends, quotes, backticks, event-handler markup and line separators. In
 * Debian's Chromium (npm:puppeteer-core) the live view must still mount,
 * every label must read back verbatim, and nothing injected may run; the
 * static fallback (scripts stripped, as sanitizers do) must show the same
 * text and run nothing either. Skipped with the reason where Chromium is
 * missing; under `CI=true` that fails.
 */

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium } from "../scripts/jupyter_env.ts";
import { explore } from "../lib/explorer/explorer.ts";
import { explorerCapture } from "./_explorer_fixtures.ts";

const CI = Deno.env.get("CI") === "true";
const chromium = await findChromium();
if (!chromium.ok) {
  console.log(
    `${
      CI ? "FAIL" : "Skipping"
    } explorer text-safety tests: ${chromium.reason}`,
  );
}
const ignore = !chromium.ok && !CI;

/**
 * Text that has broken or scripted pages; each would set `__pwned`. No
 * `-->` on purpose: it would end the comment a `<!--` opened and so hide
 * the breakage this corpus exists to catch.
 */
const NASTY = [
  "<!--",
  "<script>window.__pwned='script'</script>",
  "</script>",
  "<!-- <script>",
  "</script><script>window.__pwned='close'</script>",
  "\u2028",
  "\u2029",
  "a\u2028b\u2029c",
  "]]>",
  "<![CDATA[",
  '"',
  "'",
  "`${window.__pwned='template'}`",
  "<img src=x onerror=\"window.__pwned='img'\">",
  "<svg onload=\"window.__pwned='svg'\"></svg>",
  "&amp;&lt;",
  '"><script>window.__pwned="attr"</script>',
  "<style>*{display:none}</style>",
  "\\u003c",
];
const TITLE =
  "<!-- <script>window.__pwned='title'</script> ]]> \u2028 \"' `x` &lt;";

async function launch(): Promise<Browser> {
  if (!chromium.ok) assert.fail(`Cannot drive Chromium: ${chromium.reason}`);
  return await puppeteer.launch({
    executablePath: chromium.path,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
}

async function pageFile(body: string): Promise<string> {
  const path = await Deno.makeTempFile({ suffix: ".html" });
  await Deno.writeTextFile(
    path,
    `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${body}</body></html>`,
  );
  return path;
}

interface Opened {
  page: Page;
  errors: string[];
  dialogs: string[];
}

async function open(browser: Browser, path: string): Promise<Opened> {
  const page = await browser.newPage();
  const errors: string[] = [];
  const dialogs: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("dialog", async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  await page.setOfflineMode(true);
  await page.goto(`file://${path}`, { waitUntil: "load" });
  return { page, errors, dialogs };
}

function nastyCapture() {
  const t = NASTY.length + 4;
  const capture = explorerCapture(t, 2, 2, { seed: 5 });
  const labels = Array.from(
    { length: t },
    (_, p) => p < NASTY.length ? NASTY[p] : ` plain${p}`,
  );
  return { capture, labels };
}

Deno.test("explore() embeds nasty text as JSON that parses back exactly and cannot end its script element", async () => {
  const { capture, labels } = nastyCapture();
  const html = await explore(capture, { labels, title: TITLE }).toHTML();
  const scripts = [...html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
  // The explorer's own three: the JSON header, the blob, the bundle; and the
  // first `</script>` after each opener is the one the explorer wrote.
  assert.equal(scripts.length, 3, "three script elements, no injected one");
  for (const [, body] of scripts) {
    assert.doesNotMatch(body, /<!--|<script|<\/script/i);
    assert.doesNotMatch(body, /[\u2028\u2029]/);
  }
  const meta = JSON.parse(scripts[0][1]);
  assert.deepEqual(meta.labels, labels);
  assert.equal(meta.title, TITLE);
});

Deno.test({
  name:
    "explore() page with nasty labels and title mounts in Chromium, shows every label verbatim and runs nothing injected",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { capture, labels } = nastyCapture();
    const html = await explore(capture, { labels, title: TITLE }).toHTML();
    const path = await pageFile(html);
    const browser = await launch();
    try {
      const { page, errors, dialogs } = await open(browser, path);
      await page.waitForFunction(
        () => {
          const r = document.querySelector<HTMLElement>(".attnscope-explorer");
          return r?.dataset.ready || r?.dataset.error;
        },
        { timeout: 15000 },
      );
      const state = await page.evaluate(() => {
        const root = document.querySelector<HTMLElement>(
          ".attnscope-explorer",
        )!;
        return {
          ready: root.dataset.ready !== undefined,
          error: root.dataset.error ?? null,
          fallbackHidden: root.querySelector(".ax-fallback")!.hasAttribute(
            "hidden",
          ),
          tokens: [...root.querySelectorAll<HTMLElement>(".ax-app .ax-tok")]
            .map((e) => e.textContent),
          text: root.textContent ?? "",
          pwned: (globalThis as { __pwned?: unknown }).__pwned ?? null,
          scripts: document.scripts.length,
          injected: document.querySelectorAll(
            "body > svg, .ax-app img, .ax-app svg, .ax-app style",
          ).length,
        };
      });
      assert.equal(state.error, null, "the live view did not fail");
      assert.ok(state.ready, "the live view mounted");
      assert.ok(state.fallbackHidden, "the live view replaced the fallback");
      assert.deepEqual(state.tokens, labels, "every label reads back verbatim");
      assert.ok(state.text.includes(TITLE), "the title reads back verbatim");
      assert.equal(state.pwned, null, "no injected script or handler ran");
      assert.equal(state.scripts, 3, "no script element was injected");
      assert.equal(state.injected, 0, "no markup was injected into the view");
      // Hover a nasty token: the shading still works (it is a token like any).
      const tok = await page.$('.ax-app .ax-tok[data-index="3"]');
      await tok!.hover();
      const weight = await tok!.evaluate((e) =>
        (e as HTMLElement).dataset.weight
      );
      assert.ok(weight !== undefined, "hovered token has data-weight");
      assert.deepEqual(dialogs, []);
      assert.deepEqual(errors, []);
      assert.equal(
        await page.evaluate(() =>
          (globalThis as { __pwned?: unknown }).__pwned ?? null
        ),
        null,
      );
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});

Deno.test({
  name:
    "explore() static fallback with nasty labels (scripts stripped) shows the text verbatim and runs nothing injected",
  ignore,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { capture, labels } = nastyCapture();
    const html = await explore(capture, { labels, title: TITLE }).toHTML();
    // What a sanitizer leaves: the explorer's script elements removed. Any
    // text that escaped its element would survive this and run.
    const stripped = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, "");
    const path = await pageFile(stripped);
    const browser = await launch();
    try {
      const { page, errors, dialogs } = await open(browser, path);
      const state = await page.evaluate(() => {
        const root = document.querySelector<HTMLElement>(
          ".attnscope-explorer",
        )!;
        const fallback = root.querySelector<HTMLElement>(".ax-fallback")!;
        return {
          text: fallback.textContent ?? "",
          header: root.textContent ?? "",
          pwned: (globalThis as { __pwned?: unknown }).__pwned ?? null,
          scripts: document.scripts.length,
          images: fallback.querySelectorAll("img").length,
          pictures:
            fallback.querySelectorAll("img.ax-fb-heatmap, img.ax-fb-text")
              .length,
          visible: fallback.getBoundingClientRect().height > 50,
        };
      });
      assert.equal(state.pwned, null, "no injected script or handler ran");
      assert.equal(state.scripts, 0);
      assert.equal(
        state.images,
        2,
        "only the heatmap and token text pictures, no injected img",
      );
      assert.equal(state.pictures, 2);
      assert.ok(state.visible, "the fallback shows");
      assert.ok(state.header.includes(TITLE), "the title reads back verbatim");
      for (const label of labels) {
        assert.ok(
          state.text.includes(label),
          `the fallback shows ${JSON.stringify(label)} verbatim`,
        );
      }
      assert.deepEqual(dialogs, []);
      assert.deepEqual(errors, []);
    } finally {
      await browser.close();
      await Deno.remove(path);
    }
  },
});
