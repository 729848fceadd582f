/**
 * The reference script's compact text view of attention, written from
 * {@linkcode AttentionAnalyzer} results so text and charts show the same
 * numbers:
 *
 * ```text
 * ── L18 (T=138 H=8 prompt=131) ──
 *   avg <bos>(0)=0.24 :(132)=0.17 alpha(131)=0.08◀ ...
 *   h7  alpha(131)=0.23◀ ↵(127)=0.13 :(132)=0.12
 * ```
 *
 * Numbers are printed as Python's `f"{w:.2f}"` prints them (ties to even),
 * labels as the reference's `fmt`, token text as Python's `repr`.
 *
 * @module
 */

import { type AttendedToken, AttentionAnalyzer } from "../analysis/analyzer.ts";
import type { SpanAttention } from "../analysis/span.ts";
import type { AttentionLayer } from "../data/layer.ts";

/**
 * Formats a number with fixed decimals as Python's `format(x, ".2f")` does:
 * exact ties round to even (`0.125` -> `0.12`), where JavaScript's
 * `toFixed` rounds them up.
 *
 * @param x The number.
 * @param digits Decimals.
 * @returns The text.
 *
 * @example
 * ```ts
 * import { formatFixed } from "./compact.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatFixed(0.125, 2), "0.12");
 * assert.equal(formatFixed(0.375, 2), "0.38");
 * assert.equal(formatFixed(0.2345, 2), "0.23");
 * ```
 */
export function formatFixed(x: number, digits: number): string {
  // x*10^d ends in exactly .5 only when x*2^(d+1) is an odd integer.
  const scaled = x * 2 ** (digits + 1);
  if (Number.isInteger(scaled) && Math.abs(scaled) % 2 === 1) {
    const down = (Math.trunc(x * 10 ** digits) / 10 ** digits).toFixed(digits);
    const up = (x * 10 ** digits + Math.sign(x) * 0.5) / 10 ** digits;
    const lastDown = Number(down.at(-1));
    return lastDown % 2 === 0 ? down : up.toFixed(digits);
  }
  return x.toFixed(digits);
}

/**
 * A string as Python's `repr` writes it: single quotes unless the text has a
 * single quote and no double quote; backslashes, quotes and control
 * characters escaped.
 *
 * @param text The string.
 * @returns The quoted text.
 *
 * @example
 * ```ts
 * import { pythonRepr } from "./compact.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(pythonRepr("1729"), "'1729'");
 * assert.equal(pythonRepr("it's"), `"it's"`);
 * assert.equal(pythonRepr("a\nb"), "'a\\nb'");
 * ```
 */
export function pythonRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of text) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) {
      out += `\\x${code.toString(16).padStart(2, "0")}`;
    } else out += ch;
  }
  return out + quote;
}

/**
 * The reference's `fmt(k, m)`: `text(idx)`, the label trimmed; a blank label
 * shows as its repr, a missing one as `None`.
 *
 * @param k Absolute position.
 * @param labels One label per position.
 * @returns E.g. `alpha(131)`.
 *
 * @example
 * ```ts
 * import { fmt } from "./compact.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(fmt(1, ["<bos>", " alpha "]), "alpha(1)");
 * assert.equal(fmt(0, [" "]), "' '(0)");
 * assert.equal(fmt(5, []), "None(5)");
 * ```
 */
export function fmt(k: number, labels: readonly string[]): string {
  const raw = labels[k];
  const t = raw === undefined ? "" : raw.trim();
  return `${t || (raw === undefined ? "None" : pythonRepr(raw))}(${k})`;
}

/**
 * The reference's `row(w, indices, m, mark)`:
 * `tok(i)=0.23◀ tok(j)=0.11 ...`.
 *
 * @param weights Weight of each key, indexed by absolute position.
 * @param indices The positions to show, in order.
 * @param labels One label per position.
 * @param mark Positions to mark with `◀`.
 * @returns The row text.
 *
 * @example
 * ```ts
 * import { row } from "./compact.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(row([0.5, 0.25], [0, 1], ["a", "b"], new Set([1])), "a(0)=0.50 b(1)=0.25◀");
 * ```
 */
export function row(
  weights: ArrayLike<number> | Readonly<Record<number, number>>,
  indices: Iterable<number>,
  labels: readonly string[],
  mark?: ReadonlySet<number> | null,
): string {
  const w = weights as Record<number, number>;
  return [...indices].map((k) =>
    `${fmt(k, labels)}=${formatFixed(w[k], 2)}${mark?.has(k) ? "◀" : ""}`
  ).join(" ");
}

/**
 * {@linkcode row} from an analyzer's top-k result.
 *
 * @param tokens The attended keys, heaviest first.
 * @param labels One label per position.
 * @param mark Positions to mark with `◀`.
 * @returns The row text.
 *
 * @example
 * ```ts
 * import { attendedRow } from "./compact.ts";
 * import assert from "node:assert/strict";
 *
 * const top = [{ index: 3, weight: 0.6, type: "language" as const }];
 * assert.equal(attendedRow(top, ["", "", "", "x"]), "x(3)=0.60");
 * ```
 */
export function attendedRow(
  tokens: readonly AttendedToken[],
  labels: readonly string[],
  mark?: ReadonlySet<number> | null,
): string {
  const weights: Record<number, number> = {};
  for (const t of tokens) weights[t.index] = t.weight;
  return row(weights, tokens.map((t) => t.index), labels, mark);
}

/**
 * The layer header `── L18 (T=138 H=8 prompt=131) ──`.
 *
 * @param layer The layer.
 * @returns The header line.
 *
 * @example
 * ```ts
 * import { layerHeader } from "./compact.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const layer = new AttentionLayer({
 *   layer: 18, model: null,
 *   scores: new AttentionScores(new Float32Array(2 * 3 * 2), [2, 3, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 1, total_len: 2 }),
 * });
 * assert.equal(layerHeader(layer), "── L18 (T=2 H=3 prompt=1) ──");
 * ```
 */
export function layerHeader(layer: AttentionLayer): string {
  const [t, h] = layer.scores.shape;
  return `── L${layer.layer} (T=${t} H=${h} prompt=${layer.tokenMeta.promptLen}) ──`;
}

/** Weight a marked key must pass for a head's row to be marked. */
const HEAD_MARK_THRESHOLD = 0.15;

/**
 * The needle study's block for one layer: the header, the head-averaged
 * top-5 keys of the last query and each head's top-3, `◀` on marked keys
 * (per head only when a marked key is in its top-3 above 0.15).
 *
 * @param layer The layer.
 * @param labels One label per position.
 * @param mark The needle's positions.
 * @returns The lines, the header first.
 *
 * @example
 * ```ts
 * import { needleLayerLines } from "./compact.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * // T=2, H=2; the last query: head 0 puts 0.75 on key 0, head 1 0.125.
 * const layer = new AttentionLayer({
 *   layer: 1, model: null,
 *   scores: new AttentionScores(new Float32Array([1, 0, 1, 0, 0.75, 0.25, 0.125, 0.875]), [2, 2, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
 * });
 * assert.deepEqual(needleLayerLines(layer, ["alpha", ":"], new Set([0])), [
 *   "── L1 (T=2 H=2 prompt=2) ──",
 *   "  avg :(1)=0.56 alpha(0)=0.44◀",
 *   "  h0  alpha(0)=0.75◀ :(1)=0.25",
 *   "  h1  :(1)=0.88 alpha(0)=0.12",
 * ]);
 * ```
 */
export function needleLayerLines(
  layer: AttentionLayer,
  labels: readonly string[],
  mark: ReadonlySet<number>,
): string[] {
  const analyzer = new AttentionAnalyzer(layer.scores, layer.tokenMeta);
  const lines = [layerHeader(layer)];
  const avg = analyzer.topAttendedTokens(-1, { avgHeads: true, topK: 5 });
  lines.push(`  avg ${attendedRow(avg, labels, mark)}`);
  for (let h = 0; h < layer.scores.numHeads; h++) {
    const top = analyzer.topAttendedTokens(-1, { headIdx: h, topK: 3 });
    const hit = top.some((t) =>
      mark.has(t.index) && t.weight > HEAD_MARK_THRESHOLD
    );
    lines.push(
      `  h${String(h).padEnd(2)} ${
        attendedRow(top, labels, hit ? mark : null)
      }`,
    );
  }
  return lines;
}

/**
 * The codename study's block for one layer: the header, then for each
 * generated token's query row, its head-averaged top-5 keys and each head's
 * top-3. Rows map to positions as the decoder placed them (`token_idx`, else
 * the reference's offset `total_len - T`).
 *
 * @param layer The layer.
 * @param labels One label per position.
 * @returns The lines, the header first.
 *
 * @example
 * ```ts
 * import { codenameLayerLines } from "./compact.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * // Prompt of 1 token, 1 generated row (position 1), H=1.
 * const layer = new AttentionLayer({
 *   layer: 0, model: null,
 *   scores: new AttentionScores(new Float32Array([1, 0, 0.25, 0.75]), [2, 1, 2]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 1, total_len: 2 }),
 * });
 * assert.deepEqual(codenameLayerLines(layer, ["Agent", "Ph"]), [
 *   "── L0 (T=2 H=1 prompt=1) ──",
 *   "  'Ph'         [avg] → Ph(1)=0.75 Agent(0)=0.25",
 *   "               [h0 ] → Ph(1)=0.75 Agent(0)=0.25",
 * ]);
 * ```
 */
export function codenameLayerLines(
  layer: AttentionLayer,
  labels: readonly string[],
): string[] {
  const analyzer = new AttentionAnalyzer(layer.scores, layer.tokenMeta);
  const { scores } = layer;
  const promptLen = layer.tokenMeta.promptLen;
  const lines = [layerHeader(layer)];
  for (let r = 0; r < scores.queryLength; r++) {
    const position = scores.queryPositions[r];
    if (position < promptLen) continue; // only generated tokens, as the reference
    const label = pythonRepr(labels[position] ?? "?");
    const avg = analyzer.topAttendedTokens(r, { avgHeads: true, topK: 5 });
    lines.push(`  ${label.padEnd(12)} [avg] → ${attendedRow(avg, labels)}`);
    for (let h = 0; h < scores.numHeads; h++) {
      const top = analyzer.topAttendedTokens(r, { headIdx: h, topK: 3 });
      lines.push(
        `  ${"".padEnd(12)} [h${String(h).padEnd(2)}] → ${
          attendedRow(top, labels)
        }`,
      );
    }
  }
  return lines;
}

/**
 * The heads that read a span most, as one line of the compact view:
 * `Readers of "alpha: 1729↵" (positions 4-10), query 150: L1H0=1.00 ...`.
 *
 * @param reading What `spanAttention` returns.
 * @param k How many heads.
 * @returns The line.
 *
 * @example
 * ```ts
 * import { readersLine } from "./compact.ts";
 * import { SpanAttention } from "../analysis/span.ts";
 * import assert from "node:assert/strict";
 *
 * const reading = new SpanAttention({ query: 9, positions: [1, 2], text: "alpha", layers: [0], numHeads: 2,
 *   heads: [{ layer: 0, head: 0, mass: 0.25 }, { layer: 0, head: 1, mass: 0.75 }] });
 * assert.equal(readersLine(reading, 2), 'Readers of "alpha" (positions 1-2), query 9: L0H1=0.75 L0H0=0.25');
 * ```
 */
export function readersLine(reading: SpanAttention, k = 3): string {
  const heads = reading.top(k).map((h) =>
    `L${h.layer}H${h.head}=${formatFixed(h.mass, 2)}`
  );
  return `Readers of ${reading.describeSpan()}, query ${reading.query}: ${
    heads.join(" ")
  }`;
}
