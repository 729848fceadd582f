/**
 * attnscope's demo server: vLLM's attention-capture HTTP API (same routes,
 * flags and wire format) backed by a small real transformer on the CPU.
 *
 * @example Start it in-process on a free loopback port
 * ```ts
 * import { startDemoServer } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const health = await fetch(`${server.url}/health`);
 * await health.body?.cancel();
 * assert.equal(health.status, 200);
 * ```
 *
 * @module
 */

export {
  type DemoServer,
  serveFromArgs,
  startDemoServer,
  type StartDemoServerOptions,
} from "./serve.ts";
export { createHandler, type Handler } from "./handler.ts";
export {
  buildTokenMeta,
  encodeAttentionLayer,
  type EncodeOptions,
  float16Bytes,
  type PositionInfo,
  type WireLayer,
  type WireRange,
  type WireTokenMeta,
} from "./encode.ts";
export {
  DEFAULT_SERVER_OPTIONS,
  type InstrumentedLayers,
  parseLayerList,
  parseServerArgs,
  type ResolvedServerOptions,
  resolveServerOptions,
  type ServerOptions,
} from "./options.ts";
export { type ErrorBody, HttpError } from "./http_error.ts";
export type * from "./model/types.ts";
export {
  REPLAY_USAGE,
  replayFromArgs,
  type ReplayServer,
  type ReplayServerOptions,
  startReplayServer,
} from "./replay.ts";
export {
  LocalRunner,
  type ModelRunner,
  type RealModelInfo,
  type RealModelSpec,
  WorkerRunner,
} from "./runner.ts";
export { type EngineStats } from "./engine.ts";
export { type ChatRequest } from "./request.ts";
export {
  type CapturePrefix,
  parseCapturePrefix,
  readCapturePrefix,
  rowsHeld,
} from "./capture_rows.ts";
export type { LayerMeta } from "../lib/data/layer_meta.ts";
export { tokenizeBody, type TokenizeResponse } from "./tokenize.ts";
