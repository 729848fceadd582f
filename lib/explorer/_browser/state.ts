/**
 * The one place an explorer's state lives: what is selected, shown and
 * filtered. Parts read it with `get()` and change it with `update(patch,
 * change)`, which tells every listener how much must be redrawn.
 *
 * @module
 */

import type { Combine } from "./data.ts";

/** The part of the matrix shown: rows `[r0, r1)`, columns `[c0, c1)`. */
export interface Zoom {
  /** First row. */
  r0: number;
  /** Row past the last. */
  r1: number;
  /** First column. */
  c0: number;
  /** Column past the last. */
  c1: number;
}

/** Everything the user can change. */
export interface ViewState {
  /** Index into the header's layers. */
  layer: number;
  /** Selected heads, ascending. */
  heads: number[];
  /** How heads combine. */
  combine: Combine;
  /** Shade by the query row, or by the attention a key column received. */
  mode: "query" | "received";
  /** Pinned tokens (strip indices, see `Geometry`). */
  pins: number[];
  /** The hovered token, when nothing is pinned. */
  hover: number | null;
  /** Weights below it are hidden. */
  threshold: number;
  /** Per row, only the top n keep colour (0: all). */
  topN: number;
  /** Key 0 (the sink) left out of the colour scale. */
  sinkOut: boolean;
  /** The part of the matrix shown. */
  zoom: Zoom;
}

/**
 * How much a change invalidates: nothing (`none`), the selection only (token shading and the
 * matrix overlay), the colours (`paint`: filters), or the matrix data
 * (`data`: layer, heads, combine, zoom, compare side).
 */
export type Change = "none" | "selection" | "paint" | "data";

/** The state and its listeners. */
export class Store {
  #state: ViewState;
  #listeners: ((change: Change) => void)[] = [];
  /** The token shaded when nothing is hovered or pinned. */
  readonly initialQuery: number;

  /** A store holding `state`; `initialQuery` is shaded when nothing is selected. */
  constructor(state: ViewState, initialQuery: number) {
    this.#state = state;
    this.initialQuery = initialQuery;
  }

  /** The current state (read only: change it with `update`). */
  get(): Readonly<ViewState> {
    return this.#state;
  }

  /** The tokens shading follows: pins, else the hovered one, else the initial query. */
  selection(): number[] {
    const { pins, hover } = this.#state;
    return pins.length ? pins : hover !== null ? [hover] : [this.initialQuery];
  }

  /** Applies `patch` and tells every listener what to redraw. */
  update(patch: Partial<ViewState>, change: Change): void {
    this.#state = { ...this.#state, ...patch };
    for (const f of this.#listeners) f(change);
  }

  /** Calls `f` after every update. */
  listen(f: (change: Change) => void): void {
    this.#listeners.push(f);
  }
}
