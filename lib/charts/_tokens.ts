/**
 * Token text and color conventions shared by the charts: how a token is
 * written on an axis, the token-type palette, the highlight color, and which
 * positions get an axis label when there are too many to write.
 *
 * @module
 */

import type { TokenType } from "../data/token_meta.ts";

/**
 * Colors of token types (Tableau 10), the same in every chart.
 *
 * @example Color your own marks the way attnscope does
 * ```ts
 * import { TOKEN_TYPE_COLORS } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(TOKEN_TYPE_COLORS.vision, "#f28e2b");
 * ```
 */
export const TOKEN_TYPE_COLORS: Readonly<Record<TokenType, string>> = {
  vision: "#f28e2b",
  language: "#4e79a7",
  generated: "#59a14f",
  unknown: "#9d9d9d",
};

/**
 * The color marked positions (e.g. the needle) are highlighted with.
 *
 * @example
 * ```ts
 * import { MARK_COLOR } from "../../mod.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(MARK_COLOR, /^#[0-9a-f]{6}$/);
 * ```
 */
export const MARK_COLOR = "#e0115f";

/**
 * Token text made safe for one line: whitespace made visible, long tokens
 * cut with an ellipsis.
 *
 * @param text The token's text.
 * @param maxLength Most characters to keep.
 * @returns The display text.
 *
 * @example
 * ```ts
 * import { visibleToken } from "./_tokens.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(visibleToken(" the\n"), "·the↵");
 * assert.equal(visibleToken("abcdefghijklmnop", 6), "abcde…");
 * ```
 */
export function visibleToken(text: string, maxLength = 14): string {
  const shown = text.replace(/\r?\n/g, "↵").replace(/\t/g, "⇥").replace(
    / /g,
    "·",
  );
  const chars = [...shown];
  return chars.length > maxLength
    ? chars.slice(0, maxLength - 1).join("") + "…"
    : shown;
}

/**
 * The axis label of a position: its token text and index, or the index
 * alone without labels.
 *
 * @param position Absolute position.
 * @param labels Token text per absolute position.
 * @param maxLength Most characters of token text.
 * @returns E.g. `needle 57`.
 *
 * @example
 * ```ts
 * import { positionLabel } from "./_tokens.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(positionLabel(1, ["a", " cat"]), "·cat 1");
 * assert.equal(positionLabel(5), "5");
 * ```
 */
export function positionLabel(
  position: number,
  labels?: readonly string[],
  maxLength = 14,
): string {
  const text = labels?.[position];
  return text === undefined
    ? String(position)
    : `${visibleToken(text, maxLength)} ${position}`;
}

/**
 * Positions to label on an axis of `count` positions starting at `start`
 * when there is room for about `room` labels: every position when they fit,
 * else multiples of a round step (1, 2, 5, 10, 20, 50...), plus every marked
 * position.
 *
 * @param start First position.
 * @param count How many positions.
 * @param room About how many labels fit.
 * @param marked Positions always labeled.
 * @returns The positions, ascending.
 *
 * @example
 * ```ts
 * import { thinnedTicks } from "./_tokens.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(thinnedTicks(0, 4, 10), [0, 1, 2, 3]);
 * // 50 and 60 would crowd the marked 57.
 * assert.deepEqual(thinnedTicks(0, 100, 12, [57]), [0, 10, 20, 30, 40, 57, 70, 80, 90]);
 * ```
 */
export function thinnedTicks(
  start: number,
  count: number,
  room: number,
  marked: Iterable<number> = [],
): number[] {
  const end = start + count;
  let step = 1;
  for (let base = 1; count / step > Math.max(1, room); base *= 10) {
    for (const m of [1, 2, 5]) {
      step = base * m;
      if (count / step <= Math.max(1, room)) break;
    }
  }
  const keep = [...marked].filter((m) => m >= start && m < end);
  const ticks = new Set<number>(keep);
  // Plain labels too close to a marked one would overprint it.
  const clear = (p: number) =>
    keep.every((m) => m === p || Math.abs(m - p) >= step * 0.75);
  for (let p = Math.ceil(start / step) * step; p < end; p += step) {
    if (clear(p)) ticks.add(p);
  }
  return [...ticks].sort((a, b) => a - b);
}

/**
 * Marked positions as a set, checking they are integers.
 *
 * @param mark Positions to highlight.
 * @returns The set.
 * @throws {TypeError} When a position is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { markedSet } from "./_tokens.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...markedSet([3, 3, 5])], [3, 5]);
 * assert.throws(() => markedSet([1.5]), TypeError);
 * ```
 */
export function markedSet(mark: Iterable<number> | undefined): Set<number> {
  const out = new Set<number>();
  for (const m of mark ?? []) {
    if (!Number.isInteger(m) || m < 0) {
      throw new TypeError(
        `Cannot mark position ${m}: expected a non-negative integer token position`,
      );
    }
    out.add(m);
  }
  return out;
}

/**
 * A number with 3 significant decimals for hover text and captions.
 *
 * @param w A weight.
 * @returns E.g. `0.123`, or `0.000012` shown as `1.2e-5`.
 *
 * @example
 * ```ts
 * import { formatWeight } from "./_tokens.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatWeight(0.12345), "0.123");
 * assert.equal(formatWeight(0.0000123), "1.2e-5");
 * ```
 */
export function formatWeight(w: number): string {
  if (w !== 0 && Math.abs(w) < 0.001) return w.toExponential(1);
  return w.toFixed(3);
}
