/**
 * Snapshot ("golden") files for chart output, compared after normalization:
 * numbers rounded, ids renumbered in order of appearance, embedded PNGs
 * replaced by a digest, one tag per line for readable diffs.
 *
 * On a mismatch the new output is written beside the golden as
 * `NAME-changed.EXT` for review, and the test fails. `UPDATE_GOLDENS=1`
 * rewrites the goldens instead.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";

const GOLDENS = new URL("./goldens/", import.meta.url);

/** Rewrites volatile details of SVG/HTML so equal charts compare equal. */
export function normalizeMarkup(markup: string): string {
  // Embedded PNGs: a digest keeps goldens small and still catches pixel changes.
  let out = markup.replace(
    /data:image\/png;base64,([A-Za-z0-9+/=]+)/g,
    (_, b64: string) =>
      `data:image/png;sha256=${
        createHash("sha256").update(b64).digest("hex").slice(0, 16)
      }`,
  );
  // Ids (pattern, clip path) are numbered per process; renumber by first use.
  const ids = new Map<string, string>();
  for (const m of out.matchAll(/\sid="([^"]+)"/g)) {
    if (!ids.has(m[1])) ids.set(m[1], `id-${ids.size + 1}`);
  }
  for (const [id, replacement] of ids) {
    out = out.replaceAll(`"${id}"`, `"${replacement}"`)
      .replaceAll(`#${id})`, `#${replacement})`)
      .replaceAll(`"#${id}"`, `"#${replacement}"`);
  }
  // Plot's class prefix is a hash that changes between Plot versions.
  out = out.replace(/plot-[0-9a-f]{6}/g, "plot-xxxxxx");
  // Rounded numbers: float noise across platforms must not fail a test.
  out = out.replace(/-?\d+\.\d+(e-?\d+)?/g, (n) => {
    const r = Math.round(Number(n) * 10) / 10;
    return String(Object.is(r, -0) ? 0 : r);
  });
  return out.replace(/></g, ">\n<") + "\n";
}

/**
 * Compares output with `tests/goldens/NAME`, after normalization.
 *
 * @param name File name with extension, e.g. `heatmap-cells.svg`.
 * @param markup The rendered SVG or HTML.
 */
export async function assertGolden(
  name: string,
  markup: string,
): Promise<void> {
  const actual = normalizeMarkup(markup);
  const golden = new URL(name, GOLDENS);
  const dot = name.lastIndexOf(".");
  const changed = new URL(
    `${name.slice(0, dot)}-changed${name.slice(dot)}`,
    GOLDENS,
  );
  if (Deno.env.get("UPDATE_GOLDENS") === "1") {
    await Deno.mkdir(GOLDENS, { recursive: true });
    await Deno.writeTextFile(golden, actual);
    await Deno.remove(changed).catch(() => {});
    return;
  }
  let expected: string;
  try {
    expected = await Deno.readTextFile(golden);
  } catch {
    await Deno.writeTextFile(changed, actual);
    assert.fail(
      `Golden ${name} is missing; the output was written to ${changed.pathname}. Review it, then run with UPDATE_GOLDENS=1`,
    );
  }
  if (expected !== actual) {
    await Deno.writeTextFile(changed, actual);
    assert.fail(
      `Output differs from golden ${name}; the new output is in ${changed.pathname}. Compare them (diff), then run with UPDATE_GOLDENS=1 if the change is intended`,
    );
  }
  await Deno.remove(changed).catch(() => {});
}
