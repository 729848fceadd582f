/**
 * The bridge between attnscope's objects and Deno's Jupyter kernel.
 *
 * Deno's kernel shows a cell's value by calling its
 * `[Symbol.for("Jupyter.display")]()` method and using the returned MIME
 * bundle as is. Data classes (scores, layers, analyzer results) sit below the
 * chart layer and must not import it, so they ask this registry for a
 * renderer by kind; the display layer registers the chart renderers when it
 * is imported (`mod.ts` imports it). Without a registered renderer an object
 * still shows its `text/plain` summary.
 *
 * Nothing here touches `Deno.jupyter`, which throws outside the kernel.
 *
 * @module
 */

/**
 * The symbol Deno's Jupyter kernel looks for on a cell's value
 * (`Symbol.for("Jupyter.display")`): a method under it returns the MIME
 * bundle the cell shows.
 *
 * @example Call it to see what a cell would show
 * ```ts
 * import { AttentionScores, JUPYTER_DISPLAY } from "../mod.ts";
 * import assert from "node:assert/strict";
 *
 * const scores = new AttentionScores(new Float32Array([1]), [1, 1, 1]);
 * const bundle = await scores[JUPYTER_DISPLAY]();
 * assert.match(String(bundle["text/plain"]), /AttentionScores/);
 * assert.equal(JUPYTER_DISPLAY, Symbol.for("Jupyter.display"));
 * ```
 */
export const JUPYTER_DISPLAY: unique symbol = Symbol.for(
  "Jupyter.display",
) as never;

/** A Jupyter MIME bundle: MIME type to content. */
export type MimeBundle = Record<string, unknown>;

/** Turns a value of one kind into a MIME bundle. */
export type Renderer<T> = (value: T) => MimeBundle | Promise<MimeBundle>;

const renderers = new Map<string, Renderer<never>>();

/**
 * Registers how values of one kind are displayed; a later registration for
 * the same kind replaces the earlier one.
 *
 * @param kind A name shared by the data class and its renderer, e.g. `"scores"`.
 * @param renderer Builds the bundle.
 *
 * @example
 * ```ts
 * import { displayBundle, registerRenderer } from "./jupyter.ts";
 * import assert from "node:assert/strict";
 *
 * registerRenderer<number>("example-number", (n) => ({ "text/html": `<b>${n}</b>` }));
 * const bundle = await displayBundle("example-number", 7, "7");
 * assert.equal(bundle["text/html"], "<b>7</b>");
 * assert.equal(bundle["text/plain"], "7");
 * ```
 */
export function registerRenderer<T>(kind: string, renderer: Renderer<T>): void {
  renderers.set(kind, renderer as Renderer<never>);
}

/**
 * Builds the bundle for a value: the registered renderer's output, always
 * with a `text/plain` entry (the given summary unless the renderer set one).
 *
 * @param kind The kind the value was registered under.
 * @param value The value to show.
 * @param plainText A short summary, used when nothing richer is registered.
 * @returns The MIME bundle.
 *
 * @example Without a renderer, the plain summary is shown
 * ```ts
 * import { displayBundle } from "./jupyter.ts";
 * import assert from "node:assert/strict";
 *
 * const bundle = await displayBundle("nothing-registered", {}, "summary");
 * assert.deepEqual(bundle, { "text/plain": "summary" });
 * ```
 */
export async function displayBundle<T>(
  kind: string,
  value: T,
  plainText: string,
): Promise<MimeBundle> {
  const renderer = renderers.get(kind) as Renderer<T> | undefined;
  if (!renderer) return { "text/plain": plainText };
  const bundle = await renderer(value);
  return { "text/plain": plainText, ...bundle };
}
