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
  window: number;
  kvHeads: number;
  causal: boolean;
}

/** The shared, read-only context of one explorer's parts. */
export interface ViewContext {
  root: HTMLElement;
  meta: ExplorerMeta;
  /** Capture a, b, or a - b (compare mode), behind one interface. */
  cap: CaptureView;
  geometry: Geometry;
  store: Store;
  nHeads: number;
  arch(layer: number): Arch;
  /** Whether values are signed differences (diverging colours). */
  signed(): boolean;
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
