/**
 * `explore()`: an interactive attention explorer for a capture, in one
 * self-contained HTML output (inline script, styles and data, no network)
 * that shows itself in Deno's Jupyter kernel and saves as a page. The same
 * output carries a static picture of its initial state for places where
 * scripts never run (GitHub, an untrusted JupyterLab, nbconvert).
 *
 * @module
 */

import { AttentionLayer } from "../data/layer.ts";
import type { LayerMeta } from "../data/layer_meta.ts";
import { type CaptureLike, normalizeCapture } from "../data/capture_input.ts";
import { JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import { writeFileAtomic } from "../atomic_write.ts";
import { colorTable } from "../charts/_colorize.ts";
import { escapeXml } from "../charts/_figure.ts";
import type { Figure, PngOptions } from "../charts/_figure.ts";
import { attentionHeatmap } from "../charts/heatmap.ts";
import { tokenText, tokenTextImage } from "../charts/token_text.ts";
import { pngDataUrl } from "../png.ts";
import { EXPLORER_BUNDLE } from "./_bundle.ts";
import { packLayers } from "./_payload.ts";
import type { ExplorerMeta } from "./_protocol.ts";
import { EXPLORER_CSS } from "./_style.ts";
import { resolveLayerMeta } from "./_layer_meta.ts";
import { packCompare } from "./_compare.ts";
import { alignCaptures, type Aligned, type CompareAlign } from "./_align.ts";
import { inlineScript, scriptJson } from "./_safe.ts";

export type { CompareAlign } from "./_align.ts";

/** What {@linkcode explore} takes: a capture in either shape, or one layer. */
export type ExploreSource = CaptureLike | AttentionLayer;

/** Options for {@linkcode explore}. */
export interface ExploreOptions {
  /**
   * Token text per absolute position.
   * @default {undefined} the capture's labels, else positions
   */
  labels?: readonly string[];
  /**
   * Most bytes of output; above it heads are embedded as a max-pooled
   * overview plus each query row's strongest keys.
   * @default {8388608} 8 MiB
   */
  maxBytes?: number;
  /**
   * Keys kept per query row in reduced heads.
   * @default {32}
   */
  topK?: number;
  /**
   * The layer shown first (the model's layer index).
   * @default {undefined} the last layer
   */
  layer?: number;
  /**
   * The query position shaded first.
   * @default {undefined} the last prompt token (else the last captured query)
   */
  query?: number;
  /**
   * Heading.
   * @default {"Attention explorer"}
   */
  title?: string;
  /**
   * Colours: `"light"`, `"dark"`, or `"auto"`, which follows the host
   * (JupyterLab's `--jp-*` and VS Code's `--vscode-*` variables, else the
   * page's `prefers-color-scheme`).
   * @default {"auto"}
   */
  theme?: "light" | "dark" | "auto";
  /**
   * The architecture of the layers, for sources that do not carry it
   * (files): one for every layer, or one per layer in the capture's order.
   * A layer's own `layerMeta` wins over this.
   * @default {undefined} each layer's `layerMeta` (else a full, causal layer with one KV head per query head)
   */
  layerMeta?: LayerMeta | readonly LayerMeta[];
  /**
   * Capture b: the page opens on the difference a - b and toggles between
   * a, b and a - b. Of the same tokens (same layers, shapes and positions),
   * or of other tokens lined up by `align`.
   * @default {undefined} no comparison
   */
  compare?: ExploreSource;
  /**
   * How `compare` lines up with the capture: `"auto"` by position when the
   * shapes and positions match, else as `"span"`; `"positions"` by position
   * only; `"span"` on the longest run of identical token labels; `{ text }`
   * on the tokens that spell it in both (`findSpan`). A span crops both
   * captures to that window in queries and keys (the probabilities as
   * captured, not renormalized), rebased so the window starts at 0; `query`
   * still counts in capture a's positions. The root's `data-align` and the
   * status line name the window, e.g. `a[3,20) b[0,17)`.
   * @default {"auto"}
   */
  align?: CompareAlign;
  /**
   * Token text of `compare` per absolute position, when it carries none.
   * @default {undefined} its own labels
   */
  compareLabels?: readonly string[];
  /**
   * Cross-attention (query tokens that are not the key tokens, shape
   * `[Tq, H, Tk]`): one label per query row; give `keyLabels` too. The page
   * shows two strips, queries and keys, and no causal mask.
   * @default {undefined} self attention (one strip, `labels`)
   */
  queryLabels?: readonly string[];
  /**
   * Cross-attention: one label per key column; give `queryLabels` too.
   * @default {undefined} self attention
   */
  keyLabels?: readonly string[];
}

/** Sizes of a rendered explorer. */
export interface ExplorerStats {
  /** Bytes of the HTML fragment. */
  bytes: number;
  /** Heads embedded at full resolution. */
  fullHeads: number;
  /** Heads embedded as pooled overview + top-k. */
  reducedHeads: number;
  /** What was reduced, in words (`""` when nothing). */
  reduced: string;
}

const MIB = 1 << 20;
const POOLED_SIZE = 512;

/**
 * An explorer view: displays itself in Jupyter, saves as `.html` (the
 * interactive page), `.svg` or `.png` (the static heatmap of its initial
 * state).
 */
export class Explorer {
  #layers: AttentionLayer[];
  #labels: string[];
  #hasLabels: boolean;
  #options: Required<
    Pick<ExploreOptions, "maxBytes" | "topK" | "title" | "theme">
  >;
  #layerMeta: (LayerMeta | null)[];
  #compare: AttentionLayer[] | null;
  #alignment: Aligned["alignment"] = null;
  #initialLayer: number;
  #initialQuery: number;
  #cross: { queryLabels: string[]; keyLabels: string[] } | null;
  #html: Promise<{ html: string; stats: ExplorerStats }> | null = null;

  /** @internal Use {@linkcode explore}. */
  constructor(
    layers: AttentionLayer[],
    labels: string[],
    hasLabels: boolean,
    options: ExploreOptions,
    compared: Aligned | null = null,
  ) {
    this.#layers = layers;
    this.#labels = labels;
    this.#hasLabels = hasLabels;
    this.#options = {
      maxBytes: options.maxBytes ?? 8 * MIB,
      topK: options.topK ?? 32,
      title: options.title ?? "Attention explorer",
      theme: options.theme ?? "auto",
    };
    if (!["light", "dark", "auto"].includes(this.#options.theme)) {
      throw new TypeError(
        `Cannot explore with theme ${
          JSON.stringify(this.#options.theme)
        }: unknown theme; use "light", "dark" or "auto"`,
      );
    }
    this.#layerMeta = resolveLayerMeta(layers, options.layerMeta);
    this.#cross = crossLabels(layers[0].scores.shape, options);
    this.#compare = compared?.b ?? null;
    this.#alignment = compared?.alignment ?? null;
    const li = options.layer === undefined
      ? layers.length - 1
      : layers.findIndex((l) => l.layer === options.layer);
    if (li < 0) {
      throw new RangeError(
        `Cannot explore layer ${options.layer}: the capture holds layers ${
          layers.map((l) => l.layer).join(", ")
        }; pass one of them as layer`,
      );
    }
    this.#initialLayer = li;
    const scores = layers[li].scores;
    const positions = scores.queryPositions;
    const promptLast = layers[li].tokenMeta.promptLen - 1;
    const wanted = options.query ?? promptLast;
    const row = positions.indexOf(wanted);
    if (options.query !== undefined && row < 0) {
      throw new RangeError(
        `Cannot explore from query ${options.query}: it is not a captured query position (${
          positions[0]
        } to ${positions[positions.length - 1]}); pass one of them as query`,
      );
    }
    this.#initialQuery = row >= 0 ? wanted : positions[positions.length - 1];
  }

  /** The static heatmap of the initial state (layer, head mean). */
  #heatmap(): Figure {
    const layer = this.#layers[this.#initialLayer];
    return attentionHeatmap(layer, {
      labels: this.#hasLabels ? this.#labels : undefined,
      width: 560,
      mark: [this.#initialQuery],
      theme: this.#staticTheme(),
    });
  }

  /** Static pictures cannot follow a host: "auto" draws light. */
  #staticTheme(): "light" | "dark" {
    return this.#options.theme === "dark" ? "dark" : "light";
  }

  /**
   * The static picture for where scripts never run, in markup sanitizers
   * keep (Jupyter's and GitHub's strip <svg>, <style> and style
   * attributes): the heatmap and the shaded token text with its legend as
   * PNG images, their text as alt text, and the token text again as plain
   * text to copy. The live view removes it.
   */
  async #fallback(): Promise<string> {
    const layer = this.#layers[this.#initialLayer];
    const scores = layer.scores;
    const theme = this.#staticTheme();
    const title =
      `Attention from query ${this.#initialQuery} (layer ${layer.layer}, head mean)`;
    const [heatmapPng, textPng] = await Promise.all([
      this.#heatmap().toPNG({ scale: 1 }),
      tokenTextImage(layer, this.#labels, {
        query: scores.queryPositions.indexOf(this.#initialQuery),
        title,
        theme,
        width: 720,
      }).toPNG({ scale: 1 }),
    ]);
    const plain = tokenText(this.#labels);
    const short = [...plain].length > 600
      ? [...plain].slice(0, 599).join("") + "…"
      : plain;
    const img = (alt: string, png: Uint8Array, cls: string) =>
      `<img class="${cls}" alt="${escapeXml(alt)}" src="${
        pngDataUrl(png)
      }" style="display:block;max-width:100%;margin:4px 0">`;
    return `<div class="ax-fallback"><p style="margin:4px 0;color:#8a4b00;font-size:13px">Static picture of the initial view. The interactive explorer needs scripts: run the notebook (or trust it), or open the saved .html in a browser.</p>${
      img(
        `attention heatmap, layer ${layer.layer}, head mean, query ${this.#initialQuery} marked`,
        heatmapPng,
        "ax-fb-heatmap",
      )
    }${
      img(
        `${title}, token text shaded by attention (legend: darker is more attention): ${short}`,
        textPng,
        "ax-fb-text",
      )
    }<details class="ax-fb-copy"><summary>Token text</summary><pre>${
      escapeXml(plain)
    }</pre></details></div>`;
  }

  async #render(): Promise<{ html: string; stats: ExplorerStats }> {
    const layer = this.#layers[this.#initialLayer];
    const scores = layer.scores;
    const fallback = await this.#fallback();
    const css = `<style>${EXPLORER_CSS}</style>`;
    const script = `<script>${inlineScript(EXPLORER_BUNDLE)}</script>`;
    const labelsJson = scriptJson(this.#labels);
    const overhead = fallback.length + css.length + script.length +
      labelsJson.length * 1.2 + 4096;
    let budget = Math.floor(((this.#options.maxBytes - overhead) * 3) / 4);
    if (budget <= 0) {
      throw new RangeError(
        `Cannot explore in ${this.#options.maxBytes} bytes: the page itself needs about ${
          Math.ceil(overhead)
        }; raise maxBytes`,
      );
    }
    // The overhead above is an estimate (the meta JSON grows with the
    // layers), so a page over maxBytes is packed again with the overshoot
    // taken off the data's budget: maxBytes is a promise, not a target.
    const build = (budget: number) => {
      // Compare mode: a and b share the budget.
      const share = this.#compare ? Math.floor(budget / 2) : budget;
      const compared = this.#compare
        ? packCompare(this.#compare, {
          budget: share,
          topK: this.#options.topK,
          pooledSize: POOLED_SIZE,
        }, this.#alignment?.label)
        : null;
      const packed = packLayers(this.#layers, {
        budget: share,
        topK: this.#options.topK,
        pooledSize: POOLED_SIZE,
        causal: this.#layerMeta.map((m) => !this.#cross && (m?.causal ?? true)),
      });
      const [tq, heads, tk] = scores.shape;
      const total = this.#layers.length * heads;
      const reduced = packed.reducedHeads === 0
        ? ""
        : `Reduced to fit ${
          (this.#options.maxBytes / MIB).toFixed(1)
        } MiB: ${packed.reducedHeads} of ${total} heads are embedded as a ${packed.pooled.rows}×${packed.pooled.cols} max-pooled overview plus the ${packed.topK} strongest keys of every query row (${packed.fullHeads} at full resolution)${
          packed.topK < Math.min(this.#options.topK, tk)
            ? `; the ${this.#options.topK} asked for did not fit`
            : ""
        }. In them, token shading, columns and zoomed cells use only those keys; hover marks cells that were not kept.`;
      const meta: ExplorerMeta = {
        version: 1,
        title: this.#options.title,
        tq,
        tk,
        keyOffset: scores.keyOffset,
        queryPositions: [...scores.queryPositions],
        labels: this.#labels,
        hasLabels: this.#hasLabels,
        types: this.#labels.map((_, p) =>
          ({ language: "l", vision: "v", generated: "g", unknown: "u" })[
            layer.tokenMeta.tokenType(p)
          ]
        ).join(""),
        layers: packed.layers,
        pooled: packed.pooled,
        topK: packed.topK,
        idxBytes: packed.idxBytes,
        lut: {
          matrix: lutBase64({
            type: "linear",
            scheme: "viridis",
            domain: [0, 1],
          }),
          tokens: lutBase64({
            type: "linear",
            scheme: "blues",
            domain: [0, 1],
          }),
        },
        initial: { layer: this.#initialLayer, query: this.#initialQuery },
        reduced,
        theme: this.#options.theme,
        ...(compared ? { compare: compared.spec } : {}),
        ...(this.#cross ? { cross: this.#cross } : {}),
        // Cross-attention has no causal mask and no window.
        arch: this.#layerMeta.map((m) => ({
          window: !this.#cross && m?.attention === "sliding_attention"
            ? m.slidingWindow!
            : 0,
          kvHeads: m?.numKeyValueHeads ?? heads,
          causal: !this.#cross && (m?.causal ?? true),
        })),
      };
      const arch0 = meta.arch[this.#initialLayer];
      const header =
        `<div style="font-weight:bold;font-size:15px;margin:2px 0">${
          escapeXml(this.#options.title)
        }</div>`;
      const html =
        `<div class="attnscope-explorer" data-layer="${layer.layer}" data-heads="${
          Array.from({ length: heads }, (_, h) => h).join(",")
        }" data-mode="query"${compared ? ' data-compare="1"' : ""}${
          this.#alignment
            ? ` data-align="${escapeXml(this.#alignment.label)}"`
            : ""
        } data-theme="${this.#options.theme}" data-window="${
          arch0.window || ""
        }" data-causal="${
          arch0.causal ? 1 : 0
        }">${css}${header}${fallback}<script type="application/json" class="ax-meta">${
          scriptJson(meta)
        }</script><script type="application/octet-stream" class="ax-blob">${packed.blob.toBase64()}</script>${
          compared
            ? `<script type="application/octet-stream" class="ax-blob-b">${compared.blob}</script>`
            : ""
        }${script}</div>`;
      return { html, packed, reduced };
    };
    let { html, packed, reduced } = build(budget);
    for (let tries = 0; tries < 4; tries++) {
      const over = new TextEncoder().encode(html).length -
        this.#options.maxBytes;
      if (over <= 0) break;
      budget = Math.floor(budget - (over * 3) / 4 - 1024);
      if (budget <= 0) break;
      ({ html, packed, reduced } = build(budget));
    }
    return {
      html,
      stats: {
        bytes: new TextEncoder().encode(html).length,
        fullHeads: packed.fullHeads,
        reducedHeads: packed.reducedHeads,
        reduced,
      },
    };
  }

  #rendered(): Promise<{ html: string; stats: ExplorerStats }> {
    return this.#html ??= this.#render();
  }

  /**
   * The output as an HTML fragment (what the notebook cell shows).
   *
   * @returns The fragment.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]),
   *   tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
   * });
   * const html = await explore(layer).toHTML();
   * assert.match(html, /class="attnscope-explorer"/);
   * assert.match(html, /<img class="ax-fb-heatmap" alt="attention heatmap/);
   * ```
   */
  async toHTML(): Promise<string> {
    return (await this.#rendered()).html;
  }

  /**
   * Sizes and what was reduced.
   *
   * @returns The stats.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [2, 1, 2]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * const stats = await explore(layer).stats();
   * assert.equal(stats.reducedHeads, 0);
   * ```
   */
  async stats(): Promise<ExplorerStats> {
    return (await this.#rendered()).stats;
  }

  /**
   * The output as a standalone HTML page.
   *
   * @returns The page.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * assert.match(await explore(layer).toStandaloneHTML(), /^<!DOCTYPE html>/);
   * ```
   */
  async toStandaloneHTML(): Promise<string> {
    return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>${
      escapeXml(this.#options.title)
    }</title>\n</head>\n<body style="margin:16px;background:white">\n${await this
      .toHTML()}\n</body>\n</html>\n`;
  }

  /**
   * The static heatmap of the initial state as SVG.
   *
   * @returns The SVG markup.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * assert.match(explore(layer).toSVG(), /^<svg xmlns=/);
   * ```
   */
  toSVG(): string {
    return this.#heatmap().toSVG();
  }

  /**
   * The static heatmap of the initial state as PNG.
   *
   * @param options Scale, background and fonts.
   * @returns The PNG file's bytes.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * const png = await explore(layer).toPNG({ scale: 1 });
   * assert.equal(png[1], 0x50); // "P" of the PNG signature
   * ```
   */
  toPNG(options: PngOptions = {}): Promise<Uint8Array> {
    return this.#heatmap().toPNG(options);
  }

  /**
   * Writes the explorer; the extension picks the format: `.html` (the
   * interactive page), `.svg` or `.png` (the initial state's heatmap).
   *
   * @param path Where to write.
   * @param options PNG options, used for `.png`.
   * @throws {TypeError} For another extension.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * const path = await Deno.makeTempFile({ suffix: ".html" });
   * await explore(layer).save(path);
   * assert.match(await Deno.readTextFile(path), /attnscope-explorer/);
   * await assert.rejects(explore(layer).save("x.jpg"), TypeError);
   * ```
   */
  async save(path: string | URL, options: PngOptions = {}): Promise<void> {
    const name = String(path).toLowerCase();
    if (name.endsWith(".html") || name.endsWith(".htm")) {
      return writeFileAtomic(path, await this.toStandaloneHTML());
    }
    if (name.endsWith(".svg")) return writeFileAtomic(path, this.toSVG());
    if (name.endsWith(".png")) {
      return writeFileAtomic(path, await this.toPNG(options));
    }
    throw new TypeError(
      `Cannot save the explorer to ${
        String(path)
      }: unknown extension; use .html, .svg or .png`,
    );
  }

  /**
   * A one-line description.
   *
   * @returns E.g. `Explorer: 2 layers x 12 heads, T=165`.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * assert.equal(String(explore(layer)), "Explorer: 1 layer x 1 head, T=1");
   * ```
   */
  toString(): string {
    const [tq, h, tk] = this.#layers[0].scores.shape;
    const n = this.#layers.length;
    return `Explorer: ${n} layer${n === 1 ? "" : "s"} x ${h} head${
      h === 1 ? "" : "s"
    }, ${tq === tk ? `T=${tq}` : `Tq=${tq} Tk=${tk}`}`;
  }

  /**
   * The MIME bundle for Deno's Jupyter kernel: the interactive HTML (with
   * its static picture) and a `text/plain` summary.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { explore } from "./explorer.ts";
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { AttentionLayer } from "../data/layer.ts";
   * import { AttentionScores } from "../data/scores.ts";
   * import { TokenMeta } from "../data/token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const layer = new AttentionLayer({
   *   layer: 0,
   *   model: null,
   *   scores: new AttentionScores(new Float32Array([1]), [1, 1, 1]),
   *   tokenMeta: TokenMeta.from({}),
   * });
   * const bundle = await explore(layer)[JUPYTER_DISPLAY]();
   * assert.deepEqual(Object.keys(bundle).sort(), ["text/html", "text/plain"]);
   * ```
   */
  async [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return { "text/plain": this.toString(), "text/html": await this.toHTML() };
  }
}

function lutBase64(color: Parameters<typeof colorTable>[0]): string {
  return colorTable(color).lut.toBase64();
}

/** Cross-attention's two label lists, checked against the shape. */
function crossLabels(
  shape: readonly number[],
  options: ExploreOptions,
): { queryLabels: string[]; keyLabels: string[] } | null {
  const { queryLabels: q, keyLabels: k } = options;
  if (q === undefined && k === undefined) return null;
  if (q === undefined || k === undefined) {
    throw new TypeError(
      `Cannot explore cross-attention: only ${
        q ? "queryLabels" : "keyLabels"
      } given; pass both queryLabels (one per query row) and keyLabels (one per key column)`,
    );
  }
  const [tq, , tk] = shape;
  if (q.length !== tq || k.length !== tk) {
    throw new RangeError(
      `Cannot explore cross-attention: ${q.length} queryLabels and ${k.length} keyLabels for shape [${shape}]; pass ${tq} and ${tk}`,
    );
  }
  return { queryLabels: q.map(String), keyLabels: k.map(String) };
}

/**
 * An interactive attention explorer: token text shaded by attention (hover,
 * pin, shift-click to sum, a received toggle), a layer selector and head
 * chips (mean or max), the matrix on a canvas with hover values and zoom,
 * layer x head thumbnails, threshold and top-k filters, PNG export. One
 * self-contained output with a static picture for where scripts never run.
 *
 * @param source `captureAttention`'s result, an `AttentionCapture`, or one layer.
 * @param options Labels, size budget, top-k, first layer and query.
 * @returns The view (render with `toHTML`, `save`, or show it in a cell).
 * @throws {TypeError} When the capture is empty or its layers differ in
 * shape, or `compare` cannot be lined up with it (see `align`).
 *
 * @example
 * ```ts
 * import { explore } from "./explorer.ts";
 * import assert from "node:assert/strict";
 *
 * assert.throws(() => explore({}), /^TypeError: Cannot explore attention: the capture holds no layers/);
 * ```
 *
 * @example Comparing a prompt with a longer one that holds it (aligned by span)
 * ```ts
 * import { explore } from "./explorer.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * // Uniform causal attention over the labels' tokens, one layer, one head.
 * const capture = (labels: string[]) => {
 *   const t = labels.length, data = new Float32Array(t * t);
 *   for (let q = 0; q < t; q++) for (let k = 0; k <= q; k++) data[q * t + k] = 1 / (q + 1);
 *   const layer = new AttentionLayer({ layer: 0, model: null, scores: new AttentionScores(data, [t, 1, t]),
 *     tokenMeta: new TokenMeta({ promptLen: t, totalLen: t }) });
 *   return { attention: { 0: layer }, labels };
 * };
 * const clean = capture(["<bos>", "The", " cat", " sat"]);
 * const longer = capture(["<bos>", "Hi", ".", "The", " cat", " sat"]);
 * // Both cropped to "The cat sat": a[1,4), b[3,6); the weights as captured.
 * const html = await explore(clean, { compare: longer, align: "span" }).toHTML();
 * assert.match(html, /data-compare="1" data-align="a\[1,4\) b\[3,6\)"/);
 * assert.throws(() => explore(clean, { compare: longer, align: "positions" }),
 *   /^TypeError: Cannot compare attention: layer 0 of capture b has shape \[6,1,6\]/);
 * ```
 */
export function explore(
  source: ExploreSource,
  options: ExploreOptions = {},
): Explorer {
  const capture = source instanceof AttentionLayer
    ? { layers: [source], labels: null }
    : normalizeCapture(source, "explore attention");
  const layers = capture.layers;
  const [tq, heads, tk] = layers[0].scores.shape;
  for (const l of layers) {
    const s = l.scores;
    if (
      s.shape[0] !== tq || s.shape[1] !== heads || s.shape[2] !== tk ||
      s.keyOffset !== layers[0].scores.keyOffset
    ) {
      throw new TypeError(
        `Cannot explore attention: layer ${l.layer} has shape [${s.shape}] but layer ${
          layers[0].layer
        } has [${tq}, ${heads}, ${tk}]; explore the layers one at a time`,
      );
    }
  }
  const s0 = layers[0].scores;
  let lastQuery = 0;
  for (const p of s0.queryPositions) lastQuery = Math.max(lastQuery, p);
  const given = options.labels ?? capture.labels ?? null;
  const n = Math.max(given?.length ?? 0, s0.keyOffset + tk, lastQuery + 1);
  const labels = Array.from(
    { length: n },
    (_, p) => given?.[p] ?? String(p),
  );
  const compared = compareWith(layers, given, options);
  if (compared?.alignment) {
    const from = compared.alignment.a.start;
    return new Explorer(compared.a, [...compared.labels!], true, {
      ...options,
      query: options.query === undefined ? undefined : options.query - from,
    }, compared);
  }
  return new Explorer(layers, labels, given !== null, options, compared);
}

/** Capture b lined up with a (`options.align`), or `null` without `compare`. */
function compareWith(
  layers: AttentionLayer[],
  labels: readonly string[] | null,
  options: ExploreOptions,
): Aligned | null {
  const source = options.compare;
  if (source === undefined) return null;
  const b = source instanceof AttentionLayer
    ? { layers: [source], labels: null }
    : normalizeCapture(source, "compare attention");
  return alignCaptures(
    { layers, labels },
    { layers: b.layers, labels: options.compareLabels ?? b.labels },
    options.align ?? "auto",
  );
}
