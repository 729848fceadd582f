/**
 * What a layer's attention was, architecturally: full or sliding-window,
 * how many KV heads its query heads share, and whether it is causal. Servers
 * that know it (attnscope's own) send it as the wire entry's optional
 * `layer_meta`; other sources leave it `null` or take it as an option.
 *
 * @module
 */

/**
 * One layer's architecture, as `AttentionLayer.layerMeta` carries it.
 *
 * @example
 * ```ts
 * import type { LayerMeta } from "./layer_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const sliding: LayerMeta = {
 *   attention: "sliding_attention",
 *   slidingWindow: 512,
 *   numKeyValueHeads: 1,
 *   causal: true,
 * };
 * assert.equal(sliding.slidingWindow, 512);
 * ```
 */
export interface LayerMeta {
  /** `"sliding_attention"` (keys limited to a window) or `"full_attention"`. */
  attention: "sliding_attention" | "full_attention";
  /**
   * How many keys a query sees on a sliding layer, itself included
   * (key k is visible from query q when `q - window < k <= q`); `null` on
   * full layers.
   */
  slidingWindow: number | null;
  /**
   * KV heads: query head h reads KV head `floor(h / (H / numKeyValueHeads))`,
   * as HF's `repeat_kv` orders them.
   */
  numKeyValueHeads: number;
  /** `false` for bidirectional attention (encoders, image blocks). */
  causal: boolean;
}

/** A layer's `layer_meta` as the wire carries it (snake_case). */
export interface WireLayerMeta {
  /** `"sliding_attention"` or `"full_attention"`. */
  attention: "sliding_attention" | "full_attention";
  /** The window on sliding layers, `null` on full ones. */
  sliding_window: number | null;
  /** KV heads. */
  num_key_value_heads: number;
}

const KINDS = new Set(["sliding_attention", "full_attention"]);

/**
 * Reads a wire entry's `layer_meta` strictly: `attention` one of the two
 * kinds, `sliding_window` a positive integer on sliding layers and `null`
 * (or absent) on full ones, `num_key_value_heads` a positive integer that
 * divides the query heads. Servers that send it are decoders, so `causal`
 * is true unless the entry says `"causal": false`. Unknown keys are ignored.
 *
 * @param raw The `layer_meta` value, or `undefined`/`null` when absent.
 * @param where What to name in errors, e.g. `layer 3`.
 * @param numHeads The layer's query heads (the shape's H), when known.
 * @returns The meta, or `null` when absent.
 * @throws {TypeError} Naming the field at fault and what it should be.
 *
 * @example
 * ```ts
 * import { readLayerMeta } from "./layer_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = readLayerMeta(
 *   { attention: "sliding_attention", sliding_window: 512, num_key_value_heads: 1 },
 *   "layer 0",
 *   4,
 * );
 * assert.deepEqual(meta, { attention: "sliding_attention", slidingWindow: 512, numKeyValueHeads: 1, causal: true });
 * assert.equal(readLayerMeta(undefined, "layer 0"), null);
 * assert.throws(() => readLayerMeta({ attention: "local" }, "layer 2"), /Cannot read layer_meta of layer 2: attention is "local"/);
 * ```
 */
export function readLayerMeta(
  raw: unknown,
  where: string,
  numHeads?: number,
): LayerMeta | null {
  if (raw === undefined || raw === null) return null;
  const fail = (what: string): TypeError =>
    new TypeError(
      `Cannot read layer_meta of ${where}: ${what}; check the server's response (layer_meta is {"attention": "sliding_attention" | "full_attention", "sliding_window": N | null, "num_key_value_heads": K})`,
    );
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw fail(
      `it is ${Array.isArray(raw) ? "a list" : typeof raw}, not an object`,
    );
  }
  const r = raw as Record<string, unknown>;
  return checked(
    {
      attention: r.attention as LayerMeta["attention"],
      slidingWindow: (r.sliding_window ?? null) as number | null,
      numKeyValueHeads: r.num_key_value_heads as number,
      causal: (r.causal ?? true) as boolean,
    },
    fail,
    numHeads,
    {
      attention: "attention",
      slidingWindow: "sliding_window",
      numKeyValueHeads: "num_key_value_heads",
      causal: "causal",
    },
  );
}

/**
 * Checks a {@linkcode LayerMeta} given in code (e.g. `loadAttention`'s
 * `layerMeta` option) with the rules of {@linkcode readLayerMeta}.
 *
 * @param meta The meta.
 * @param where What to name in errors.
 * @param numHeads The layer's query heads, when known.
 * @returns The meta, as a fresh object.
 * @throws {TypeError} Naming the field at fault.
 *
 * @example
 * ```ts
 * import { checkLayerMeta } from "./layer_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const full = { attention: "full_attention", slidingWindow: null, numKeyValueHeads: 2, causal: true } as const;
 * assert.deepEqual(checkLayerMeta(full, "layerMeta", 4), full);
 * assert.throws(() => checkLayerMeta({ ...full, numKeyValueHeads: 3 }, "layerMeta", 4), /does not divide the 4 query heads/);
 * ```
 */
export function checkLayerMeta(
  meta: LayerMeta,
  where: string,
  numHeads?: number,
): LayerMeta {
  const fail = (what: string): TypeError =>
    new TypeError(
      `Cannot use the layer meta of ${where}: ${what}; pass { attention: "sliding_attention" | "full_attention", slidingWindow: N | null, numKeyValueHeads: K, causal: boolean }`,
    );
  if (meta === null || typeof meta !== "object") {
    throw fail(`it is ${meta === null ? "null" : typeof meta}, not an object`);
  }
  return checked(
    { ...meta, causal: meta.causal ?? true },
    fail,
    numHeads,
    {
      attention: "attention",
      slidingWindow: "slidingWindow",
      numKeyValueHeads: "numKeyValueHeads",
      causal: "causal",
    },
  );
}

/**
 * The wire spelling of a meta (`causal` is not part of it: servers that
 * send `layer_meta` are decoders).
 *
 * @param meta The meta.
 * @returns The `layer_meta` object.
 *
 * @example
 * ```ts
 * import { layerMetaToWire, readLayerMeta } from "./layer_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = { attention: "full_attention", slidingWindow: null, numKeyValueHeads: 8, causal: true } as const;
 * assert.deepEqual(readLayerMeta(layerMetaToWire(meta), "layer 0"), meta);
 * ```
 */
export function layerMetaToWire(meta: LayerMeta): WireLayerMeta {
  return {
    attention: meta.attention,
    sliding_window: meta.slidingWindow,
    num_key_value_heads: meta.numKeyValueHeads,
  };
}

function checked(
  m: LayerMeta,
  fail: (what: string) => TypeError,
  numHeads: number | undefined,
  names: Record<keyof LayerMeta, string>,
): LayerMeta {
  const show = (v: unknown) =>
    v === undefined ? "missing" : JSON.stringify(v)?.slice(0, 40) ?? String(v);
  if (!KINDS.has(m.attention)) {
    throw fail(
      `${names.attention} is ${
        show(m.attention)
      }, not "sliding_attention" or "full_attention"`,
    );
  }
  const w = m.slidingWindow;
  if (m.attention === "sliding_attention") {
    if (!Number.isSafeInteger(w) || (w as number) < 1) {
      throw fail(
        `${names.slidingWindow} is ${
          show(w)
        } on a sliding layer; it must be the window, a positive integer`,
      );
    }
  } else if (w !== null) {
    throw fail(
      `${names.slidingWindow} is ${
        show(w)
      } on a full-attention layer; it must be null there`,
    );
  }
  const k = m.numKeyValueHeads;
  if (!Number.isSafeInteger(k) || k < 1) {
    throw fail(
      `${names.numKeyValueHeads} is ${show(k)}, not a positive integer`,
    );
  }
  if (numHeads !== undefined && numHeads % k !== 0) {
    throw fail(
      `${names.numKeyValueHeads} ${k} does not divide the ${numHeads} query heads`,
    );
  }
  if (typeof m.causal !== "boolean") {
    throw fail(`${names.causal} is ${show(m.causal)}, not true or false`);
  }
  return {
    attention: m.attention,
    slidingWindow: w,
    numKeyValueHeads: k,
    causal: m.causal,
  };
}
