/// <reference lib="dom" />
// The front end's `Jupyter` global is untyped.
// deno-lint-ignore-file no-explicit-any
/**
 * The explorer in Debian's classic notebook front end (`jupyter notebook`
 * 6.4, its sanitizer strips scripts, `<style>`, `<svg>` and style
 * attributes from untrusted outputs), driven in Chromium through
 * npm:puppeteer-core, with the Deno kernel:
 *
 * - untrusted, a saved explorer output shows its static picture: the
 *   heatmap and the shaded token text with its legend as images that load,
 *   no run of bare legend numbers, no embedded data as text, no live view;
 * - trusted (signed as `jupyter trust` does) the stored output mounts the
 *   live view, hover changes `data-weight`, and keys pressed inside the
 *   explorer (arrows, `[`, `]`, Escape, and command-mode letters a, b, x,
 *   j, k) neither add, delete nor move cells; the same keys outside do;
 * - executed in the kernel, the new output mounts too;
 * - a chart's default display (as the kernel makes it) shows its PNG copy
 *   untrusted, with no SVG and no leftover labels visible, and its SVG alone
 *   trusted; its `asImage()` output shows as a loaded image untrusted.
 *
 * Screenshots of the untrusted fallback (light and dark) and of the chart
 * cell (untrusted, trusted) go to
 * `.artifacts/`. Where Jupyter's notebook server or Chromium is missing the
 * test is skipped with the reason; under `CI=true` it fails.
 */

import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { findChromium, temporaryJupyter } from "../scripts/jupyter_env.ts";
import { explore } from "../lib/explorer/explorer.ts";
import { loadCapture } from "../lib/sources/files/capture_file.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { attentionHeatmap } from "../lib/charts/heatmap.ts";
import { setImageFallback } from "../lib/charts/_fallback.ts";

const CI = Deno.env.get("CI") === "true";
const NEEDLE = new URL("../notebooks/captures/needle.attn", import.meta.url);
const ARTIFACTS = new URL("../.artifacts/", import.meta.url);
const chromium = await findChromium();
const notebookServer = await new Deno.Command("jupyter", {
  args: ["notebook", "--version"],
  stdout: "null",
  stderr: "null",
}).output().then((r) => r.success, () => false);
const missing = !chromium.ok
  ? chromium.reason
  : !notebookServer
  ? "no classic notebook server (`jupyter notebook`); install it with `apt-get install jupyter-notebook`"
  : "";
if (missing) {
  console.log(`${CI ? "FAIL" : "Skipping"} classic notebook test: ${missing}`);
}

/** A figure's bundle as Deno's kernel makes it (the PNG copy on). */
async function kernelBundle(
  figure: { [JUPYTER_DISPLAY](): Record<string, unknown> },
): Promise<Record<string, unknown>> {
  await setImageFallback(true);
  try {
    return figure[JUPYTER_DISPLAY]();
  } finally {
    await setImageFallback(false);
  }
}

/** The notebook: two explorer outputs (light, dark) and two small cells. */
async function writeNotebook(path: string): Promise<void> {
  const capture = await loadCapture(NEEDLE.pathname);
  const source = (theme: string) =>
    [
      `import { explore } from "${new URL(
        "../lib/explorer/explorer.ts",
        import.meta.url,
      )}";`,
      `import { loadCapture } from "${new URL(
        "../lib/sources/files/capture_file.ts",
        import.meta.url,
      )}";`,
      `explore(await loadCapture(${
        JSON.stringify(NEEDLE.pathname)
      }), { theme: "${theme}" });`,
    ].join("\n");
  const cell = async (theme: "light" | "dark", n: number) => ({
    cell_type: "code",
    execution_count: n,
    metadata: {},
    source: source(theme),
    outputs: [{
      output_type: "execute_result",
      execution_count: n,
      metadata: {},
      data: await explore(capture, { theme })[JUPYTER_DISPLAY](),
    }],
  });
  const figure = attentionHeatmap(Object.values(capture.attention).at(-1)!, {
    labels: capture.labels ?? undefined,
    width: 480,
  });
  const figureCell = (data: Record<string, unknown>, n: number) => ({
    cell_type: "code",
    execution_count: n,
    metadata: {},
    source: "// a chart",
    outputs: [{
      output_type: "execute_result",
      execution_count: n,
      metadata: {},
      data,
    }],
  });
  const notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: {
        name: "deno",
        display_name: "Deno",
        language: "typescript",
      },
      language_info: { name: "typescript" },
    },
    cells: [
      await cell("light", 1),
      await cell("dark", 2),
      {
        cell_type: "code",
        execution_count: null,
        metadata: {},
        source: "1 + 1",
        outputs: [],
      },
      { cell_type: "markdown", metadata: {}, source: "The end." },
      // A chart as a Figure shows itself in the kernel (inline SVG plus its
      // PNG copy), then as an image.
      figureCell(await kernelBundle(figure), 3),
      figureCell((await figure.asImage())[JUPYTER_DISPLAY](), 4),
    ].map((c, i) => ({ id: `cell-${i}`, ...c })),
  };
  await Deno.writeTextFile(path, JSON.stringify(notebook));
}

/** The chart cells' outputs (cells 4 and 5): what shows of each. */
function chartOutputs(page: Page) {
  return page.$$eval(".cell", (cells) =>
    cells.slice(4).map((c) => {
      const out = c.querySelector<HTMLElement>(".output_subarea")!;
      const img = out.querySelector("img");
      const svg = out.querySelector("svg");
      return {
        text: out.innerText.trim(),
        svg: out.querySelectorAll("svg").length,
        svgShown: (svg?.getBoundingClientRect().width ?? 0) > 0,
        shown: (img?.getBoundingClientRect().width ?? 0) > 0,
        width: img?.naturalWidth ?? 0,
        alt: img?.alt ?? "",
      };
    }));
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Waits until `url` answers 200 (the server is up), or fails. */
async function waitForServer(
  url: string,
  server: Deno.ChildProcess,
): Promise<void> {
  const exited = server.status.then(() => true);
  for (let i = 0; i < 600; i++) {
    if (await Promise.race([exited, Promise.resolve(false)])) {
      assert.fail("the notebook server exited before it answered");
    }
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`the notebook server did not answer ${url} within 120 s`);
}

/** Opens the notebook and waits until the classic front end has loaded it. */
async function openNotebook(page: Page, url: string): Promise<void> {
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 120_000 });
  await page.waitForFunction(
    () => {
      const j = (globalThis as any).Jupyter;
      return j?.notebook?._fully_loaded === true &&
        document.querySelectorAll(".output_subarea").length >= 2;
    },
    { timeout: 120_000, polling: 100 },
  );
}

/** Cell count, selected cell index, and the notebook's mode. */
function cellState(page: Page) {
  return page.evaluate(() => {
    const nb = (globalThis as any).Jupyter.notebook;
    return {
      cells: nb.ncells() as number,
      selected: nb.get_selected_index() as number,
    };
  });
}

/** `data-weight` of every token of explorer `n`. */
function weights(page: Page, n: number): Promise<(string | undefined)[]> {
  return page.$$eval(
    ".attnscope-explorer",
    (roots, n) =>
      [...roots[n as number].querySelectorAll<HTMLElement>(".ax-tok")].map((
        e,
      ) => e.dataset.weight),
    n,
  );
}

Deno.test({
  name:
    "explore() output in the classic notebook: untrusted shows the heatmap, shaded text and legend as images; trusted mounts, hovers and keeps its keys from command mode; executed mounts",
  ignore: Boolean(missing) && !CI,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    if (missing) {
      assert.fail(`Cannot run the classic notebook test: ${missing}`);
    }
    const jupyter = await temporaryJupyter();
    const dir = await Deno.makeTempDir({ prefix: "attnscope-classic-" });
    const env = {
      ...jupyter.env,
      JUPYTER_CONFIG_DIR: `${jupyter.dir}/config`,
      HOME: Deno.env.get("HOME") ?? jupyter.dir,
    };
    await writeNotebook(`${dir}/explorer.ipynb`);
    const port = freePort();
    const token = crypto.randomUUID().replaceAll("-", "");
    const server = new Deno.Command("jupyter", {
      args: [
        "notebook",
        "--no-browser",
        "--ip=127.0.0.1",
        `--port=${port}`,
        "--port-retries=0",
        `--NotebookApp.token=${token}`,
        `--NotebookApp.notebook_dir=${dir}`,
        // CI containers often run as root, which the server refuses.
        ...(Deno.uid() === 0 ? ["--allow-root"] : []),
      ],
      env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log: string[] = [];
    const drain = server.stderr.pipeThrough(new TextDecoderStream())
      .pipeTo(
        new WritableStream({ write: (chunk) => void log.push(chunk) }),
      ).catch(() => {});
    let browser: Browser | null = null;
    const base = `http://127.0.0.1:${port}`;
    const nbUrl = `${base}/notebooks/explorer.ipynb?token=${token}`;
    try {
      await waitForServer(`${base}/api/status?token=${token}`, server);
      browser = await puppeteer.launch({
        executablePath: chromium.ok ? chromium.path : undefined,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--no-first-run"],
      });
      const errors: string[] = [];
      const newPage = async () => {
        const page = await browser!.newPage();
        await page.setViewport({ width: 1200, height: 900 });
        page.on("pageerror", (e) => errors.push(String(e)));
        // "Leave site?" prompts would block navigation.
        page.on("dialog", (d) => void d.accept().catch(() => {}));
        return page;
      };
      let page = await newPage();

      // 1. Untrusted: the static picture, as images.
      await openNotebook(page, nbUrl);
      // No autosave: a save of the untrusted page would drop the signature.
      await page.evaluate(() =>
        (globalThis as any).Jupyter.notebook.set_autosave_interval(0)
      );
      const untrusted = await page.$$eval(
        ".attnscope-explorer",
        (roots) =>
          roots.map((r) => ({
            images: [...r.querySelectorAll("img")].map((img) => ({
              cls: img.className,
              width: img.naturalWidth,
              complete: img.complete,
              alt: img.alt,
            })),
            text: (r as HTMLElement).innerText,
            live: r.querySelectorAll(".ax-tok").length,
            svg: r.querySelectorAll("svg").length,
            scripts: r.querySelectorAll("script").length,
          })),
      );
      const trusted0 = await page.evaluate(() =>
        (globalThis as any).Jupyter.notebook.trusted
      );
      assert.equal(trusted0, false, "the notebook opens untrusted");
      assert.equal(untrusted.length, 2, "both explorer outputs are shown");
      for (const [i, r] of untrusted.entries()) {
        assert.equal(
          r.scripts,
          0,
          `explorer ${i}: the sanitizer removed scripts`,
        );
        assert.equal(r.svg, 0, `explorer ${i}: no SVG is left`);
        assert.equal(r.live, 0, `explorer ${i}: the live view did not mount`);
        // A stripped SVG legend leaves its tick labels as bare text.
        assert.doesNotMatch(
          r.text,
          /(?:\d\.\d{1,3}\s*){3,}/,
          "no run of numbers",
        );
        assert.doesNotMatch(r.text, /[A-Za-z0-9+/]{200}/, "no data as text");
        const byClass = Object.fromEntries(r.images.map((m) => [m.cls, m]));
        for (const cls of ["ax-fb-heatmap", "ax-fb-text"]) {
          assert.ok(byClass[cls], `explorer ${i}: the ${cls} image is kept`);
          assert.ok(
            byClass[cls].complete && byClass[cls].width > 100,
            `explorer ${i}: the ${cls} image loads (naturalWidth ${
              byClass[cls].width
            })`,
          );
        }
        assert.match(byClass["ax-fb-text"].alt, /alpha: 1729/);
        assert.match(r.text, /needs scripts/);
      }
      // Charts: a Figure's inline SVG is stripped (its labels left in a
      // hidden box), its PNG copy shows; asImage() survives too.
      const charts = await chartOutputs(page);
      console.log(
        `untrusted Figure: ${charts[0].svg} svg left, visible text ${
          JSON.stringify(charts[0].text.slice(0, 80))
        }, image ${charts[0].width}px wide`,
      );
      assert.equal(charts[0].svg, 0, "the sanitizer strips the SVG");
      assert.ok(
        charts[0].shown && charts[0].width > 100,
        `the Figure's PNG copy loads: ${JSON.stringify(charts[0])}`,
      );
      assert.match(charts[0].alt, /^Heatmap of layer/);
      assert.equal(charts[0].text, "", "no leftover labels show");
      assert.ok(charts[1].width > 100, `asImage() loads: ${charts[1].width}`);
      assert.match(charts[1].alt, /^Heatmap of layer/);
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      // Room for whole outputs (the notebook scrolls inside a fixed-height
      // panel), and no MathJax loading message over them.
      await page.setViewport({ width: 1000, height: 3200 });
      await page.addStyleTag({
        content: "#MathJax_Message{display:none!important}",
      });
      const outputs = await page.$$(".attnscope-explorer");
      for (const [i, name] of ["light", "dark"].entries()) {
        const shot = await outputs[i].screenshot({ type: "png" });
        await Deno.writeFile(
          new URL(`classic-untrusted-${name}.png`, ARTIFACTS),
          shot,
        );
      }

      const chartCells = await page.$$(".cell");
      await Deno.writeFile(
        new URL("classic-untrusted-chart.png", ARTIFACTS),
        await chartCells[4].screenshot({ type: "png" }),
      );

      await page.close({ runBeforeUnload: false });

      // 2. Trusted: sign it as `jupyter trust` does, and reload.
      const sign = await new Deno.Command("/usr/bin/python3", {
        args: [
          "-c",
          "import sys, nbformat; from nbformat.sign import NotebookNotary; nb = nbformat.read(sys.argv[1], 4); NotebookNotary().sign(nb)",
          `${dir}/explorer.ipynb`,
        ],
        env,
      }).output();
      assert.ok(sign.success, new TextDecoder().decode(sign.stderr));
      page = await newPage();
      await openNotebook(page, nbUrl);
      await page.waitForSelector(
        ".attnscope-explorer[data-mounted] .ax-tok",
        { timeout: 60_000 },
      );
      const trusted1 = await page.evaluate(() =>
        (globalThis as any).Jupyter.notebook.trusted
      );
      assert.equal(trusted1, true);
      const fallbackHidden = await page.$$eval(
        ".attnscope-explorer .ax-fallback",
        (els) => els.map((e) => (e as HTMLElement).offsetParent === null),
      );
      assert.deepEqual(fallbackHidden, [true, true], "live: fallback hidden");
      const trustedCharts = await chartOutputs(page);
      assert.ok(trustedCharts[0].svg > 0, "trusted: the Figure's SVG");
      assert.ok(trustedCharts[0].svgShown, "trusted: the SVG shows");
      assert.equal(trustedCharts[0].shown, false, "trusted: copy hidden");
      await Deno.mkdir(ARTIFACTS, { recursive: true });
      await page.setViewport({ width: 1000, height: 3200 });
      const trustedCells = await page.$$(".cell");
      await Deno.writeFile(
        new URL("classic-trusted-chart.png", ARTIFACTS),
        await trustedCells[4].screenshot({ type: "png" }),
      );
      const before = await weights(page, 0);
      const roots = await page.$$(".attnscope-explorer");
      const tok = await roots[0].$$(".ax-tok");
      assert.ok(tok.length > 100, `${tok.length} tokens`);
      await tok[40].hover();
      await page.waitForFunction(
        (b) => {
          const w = [
            ...document.querySelector(".attnscope-explorer")!
              .querySelectorAll<HTMLElement>(".ax-tok"),
          ].map((e) => e.dataset.weight);
          return w.join() !== (b as string);
        },
        { timeout: 30_000 },
        before.join(),
      );

      // 3. Keys inside the explorer stay there, even with command mode on.
      await page.evaluate(() => {
        const nb = (globalThis as any).Jupyter.notebook;
        nb.select(2);
        nb.command_mode();
      });
      const start = await cellState(page);
      await page.mouse.move(5, 5); // leave the token: hover off
      await page.evaluate(() => {
        const root = document.querySelector<HTMLElement>(
          ".attnscope-explorer",
        )!;
        root.focus();
        // Focus inside an output switches Jupyter's shortcuts off; switch
        // them back on, so that only the explorer's own isolation counts.
        (globalThis as any).Jupyter.keyboard_manager.enable();
      });
      const w0 = (await weights(page, 0)).join();
      for (const key of ["ArrowLeft", "ArrowUp", "ArrowDown", "ArrowRight"]) {
        await page.keyboard.press(key as "ArrowLeft");
      }
      await page.keyboard.press("ArrowLeft");
      const moved = (await weights(page, 0)).join();
      assert.notEqual(moved, w0, "arrows moved the explorer's query");
      for (const key of ["[", "]", "Escape", "a", "b", "x", "j", "k", "d"]) {
        await page.keyboard.press(key as "a");
      }
      await page.keyboard.press("d");
      assert.deepEqual(
        await cellState(page),
        start,
        "no cell added, cut or moved",
      );
      // The same key outside the explorer does reach command mode.
      await page.evaluate(() => {
        const j = (globalThis as any).Jupyter;
        (document.activeElement as HTMLElement | null)?.blur();
        j.keyboard_manager.enable();
        j.notebook.select(2);
        j.notebook.command_mode();
        j.notebook.get_selected_cell().element[0].focus();
      });
      await page.keyboard.press("b");
      await page.waitForFunction(
        (n) => (globalThis as any).Jupyter.notebook.ncells() === n,
        { timeout: 10_000 },
        start.cells + 1,
      );

      // 4. Executed in the kernel: the new output mounts as well.
      await page.waitForFunction(
        () => {
          const k = (globalThis as any).Jupyter.notebook.kernel;
          return k?.is_connected?.() === true;
        },
        { timeout: 120_000, polling: 250 },
      );
      await page.evaluate(() => {
        const cell = document.querySelectorAll(".cell")[0];
        cell.querySelector(".output_area")?.classList.add("ax-stale");
        (globalThis as any).Jupyter.notebook.execute_cells([0]);
      });
      await page.waitForFunction(
        () => {
          const cell = document.querySelectorAll(".cell")[0];
          return cell.querySelector(".ax-stale") === null &&
            cell.querySelector(".attnscope-explorer[data-mounted] .ax-tok") !==
              null;
        },
        { timeout: 150_000, polling: 250 },
      );
      assert.deepEqual(errors, [], "no page errors");
    } catch (error) {
      console.error(`notebook server log:\n${log.join("").slice(-4000)}`);
      throw error;
    } finally {
      await browser?.close();
      try {
        server.kill("SIGTERM");
      } catch {
        // it already exited (its log is printed above)
      }
      await server.status;
      await drain;
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(jupyter.dir, { recursive: true });
    }
  },
});
