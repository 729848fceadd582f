/**
 * What every part of one explorer reads: its root, header, data, geometry,
 * state, architecture and colour tables. Built once by `mountExplorer`.
 *
 * @module
 */

import type { ExplorerMeta } from "../_protocol.ts";
import type { CaptureView } from "./compare.ts";
import type { Geometry } from "./geometry.ts";
import type { Store } from "./state.ts";

/** A layer's architecture as the page uses it. */
export interface Arch {
  /** Sliding window (0: none). */
  window: number;
  /** KV heads (query heads share them in groups). */
  kvHeads: number;
  /** Whether future keys are masked. */
  causal: boolean;
}

/** The shared, read-only context of one explorer's parts. */
export interface ViewContext {
  /** The explorer's root element. */
  root: HTMLElement;
  /** The page's header. */
  meta: ExplorerMeta;
  /** Capture a, b, or a - b (compare mode), behind one interface. */
  cap: CaptureView;
  /** Matrix cells <-> token strips. */
  geometry: Geometry;
  /** The one state. */
  store: Store;
  /** Query heads per layer. */
  nHeads: number;
  /** A layer's architecture. */
  arch(layer: number): Arch;
  /** Whether values are signed differences (diverging colours). */
  signed(): boolean;
  /** Colour tables (RGBA). */
  lut: {
    matrix: Uint8Array;
    tokens: Uint8Array;
    /** The token scale reversed, for dark themes. */
    tokensDark: Uint8Array;
    /** Diverging, for a - b. */
    diff: Uint8Array | null;
  };
  /** Masked cells' colour (the theme's `--ax-masked`). */
  masked: [number, number, number];
}
