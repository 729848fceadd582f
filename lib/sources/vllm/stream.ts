/**
 * The body scan of `wire.ts`, fed chunk by chunk as the bytes arrive.
 *
 * Bytes outside the large `"data"` strings (the skeleton: ids, choices,
 * shapes, token metadata) are kept, in order, in one small growing buffer;
 * each `"data"` string is base64-decoded piece by piece as it arrives and
 * handed over as a {@linkcode Base64Span} as soon as its closing quote
 * does. The skeleton
 * is followed as it grows, so each element of `attn_capture_data` is
 * reported the moment it closes: a layer can be decoding while the next one
 * is still on the wire, and no copy of the whole body is ever made.
 *
 * @module
 */

import { Base64Span, latin1 } from "./base64.ts";
import {
  CaptureEntryTracker,
  concat,
  followsDataKey,
  parseJson,
  restoreSpans,
} from "./_spans.ts";
import { checkStringSyntax } from "./wire.ts";

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const EQUALS = 0x3d;
/** What the base64 decoder skips but JSON forbids raw in a string. */
const WHITESPACE_CONTROLS = [0x09, 0x0a, 0x0c, 0x0d];

/** Options for {@linkcode ResponseScanner}. */
export interface ResponseScannerOptions {
  /**
   * Minimum length in bytes of a `"data"` string that becomes a
   * {@linkcode Base64Span}; shorter ones stay strings.
   * @default {4096}
   */
  spanThreshold?: number;
  /**
   * Called with each element of the top-level `attn_capture_data` list
   * (spans in place) and its index, as soon as it has arrived. An error it
   * throws comes out of {@linkcode ResponseScanner.push}.
   * @default {undefined}
   */
  onCaptureEntry?: (entry: unknown, index: number) => void;
}

/** Where the scan is between two chunks. */
type Mode = "structure" | "string" | "data";

/**
 * Scans a JSON response body that arrives in chunks, with the result
 * {@linkcode parseResponseBytes} gives for the whole body.
 *
 * @example Chunk boundaries anywhere, even inside an escape
 * ```ts
 * import { ResponseScanner } from "./stream.ts";
 * import { type Base64Span, decodeBase64 } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * const body = new TextEncoder().encode('{"model": "a\\"b", "attn_capture_data": [{"data": "AQID"}]}');
 * const entries: unknown[] = [];
 * const scanner = new ResponseScanner({ spanThreshold: 1, onCaptureEntry: (e) => entries.push(e) });
 * for (let i = 0; i < body.length; i += 3) scanner.push(body.subarray(i, i + 3));
 * const parsed = scanner.finish() as { model: string; attn_capture_data: { data: Base64Span }[] };
 * assert.equal(parsed.model, 'a"b');
 * assert.equal(entries.length, 1);
 * assert.deepEqual([...decodeBase64(parsed.attn_capture_data[0].data, "layer 0")], [1, 2, 3]);
 * ```
 */
export class ResponseScanner {
  #threshold: number;
  #onEntry: ((entry: unknown, index: number) => void) | undefined;
  #skeleton = new Uint8Array(1 << 16);
  #length = 0;
  #mode: Mode = "structure";
  /** The string so far ends in an odd run of backslashes. */
  #escaped = false;
  #data: DataString | null = null;
  #spans: Base64Span[] = [];
  #nonce = Math.random().toString(36).slice(2);
  /** Body bytes in the chunks before the current one. */
  #consumed = 0;
  // The skeleton's own scan (strings, nesting, keys), resumed where it was.
  #tracked = 0;
  #inString = false;
  #stringEscaped = false;
  #stringStart = 0;
  #lastString: [number, number] | null = null;
  #entries = new CaptureEntryTracker((start, end, index) => {
    if (!this.#onEntry) return;
    const text = new TextDecoder().decode(
      this.#skeleton.subarray(start, end + 1),
    );
    this.#onEntry(this.#restore(parseJson(text)), index);
  });

  /**
   * Starts a scan.
   *
   * @param options Span threshold and the entry callback.
   * @default options {}
   */
  constructor(options: ResponseScannerOptions = {}) {
    this.#threshold = options.spanThreshold ?? 4096;
    this.#onEntry = options.onCaptureEntry;
  }

  /**
   * Scans the next chunk. The chunk is kept (not copied) while it holds part
   * of a `"data"` string that has not closed, so it must not be changed.
   *
   * @param chunk The next bytes of the body.
   * @throws {SyntaxError} When an element of `attn_capture_data` is not JSON.
   */
  push(chunk: Uint8Array): void {
    let p = 0;
    while (p < chunk.length) {
      if (this.#mode === "structure") {
        const open = chunk.indexOf(QUOTE, p);
        const stop = open < 0 ? chunk.length : open;
        this.#append(chunk.subarray(p, stop));
        if (open < 0) break;
        p = open + 1;
        this.#escaped = false;
        if (
          followsDataKey(this.#skeleton.subarray(0, this.#length), this.#length)
        ) {
          this.#mode = "data";
          this.#data = new DataString(this.#threshold, this.#consumed + p);
        } else {
          this.#mode = "string";
          this.#append(chunk.subarray(open, open + 1));
        }
        continue;
      }
      const close = this.#closingQuote(chunk, p);
      const stop = close < 0 ? chunk.length : close;
      if (this.#mode === "string") {
        this.#append(chunk.subarray(p, close < 0 ? stop : close + 1));
      } else if (stop > p) {
        this.#data!.push(chunk.subarray(p, stop));
      }
      if (close < 0) break;
      if (this.#mode === "data") this.#endData();
      this.#mode = "structure";
      p = close + 1;
    }
    this.#consumed += chunk.length;
    this.#track();
  }

  /**
   * Ends the scan and parses the skeleton.
   *
   * @returns The parsed body, spans in place of the large `data` strings.
   * @throws {SyntaxError} When the body is truncated or not JSON.
   */
  finish(): unknown {
    if (this.#mode !== "structure") {
      throw new SyntaxError(
        `Cannot parse the response body: a string never closes (the body ends inside it after ${
          this.#length + (this.#data?.length ?? 0)
        } bytes); the body may be truncated`,
      );
    }
    const value = parseJson(
      new TextDecoder().decode(this.#skeleton.subarray(0, this.#length)),
    );
    return this.#spans.length ? this.#restore(value) : value;
  }

  /**
   * Index of the quote that ends the open string, or -1 when this chunk has
   * none; a quote is escaped when an odd run of backslashes precedes it,
   * counting those at the end of earlier chunks.
   */
  #closingQuote(chunk: Uint8Array, from: number): number {
    let at = from;
    for (;;) {
      const q = chunk.indexOf(QUOTE, at);
      const limit = q < 0 ? chunk.length : q;
      let k = limit - 1;
      while (k >= at && chunk[k] === BACKSLASH) k--;
      let run = limit - 1 - k;
      // A run reaching back to where this search started continues the
      // escape state carried in (only for the chunk's first search).
      if (k < at && at === from && this.#escaped) run++;
      const odd = run % 2 === 1;
      if (q < 0) {
        this.#escaped = odd;
        return -1;
      }
      if (!odd) return q;
      at = q + 1;
    }
  }

  /** A `"data"` string closed: a span, or back into the skeleton if short. */
  #endData(): void {
    const data = this.#data!;
    this.#data = null;
    if (data.length < this.#threshold) {
      this.#append(Uint8Array.of(QUOTE));
      this.#append(data.raw());
      this.#append(Uint8Array.of(QUOTE));
      return;
    }
    // A span kept as text never meets JSON.parse: check its syntax here, as
    // the whole-body scan does, so a bad string is refused even in a layer
    // that is never decoded.
    if (!data.decoded) {
      const raw = data.raw();
      checkStringSyntax(raw, 0, raw.length, data.start);
    }
    this.#append(
      new TextEncoder().encode(
        `"\\u0000attnscope-span-${this.#nonce}:${this.#spans.length}"`,
      ),
    );
    this.#spans.push(data.span());
  }

  #append(bytes: Uint8Array): void {
    const need = this.#length + bytes.length;
    if (need > this.#skeleton.length) {
      const grown = new Uint8Array(Math.max(need, this.#skeleton.length * 2));
      grown.set(this.#skeleton.subarray(0, this.#length));
      this.#skeleton = grown;
    }
    this.#skeleton.set(bytes, this.#length);
    this.#length = need;
  }

  /**
   * Follows the skeleton's new bytes: strings (to skip them and to know
   * keys) and nesting, reporting each element of the top-level
   * `attn_capture_data` list as it closes.
   */
  #track(): void {
    const s = this.#skeleton;
    for (let i = this.#tracked; i < this.#length; i++) {
      const c = s[i];
      if (this.#inString) {
        if (this.#stringEscaped) this.#stringEscaped = false;
        else if (c === BACKSLASH) this.#stringEscaped = true;
        else if (c === QUOTE) {
          this.#inString = false;
          this.#lastString = [this.#stringStart, i];
        }
        continue;
      }
      if (c === QUOTE) {
        this.#inString = true;
        this.#stringStart = i;
      } else if (c === 0x3a) { // :
        const last = this.#lastString;
        this.#entries.key = last && last[1] - last[0] < 64
          ? JSON.parse(
            new TextDecoder().decode(s.subarray(last[0], last[1] + 1)),
          )
          : null;
      } else {
        this.#entries.structure(c, i);
      }
    }
    this.#tracked = this.#length;
  }

  #restore(value: unknown): unknown {
    return restoreSpans(
      value,
      `\u0000attnscope-span-${this.#nonce}:`,
      this.#spans,
    );
  }
}

/**
 * A span decoded while it streamed in: it keeps the decoded bytes (as
 * slices) and the length of its text, not the text.
 */
class StreamedSpan extends Base64Span {
  #length: number;

  constructor(length: number, slices: Uint8Array[]) {
    super(new Uint8Array(0));
    this.slices = slices;
    this.#length = length;
  }

  override get length(): number {
    return this.#length;
  }
}

/**
 * Bytes per slice of a decoded payload. Each slice is a resizable buffer of
 * its own, so a decoder can empty it as soon as it has inflated it: the
 * compressed bytes of a layer then shrink while its output grows, instead
 * of being held whole until the layer is done.
 */
const SLICE = 2 << 20;

/**
 * Bytes of base64 turned into one string at a time: small enough that V8
 * makes the string at memory speed (a 64 MiB one took 10x longer per byte),
 * large enough that the per-call costs vanish.
 */
const FEED = 1 << 20;

/** Where the decoding stood when a piece came (to undo it on giving up). */
interface Mark {
  slices: number;
  written: number;
  carry: string;
}

/**
 * One `"data"` string as it arrives. Its first `threshold` bytes are kept
 * as they are (a short string goes back into the skeleton); past that the
 * base64 is decoded piece by piece into slices of {@linkcode SLICE} bytes,
 * so neither the text nor a copy of it is held. Anything unusual (a JSON
 * escape, a character that is not base64) turns it back into kept text (the
 * part already decoded re-encoded, which decodes the same), for
 * {@linkcode decodeBase64} to resolve or report later.
 */
class DataString {
  #threshold: number;
  /** Position in the body of the string's first byte. */
  readonly start: number;
  #raw: Uint8Array[] = [];
  length = 0;
  #decoding = false;
  #stuck = false;
  /** Full slices, then the one being written. */
  #slices: ArrayBuffer[] = [];
  /** Bytes written in the last slice. */
  #written = 0;
  #carry = "";
  /** The text decoded so far ended in padding: nothing may follow it. */
  #padded = false;

  constructor(threshold: number, start: number) {
    this.#threshold = threshold;
    this.start = start;
  }

  /** Whether the string is being decoded as it arrives (not kept as text). */
  get decoded(): boolean {
    return this.#decoding;
  }

  push(piece: Uint8Array): void {
    this.length += piece.length;
    if (this.#decoding) return this.#feed(piece);
    this.#raw.push(piece);
    if (!this.#stuck && this.length >= this.#threshold) {
      const all = concat(this.#raw, this.length);
      this.#raw = [];
      this.#decoding = true;
      this.#feed(all);
    }
  }

  /** The text as it came (only for strings kept as text). */
  raw(): Uint8Array {
    return concat(this.#raw);
  }

  span(): Base64Span {
    if (this.#decoding && this.#carry) {
      this.#decodeText(this.#carry, "loose", new Uint8Array(0));
    }
    if (!this.#decoding) return new Base64Span(this.raw());
    const last = this.#slices.at(-1);
    last?.resize(this.#written);
    const slices = this.#slices.filter((b) => b.byteLength > 0).map((b) =>
      new Uint8Array(b)
    );
    this.#slices = [];
    return new StreamedSpan(this.length, slices);
  }

  /**
   * Decodes `bytes` a piece of at most {@linkcode FEED} bytes at a time (a
   * whole body pushed at once would otherwise become one string of a whole
   * layer, which V8 makes many times slower than small ones); after giving
   * up, the rest is kept as text.
   */
  #feed(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length; at += FEED) {
      const piece = bytes.subarray(at, at + FEED);
      if (this.#decoding) this.#feedPiece(piece);
      else this.#raw.push(piece);
    }
  }

  #feedPiece(bytes: Uint8Array): void {
    if (bytes.indexOf(BACKSLASH) >= 0) return this.#giveUp(bytes, this.#mark());
    // The base64 decoder would skip these whitespace bytes, and would go on
    // after padding when the next piece starts a new quad; neither is plain
    // base64 in a JSON string, so the text is kept for the checks the
    // whole-body scan makes (a raw control character is a syntax error).
    if (bytes.length && this.#padded) return this.#giveUp(bytes, this.#mark());
    for (const c of WHITESPACE_CONTROLS) {
      if (bytes.indexOf(c) >= 0) return this.#giveUp(bytes, this.#mark());
    }
    // A byte past ASCII becomes a character base64 refuses: #decodeText
    // then gives up, as for any other bad character.
    const text = latin1(bytes);
    this.#decodeText(this.#carry + text, "stop-before-partial", bytes);
  }

  #mark(): Mark {
    return {
      slices: this.#slices.length,
      written: this.#written,
      carry: this.#carry,
    };
  }

  #decodeText(
    text: string,
    handling: "loose" | "stop-before-partial",
    bytes: Uint8Array,
  ): void {
    const mark = this.#mark();
    let at = 0;
    try {
      while (at < text.length) {
        if (this.#padded) throw new SyntaxError("data after padding");
        let slice = this.#slices.at(-1);
        if (!slice || SLICE - this.#written < 3) {
          slice?.resize(this.#written);
          slice = new ArrayBuffer(SLICE, { maxByteLength: SLICE });
          this.#slices.push(slice);
          this.#written = 0;
        }
        // Whole quads that fit; the rest goes to the next slice.
        const fit = Math.floor((SLICE - this.#written) / 3) * 4;
        const end = Math.min(text.length, at + fit);
        const piece = at === 0 && end === text.length
          ? text
          : text.substring(at, end);
        const result = new Uint8Array(slice, this.#written).setFromBase64(
          piece,
          {
            lastChunkHandling: end === text.length
              ? handling
              : "stop-before-partial",
          },
        );
        this.#written += result.written;
        this.#padded = result.read > 0 &&
          piece.charCodeAt(result.read - 1) === EQUALS;
        at += result.read;
        if (result.read < piece.length) break;
      }
      this.#carry = text.slice(at);
    } catch {
      this.#giveUp(bytes, mark);
    }
  }

  /**
   * Back to kept text: what was decoded before `mark`, re-encoded, then the
   * text not decoded at that point.
   */
  #giveUp(bytes: Uint8Array, mark: Mark): void {
    const kept = this.#slices.slice(0, mark.slices);
    const parts = kept.map((b, i) =>
      new Uint8Array(b, 0, i === mark.slices - 1 ? mark.written : b.byteLength)
    );
    let n = 0;
    for (const p of parts) n += p.length;
    const decoded = new Uint8Array(n);
    n = 0;
    for (const p of parts) {
      decoded.set(p, n);
      n += p.length;
    }
    const before = new TextEncoder().encode(decoded.toBase64() + mark.carry);
    this.#raw = [before, bytes];
    this.#slices = [];
    this.#written = 0;
    this.#carry = "";
    this.#padded = false;
    this.#decoding = false;
    this.#stuck = true;
  }
}
