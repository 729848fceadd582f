/**
 * The progress bar of the long non-capture work in Deno's Jupyter kernel,
 * seen by nbclient: `tests/notebooks/progress_metrics.ipynb` loads the saved
 * needle capture and runs each function with an `onProgress` that stalls,
 * so that each call runs past the bar's one-second delay. Every such cell
 * gets one `display_data` with a `display_id`, then `update_display_data`s
 * with the same id, the last one the summary, which is also the cell's
 * final output; synchronous work (the metrics) sends its updates while it
 * runs, not all at its end. Fast work shows no bar.
 */

import assert from "node:assert/strict";
import { findJupyterPython, temporaryJupyter } from "../scripts/jupyter_env.ts";

const CI = Deno.env.get("CI") === "true";
const python = await findJupyterPython();
const NOTEBOOK = new URL("./notebooks/progress_metrics.ipynb", import.meta.url)
  .pathname;
const HELPER = new URL("./_kernel_messages.py", import.meta.url).pathname;

interface Seen {
  cell: number;
  type: "display_data" | "update_display_data";
  display_id: string | null;
  text: string | null;
  html: string | null;
  /** Seconds (monotonic) when the frontend got the message. */
  at: number;
}

interface Output {
  output_type: string;
  data?: Record<string, string>;
}

/** Cell index, the bar's label, and its summary. */
const BARS: [number, string, RegExp][] = [
  [1, "loadCapture", /^loaded 2 layers, [\d.]+ kB in [\d.]+ s/],
  [2, "loadAttention", /^loaded 2 layers, [\d.]+ kB in [\d.]+ s/],
  [3, "headSummary", /^headSummary over 2 layers in [\d.]+ s$/],
  [4, "attentionRollout", /^attentionRollout through 2 layers in [\d.]+ s$/],
  [5, "compareCaptures", /^compareCaptures over 4 layers in [\d.]+ s$/],
];

Deno.test({
  name:
    "loadCapture(), loadAttention(), headSummary(), attentionRollout() and compareCaptures() in the kernel show a bar updated in place, ending in the summary",
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
      for (const [cell, label, summary] of BARS) {
        const bar = messages.filter((m) => m.cell === cell);
        const what = `cell ${cell}: ${JSON.stringify(bar)}`;
        assert.ok(bar.length >= 2, what);
        assert.equal(bar[0].type, "display_data", what);
        assert.match(bar[0].display_id ?? "", /^attnscope-progress-/);
        assert.ok(
          bar.slice(1).every((m) =>
            m.type === "update_display_data" &&
            m.display_id === bar[0].display_id
          ),
          what,
        );
        assert.ok(bar[0].text!.startsWith(`${label} decoding `), what);
        assert.match(bar[0].text!, /\d\/\d layers$/, what);
        // A bar that fills: layers done of layers, no bytes needed.
        assert.match(bar[0].html!, /<progress [^>]*value="[01]\.\d+"/, what);
        assert.match(bar.at(-1)!.text!, summary, what);
        // The bar arrives while the work runs: the summary comes over a
        // stall later, not in the same burst (synchronous work included).
        assert.ok(bar.at(-1)!.at - bar[0].at > 0.2, what);
        // The cell's final outputs: the summary in place of the bar, then
        // the value.
        assert.equal(outputs[cell].length, 2, JSON.stringify(outputs[cell]));
        assert.equal(outputs[cell][0].data!["text/plain"], bar.at(-1)!.text);
      }
      // The set-up cell and the fast headSummary show no bar.
      assert.ok(messages.every((m) => m.cell >= 1 && m.cell <= 5));
      assert.deepEqual(outputs[6].map((o) => o.output_type), [
        "execute_result",
      ]);
    } finally {
      await Deno.remove(jupyter.dir, { recursive: true });
    }
  },
});
