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

/** An open object or array while scanning. */
interface Open {
  array: boolean;
  start: number;
  key: string | null;
  commas: number;
}

/**
 * Follows the nesting of a JSON body (the bytes outside strings, which are
 * few) and reports each element of the top-level `attn_capture_data` list as
 * soon as it closes: its first and last byte and its index in the list. The
 * whole-body scan and the streaming scan feed it the same way; each finds
 * strings and keys its own way and says which key was read.
 */
export class CaptureEntryTracker {
  #stack: Open[] = [];
  #key: string | null = null;
  #emit: (start: number, end: number, index: number) => void;

  /**
   * @param emit Called with an entry's first and last byte and its index.
   */
  constructor(emit: (start: number, end: number, index: number) => void) {
    this.#emit = emit;
  }

  /** The key just read (a short string followed by `:`), or `null`. */
  set key(key: string | null) {
    this.#key = key;
  }

  /**
   * One byte outside strings at position `i`; only `{ [ } ] ,` matter.
   *
   * @param c The byte.
   * @param i Its position in the body.
   */
  structure(c: number, i: number): void {
    const stack = this.#stack;
    if (c === 0x7b || c === 0x5b) { // { [
      stack.push({ array: c === 0x5b, start: i, key: this.#key, commas: 0 });
      this.#key = null;
    } else if (c === 0x7d || c === 0x5d) { // } ]
      const closed = stack.pop();
      const list = stack[1];
      if (
        closed && !closed.array && stack.length === 2 && !stack[0].array &&
        list.array && list.key === "attn_capture_data"
      ) {
        this.#emit(closed.start, i, list.commas);
      }
    } else if (c === 0x2c) { // ,
      const top = stack[stack.length - 1];
      if (top?.array) top.commas++;
      this.#key = null;
    }
  }
}
