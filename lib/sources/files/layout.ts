/**
 * Axis layouts of attention tensors, named as einops does: one word per
 * axis, outermost first. transformers and TransformerLens write
 * `"batch head query key"`, vLLM's wire `"query head key"`, and a stacked
 * file `"layer batch head query key"`.
 *
 * @module
 */

/** The axis names a layout may use. */
export type AxisName = "batch" | "layer" | "head" | "query" | "key";

/** A parsed layout: axis names outermost first. */
export type AttentionLayout = readonly AxisName[];

const AXES: readonly AxisName[] = ["batch", "layer", "head", "query", "key"];

/** The layout assumed for each rank when none is given. */
const DEFAULT_LAYOUTS: Record<number, string> = {
  2: "query key",
  3: "head query key",
  4: "batch head query key",
  5: "layer batch head query key",
};

/**
 * Parses an einops-style layout string.
 *
 * @param layout Axis names separated by spaces, e.g. `"batch head query key"`.
 * @returns The axis names, outermost first.
 * @throws {SyntaxError} When a name is unknown or repeated, or `query` or `key` is missing.
 *
 * @example
 * ```ts
 * import { parseLayout } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseLayout("query head key"), ["query", "head", "key"]);
 * assert.throws(() => parseLayout("batch heads query key"), /unknown axis "heads"/);
 * ```
 */
export function parseLayout(layout: string): AttentionLayout {
  if (typeof layout !== "string") {
    throw new SyntaxError(
      `Cannot read layout: expected a string such as "batch head query key", got ${typeof layout}`,
    );
  }
  const names = layout.trim().split(/\s+/).filter(Boolean);
  const seen = new Set<string>();
  for (const name of names) {
    if (!(AXES as readonly string[]).includes(name)) {
      throw new SyntaxError(
        `Cannot read layout "${layout}": unknown axis "${name}"; use the names ${
          AXES.join(", ")
        }`,
      );
    }
    if (seen.has(name)) {
      throw new SyntaxError(
        `Cannot read layout "${layout}": axis "${name}" appears twice; name each axis once`,
      );
    }
    seen.add(name);
  }
  if (!seen.has("query") || !seen.has("key")) {
    throw new SyntaxError(
      `Cannot read layout "${layout}": it needs a "query" and a "key" axis; e.g. "batch head query key"`,
    );
  }
  const last = names[names.length - 1];
  if (last === "batch" || last === "layer") {
    throw new SyntaxError(
      `Cannot read layout "${layout}": the innermost axis is "${last}"; attnscope reads layouts whose innermost axis is head, query or key (transpose the array first)`,
    );
  }
  return names as AxisName[];
}

/**
 * The layout assumed for a tensor of a given rank: `"query key"`,
 * `"head query key"`, `"batch head query key"` or
 * `"layer batch head query key"`.
 *
 * @param rank The tensor's number of axes.
 * @returns The layout, or `null` for ranks with no default.
 *
 * @example
 * ```ts
 * import { defaultLayout } from "./layout.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(defaultLayout(4), ["batch", "head", "query", "key"]);
 * assert.equal(defaultLayout(6), null);
 * ```
 */
export function defaultLayout(rank: number): AttentionLayout | null {
  const text = DEFAULT_LAYOUTS[rank];
  return text ? parseLayout(text) : null;
}
