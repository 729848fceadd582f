/**
 * Helpers shared by the whole-body scan (`wire.ts`) and the streaming scan
 * (`stream.ts`): finding `"data"` values, and putting the cut-out spans back
 * into the parsed skeleton.
 *
 * @module
 */

import type { Base64Span } from "./base64.ts";

export const COLON = 0x3a;
const BACKSLASH = 0x5c;
const DATA_KEY = [0x22, 0x64, 0x61, 0x74, 0x61, 0x22]; // "data"

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SyntaxError(
      `Cannot parse the response body: ${
        (error as Error).message
      }; pass the body exactly as the server sent it`,
    );
  }
}

/** Whether the string opening at `open` is the value of a `"data"` key. */
export function followsDataKey(body: Uint8Array, open: number): boolean {
  let p = open - 1;
  while (p >= 0 && isSpace(body[p])) p--;
  if (p < 0 || body[p] !== COLON) return false;
  p--;
  while (p >= 0 && isSpace(body[p])) p--;
  const start = p - DATA_KEY.length + 1;
  if (start < 0 || (start > 0 && body[start - 1] === BACKSLASH)) return false;
  for (let i = 0; i < DATA_KEY.length; i++) {
    if (body[start + i] !== DATA_KEY[i]) return false;
  }
  return true;
}

export function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Puts the spans where their markers are; markers are only `data` values. */
export function restoreSpans(
  value: unknown,
  prefix: string,
  spans: Base64Span[],
): unknown {
  const walk = (v: unknown): unknown => {
    if (typeof v === "string") {
      return v.startsWith(prefix) ? spans[Number(v.slice(prefix.length))] : v;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) v[i] = walk(v[i]);
    } else if (v !== null && typeof v === "object") {
      const o = v as Record<string, unknown>;
      for (const key of Object.keys(o)) o[key] = walk(o[key]);
    }
    return v;
  };
  // The skeleton is small (the payloads were cut out), so one walk is cheap.
  return walk(value);
}

/**
 * The pieces as one array (the piece itself when there is one).
 *
 * @param pieces The pieces, in order.
 * @param size Their total length, when the caller knows it.
 * @returns One array of all their bytes.
 */
export function concat(
  pieces: readonly Uint8Array[],
  size: number = pieces.reduce((n, p) => n + p.length, 0),
): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
