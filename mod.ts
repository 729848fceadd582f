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

// Sources: vLLM's attn_capture_data (whole bodies and streams) and files (npy, npz, safetensors, captures).
export * from "./lib/sources/vllm/extract.ts";
export {
  type DecodeBatchOptions,
  type DecodeJob,
  DecodePool,
  decodeScores,
  decodeScoresBatch,
  type DecodeScoresOptions,
  defaultWorkerCount,
} from "./lib/sources/vllm/decode.ts";
export * from "./lib/sources/vllm/wire.ts";
export { DEFAULT_MAX_BYTES } from "./lib/sources/vllm/_limits.ts";
export { float16ToFloat32 } from "./lib/sources/float16.ts";
export * from "./lib/sources/files/capture_file.ts";
export * from "./lib/sources/files/npy.ts";
export * from "./lib/sources/files/load_attention.ts";
export * from "./lib/sources/files/layout.ts";

// Models: HuggingFace checkpoints run in Deno with their attention captured, their tokenizers and the HF cache.
export {
  loadModel,
  type LoadModelFolderOptions,
  loadModelFromFolder,
} from "./lib/models/load_model.ts";
export type * from "./lib/models/types.ts";
export type * from "./lib/models/kernels/backend.ts";
export {
  loadTokenizer,
  type ModelTokenizer,
  type TokenizerProvenance,
} from "./lib/models/tokenizer/tokenizer.ts";
export {
  ChatTemplate,
  type TemplateMessage,
} from "./lib/models/tokenizer/template.ts";
export {
  resolveCheckpoint,
  type ResolveCheckpointOptions,
  type ResolvedCheckpoint,
} from "./lib/models/hub/resolve.ts";

// Data: scores, token metadata, layers and their architecture, and the sanity report.
export * from "./lib/data/scores.ts";
export * from "./lib/data/token_meta.ts";
export * from "./lib/data/layer.ts";
export type * from "./lib/data/layer_meta.ts";
export * from "./lib/data/capture_input.ts";
export * from "./lib/data/check_capture.ts";

// Analysis: the reference client's analysis, head metrics, rollout, comparison, sinks and spans.
export * from "./lib/analysis/analyzer.ts";
export * from "./lib/analysis/metrics/mod.ts";
export * from "./lib/analysis/rollout.ts";
export * from "./lib/analysis/compare.ts";
export * from "./lib/analysis/sink.ts";
export * from "./lib/analysis/span.ts";

// Client: capturing from an OpenAI-compatible server, the guide's studies, labels and probes.
export * from "./lib/client/client.ts";
export * from "./lib/client/studies.ts";
export * from "./lib/client/run_study.ts";
export * from "./lib/client/compact.ts";
export * from "./lib/client/gemma_labels.ts";
export * from "./lib/client/induction_probe.ts";

// Studies: sweeps (needle grids, retrieval heads, lost in the middle, sinks) and their tables.
export * from "./lib/studies/trials.ts";
export * from "./lib/studies/reduce.ts";
export * from "./lib/studies/sweep.ts";

// Charts: Plot figures, PNG export.
export * from "./lib/charts/mod.ts";
export * from "./lib/charts/metrics.ts";
export * from "./lib/charts/span.ts";
export * from "./lib/charts/sweep.ts";
export { encodePng, type EncodePngOptions, pngDataUrl } from "./lib/png.ts";

// Explorer: the offline interactive page.
export {
  type CompareAlign,
  explore,
  type ExploreOptions,
  Explorer,
  type ExplorerStats,
  type ExploreSource,
} from "./lib/explorer/explorer.ts";

// Display: Jupyter rich output, progress bars and warnings.
export { JUPYTER_DISPLAY, type MimeBundle } from "./lib/jupyter.ts";
import "./lib/display.ts";
export * from "./lib/progress.ts";
export * from "./lib/warn.ts";
