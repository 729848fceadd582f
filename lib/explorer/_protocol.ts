/**
 * What the Deno side embeds in an explorer page and the browser bundle
 * reads: one JSON header and one base64 blob of deflate-raw segments.
 * Types and constants only, so both sides import it (browser-safe).
 *
 * @module
 */

/** Weights are stored as `round(w * QUANT)` in 16 bits: error below 8e-6. */
export const QUANT = 65535;

/**
 * A reduced head's top-k weights and pooled overview are stored as
 * `round(w * TOP_QUANT)` (0 to 1000, still in two byte planes, the high one
 * nearly all zeros): error at most 5e-4, and about a fifth of the bytes of
 * 16-bit weights, whose low bytes are noise deflate cannot shrink.
 */
export const TOP_QUANT = 1000;

/**
 * A compressed segment of the blob: `[at, at + len)`, inflating to `raw`
 * bytes. 16-bit arrays are stored as two byte planes (every high byte, then
 * every low byte).
 */
export interface Segment {
  /** Byte offset in the decoded blob. */
  at: number;
  /** Compressed length. */
  len: number;
  /** Inflated length. */
  raw: number;
}

/** How one head of one layer is embedded. */
export interface HeadBlock {
  /** The head index. */
  head: number;
  /** `Tq x Tk` quantized weights, when the head is at full resolution. */
  full?: Segment;
  /** A max-pooled `rows x cols` overview, when reduced (`TOP_QUANT` steps). */
  pooled?: Segment;
  /** Top-k key columns per query row, ascending; each row's first index, then differences. */
  topIdx?: Segment;
  /** Their weights in `TOP_QUANT` steps. */
  topVal?: Segment;
}

/** The page's header. */
export interface ExplorerMeta {
  /** Format version. */
  version: 1;
  /** Heading of the view. */
  title: string;
  /** Query rows. */
  tq: number;
  /** Key columns. */
  tk: number;
  /** Absolute position of key column 0. */
  keyOffset: number;
  /** Absolute position of each query row. */
  queryPositions: number[];
  /** Token text per absolute position (positions when the capture had none). */
  labels: string[];
  /** Whether `labels` came from the capture (false: positions). */
  hasLabels: boolean;
  /** One letter per position: `l`anguage, `v`ision, `g`enerated, `u`nknown. */
  types: string;
  /** The layers, in order, with their heads. */
  layers: { layer: number; heads: HeadBlock[] }[];
  /** Size of every pooled overview. */
  pooled: { rows: number; cols: number };
  /** Keys kept per row in reduced heads. */
  topK: number;
  /** Bytes per top-k index (2 or 4). */
  idxBytes: 2 | 4;
  /** Color tables (base64 RGBA, `LUT_SIZE` colors over [0, 1] of the domain). */
  lut: { matrix: string; tokens: string };
  /** The view at load: layer index into `layers` and the query position. */
  initial: { layer: number; query: number };
  /** What was reduced, in words; `""` when every head is at full resolution. */
  reduced: string;
  /** `"light"`, `"dark"` or `"auto"` (follow the host). */
  theme: "light" | "dark" | "auto";
  /**
   * Per layer: the sliding window (0 on full layers), KV heads, and whether
   * attention is causal.
   */
  arch: { window: number; kvHeads: number; causal: boolean }[];
  /**
   * Cross-attention: the query tokens (one per row) and the key tokens (one
   * per column), shown as two strips; `labels` is then unused.
   */
  cross?: { queryLabels: string[]; keyLabels: string[] };
  /**
   * Compare mode: capture b's packing (its blob sits in `.ax-blob-b`), the
   * two names, and the diverging colour table for a - b.
   */
  compare?: {
    packing: Pick<ExplorerMeta, "layers" | "pooled" | "topK" | "idxBytes">;
    names: { a: string; b: string };
    lut: string;
    /** The aligned window, e.g. `"a[3,20) b[0,17)"`, when b was aligned by span. */
    align?: string;
  };
}
