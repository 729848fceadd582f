/**
 * The two shapes a "capture" arrives in, normalized once: the layer record
 * `extractAttentionFromResponse` returns (`AttentionCapture`), or the
 * client's `captureAttention` result `{ response, attention, labels, text }`.
 * Analyses (head metrics, rollout, comparison, capture files) accept either.
 *
 * @module
 */

import { AttentionLayer } from "./layer.ts";
import type { AttentionCapture } from "./layer.ts";

/** A capture with its context, as `captureAttention` returns it. */
export interface CaptureRecord {
  /** Every decoded layer, keyed by layer index (`null` when nothing was captured). */
  attention: AttentionCapture | null;
  /** One token label per absolute position (prompt and generated), when known. */
  labels?: readonly string[] | null;
  /** The response body (anything JSON); its `attn_capture_data` is not needed. */
  response?: unknown;
  /** The generated text, when known. */
  text?: string | null;
}

/** What analyses accept as a capture. */
export type CaptureLike = AttentionCapture | CaptureRecord;

/** A capture in one shape: layers sorted by index, context or `null`. */
export interface NormalizedCapture {
  /** The layers in ascending layer order. */
  layers: AttentionLayer[];
  /** Token labels per absolute position, or `null`. */
  labels: readonly string[] | null;
  /** The response metadata, or `null`. */
  response: unknown;
  /** The generated text, or `null`. */
  text: string | null;
}

/**
 * Normalizes a capture given in either shape.
 *
 * @param capture An `AttentionCapture` or a `{ attention, labels?, response?, text? }` record.
 * @param action What the caller is doing, for the error message (e.g. `"compute attention rollout"`).
 * @returns Layers in ascending order and the context.
 * @throws {TypeError} When the value is neither shape or holds no layers.
 *
 * @example
 * ```ts
 * import { normalizeCapture } from "./capture_input.ts";
 * import { AttentionLayer } from "./layer.ts";
 * import { AttentionScores } from "./scores.ts";
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = (i: number) =>
 *   new AttentionLayer({
 *     layer: i,
 *     model: null,
 *     scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
 *     tokenMeta: TokenMeta.from({ prompt_len: 1, total_len: 1 }),
 *   });
 * const plain = normalizeCapture({ 3: layer(3), 1: layer(1) }, "test");
 * assert.deepEqual(plain.layers.map((l) => l.layer), [1, 3]);
 * const record = normalizeCapture({ attention: { 2: layer(2) }, labels: ["<bos>"] }, "test");
 * assert.deepEqual(record.labels, ["<bos>"]);
 * assert.throws(() => normalizeCapture({}, "test"), /Cannot test: the capture holds no layers/);
 * ```
 */
export function normalizeCapture(
  capture: CaptureLike,
  action: string,
): NormalizedCapture {
  if (typeof capture !== "object" || capture === null) {
    throw new TypeError(
      `Cannot ${action}: expected a capture (the result of extractAttentionFromResponse or captureAttention), got ${
        capture === null ? "null" : typeof capture
      }`,
    );
  }
  const isRecord = "attention" in capture &&
    typeof (capture as CaptureRecord).attention === "object" &&
    !((capture as CaptureRecord).attention instanceof AttentionLayer);
  const record: CaptureRecord = isRecord
    ? capture as CaptureRecord
    : { attention: capture as AttentionCapture };
  const attention = record.attention ?? {};
  const layers = Object.values(attention);
  if (layers.length === 0) {
    throw new TypeError(
      `Cannot ${action}: the capture holds no layers; request layers with attn_capture_layers and check the response's attn_capture_data`,
    );
  }
  for (const layer of layers) {
    if (!(layer instanceof AttentionLayer)) {
      throw new TypeError(
        `Cannot ${action}: the capture holds a value that is not an AttentionLayer; pass what extractAttentionFromResponse or captureAttention returns`,
      );
    }
  }
  layers.sort((a, b) => a.layer - b.layer);
  return {
    layers,
    labels: record.labels ?? null,
    response: record.response ?? null,
    text: record.text ?? null,
  };
}
