/// <reference lib="dom" />
/**
 * Small DOM and colour helpers the explorer's parts share.
 *
 * @module
 */

/** The selection's colour (rows, columns, the window's edge). */
export const MARK = "#e0115f";

/** An element with attributes and text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  text = "",
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

/** Bytes of a base64 colour table. */
export function lutBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** A weight as the page prints it (and as `data-weight` carries it). */
export const fmt = (w: number): string => w.toFixed(4);

/** An RGBA colour table back to front. */
export function reverseLut(lut: Uint8Array): Uint8Array {
  const out = new Uint8Array(lut.length);
  const n = lut.length / 4;
  for (let i = 0; i < n; i++) {
    out.set(lut.subarray(i * 4, i * 4 + 4), (n - 1 - i) * 4);
  }
  return out;
}
