/**
 * Where rows and columns of the matrix sit in the token strips. Self
 * attention has one strip (absolute positions): row `r` is the token at
 * `queryPositions[r]` and column `c` the token at `keyOffset + c`.
 * Cross-attention has two strips, the queries and the keys, indexed by row
 * and by column.
 *
 * @module
 */

import type { ExplorerMeta } from "../_protocol.ts";

/** One strip of tokens. */
export interface Strip {
  /** Token text. */
  labels: readonly string[];
  /** One letter per token (`l`, `v`, `g`, `u`). */
  types: string;
}

/** The mapping between matrix cells and strip tokens. */
export interface Geometry {
  /** Whether queries and keys are different tokens (two strips). */
  cross: boolean;
  /** The query strip (the only strip in self attention). */
  queries: Strip;
  /** The key strip (the same object as `queries` in self attention). */
  keys: Strip;
  /** Row of a query-strip token, -1 when it is not a captured query. */
  rowOf(index: number): number;
  /** Column of a key-strip token, -1 when not a captured key. */
  colOf(index: number): number;
  /** Query-strip token of row `r`. */
  rowToken(r: number): number;
  /** Key-strip token of column `c`. */
  colToken(c: number): number;
  /** The query position of row `r`, for causal and window masks. */
  queryPos(r: number): number;
  /** The token shaded first. */
  initialQuery: number;
}

/** The geometry of an explorer's header. */
export function geometryOf(meta: ExplorerMeta, rowOf: Int32Array): Geometry {
  const { tq, tk, keyOffset, queryPositions } = meta;
  if (meta.cross) {
    const row = queryPositions.indexOf(meta.initial.query);
    const inRange = (n: number) => (i: number) => i >= 0 && i < n ? i : -1;
    return {
      cross: true,
      queries: { labels: meta.cross.queryLabels, types: "" },
      keys: { labels: meta.cross.keyLabels, types: "" },
      rowOf: inRange(tq),
      colOf: inRange(tk),
      rowToken: (r) => r,
      colToken: (c) => c,
      queryPos: (r) => queryPositions[r],
      initialQuery: row >= 0 ? row : tq - 1,
    };
  }
  const strip = { labels: meta.labels, types: meta.types };
  return {
    cross: false,
    queries: strip,
    keys: strip,
    rowOf: (p) => rowOf[p] ?? -1,
    colOf: (
      p,
    ) => (p - keyOffset >= 0 && p - keyOffset < tk ? p - keyOffset : -1),
    rowToken: (r) => queryPositions[r],
    colToken: (c) => keyOffset + c,
    queryPos: (r) => queryPositions[r],
    initialQuery: meta.initial.query,
  };
}
