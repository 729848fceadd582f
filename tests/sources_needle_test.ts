/**
 * needle.ipynb's charts drawn from an .npz of the same capture equal those
 * drawn from the capture file: the saved needle capture's layers are
 * written the way transformers users save them ([batch, head, query, key],
 * with tokens and prompt_len), loaded with loadAttention, and every chart
 * cell of the notebook (as replay.ipynb has them) is drawn from both.
 */

import assert from "node:assert/strict";
import { AttentionAnalyzer } from "../lib/analysis/analyzer.ts";
import { attentionHeatmap } from "../lib/charts/heatmap.ts";
import { headsGrid } from "../lib/charts/heads_grid.ts";
import { tokenTextView } from "../lib/charts/token_text.ts";
import { topTokensChart } from "../lib/charts/top_tokens.ts";
import { markedPositions, NEEDLE_STUDY } from "../lib/client/studies.ts";
import type { AttentionCapture } from "../lib/data/layer.ts";
import { loadCapture } from "../lib/sources/files/capture_file.ts";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { npyInt, npyStrings, zip } from "./_attention_files.ts";
import { normalizeMarkup } from "./charts_golden.ts";

const NEEDLE = new URL("../notebooks/captures/needle.attn", import.meta.url);

/** The chart cells of needle.ipynb / replay.ipynb, as markup. */
function needleCharts(
  attention: AttentionCapture,
  labels: string[],
  promptLen: number,
): string[] {
  const layerIds = Object.keys(attention).map(Number).sort((a, b) => a - b);
  const marks = markedPositions(NEEDLE_STUDY, labels);
  const isBreak = (p: number) => labels[p].includes("↵");
  const needle = Math.min(...marks);
  let recordStart = needle, recordEnd = needle;
  while (recordStart > 0 && !isBreak(recordStart - 1)) recordStart--;
  while (recordEnd < promptLen - 1 && !isBreak(recordEnd)) recordEnd++;
  const query = promptLen - 1;
  const readers = layerIds.flatMap((li) => {
    const { scores } = attention[li];
    const row = scores.rowForPosition(query);
    return Array.from({ length: scores.numHeads }, (_, head) => {
      let mass = 0;
      for (let p = recordStart; p <= recordEnd; p++) {
        mass += scores.get(row, head, p - scores.keyOffset);
      }
      return { layer: li, head, mass };
    });
  }).sort((a, b) => b.mass - a.mass);
  const best = readers[0];
  const layer = attention[best.layer];
  const row = layer.scores.rowForPosition(query);
  const analyzer = new AttentionAnalyzer(layer.scores, layer.tokenMeta);
  const lineLabels = labels.map((l) => l.replaceAll("↵", "↵\n"));
  return [
    attentionHeatmap(layer, { head: best.head, labels, mark: marks }).toSVG(),
    attentionHeatmap(layer, {
      head: best.head,
      labels,
      mark: marks,
      window: { query: [query, layer.scores.queryPositions.at(-1)! + 1] },
      title: `Layer ${best.layer} · head ${best.head}: the answer's rows`,
    }).toSVG(),
    topTokensChart(
      analyzer.topAttendedTokens(row, { avgHeads: true, topK: 8 }),
      { labels, mark: marks, layer: best.layer },
    ).toSVG(),
    topTokensChart(
      Array.from(
        { length: layer.scores.numHeads },
        (_, h) => analyzer.topAttendedTokens(row, { headIdx: h, topK: 3 }),
      ),
      { labels, mark: marks, layer: best.layer, columns: 4 },
    ).toSVG(),
    headsGrid(attention).toSVG(),
    tokenTextView(layer, lineLabels, {
      query: row,
      head: best.head,
      mark: marks,
      title:
        `Attention of the last prompt token (${query}) in layer ${best.layer}, head ${best.head}`,
    }).toHTML(),
  ];
}

/**
 * Markup with per-process counters renumbered: both drawings run in this
 * process, so the heatmap's cell-group counter differs between them.
 */
function renumbered(markup: string): string {
  return normalizeMarkup(markup).replace(
    /data-attnscope-cells="\d+"/g,
    'data-attnscope-cells="n"',
  );
}

/** [Tq, H, Tk] -> [1, H, Tq, Tk], as transformers' out.attentions holds it. */
function toBatchHeadQueryKey(
  data: ArrayLike<number>,
  [tq, h, tk]: readonly number[],
): Float32Array {
  const out = new Float32Array(tq * h * tk);
  for (let q = 0; q < tq; q++) {
    for (let head = 0; head < h; head++) {
      for (let k = 0; k < tk; k++) {
        out[(head * tq + q) * tk + k] = data[(q * h + head) * tk + k];
      }
    }
  }
  return out;
}

Deno.test("loadAttention() of an .npz of the needle capture draws needle.ipynb's charts exactly", async () => {
  const original = await loadCapture(NEEDLE);
  const entries: Record<string, Uint8Array> = {
    "tokens.npy": npyStrings(original.labels!),
    "prompt_len.npy": npyInt(original.promptLen!),
  };
  for (const layer of Object.values(original.attention)) {
    const { data, shape } = layer.scores;
    entries[`layers.${layer.layer}.npy`] = toNpy({
      data: toBatchHeadQueryKey(data, shape),
      shape: [1, shape[1], shape[0], shape[2]],
    }, { dtype: "float16" });
  }
  const path = await Deno.makeTempFile({ suffix: ".npz" });
  try {
    await Deno.writeFile(path, zip(entries, 6));
    const loaded = await loadAttention(path);
    assert.equal(loaded.format, "npz");
    assert.deepEqual(loaded.labels, original.labels);
    assert.equal(loaded.promptLen, original.promptLen);
    assert.deepEqual(loaded.findings, { 0: [], 1: [] });
    for (const [id, layer] of Object.entries(original.attention)) {
      assert.deepEqual(
        loaded.attention[Number(id)].scores.data,
        layer.scores.data,
      );
    }
    const want = needleCharts(
      original.attention,
      original.labels!,
      original.promptLen!,
    );
    const got = needleCharts(
      loaded.attention,
      loaded.labels!,
      loaded.promptLen!,
    );
    assert.equal(got.length, 6);
    got.forEach((markup, i) =>
      assert.equal(
        renumbered(markup),
        renumbered(want[i]),
        `chart ${i} differs`,
      )
    );
  } finally {
    await Deno.remove(path);
  }
});
