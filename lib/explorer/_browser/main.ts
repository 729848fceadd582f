/// <reference lib="dom" />
/**
 * The bundle's entry: mounts every explorer on the page not mounted yet.
 * Each output carries this script; whichever runs first mounts what is
 * there, later copies mount the rest, and nothing is left on `window`.
 *
 * @module
 */

import { mountExplorer } from "./view.ts";

for (
  const root of document.querySelectorAll<HTMLElement>(
    ".attnscope-explorer:not([data-mounted])",
  )
) {
  root.dataset.mounted = "1";
  mountExplorer(root).catch((error) => {
    root.dataset.error = String(error);
    const p = document.createElement("p");
    p.className = "ax-error";
    p.textContent = `The interactive view failed: ${error}`;
    root.append(p);
  });
}
