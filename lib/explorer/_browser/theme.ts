/// <reference lib="dom" />
/**
 * Which colours the explorer wears: the option, or for `"auto"` the host's
 * (VS Code's body classes, JupyterLab's `data-jp-theme-light`, else the
 * luminance of the first opaque background above the explorer, else the
 * page's `prefers-color-scheme`).
 *
 * @module
 */

/** The resolved scheme. */
export type Scheme = "light" | "dark";

function parseRgb(css: string): [number, number, number, number] | null {
  const m = css.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const [r, g, b, a = "1"] = m[1].split(/[\s,/]+/).filter(Boolean);
  return [Number(r), Number(g), Number(b), Number(a)];
}

/** Relative luminance (WCAG) of an sRGB colour. */
export function luminance(r: number, g: number, b: number): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/**
 * The scheme for `option` in the page around `root`, and whether a host
 * (VS Code, JupyterLab, an opaque background) decided it: then the explorer
 * lets the host's background show through instead of painting its own.
 */
export function resolveScheme(
  root: HTMLElement,
  option: "light" | "dark" | "auto",
): { scheme: Scheme; host: boolean } {
  if (option !== "auto") return { scheme: option, host: false };
  const body = document.body;
  const host = (scheme: Scheme) => ({ scheme, host: true });
  if (body.classList.contains("vscode-dark")) return host("dark");
  if (body.classList.contains("vscode-high-contrast")) return host("dark");
  if (body.classList.contains("vscode-light")) return host("light");
  const jp = body.dataset.jpThemeLight;
  if (jp === "false") return host("dark");
  if (jp === "true") return host("light");
  for (let e = root.parentElement; e; e = e.parentElement) {
    const c = parseRgb(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0.5) {
      return host(luminance(c[0], c[1], c[2]) < 0.2 ? "dark" : "light");
    }
  }
  const dark = globalThis.matchMedia?.("(prefers-color-scheme: dark)").matches;
  return { scheme: dark ? "dark" : "light", host: false };
}
