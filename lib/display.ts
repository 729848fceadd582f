/**
 * Rich display of attnscope's data objects in Deno's Jupyter kernel.
 *
 * The data classes (`AttentionScores`, `AttentionLayer`, top-attended
 * results) sit below the charts and ask lib/jupyter.ts's registry for a
 * renderer by kind; importing this module registers the chart renderers
 * (`mod.ts` imports it), so evaluating such an object in a cell shows a
 * chart. Nothing here touches `Deno.jupyter`.
 *
 * @module
 */

import type { TopAttendedTokens } from "./analysis/analyzer.ts";
import { attentionHeatmap } from "./charts/heatmap.ts";
import { topTokensChart } from "./charts/top_tokens.ts";
import {
  JUPYTER_DISPLAY,
  type MimeBundle,
  registerRenderer,
} from "./jupyter.ts";
import type { AttentionLayer } from "./data/layer.ts";
import type { AttentionScores } from "./data/scores.ts";
import type { TokenMeta } from "./data/token_meta.ts";

/**
 * Registers the chart renderers for kinds `"scores"` (head-mean heatmap),
 * `"layer"` (shape, token counts and a head-mean heatmap) and
 * `"top-attended"` (bar chart). Importing this module already does it;
 * calling again is harmless.
 *
 * @example
 * ```ts
 * import { registerDisplays } from "./display.ts";
 * import { AttentionScores } from "./data/scores.ts";
 * import { JUPYTER_DISPLAY } from "./jupyter.ts";
 * import assert from "node:assert/strict";
 *
 * registerDisplays();
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]);
 * const bundle = await scores[JUPYTER_DISPLAY]();
 * assert.match(String(bundle["text/html"]), /<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
 * assert.equal(bundle["text/plain"], "AttentionScores [2, 1, 2] float32");
 * ```
 */
export function registerDisplays(): void {
  registerRenderer<AttentionScores>(
    "scores",
    (scores) => chartOnly(attentionHeatmap(scores)[JUPYTER_DISPLAY]()),
  );
  registerRenderer<AttentionLayer>("layer", (layer) => {
    const counts = tokenCounts(layer.tokenMeta, layer.scores.keyLength);
    const bundle = attentionHeatmap(layer, {
      subtitle: `${layer.toString()} · ${counts}`,
    })[JUPYTER_DISPLAY]();
    return { ...bundle, "text/plain": `${layer.toString()}\n${counts}` };
  });
  registerRenderer<TopAttendedTokens>(
    "top-attended",
    (top) =>
      top.length === 0 ? {} : chartOnly(topTokensChart(top)[JUPYTER_DISPLAY]()),
  );
}

/**
 * A layer's token counts in words.
 *
 * @param meta The layer's metadata.
 * @param keys Number of key positions captured.
 * @returns E.g. `tokens: 131 prompt (131 language, 0 vision) + 7 generated`.
 *
 * @example
 * ```ts
 * import { tokenCounts } from "./display.ts";
 * import { TokenMeta } from "./data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = TokenMeta.from({ prompt_len: 3, total_len: 5, lang_ranges: [{ start: 0, end: 3 }] });
 * assert.equal(tokenCounts(meta, 5), "tokens: 3 prompt (3 language, 0 vision) + 2 generated");
 * ```
 */
export function tokenCounts(meta: TokenMeta, keys: number): string {
  const generated = Math.max(0, keys - meta.promptLen);
  return `tokens: ${meta.promptLen} prompt (${meta.langTokens().length} language, ${meta.visionTokens().length} vision) + ${generated} generated`;
}

/** Keeps the data class's own `text/plain` summary. */
function chartOnly(bundle: MimeBundle): MimeBundle {
  const { "text/plain": _plain, ...rest } = bundle;
  return rest;
}

registerDisplays();
