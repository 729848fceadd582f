/**
 * Text that lands inside the explorer's `<script>` elements, made inert:
 * whatever a token, label or title holds (`<!--`, `<script>`, `</script>`,
 * U+2028), the element ends where the explorer ends it and its data parses.
 *
 * @module
 */

const UNSAFE = /[<>&\u2028\u2029]/g;
const ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * JSON for a `<script type="application/json">` element: `<`, `>`, `&`,
 * U+2028 and U+2029 become `\uXXXX` escapes (they can only occur inside
 * JSON strings, where the escape means the same character), so no text can
 * open a comment, start or end a script, or break a line.
 *
 * @param value What to serialize.
 * @returns The JSON text, parsing back to `value`.
 *
 * @example
 * ```ts
 * import { scriptJson } from "./_safe.ts";
 * import assert from "node:assert/strict";
 *
 * const nasty = ["<!-- <script>", "</script>", "\u2028", "a&b"];
 * const json = scriptJson(nasty);
 * assert.doesNotMatch(json, /[<>&\u2028\u2029]/);
 * assert.deepEqual(JSON.parse(json), nasty);
 * ```
 */
export function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE, (c) => ESCAPES[c]);
}

/**
 * Script source for an inline `<script>` element: every `<` that could
 * start `<!--`, `<script` or `</script` is written as `\x3c`, which means
 * the same character inside the bundle's strings, template literals and
 * regular expressions (the only places a minified bundle has them).
 *
 * @param source The script.
 * @returns The same program, safe to inline.
 *
 * @example
 * ```ts
 * import { inlineScript } from "./_safe.ts";
 * import assert from "node:assert/strict";
 *
 * const js = inlineScript('var s="</script><!--";');
 * assert.doesNotMatch(js, /<\/script|<!--/i);
 * ```
 */
export function inlineScript(source: string): string {
  return source.replace(/<(?=!--|\/?script)/gi, "\\x3c");
}
