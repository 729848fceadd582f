/**
 * The capture progress bar in Deno's Jupyter kernel, seen by nbclient:
 * `tests/notebooks/progress.ipynb` captures from the replay server over a
 * slow link (about 2.5 s), and the frontend must get one `display_data`
 * with a `display_id`, then `update_display_data`s with the same id, the
 * last one the summary. The bar mid-run and the finished cell are
 * photographed to `.artifacts/notebooks/progress.png` (the README's
 * `docs/progress.png`).
 */

import assert from "node:assert/strict";
import {
  findChromium,
  findJupyterPython,
  temporaryJupyter,
} from "../scripts/jupyter_env.ts";
import { photographNotebook } from "../scripts/render_notebook.ts";

const CI = Deno.env.get("CI") === "true";
const python = await findJupyterPython();
const chromium = await findChromium();
const NOTEBOOK = new URL("./notebooks/progress.ipynb", import.meta.url)
  .pathname;
const HELPER = new URL("./_kernel_messages.py", import.meta.url).pathname;
const ARTIFACTS = new URL("../.artifacts/notebooks/", import.meta.url)
  .pathname;

interface Seen {
  cell: number;
  type: "display_data" | "update_display_data";
  display_id: string | null;
  text: string | null;
  html: string | null;
}

interface Output {
  output_type: string;
  data?: Record<string, string>;
}

Deno.test({
  name:
    "captureAttention() in the kernel shows one display_data, then update_display_data with the same display_id, ending in the summary",
  ignore: !python.ok && !CI,
  async fn() {
    assert.ok(python.ok, python.ok ? "" : python.reason);
    const jupyter = await temporaryJupyter();
    try {
      const out = await new Deno.Command(python.path, {
        args: [HELPER, "run", NOTEBOOK],
        env: jupyter.env,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      const { messages, outputs } = JSON.parse(
        new TextDecoder().decode(out.stdout),
      ) as { messages: Seen[]; outputs: Output[][] };
      const bar = messages.filter((m) => m.cell === 1);
      assert.ok(bar.length >= 3, JSON.stringify(messages));
      assert.equal(bar[0].type, "display_data");
      assert.match(bar[0].display_id ?? "", /^attnscope-progress-/);
      assert.ok(
        bar.slice(1).every((m) =>
          m.type === "update_display_data" && m.display_id === bar[0].display_id
        ),
      );
      // The bar: phase, bytes of the total, speed; an HTML <progress>.
      assert.match(bar[0].text!, /^capture receiving [\d.]+\/[\d.]+ kB · /);
      assert.match(bar[0].html!, /<progress [^>]*value="0\.\d+"/);
      const summary = bar.at(-1)!;
      assert.match(summary.text!, /^captured 2 layers, [\d.]+ kB in [\d.]+ s/);
      // The cell's final outputs: the summary in place of the bar, then
      // the value.
      const cell = outputs[1];
      assert.equal(cell.length, 2, JSON.stringify(cell));
      assert.equal(cell[0].data!["text/plain"], summary.text);
      assert.equal(cell[1].data!["text/plain"], '"1729"');
      // Other cells show no bar.
      assert.ok(messages.every((m) => m.cell === 1));
      if (chromium.ok) await photograph(bar, cell);
    } finally {
      await Deno.remove(jupyter.dir, { recursive: true });
    }
  },
});

/**
 * The capture cell twice, as a user saw it: mid-run with the bar, then
 * finished with the summary.
 */
async function photograph(bar: Seen[], finished: Output[]): Promise<void> {
  const source = JSON.parse(await Deno.readTextFile(NOTEBOOK)).cells[1]
    .source;
  const mid = bar[Math.floor(bar.length / 2)];
  const cell = (outputs: unknown[]) => ({
    cell_type: "code",
    execution_count: 2,
    metadata: {},
    source,
    outputs,
  });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/progress.ipynb`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      nbformat: 4,
      nbformat_minor: 5,
      metadata: { kernelspec: { name: "deno", display_name: "Deno" } },
      cells: [
        { cell_type: "markdown", metadata: {}, source: "While it runs:" },
        cell([{
          output_type: "display_data",
          metadata: {},
          data: { "text/plain": mid.text, "text/html": mid.html },
        }]),
        { cell_type: "markdown", metadata: {}, source: "When it is done:" },
        cell(finished.map((o) => ({ metadata: {}, ...o }))),
      ],
    }),
  );
  const shot = await photographNotebook(path, ARTIFACTS, { width: 900 });
  assert.ok(shot.png.endsWith("progress.png"));
  await Deno.remove(dir, { recursive: true });
}
