/**
 * "Which head reads this span?" as two calls: {@linkcode findSpan} locates a
 * piece of text in a capture's token labels (across token boundaries), and
 * {@linkcode spanAttention} measures, for every layer and head, how much of
 * one query row's attention lands on those positions. The result is sorted,
 * answers `.top(k)` in code and, once the chart layer is loaded
 * (lib/charts/span.ts), shows itself in Jupyter as a layer x head grid with
 * the top heads named.
 *
 * @module
 */

import { type CaptureLike, normalizeCapture } from "../data/capture_input.ts";
import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";

/** A run of token positions, as {@linkcode findSpan} returns it. */
export interface TokenSpan {
  /** First position. */
  readonly start: number;
  /** One past the last position. */
  readonly end: number;
  /** The labels of the span joined, as they read. */
  readonly text: string;
}

/** Options for {@linkcode findSpan}. */
export interface FindSpanOptions {
  /**
   * Which occurrence of the text: 0 the first, 1 the second, ...; negative
   * counts from the end (-1 the last).
   * @default {0}
   */
  occurrence?: number;
  /**
   * Widen the span to the whole line(s) it lies on: from just after the
   * previous line break to the line break that ends it (included).
   * @default {false}
   */
  wholeLine?: boolean;
}

/** Labels show line breaks as `↵` (as `captureAttention` writes them). */
const normalize = (s: string) => s.replaceAll("↵", "\n");

/**
 * Finds text in token labels, across token boundaries: the span is every
 * token that holds a character of the match.
 *
 * @param labels One label per position (e.g. `capture.labels`); `↵` and `\n`
 * both stand for a line break, in the labels and in the text.
 * @param text The text to find, e.g. `"alpha"` or `"alpha: 1729"`.
 * @param options Which occurrence, and whether to widen to whole lines.
 * @returns The span's positions and text.
 * @throws {RangeError} When the text is not there (naming the nearest text
 * that is), or the occurrence is out of range.
 *
 * @example
 * ```ts
 * import { findSpan } from "./span.ts";
 * import assert from "node:assert/strict";
 *
 * const labels = ["<bos>", "al", "pha", ":", " ", "1", "7", "↵", "beta", ":", " ", "2", "↵", "alpha", ":"];
 * assert.deepEqual(findSpan(labels, "alpha"), { start: 1, end: 3, text: "alpha" });
 * assert.deepEqual(findSpan(labels, "alpha", { occurrence: -1 }), { start: 13, end: 14, text: "alpha" });
 * assert.deepEqual(findSpan(labels, "ha: 1"), { start: 2, end: 6, text: "pha: 1" });
 * assert.equal(findSpan(labels, "beta", { wholeLine: true }).text, "beta: 2↵");
 * assert.throws(() => findSpan(labels, "gamma"), /Cannot find "gamma"/);
 * ```
 */
export function findSpan(
  labels: readonly string[],
  text: string,
  options: FindSpanOptions = {},
): TokenSpan {
  const spans = findSpans(labels, text, { wholeLine: options.wholeLine });
  if (spans.length === 0) {
    const { joined, owner } = joinLabels(labels);
    throw new RangeError(
      `Cannot find ${
        JSON.stringify(text)
      } in the ${labels.length} token labels: no run of tokens spells it; ${
        nearestHint(labels, joined, owner, normalize(text))
      }`,
    );
  }
  const occurrence = options.occurrence ?? 0;
  const index = occurrence < 0 ? spans.length + occurrence : occurrence;
  if (!Number.isInteger(occurrence) || index < 0 || index >= spans.length) {
    throw new RangeError(
      `Cannot find occurrence ${occurrence} of ${
        JSON.stringify(text)
      }: it occurs ${spans.length} time(s); pass an occurrence from 0 to ${
        spans.length - 1
      }, or -1 for the last`,
    );
  }
  return spans[index];
}

/** Options for {@linkcode findSpans}. */
export interface FindSpansOptions {
  /** Widen each span to its whole line(s), as in {@linkcode findSpan}. @default {false} */
  wholeLine?: boolean;
  /**
   * Only matches that are whole words: no letter, digit or `_` right before
   * or after them.
   * @default {false}
   */
  wholeWord?: boolean;
}

/**
 * Every occurrence of text in token labels, in order (none: an empty list).
 *
 * @param labels One label per position; `↵` and `\n` both stand for a line break.
 * @param text The text to find.
 * @param options Whole lines, whole words.
 * @returns The spans, first occurrence first.
 * @throws {TypeError} When the text is empty.
 *
 * @example
 * ```ts
 * import { findSpans } from "./span.ts";
 * import assert from "node:assert/strict";
 *
 * const labels = ["alpha", "bet", ":", " al", "pha", ":"];
 * assert.equal(findSpans(labels, "alpha").length, 2);
 * assert.deepEqual(findSpans(labels, "alpha", { wholeWord: true }), [{ start: 3, end: 5, text: " alpha" }]);
 * assert.deepEqual(findSpans(labels, "gamma"), []);
 * ```
 */
export function findSpans(
  labels: readonly string[],
  text: string,
  options: FindSpansOptions = {},
): TokenSpan[] {
  if (typeof text !== "string" || text === "") {
    throw new TypeError(
      `Cannot find a span: the text to look for is ${
        JSON.stringify(text)
      }; pass a non-empty string`,
    );
  }
  const { joined, owner } = joinLabels(labels);
  const needle = normalize(text);
  const isWordChar = (ch: string | undefined) =>
    ch !== undefined && /[\p{L}\p{N}_]/u.test(ch);
  const breaks = (p: number) => normalize(labels[p]).includes("\n");
  const spans: TokenSpan[] = [];
  for (
    let at = joined.indexOf(needle);
    at >= 0;
    at = joined.indexOf(needle, at + needle.length)
  ) {
    const after = at + needle.length;
    if (
      options.wholeWord &&
      (isWordChar(joined[at - 1]) || isWordChar(joined[after]))
    ) continue;
    let start = owner[at];
    let end = owner[after - 1] + 1;
    if (options.wholeLine) {
      while (start > 0 && !breaks(start - 1)) start--;
      while (end < labels.length && !breaks(end - 1)) end++;
    }
    spans.push({ start, end, text: labels.slice(start, end).join("") });
  }
  return spans;
}

function joinLabels(labels: readonly string[]) {
  let joined = "";
  const owner: number[] = [];
  labels.forEach((label, p) => {
    const s = normalize(String(label));
    joined += s;
    for (let i = 0; i < s.length; i++) owner.push(p);
  });
  return { joined, owner };
}

/**
 * The text in the labels closest to `needle` by edit distance (approximate
 * substring matching, Sellers' algorithm), as a hint for the error.
 */
function nearestHint(
  labels: readonly string[],
  joined: string,
  owner: readonly number[],
  needle: string,
): string {
  if (joined.length === 0) {
    return "the labels are empty; pass the labels of a capture";
  }
  const m = needle.length;
  // cost[i]: edits to match needle[0..i) ending at the current character;
  // from[i]: where that match starts in joined.
  let cost = Array.from({ length: m + 1 }, (_, i) => i);
  let from = new Array<number>(m + 1).fill(0);
  let best = { cost: Infinity, start: 0, end: 0 };
  for (let j = 1; j <= joined.length; j++) {
    const next = [0], nextFrom = [j];
    for (let i = 1; i <= m; i++) {
      const sub = cost[i - 1] + (needle[i - 1] === joined[j - 1] ? 0 : 1);
      const del = cost[i] + 1; // skip a character of joined
      const ins = next[i - 1] + 1; // skip a character of needle
      if (sub <= del && sub <= ins) {
        next.push(sub);
        nextFrom.push(from[i - 1]);
      } else if (del <= ins) {
        next.push(del);
        nextFrom.push(from[i]);
      } else {
        next.push(ins);
        nextFrom.push(nextFrom[i - 1]);
      }
    }
    if (next[m] < best.cost) {
      best = { cost: next[m], start: nextFrom[m], end: j };
    }
    cost = next;
    from = nextFrom;
  }
  const a = owner[Math.min(best.start, owner.length - 1)];
  const b = owner[Math.max(best.start, best.end - 1)];
  const near = labels.slice(a, b + 1).join("");
  return `the nearest text is ${
    JSON.stringify(near)
  } at positions ${a}-${b}; check the spelling or search for that`;
}

/** Where a {@linkcode spanAttention} query looks: positions as a span or a list. */
export type SpanLike =
  | TokenSpan
  | { readonly start: number; readonly end: number }
  | Iterable<number>;

/** Options for {@linkcode spanAttention}. */
export interface SpanAttentionOptions {
  /** The positions to measure: a {@linkcode findSpan} result, `{ start, end }`, or a list. */
  span: SpanLike;
  /**
   * The query's absolute position.
   * @default {the last prompt token: the row whose output is the first generated token}
   */
  query?: number;
}

/** One head's share of the query's attention on the span. */
export interface HeadMass {
  /** The layer index, as captured. */
  layer: number;
  /** The head. */
  head: number;
  /** The summed attention weight on the span's positions (0..1). */
  mass: number;
}

/**
 * The weight one query row puts on a span, for every captured layer and
 * head, heaviest first.
 *
 * @example
 * ```ts
 * import { SpanAttention } from "./span.ts";
 * import assert from "node:assert/strict";
 *
 * const result = new SpanAttention({
 *   query: 9,
 *   positions: [2, 3],
 *   heads: [{ layer: 0, head: 1, mass: 0.2 }, { layer: 1, head: 0, mass: 0.9 }],
 *   layers: [0, 1],
 *   numHeads: 2,
 * });
 * assert.deepEqual(result.top(1), [{ layer: 1, head: 0, mass: 0.9 }]);
 * assert.equal(result.get(0, 1), 0.2);
 * ```
 */
export class SpanAttention {
  /** The query's absolute position. */
  readonly query: number;
  /** The span's positions, ascending. */
  readonly positions: readonly number[];
  /** The span's text, when it came from labels. */
  readonly text: string | null;
  /** Every captured layer and head, heaviest first. */
  readonly heads: readonly HeadMass[];
  /** The captured layers, ascending. */
  readonly layers: readonly number[];
  /** The largest head count over the layers. */
  readonly numHeads: number;
  /** Token labels per position, when the capture had them. */
  readonly labels: readonly string[] | null;

  /**
   * Groups computed masses; most callers use {@linkcode spanAttention}.
   *
   * @param parts The query, the span, the masses and their layers.
   */
  constructor(parts: {
    query: number;
    positions: readonly number[];
    heads: readonly HeadMass[];
    layers: readonly number[];
    numHeads: number;
    text?: string | null;
    labels?: readonly string[] | null;
  }) {
    this.query = parts.query;
    this.positions = Object.freeze([...parts.positions]);
    this.heads = Object.freeze(
      [...parts.heads].sort((a, b) =>
        b.mass - a.mass || a.layer - b.layer || a.head - b.head
      ),
    );
    this.layers = Object.freeze([...parts.layers]);
    this.numHeads = parts.numHeads;
    this.text = parts.text ?? null;
    this.labels = parts.labels ?? null;
  }

  /**
   * The heads that put the most weight on the span.
   *
   * @param k How many.
   * @returns Up to `k` heads, heaviest first.
   *
   * @example
   * ```ts
   * import { SpanAttention } from "./span.ts";
   * import assert from "node:assert/strict";
   *
   * const r = new SpanAttention({ query: 1, positions: [0], layers: [0], numHeads: 3,
   *   heads: [0.1, 0.7, 0.4].map((mass, head) => ({ layer: 0, head, mass })) });
   * assert.deepEqual(r.top(2).map((h) => h.head), [1, 2]);
   * ```
   */
  top(k: number = 3): HeadMass[] {
    return this.heads.slice(0, Math.max(0, k));
  }

  /**
   * One head's mass on the span.
   *
   * @param layer The layer index, as captured.
   * @param head The head.
   * @returns The summed weight.
   * @throws {RangeError} When the result holds no such layer and head.
   *
   * @example
   * ```ts
   * import { SpanAttention } from "./span.ts";
   * import assert from "node:assert/strict";
   *
   * const r = new SpanAttention({ query: 1, positions: [0], layers: [4], numHeads: 1,
   *   heads: [{ layer: 4, head: 0, mass: 0.5 }] });
   * assert.equal(r.get(4, 0), 0.5);
   * assert.throws(() => r.get(3, 0), /Cannot read layer 3 head 0/);
   * ```
   */
  get(layer: number, head: number): number {
    const found = this.heads.find((h) => h.layer === layer && h.head === head);
    if (!found) {
      throw new RangeError(
        `Cannot read layer ${layer} head ${head}: the result holds layers ${
          this.layers.join(", ")
        } with heads 0 to ${this.numHeads - 1}; pick one of those`,
      );
    }
    return found.mass;
  }

  /** `"positions 3-7"` or a short list, with the text when known. */
  describeSpan(): string {
    const p = this.positions;
    const contiguous = p.length > 0 && p.at(-1)! - p[0] === p.length - 1;
    const where = p.length === 0
      ? "no positions"
      : contiguous
      ? (p.length === 1 ? `position ${p[0]}` : `positions ${p[0]}-${p.at(-1)}`)
      : `${p.length} positions (${p.slice(0, 4).join(", ")}${
        p.length > 4 ? ", ..." : ""
      })`;
    return this.text === null
      ? where
      : `${JSON.stringify(this.text)} (${where})`;
  }

  /**
   * A text summary: the span, the query and the three heaviest heads.
   *
   * @returns Multi-line text.
   *
   * @example
   * ```ts
   * import { SpanAttention } from "./span.ts";
   * import assert from "node:assert/strict";
   *
   * const r = new SpanAttention({ query: 5, positions: [1, 2], layers: [0], numHeads: 1, text: "ab",
   *   heads: [{ layer: 0, head: 0, mass: 0.75 }] });
   * assert.match(r.toString(), /query 5 on "ab" \(positions 1-2\)/);
   * assert.match(r.toString(), /L0 H0 0\.750/);
   * ```
   */
  toString(): string {
    const lines = this.top(3).map((h) =>
      `  L${h.layer} H${h.head} ${h.mass.toFixed(3)}`
    );
    return [
      `SpanAttention: query ${this.query} on ${this.describeSpan()}, ${this.layers.length} layer(s) x ${this.numHeads} head(s)`,
      ...lines,
    ].join("\n");
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows: the layer x head grid once
   * the chart layer is loaded (lib/charts/span.ts).
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { SpanAttention } from "./span.ts";
   * import assert from "node:assert/strict";
   *
   * const r = new SpanAttention({ query: 1, positions: [0], layers: [0], numHeads: 1,
   *   heads: [{ layer: 0, head: 0, mass: 1 }] });
   * assert.match(String((await r[JUPYTER_DISPLAY]())["text/plain"]), /SpanAttention/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("span-attention", this, this.toString());
  }
}

function spanPositions(span: SpanLike): number[] {
  if (
    span !== null && typeof span === "object" && "start" in span &&
    "end" in span
  ) {
    const { start, end } = span;
    if (!Number.isInteger(start) || !Number.isInteger(end) || end < start) {
      throw new RangeError(
        `Cannot measure a span from ${start} to ${end}: expected whole positions with start <= end; pass what findSpan returns`,
      );
    }
    return Array.from({ length: end - start }, (_, i) => start + i);
  }
  if (span === null || typeof span !== "object" || !(Symbol.iterator in span)) {
    throw new TypeError(
      `Cannot measure a span given as ${
        span === null ? "null" : typeof span
      }: pass what findSpan returns, { start, end } or a list of positions`,
    );
  }
  const positions = [...new Set(span)].sort((a, b) => a - b);
  for (const p of positions) {
    if (!Number.isInteger(p) || p < 0) {
      throw new RangeError(
        `Cannot measure position ${p}: positions are whole numbers from 0; pass token positions`,
      );
    }
  }
  return positions;
}

/**
 * For every captured layer and head, the attention weight one query row puts
 * on a span (the sum over the span's positions), heaviest first.
 *
 * @param capture What `captureAttention` or `extractAttentionFromResponse` returns.
 * @param options The span and the query position.
 * @returns The masses, sorted; `.top(k)` in code, a chart in Jupyter.
 * @throws {RangeError} When the query has no captured row in some layer or
 * the span runs outside the captured keys.
 *
 * @example
 * ```ts
 * import { findSpan, spanAttention } from "./span.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * // Three positions, two heads; the last row: head 0 reads key 0, head 1 key 2.
 * const data = new Float32Array([1, 0, 0, 1, 0, 0, 0.5, 0.5, 0, 0.5, 0.5, 0, 0.75, 0.25, 0, 0.125, 0.125, 0.75]);
 * const layer = new AttentionLayer({ layer: 0, model: null,
 *   scores: new AttentionScores(data, [3, 2, 3]), tokenMeta: TokenMeta.from({ prompt_len: 3, total_len: 3 }) });
 * const capture = { attention: { 0: layer }, labels: ["al", "pha", ":"] };
 * const reading = spanAttention(capture, { span: findSpan(capture.labels, "alpha") });
 * assert.deepEqual(reading.top(1)[0], { layer: 0, head: 0, mass: 1 });
 * assert.equal(reading.get(0, 1), 0.25);
 * ```
 */
export function spanAttention(
  capture: CaptureLike,
  options: SpanAttentionOptions,
): SpanAttention {
  const { layers, labels } = normalizeCapture(
    capture,
    "measure attention on a span",
  );
  if (options === null || typeof options !== "object" || !options.span) {
    throw new TypeError(
      "Cannot measure attention on a span: no span given; pass { span: findSpan(capture.labels, text) }",
    );
  }
  const positions = spanPositions(options.span);
  const query = options.query ?? layers[0].tokenMeta.promptLen - 1;
  if (!Number.isInteger(query) || query < 0) {
    throw new RangeError(
      `Cannot measure attention from query ${query}: expected an absolute position (0 or more); pass options.query`,
    );
  }
  const heads: HeadMass[] = [];
  let numHeads = 0;
  for (const { layer, scores } of layers) {
    const row = scores.rowForPosition(query);
    if (row < 0) {
      throw new RangeError(
        `Cannot measure attention from position ${query}: layer ${layer} has no row for it (rows cover positions ${
          scores.queryPositions[0]
        }-${scores.queryPositions.at(-1)}); pass a captured query position`,
      );
    }
    const keys = positions.map((p) => p - scores.keyOffset);
    const outside = keys.findIndex((k) => k < 0 || k >= scores.keyLength);
    if (outside >= 0) {
      throw new RangeError(
        `Cannot measure attention on position ${
          positions[outside]
        }: layer ${layer} has keys ${scores.keyOffset}-${
          scores.keyOffset + scores.keyLength - 1
        }; pass a span inside them`,
      );
    }
    numHeads = Math.max(numHeads, scores.numHeads);
    for (let head = 0; head < scores.numHeads; head++) {
      const weights = scores.row(row, head);
      let mass = 0;
      for (const k of keys) mass += weights[k];
      heads.push({ layer, head, mass });
    }
  }
  const span = options.span as Partial<TokenSpan>;
  return new SpanAttention({
    query,
    positions,
    heads,
    layers: layers.map((l) => l.layer),
    numHeads,
    text: typeof span.text === "string"
      ? span.text
      : labels && positions.length > 0 &&
          positions.at(-1)! - positions[0] === positions.length - 1
      ? labels.slice(positions[0], positions.at(-1)! + 1).join("")
      : null,
    labels,
  });
}
