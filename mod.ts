/**
 * attnscope: decode, analyze and chart the attention that an
 * attention-instrumented OpenAI-compatible server (vLLM, or attnscope's demo
 * server) returns, in Deno and Deno's Jupyter kernel.
 *
 * @example Analyze a decoded layer
 * ```ts
 * import { AttentionAnalyzer, AttentionScores, TokenMeta } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1, 0, 0.3, 0.7]), [2, 1, 2]);
 * const analyzer = new AttentionAnalyzer(scores, TokenMeta.from({ prompt_len: 1, total_len: 2 }));
 * const [top] = analyzer.topAttendedTokens(-1, { headIdx: 0, topK: 1 });
 * assert.deepEqual(top, { index: 1, weight: scores.get(1, 0, 1), type: "generated" });
 * ```
 *
 * @module
 */

export * from "./lib/scores.ts";
export * from "./lib/token_meta.ts";
export * from "./lib/layer.ts";
export * from "./lib/analyzer.ts";
export * from "./lib/extract.ts";
export {
  type DecodeBatchOptions,
  type DecodeJob,
  DecodePool,
  decodeScores,
  decodeScoresBatch,
  type DecodeScoresOptions,
  defaultWorkerCount,
} from "./lib/decode.ts";
export * from "./lib/wire.ts";
export { float16ToFloat32 } from "./lib/float16.ts";
export * from "./lib/warn.ts";
export { JUPYTER_DISPLAY, type MimeBundle } from "./lib/jupyter.ts";
export * from "./lib/client.ts";
export * from "./lib/studies.ts";
export * from "./lib/run_study.ts";
export * from "./lib/compact.ts";
export * from "./lib/metrics/mod.ts";
export * from "./lib/rollout.ts";
export * from "./lib/compare.ts";
export * from "./lib/sink.ts";
export * from "./lib/capture_file.ts";
export * from "./lib/capture_input.ts";
export * from "./lib/npy.ts";
export * from "./lib/charts/metrics.ts";
export * from "./lib/charts/mod.ts";
export { encodePng, type EncodePngOptions, pngDataUrl } from "./lib/png.ts";
import "./lib/display.ts";
export * from "./lib/gemma_labels.ts";
export * from "./lib/induction_probe.ts";
