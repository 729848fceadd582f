/**
 * Compare mode's alignment: two captures of different token sequences (a
 * clean prompt and a corrupted one with tokens added or removed, or a short
 * context and a longer one holding it) lined up on a common run of tokens,
 * and both cropped to it in the query and the key dimension. The cropped
 * probabilities are the captured ones, not renormalized: a row's weights on
 * the window sum to less than 1 when the query also read keys outside it.
 *
 * @module
 */

import { AttentionLayer } from "../data/layer.ts";
import { AttentionScores } from "../data/scores.ts";
import { TokenMeta, type TokenRange } from "../data/token_meta.ts";
import { findSpan } from "../analysis/span.ts";

/**
 * How compare mode lines up capture b with capture a:
 * - `"auto"`: by position when every layer has a's shape and positions,
 *   else as `"span"`;
 * - `"positions"`: by position only (same shapes and positions, else an error);
 * - `"span"`: on the longest run of identical token labels (at least 2
 *   tokens; of equally long runs, the one ending last in a);
 * - `{ text }`: on the tokens that spell `text`, found in each capture's
 *   labels with `findSpan` (its first occurrence, or `occurrence`).
 */
export type CompareAlign =
  | "auto"
  | "positions"
  | "span"
  | { readonly text: string; readonly occurrence?: number };

/** The window both captures were cropped to, in each one's own positions. */
export interface Alignment {
  /** Capture a's positions `[start, end)`. */
  readonly a: { readonly start: number; readonly end: number };
  /** Capture b's positions `[start, end)` (as long as a's). */
  readonly b: { readonly start: number; readonly end: number };
  /** The window's text (a's labels joined). */
  readonly text: string;
  /** `"a[3,20) b[0,17)"`. */
  readonly label: string;
}

/** One capture as compare mode takes it. */
export interface AlignSide {
  /** Its layers, ascending. */
  readonly layers: readonly AttentionLayer[];
  /** One label per absolute position, or `null` when unknown. */
  readonly labels: readonly string[] | null;
}

/** Both sides cropped to the window (or as given when aligned by position). */
export interface Aligned {
  /** Capture a's layers, rebased so that the window starts at position 0. */
  readonly a: AttentionLayer[];
  /** Capture b's layers, one per layer of a, rebased the same way. */
  readonly b: AttentionLayer[];
  /** Capture a's labels over the window (or all of them). */
  readonly labels: readonly string[] | null;
  /** The window, or `null` when aligned by position. */
  readonly alignment: Alignment | null;
}

const fail = (state: string, todo: string): never => {
  throw new TypeError(`Cannot compare attention: ${state}; ${todo}`);
};

/** Whether two layers cover the same shape and positions. */
function samePositions(x: AttentionLayer, y: AttentionLayer): boolean {
  const sa = x.scores, sb = y.scores;
  return String(sa.shape) === String(sb.shape) &&
    sa.keyOffset === sb.keyOffset &&
    String(sa.queryPositions) === String(sb.queryPositions);
}

function pairLayers(a: AlignSide, b: AlignSide): AttentionLayer[] {
  return a.layers.map((la) =>
    b.layers.find((l) => l.layer === la.layer) ??
      fail(
        `capture b has no layer ${la.layer} (it holds ${
          b.layers.map((l) => l.layer).join(", ")
        })`,
        "capture the same layers in both",
      )
  );
}

/** The positions every layer of a side holds as keys: `[lo, hi)`. */
function keyRange(layers: readonly AttentionLayer[]): [number, number] {
  let lo = 0, hi = Infinity;
  for (const { scores } of layers) {
    lo = Math.max(lo, scores.keyOffset);
    hi = Math.min(hi, scores.keyOffset + scores.keyLength);
  }
  return [lo, hi];
}

/**
 * The longest run of equal labels within `[lo, hi)` of each side, ending
 * last in a among equals; `null` when none is 2 tokens long.
 */
function longestRun(
  la: readonly string[],
  [aLo, aHi]: [number, number],
  lb: readonly string[],
  [bLo, bHi]: [number, number],
): { a: number; b: number; n: number } | null {
  const na = Math.min(aHi, la.length), nb = Math.min(bHi, lb.length);
  let prev = new Int32Array(nb + 1), cur = new Int32Array(nb + 1);
  let best = { a: 0, b: 0, n: 0 };
  for (let i = aLo; i < na; i++) {
    for (let j = bLo; j < nb; j++) {
      const n = la[i] === lb[j] ? prev[j] + 1 : 0;
      cur[j + 1] = n;
      if (n > 0 && n >= best.n) best = { a: i + 1 - n, b: j + 1 - n, n };
    }
    [prev, cur] = [cur, prev];
    cur.fill(0);
  }
  return best.n >= 2 ? best : null;
}

function spanOf(
  labels: readonly string[],
  text: string,
  occurrence: number | undefined,
  side: string,
): { start: number; end: number } {
  try {
    return findSpan(labels, text, { occurrence });
  } catch (e) {
    return fail(
      `capture ${side}'s labels do not hold ${JSON.stringify(text)} (${
        (e as Error).message
      })`,
      "pass align: { text } that both captures spell",
    );
  }
}

/** `[start, end)` of a range list shifted by `-from` and clipped to `[0, n)`. */
function shiftRanges(
  ranges: readonly TokenRange[],
  from: number,
  n: number,
): TokenRange[] {
  return ranges
    .map((r) => ({
      start: Math.max(0, r.start - from),
      end: Math.min(n, r.end - from),
    }))
    .filter((r) => r.end > r.start);
}

/** One layer cropped to positions `[start, start + n)` at the given row offsets. */
function crop(
  layer: AttentionLayer,
  start: number,
  n: number,
  offsets: readonly number[],
): AttentionLayer {
  const s = layer.scores;
  const heads = s.numHeads, tk = s.keyLength;
  const out = new Float32Array(offsets.length * heads * n);
  const k0 = start - s.keyOffset;
  offsets.forEach((o, i) => {
    const r = s.rowForPosition(start + o);
    for (let h = 0; h < heads; h++) {
      const from = (r * heads + h) * tk + k0;
      const to = (i * heads + h) * n;
      for (let k = 0; k < n; k++) out[to + k] = s.data[from + k];
    }
  });
  const m = layer.tokenMeta;
  return new AttentionLayer({
    layer: layer.layer,
    model: layer.model,
    scores: new AttentionScores(out, [offsets.length, heads, n], {
      queryPositions: offsets,
    }),
    tokenMeta: new TokenMeta({
      promptLen: Math.max(0, Math.min(n, m.promptLen - start)),
      totalLen: n,
      visionRanges: shiftRanges(m.visionRanges, start, n),
      langRanges: shiftRanges(m.langRanges, start, n),
    }),
    layerMeta: layer.layerMeta,
  });
}

/**
 * Lines capture b up with capture a for compare mode: by position, or on a
 * common window of tokens found in their labels, to which both are cropped
 * (queries and keys; probabilities as captured, not renormalized).
 *
 * @param a Capture a: its layers and labels.
 * @param b Capture b: its layers and labels.
 * @param align How to line them up.
 * @returns Both sides' layers, a's labels and the window (`null` by position).
 * @throws {TypeError} When b lacks a layer of a, the heads differ, or no
 * alignment exists (shapes differ and a side has no labels, or no common
 * run of tokens), saying what to pass.
 *
 * @example
 * ```ts
 * import { alignCaptures } from "./_align.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * // Uniform causal attention over t tokens, one head.
 * const layer = (t: number) => {
 *   const data = new Float32Array(t * t);
 *   for (let q = 0; q < t; q++) for (let k = 0; k <= q; k++) data[q * t + k] = 1 / (q + 1);
 *   return new AttentionLayer({ layer: 0, model: null, scores: new AttentionScores(data, [t, 1, t]),
 *     tokenMeta: new TokenMeta({ promptLen: t, totalLen: t }) });
 * };
 * const clean = { layers: [layer(4)], labels: ["<bos>", "The", " cat", " sat"] };
 * const longer = { layers: [layer(6)], labels: ["<bos>", "Hi", ".", "The", " cat", " sat"] };
 * const { a, b, labels, alignment } = alignCaptures(clean, longer, "span");
 * assert.equal(alignment?.label, "a[1,4) b[3,6)");
 * assert.deepEqual(labels, ["The", " cat", " sat"]);
 * // Cropped, not renormalized: a's " sat" row read 1/4 of each key.
 * assert.deepEqual([...a[0].scores.row(2, 0)], [0.25, 0.25, 0.25]);
 * assert.deepEqual([...b[0].scores.row(2, 0)], [1 / 6, 1 / 6, 1 / 6].map(Math.fround));
 * assert.throws(() => alignCaptures(clean, { ...longer, labels: null }),
 *   /^TypeError: Cannot compare attention: .* capture b has no token labels/);
 * ```
 */
export function alignCaptures(
  a: AlignSide,
  b: AlignSide,
  align: CompareAlign = "auto",
): Aligned {
  const paired = pairLayers(a, b);
  const same = a.layers.every((la, i) => samePositions(la, paired[i]));
  const la0 = a.layers[0], lb0 = paired[0];
  const differs =
    `layer ${la0.layer} of capture b has shape [${lb0.scores.shape}] from position ${lb0.scores.keyOffset} but capture a has [${la0.scores.shape}] from ${la0.scores.keyOffset}`;
  if (align === "positions" || (align === "auto" && same)) {
    if (!same) {
      const i = a.layers.findIndex((l, i) => !samePositions(l, paired[i]));
      const x = a.layers[i].scores, y = paired[i].scores;
      fail(
        `layer ${
          a.layers[i].layer
        } of capture b has shape [${y.shape}] from position ${y.keyOffset} but capture a has [${x.shape}] from ${x.keyOffset}`,
        'compare captures of the same tokens, or align them with align: "span"',
      );
    }
    return { a: [...a.layers], b: paired, labels: a.labels, alignment: null };
  }
  if (
    align !== "auto" && align !== "span" &&
    (align === null || typeof align !== "object" ||
      typeof align.text !== "string")
  ) {
    fail(
      `align is ${JSON.stringify(align)}`,
      'pass "auto", "positions", "span" or { text }',
    );
  }
  a.layers.forEach((l, i) => {
    if (l.scores.numHeads !== paired[i].scores.numHeads) {
      fail(
        `layer ${l.layer} has ${l.scores.numHeads} heads in capture a but ${
          paired[i].scores.numHeads
        } in capture b`,
        "compare captures of the same model (or the same head layout)",
      );
    }
  });
  const missing = [a.labels ? "" : "a", b.labels ? "" : "b"].filter(Boolean);
  if (missing.length) {
    fail(
      `${align === "auto" ? differs + ", and " : ""}capture ${
        missing.join(" and ")
      } has no token labels to align by`,
      "pass captures with labels (captureAttention's result, or the labels and compareLabels options), or compare captures of the same tokens",
    );
  }
  const labelsA = a.labels!, labelsB = b.labels!;
  const rangeA = keyRange(a.layers), rangeB = keyRange(paired);
  let sa: number, sb: number, n: number;
  if (typeof align === "object") {
    const x = spanOf(labelsA, align.text, align.occurrence, "a");
    const y = spanOf(labelsB, align.text, align.occurrence, "b");
    const tokA = labelsA.slice(x.start, x.end).join("\u0000");
    const tokB = labelsB.slice(y.start, y.end).join("\u0000");
    if (tokA !== tokB) {
      fail(
        `${JSON.stringify(align.text)} is tokens [${x.start},${x.end}) ${
          JSON.stringify(labelsA.slice(x.start, x.end))
        } in capture a but [${y.start},${y.end}) ${
          JSON.stringify(labelsB.slice(y.start, y.end))
        } in capture b`,
        "pass a text both captures tokenize the same way",
      );
    }
    [sa, sb, n] = [x.start, y.start, x.end - x.start];
    for (
      const [side, s, [lo, hi]] of [["a", sa, rangeA], ["b", sb, rangeB]] as [
        string,
        number,
        [number, number],
      ][]
    ) {
      if (s < lo || s + n > hi) {
        fail(
          `capture ${side} holds keys for positions ${lo}-${hi - 1} but ${
            JSON.stringify(align.text)
          } lies at ${s}-${s + n - 1}`,
          "pass a text inside both captures",
        );
      }
    }
  } else {
    const run = longestRun(labelsA, rangeA, labelsB, rangeB) ??
      fail(
        `${
          align === "auto" ? differs + ", and " : ""
        }their token labels share no run of 2 or more tokens`,
        "compare captures of the same text (or one holding the other), or name the window with align: { text }",
      );
    [sa, sb, n] = [run.a, run.b, run.n];
  }
  // Query rows: offsets in the window that both captures hold in every layer.
  const offsets: number[] = [];
  for (let o = 0; o < n; o++) {
    const held = a.layers.every((l, i) =>
      l.scores.rowForPosition(sa + o) >= 0 &&
      paired[i].scores.rowForPosition(sb + o) >= 0
    );
    if (held) offsets.push(o);
  }
  if (offsets.length === 0) {
    fail(
      `no query row of the window a[${sa},${sa + n}) b[${sb},${
        sb + n
      }) is captured in both`,
      "capture the prompt's rows in both (or name another window with align: { text })",
    );
  }
  const alignment: Alignment = {
    a: { start: sa, end: sa + n },
    b: { start: sb, end: sb + n },
    text: labelsA.slice(sa, sa + n).join(""),
    label: `a[${sa},${sa + n}) b[${sb},${sb + n})`,
  };
  return {
    a: a.layers.map((l) => crop(l, sa, n, offsets)),
    b: paired.map((l) => crop(l, sb, n, offsets)),
    labels: labelsA.slice(sa, sa + n),
    alignment,
  };
}
