/**
 * The notebooks, executed for real: Deno's Jupyter kernel under nbclient
 * (scripts/run_notebooks.py), then rendered to HTML by nbconvert and
 * photographed by headless Chromium.
 *
 * A notebook passes when no cell errors, every cell tagged `chart` produced
 * a chart (`text/html` holding an `<svg` or `<img`, or an image), every cell
 * tagged `answer` reports ✓ and no ✗, and every chart area of the screenshot
 * holds ink. `replay.ipynb`, which loads the capture `needle.ipynb` saved,
 * must also draw exactly the charts the needle run drew. The executed
 * notebooks, captures, HTML pages and screenshots are kept in
 * `.artifacts/notebooks/` (printed at the start).
 *
 * Where Jupyter or Chromium is missing the tests say so and are skipped;
 * with `CI=true` a missing tool fails the run.
 */

import assert from "node:assert/strict";
import {
  findChromium,
  findJupyterPython,
  runNotebooks,
  temporaryJupyter,
} from "../scripts/jupyter_env.ts";
import { listNotebooks, NOTEBOOKS } from "../scripts/notebooks.ts";
import { photographNotebook } from "../scripts/render_notebook.ts";
import { isCorrect, STUDIES } from "../lib/client/studies.ts";
import { normalizeMarkup } from "./charts_golden.ts";
import { makeGemmaCheckpoint } from "./models/serve/gemma_checkpoint.ts";

const CI = Deno.env.get("CI") === "true";
const ARTIFACTS = new URL("../.artifacts/notebooks/", import.meta.url).pathname;
/**
 * Where the needle notebook saves its capture under test (not into the
 * repository), and where the replay notebook then loads it from.
 */
const NEEDLE_CAPTURE = `${ARTIFACTS}needle.attn`;
/** Below this share of non-white pixels a chart area counts as blank. */
const MIN_INK = 0.03;

const python = await findJupyterPython();
const chromium = await findChromium();
const notebooks = await listNotebooks();

if (!python.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} notebook execution: ${python.reason}`,
  );
}
if (!chromium.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} notebook screenshots: ${chromium.reason}`,
  );
}
if (python.ok) console.log(`notebook artifacts: ${ARTIFACTS}`);

interface Output {
  output_type: string;
  text?: string | string[];
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}

interface Cell {
  cell_type: string;
  source: string | string[];
  metadata: { tags?: string[] };
  outputs?: Output[];
}

interface Notebook {
  cells: Cell[];
}

const readNotebook = async (path: string): Promise<Notebook> =>
  JSON.parse(await Deno.readTextFile(path));

const joined = (text: unknown) =>
  Array.isArray(text) ? text.join("") : String(text ?? "");

/** Everything a cell printed or displayed, as text. */
function outputText(cell: Cell): string {
  return (cell.outputs ?? []).map((o) =>
    o.output_type === "stream"
      ? joined(o.text)
      : joined(o.data?.["text/plain"]) + "\n" + joined(o.data?.["text/html"])
  ).join("\n");
}

/** True when a cell's outputs hold a chart a browser can draw. */
function hasChart(cell: Cell): boolean {
  return (cell.outputs ?? []).some((o) => {
    const html = joined(o.data?.["text/html"]);
    return /<svg[\s>]/.test(html) || /<img[\s>]/.test(html) ||
      "image/png" in (o.data ?? {}) || "image/jpeg" in (o.data ?? {});
  });
}

const tagged = (cells: Cell[], tag: string) =>
  cells.map((cell, index) => ({ cell, index })).filter(({ cell }) =>
    cell.metadata.tags?.includes(tag)
  );

Deno.test({
  name:
    "notebook tools: Jupyter (nbclient, nbconvert) and Chromium are installed",
  ignore: !CI && !(python.ok && chromium.ok),
  fn() {
    assert.ok(
      python.ok,
      python.ok ? "" : `Cannot run the notebook tests: ${python.reason}`,
    );
    assert.ok(
      chromium.ok,
      chromium.ok ? "" : `Cannot photograph the notebooks: ${chromium.reason}`,
    );
  },
});

/** A Deno-kernel notebook with the given code cells, written to a temp folder. */
async function scratchNotebook(cells: string[]): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "attnscope-nb-" });
  const path = `${dir}/scratch.ipynb`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {
        kernelspec: {
          name: "deno",
          display_name: "Deno",
          language: "typescript",
        },
      },
      cells: cells.map((source, i) => ({
        id: `c${i}`,
        cell_type: "code",
        source,
        metadata: {},
        outputs: [],
        execution_count: null,
      })),
    }),
  );
  return path;
}

Deno.test({
  name:
    "run_notebooks.py keeps an output the kernel sends after the cell went idle",
  ignore: !python.ok && !CI,
  async fn() {
    assert.ok(python.ok, python.ok ? "" : python.reason);
    // The timer fires after the cell's value is shown and the kernel is
    // idle: stock nbclient stops reading at idle and loses the line (or
    // files it under the next cell).
    const path = await scratchNotebook([
      "setTimeout(() => console.log('late line'), 50); 'value'",
      "await new Promise((r) => setTimeout(r, 300)); 'next'",
    ]);
    const jupyter = await temporaryJupyter();
    try {
      const run = await runNotebooks(python.path, [path], { env: jupyter.env });
      assert.ok(run.success, run.output);
      const nb = await readNotebook(path);
      assert.match(outputText(nb.cells[0]), /"value"[\s\S]*late line/);
      assert.doesNotMatch(outputText(nb.cells[1]), /late line/);
    } finally {
      await Deno.remove(jupyter.dir, { recursive: true });
      await Deno.remove(path.replace(/\/[^/]*$/, ""), { recursive: true });
    }
  },
});

Deno.test({
  name:
    "run_notebooks.py names the failing cell and its error, and leaves the notebook unchanged",
  ignore: !python.ok && !CI,
  async fn() {
    assert.ok(python.ok, python.ok ? "" : python.reason);
    const path = await scratchNotebook([
      "1 + 1",
      "throw new RangeError('layer 99 is out of range')",
      "3",
    ]);
    const before = await Deno.readTextFile(path);
    const jupyter = await temporaryJupyter();
    try {
      const run = await runNotebooks(python.path, [path], { env: jupyter.env });
      assert.equal(run.success, false);
      assert.match(
        run.output,
        /Cannot execute .*scratch\.ipynb: cell 1 .* raised RangeError: layer 99 is out of range/,
      );
      assert.equal(await Deno.readTextFile(path), before);
    } finally {
      await Deno.remove(jupyter.dir, { recursive: true });
      await Deno.remove(path.replace(/\/[^/]*$/, ""), { recursive: true });
    }
  },
});

/** Runs this test file in a child `deno test` with some tools hidden. */
async function childTestRun(env: Record<string, string>) {
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-all",
      "--filter",
      "notebook tools",
      new URL(import.meta.url).pathname,
    ],
    env: { ...env, NO_COLOR: "1", ATTNSCOPE_NOTEBOOK_CHILD: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    success: result.success,
    output: decode(result.stdout) + decode(result.stderr),
  };
}

Deno.test({
  name:
    "notebook tests: a missing Jupyter or Chromium is skipped with a reason, and fails under CI=true",
  ignore: Deno.env.get("ATTNSCOPE_NOTEBOOK_CHILD") === "1",
  async fn() {
    const hidden = {
      ATTNSCOPE_JUPYTER_PYTHON: "/nonexistent/python3",
      ATTNSCOPE_CHROMIUM: "/nonexistent/chromium",
    };
    const local = await childTestRun({ ...hidden, CI: "false" });
    assert.ok(local.success, local.output);
    assert.match(
      local.output,
      /Skipping notebook execution: no Python with nbclient/,
    );
    assert.match(
      local.output,
      /Skipping notebook screenshots: no Chromium runs here/,
    );
    assert.match(local.output, /ignored/);

    const ci = await childTestRun({ ...hidden, CI: "true" });
    assert.equal(ci.success, false, ci.output);
    assert.match(
      ci.output,
      /Cannot run the notebook tests: no Python with nbclient and nbconvert/,
    );
  },
});

Deno.test("notebooks/ holds the needle, codename, replay and tour notebooks", () => {
  const names = notebooks.map((p) => p.replace(/^.*\//, ""));
  for (
    const name of [
      "needle.ipynb",
      "codename.ipynb",
      "replay.ipynb",
      "tour.ipynb",
    ]
  ) {
    assert.ok(
      names.includes(name),
      `notebooks/${name} is missing (found ${names.join(", ") || "none"})`,
    );
  }
});

const fileExists = (path: string) =>
  Deno.stat(path).then(() => true, () => false);

/**
 * Asserts that `replay` repeats every chart cell of `live` word for word and
 * that each repeated cell's `text/html` equals the live one, normalized (ids
 * renumbered, numbers rounded, PNGs digested).
 */
function assertChartsReplayed(
  live: Notebook,
  replay: Notebook,
  what: string,
) {
  const html = (cell: Cell) =>
    normalizeMarkup(
      (cell.outputs ?? []).map((o) => joined(o.data?.["text/html"])).join(""),
    );
  const liveCharts = tagged(live.cells, "chart");
  const pairs = tagged(replay.cells, "chart").flatMap(({ cell, index }) => {
    const twin = liveCharts.find((c) =>
      joined(c.cell.source) === joined(cell.source)
    );
    return twin
      ? [{ index, expected: html(twin.cell), replayed: html(cell) }]
      : [];
  });
  assert.equal(
    pairs.length,
    liveCharts.length,
    `${what}: replay.ipynb repeats ${pairs.length} of needle.ipynb's ${liveCharts.length} chart cells word for word`,
  );
  for (const { index, expected, replayed } of pairs) {
    assert.ok(
      replayed.includes("<svg"),
      `${what}: cell ${index} drew no chart`,
    );
    assert.equal(
      replayed,
      expected,
      `${what}: cell ${index} of replay.ipynb differs from the live chart`,
    );
  }
}

Deno.test("committed replay.ipynb draws exactly the charts committed needle.ipynb drew", async () => {
  assertChartsReplayed(
    await readNotebook(`${NOTEBOOKS}needle.ipynb`),
    await readNotebook(`${NOTEBOOKS}replay.ipynb`),
    "committed notebooks",
  );
  assert.ok(
    await fileExists(`${NOTEBOOKS}captures/needle.attn`),
    "notebooks/captures/needle.attn, which replay.ipynb loads, is not committed; run deno task notebooks",
  );
});

for (const path of notebooks) {
  const name = path.replace(/^.*\//, "");
  Deno.test({
    name:
      `notebooks/${name} executes in Jupyter, charts every chart cell, answers right, and renders`,
    ignore: !python.ok && !CI,
    sanitizeResources: false,
    async fn(t) {
      assert.ok(
        python.ok,
        python.ok ? "" : `Cannot execute ${name}: ${python.reason}`,
      );
      const source = await readNotebook(path);
      const charts = tagged(source.cells, "chart");
      const answers = tagged(source.cells, "answer");
      assert.ok(
        charts.length > 0,
        `${name} tags no cell "chart"; tag the cells that draw charts`,
      );
      assert.ok(
        answers.length > 0,
        `${name} tags no cell "answer"; tag the cells that check results`,
      );
      // The first cell says which server runs and how to choose another.
      const intro = joined(source.cells[0]?.source);
      assert.match(
        intro,
        /demo\s+server/,
        `${name}'s first cell does not mention the demo server`,
      );
      assert.match(
        intro,
        /ATTNSCOPE_BASE_URL/,
        `${name}'s first cell does not say how to use another server`,
      );
      // No code is keyed to an answer: the expected values come from lib/client/studies.ts.
      for (const study of Object.values(STUDIES)) {
        const keyed = source.cells.findIndex((c) =>
          c.cell_type === "code" && joined(c.source).includes(study.expected)
        );
        assert.equal(
          keyed,
          -1,
          `cell ${keyed} of ${name} hard-codes ${study.expected}; take it from the study`,
        );
      }

      // The needle notebook saves its capture into the artifacts; the
      // replay notebook loads it from there when this run made it, and
      // otherwise the committed one.
      if (name === "needle.ipynb") {
        await Deno.remove(NEEDLE_CAPTURE).catch(() => {});
      }
      const replaysThisRun = name === "replay.ipynb" &&
        await fileExists(NEEDLE_CAPTURE);
      const captureEnv: Record<string, string> =
        name === "needle.ipynb" || replaysThisRun
          ? { ATTNSCOPE_CAPTURE_FILE: NEEDLE_CAPTURE }
          : {};
      // real_model.ipynb runs on a small random Gemma 3 with the real
      // tokenizer (the hub is unreachable here), as its first cell says.
      const modelDir = name === "real_model.ipynb"
        ? await makeGemmaCheckpoint(
          await Deno.makeTempDir({ prefix: "gemma_rand_" }),
        )
        : null;
      const modelEnv: Record<string, string> = modelDir
        ? { ATTNSCOPE_MODEL: modelDir }
        : {};
      const jupyter = await temporaryJupyter();
      let executed: Notebook;
      try {
        await Deno.mkdir(ARTIFACTS, { recursive: true });
        const run = await runNotebooks(python.path, [path], {
          outputDir: ARTIFACTS,
          env: { ...jupyter.env, ...captureEnv, ...modelEnv },
        });
        assert.ok(run.success, `${name} failed to execute:\n${run.output}`);
        executed = await readNotebook(`${ARTIFACTS}${name}`);
      } finally {
        await Deno.remove(jupyter.dir, { recursive: true });
        if (modelDir) await Deno.remove(modelDir, { recursive: true });
      }

      await t.step("no cell errors", () => {
        const errors = executed.cells.flatMap((cell, index) =>
          (cell.outputs ?? []).filter((o) => o.output_type === "error").map((
            o,
          ) => `cell ${index}: ${o.ename}: ${o.evalue}`)
        );
        assert.deepEqual(errors, []);
      });

      await t.step("every chart cell produced a chart", () => {
        const empty = charts.filter(({ index }) =>
          !hasChart(executed.cells[index])
        ).map(({ index }) => index);
        assert.deepEqual(
          empty,
          [],
          `cells ${
            empty.join(", ")
          } of ${name} are tagged chart but show no <svg>/<img>`,
        );
      });

      await t.step("every answer cell reports ✓ and no ✗", () => {
        for (const { index } of answers) {
          const text = outputText(executed.cells[index]);
          assert.match(
            text,
            /✓/,
            `cell ${index} of ${name} reports no ✓:\n${text}`,
          );
          assert.doesNotMatch(
            text,
            /✗/,
            `cell ${index} of ${name} reports ✗:\n${text}`,
          );
        }
      });

      const study = Object.values(STUDIES).find((s) =>
        `${s.name}.ipynb` === name
      );
      if (study) {
        await t.step(
          `the answer holds the study's expected ${
            JSON.stringify(study.expected)
          }`,
          () => {
            const text = answers.map(({ index }) =>
              outputText(executed.cells[index])
            ).join("\n");
            const output = text.match(/^Output: (.*) ✓/m)?.[1];
            assert.ok(
              output !== undefined,
              `${name} prints no "Output: ... ✓" line:\n${text}`,
            );
            assert.ok(
              isCorrect(study, output),
              `${name} answered ${output}, expected ${study.expected}`,
            );
          },
        );
      }

      if (name === "needle.ipynb") {
        await t.step("the capture is saved for replay.ipynb", async () => {
          assert.ok(
            await fileExists(NEEDLE_CAPTURE),
            `needle.ipynb saved no capture at ${NEEDLE_CAPTURE}`,
          );
        });
      }

      if (name === "replay.ipynb") {
        await t.step(
          "the loaded capture draws exactly the charts the live run drew",
          async () => {
            const live = await readNotebook(
              replaysThisRun
                ? `${ARTIFACTS}needle.ipynb`
                : `${NOTEBOOKS}needle.ipynb`,
            );
            assertChartsReplayed(
              live,
              executed,
              replaysThisRun
                ? "this run's needle.ipynb"
                : "the committed needle.ipynb",
            );
          },
        );
      }

      await t.step({
        name: "every chart is visible in Chromium's screenshot",
        ignore: !chromium.ok && !CI,
        fn: async () => {
          assert.ok(
            chromium.ok,
            chromium.ok ? "" : `Cannot photograph ${name}: ${chromium.reason}`,
          );
          const shot = await photographNotebook(
            `${ARTIFACTS}${name}`,
            ARTIFACTS,
            {
              python: python.path,
              chromium: chromium.path,
            },
          );
          console.log(`  ${shot.png}`);
          // Explorer cells show the live view (scripts ran), not the fallback.
          for (const { index } of tagged(source.cells, "explorer")) {
            const states = shot.explorers.filter((e) => e.cell === index);
            assert.ok(
              states.length > 0,
              `cell ${index} of ${name}: no explorer on the page`,
            );
            for (const state of states) {
              assert.deepEqual(
                { ...state, cell: index },
                {
                  cell: index,
                  ready: true,
                  error: "",
                  fallbackHidden: true,
                  canvas: true,
                },
                `cell ${index} of ${name}: the explorer did not mount; see ${shot.png}`,
              );
            }
            const areas = shot.charts.filter((c) => c.cell === index);
            assert.ok(
              areas.some((a) => a.ink >= MIN_INK),
              `cell ${index} of ${name}: the explorer is blank; see ${shot.png}`,
            );
          }
          for (const { index } of charts) {
            const areas = shot.charts.filter((c) => c.cell === index);
            assert.ok(
              areas.length > 0,
              `cell ${index} of ${name}: no chart on the rendered page`,
            );
            for (const area of areas) {
              assert.ok(
                area.ink >= MIN_INK,
                `cell ${index} of ${name}: chart area ${area.width}x${area.height} at y=${area.y} is blank (${
                  (area.ink * 100).toFixed(1)
                }% ink); see ${shot.png}`,
              );
            }
          }
        },
      });
    },
  });
}
