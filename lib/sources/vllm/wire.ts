/**
 * Reads a response body from its bytes without making the body, or any
 * layer's `data` field, into one JavaScript string.
 *
 * A T=4096, H=8 capture of 9 layers is larger than the longest string V8 can
 * hold (2^29-24 characters), so `TextDecoder` + `JSON.parse` of the whole body
 * fails where Python's client succeeds. The scan below finds every string in
 * the body, cuts the large `"data"` strings out as byte spans, and parses what
 * is left (the small skeleton: ids, choices, shapes, token metadata) with
 * `JSON.parse`, so everything but the payloads gets standard JSON semantics.
 *
 * @module
 */

import { Base64Span, decodeBase64Until } from "./base64.ts";
import {
  CaptureEntryTracker,
  COLON,
  concat,
  followsDataKey,
  isSpace,
  parseJson,
  restoreSpans,
} from "./_spans.ts";

export { Base64Span };

/** Options for {@linkcode parseResponseBytes}. */
export interface ParseResponseBytesOptions {
  /**
   * Minimum length in bytes of a `"data"` string that is left as a
   * {@linkcode Base64Span} instead of becoming a string; shorter ones are
   * parsed as usual.
   * @default {4096}
   */
  spanThreshold?: number;
  /**
   * Decode each span's base64 during the scan (one pass over the payload
   * instead of two: finding the closing quote in the decoded text is nearly
   * free); spans whose text has escapes or bad characters are left for
   * {@linkcode decodeBase64}, which reports the error.
   * @default {true}
   */
  decodeSpans?: boolean;
  /**
   * Called with each element of the top-level `attn_capture_data` list
   * (spans in place) and its index, as soon as the scan has passed it, so
   * decoding can start while the rest of the body is scanned. An error it
   * throws stops the scan.
   * @default {undefined}
   */
  onCaptureEntry?: (entry: unknown, index: number) => void;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Parses a JSON body held as bytes; every `"data": "<string>"` value at least
 * `spanThreshold` bytes long becomes a {@linkcode Base64Span} viewing the
 * body, everything else is what `JSON.parse` gives.
 *
 * @param body The UTF-8 response body.
 * @param options The span threshold.
 * @returns The parsed value with spans in place of large `data` strings.
 * @throws {SyntaxError} When the body is not JSON.
 *
 * @example JSON escapes in the skeleton keep their meaning
 * ```ts
 * import { parseResponseBytes } from "./wire.ts";
 * import assert from "node:assert/strict";
 *
 * const body = new TextEncoder().encode('{"model": "a\\/b", "data": "QUJD"}');
 * const parsed = parseResponseBytes(body, { spanThreshold: 1 }) as Record<string, unknown>;
 * assert.equal(parsed.model, "a/b");
 * ```
 */
export function parseResponseBytes(
  body: Uint8Array,
  options: ParseResponseBytesOptions = {},
): unknown {
  const threshold = options.spanThreshold ?? 4096;
  const decodeSpans = options.decodeSpans ?? true;
  const onEntry = options.onCaptureEntry;
  const spans: Base64Span[] = [];
  const cuts: Cut[] = [];
  // A nonce keeps a marker from matching a string the body really contains.
  const nonce = Math.random().toString(36).slice(2);
  const markerPrefix = `\u0000attnscope-span-${nonce}:`;
  const tracker = onEntry
    ? new EntryTracker((start, end, index) => {
      const text = new TextDecoder().decode(splice(body, cuts, start, end + 1));
      onEntry(restoreSpans(parseJson(text), markerPrefix, spans), index);
    })
    : null;
  let pos = 0;
  for (;;) {
    // Outside strings, valid JSON has no quote characters, so the next
    // quote always opens a string.
    const open = body.indexOf(QUOTE, pos);
    tracker?.gap(body, pos, open < 0 ? body.length : open);
    if (open < 0) break;
    const long = followsDataKey(body, open) &&
      body.subarray(open + 1, open + 1 + threshold).indexOf(QUOTE) < 0;
    let close: number;
    let decoded: Uint8Array | null = null;
    const fused = long && decodeSpans
      ? decodeBase64Until(body, open + 1)
      : null;
    if (fused) {
      close = fused.end;
      decoded = fused.bytes;
    } else {
      close = stringEnd(body, open + 1);
    }
    if (long && close - open - 1 >= threshold) {
      // A span the scan could not decode never meets JSON.parse: check its
      // syntax here, so a bad string is refused even in a layer that is
      // never decoded (the reference's json.loads refuses the whole body).
      if (!decoded) checkStringSyntax(body, open + 1, close);
      cuts.push({
        start: open,
        end: close + 1,
        marker: new TextEncoder().encode(
          `"\\u0000attnscope-span-${nonce}:${spans.length}"`,
        ),
      });
      spans.push(new Base64Span(body.subarray(open + 1, close), decoded));
    }
    tracker?.string(body, open, close);
    pos = close + 1;
  }
  const value = parseJson(
    new TextDecoder().decode(splice(body, cuts, 0, body.length)),
  );
  return spans.length ? restoreSpans(value, markerPrefix, spans) : value;
}

/** A large string cut out of the body, and the marker put in its place. */
interface Cut {
  start: number;
  end: number;
  marker: Uint8Array;
}

/** `body[from, to)` with the cuts inside it replaced by their markers. */
function splice(
  body: Uint8Array,
  cuts: readonly Cut[],
  from: number,
  to: number,
): Uint8Array {
  const pieces: Uint8Array[] = [];
  let at = from;
  for (const cut of cuts) {
    if (cut.start < from || cut.end > to) continue;
    pieces.push(body.subarray(at, cut.start), cut.marker);
    at = cut.end;
  }
  pieces.push(body.subarray(at, to));
  return concat(pieces);
}

/**
 * Feeds the whole-body scan's structure bytes and keys to a
 * {@linkcode CaptureEntryTracker}.
 */
class EntryTracker {
  #tracker: CaptureEntryTracker;

  constructor(emit: (start: number, end: number, index: number) => void) {
    this.#tracker = new CaptureEntryTracker(emit);
  }

  /** Structure bytes between strings. */
  gap(body: Uint8Array, from: number, to: number): void {
    for (let i = from; i < to; i++) this.#tracker.structure(body[i], i);
  }

  /** A string (not a cut one): remember it when it is a key. */
  string(body: Uint8Array, open: number, close: number): void {
    let p = close + 1;
    while (p < body.length && isSpace(body[p])) p++;
    const isKey = body[p] === COLON;
    this.#tracker.key = isKey && close - open < 64
      ? JSON.parse(new TextDecoder().decode(body.subarray(open, close + 1)))
      : null;
  }
}

/**
 * Index of the quote that closes the string whose content starts at `from`.
 * A quote is escaped when an odd number of backslashes precede it.
 */
function stringEnd(body: Uint8Array, from: number): number {
  let p = from;
  for (;;) {
    const q = body.indexOf(QUOTE, p);
    if (q < 0) {
      throw new SyntaxError(
        `Cannot parse the response body: a string opened at byte ${
          from - 1
        } never closes; the body may be truncated`,
      );
    }
    let k = q - 1;
    while (k >= from && body[k] === BACKSLASH) k--;
    if ((q - 1 - k) % 2 === 0) return q;
    p = q + 1;
  }
}

/**
 * Refuses what JSON forbids inside a string: raw control characters and
 * malformed escapes. `origin` is added to the byte positions it reports
 * (for a string held apart from its body, as the streaming scan holds it).
 */
export function checkStringSyntax(
  body: Uint8Array,
  from: number,
  to: number,
  origin = 0,
): void {
  const fail = (at: number, what: string) => {
    throw new SyntaxError(
      `Cannot parse the response body: ${what} at byte ${
        origin + at
      }, inside a string; pass the body exactly as the server sent it`,
    );
  };
  for (let i = from; i < to; i++) {
    const c = body[i];
    if (c < 0x20) {
      fail(i, `a raw control character (0x${c.toString(16).padStart(2, "0")})`);
    }
    if (c !== BACKSLASH) continue;
    const next = body[i + 1];
    if (ESCAPES.has(next)) {
      i++;
    } else if (
      next === 0x75 && i + 5 < to &&
      [2, 3, 4, 5].every((k) => isHex(body[i + k]))
    ) {
      i += 5;
    } else {
      fail(i, "a malformed escape");
    }
  }
}

/** The one-letter JSON escapes: " \ / b f n r t. */
const ESCAPES = new Set([0x22, 0x5c, 0x2f, 0x62, 0x66, 0x6e, 0x72, 0x74]);

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) ||
    (c >= 0x61 && c <= 0x66);
}
