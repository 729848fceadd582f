/**
 * Base64 decoding of a layer's `data`, from a string or from the body's bytes,
 * with the platform's `Uint8Array.fromBase64` / `setFromBase64`.
 *
 * Bytes are decoded in chunks of a few MiB so no payload ever becomes one
 * string; JSON escapes (`\/`, `\u002F`) in a span are resolved first.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/**
 * The bytes as a string of one character per byte (Latin-1), the fast way
 * to hand base64 held as bytes to `setFromBase64`.
 *
 * V8 decodes base64 from a one-byte string about 15x faster than from the
 * string `TextDecoder` makes of the same ASCII (measured in Deno 2.9.6:
 * 4.7 vs 0.31 GB/s in 64 KiB chunks). Bytes past ASCII become characters
 * that are not base64, so the decoder still refuses them.
 *
 * @param bytes ASCII bytes (others map to U+0080..U+00FF).
 * @returns One character per byte.
 *
 * @example
 * ```ts
 * import { latin1 } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(latin1(new TextEncoder().encode("AQID")), "AQID");
 * assert.deepEqual([...Uint8Array.fromBase64(latin1(new TextEncoder().encode("AQID")))], [1, 2, 3]);
 * assert.throws(() => Uint8Array.fromBase64(latin1(Uint8Array.of(0xc3, 0xa9, 0x41, 0x41))));
 * ```
 */
export function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString("latin1");
}

/**
 * A `"data"` string of a response body, left as the bytes between its quotes
 * (and, when the body scan decoded it on the way, the decoded bytes).
 *
 * @example
 * ```ts
 * import { Base64Span, decodeBase64 } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * const span = new Base64Span(new TextEncoder().encode("AQID"));
 * assert.equal(span.length, 4);
 * assert.deepEqual([...decodeBase64(span, "layer 0")], [1, 2, 3]);
 * ```
 */
export class Base64Span {
  /** The string's raw bytes, escapes included, viewing the body (no copy). */
  readonly bytes: Uint8Array;
  /** The decoded bytes, when already decoded; taken by `decodeBase64`. */
  decoded: Uint8Array | null;
  /**
   * The decoded bytes as consecutive slices, each in a resizable buffer of
   * its own, when the streaming scan decoded them on the way; taken by
   * {@linkcode takeDecodedSlices} (or joined by `decodeBase64`).
   */
  slices: Uint8Array[] | null = null;

  /**
   * Wraps a span of the body.
   *
   * @param bytes The bytes between the quotes.
   * @param decoded Their decoded value, if known.
   * @default decoded null
   *
   * @example
   * ```ts
   * import { Base64Span } from "./base64.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Base64Span(new Uint8Array(8)).decoded, null);
   * ```
   */
  constructor(bytes: Uint8Array, decoded: Uint8Array | null = null) {
    this.bytes = bytes;
    this.decoded = decoded;
  }

  /** Number of bytes in the span. */
  get length(): number {
    return this.bytes.length;
  }

  /**
   * Number of decoded bytes, when the span was decoded on the way (whole or
   * in slices), else `null`.
   *
   * @example
   * ```ts
   * import { Base64Span } from "./base64.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new Base64Span(new Uint8Array(4), new Uint8Array(3)).decodedLength, 3);
   * assert.equal(new Base64Span(new Uint8Array(4)).decodedLength, null);
   * ```
   */
  get decodedLength(): number | null {
    if (this.decoded) return this.decoded.length;
    if (!this.slices) return null;
    let n = 0;
    for (const s of this.slices) n += s.length;
    return n;
  }
}

/**
 * Hands over a span's decoded slices, once (the caller may transfer their
 * buffers): `null` when the span was not decoded in slices.
 *
 * @param span The span.
 * @returns Its slices, which the span then no longer holds.
 *
 * @example
 * ```ts
 * import { Base64Span, takeDecodedSlices } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * const span = new Base64Span(new TextEncoder().encode("AQID"));
 * span.slices = [Uint8Array.of(1), Uint8Array.of(2, 3)];
 * assert.equal(takeDecodedSlices(span)?.length, 2);
 * assert.equal(takeDecodedSlices(span), null);
 * ```
 */
export function takeDecodedSlices(span: Base64Span): Uint8Array[] | null {
  const slices = span.slices;
  span.slices = null;
  return slices;
}

/** The slices as one fresh buffer. */
function join(slices: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const s of slices) n += s.length;
  const all = new Uint8Array(n);
  n = 0;
  for (const s of slices) {
    all.set(s, n);
    n += s.length;
  }
  return all;
}

/** Chunk of base64 characters turned into a string at a time. */
const CHUNK = 4 << 20;

/**
 * Decodes base64 text, given as a string or as a {@linkcode Base64Span} of
 * the body's bytes, into a fresh buffer. ASCII whitespace is skipped; missing
 * padding is accepted.
 *
 * @param text The base64 text.
 * @param where What is decoded, for error messages, e.g. `"layer 18"`.
 * @returns The decoded bytes, in a buffer that nothing else uses (the
 *   caller may transfer it).
 * @throws {SyntaxError} When the text is not base64.
 *
 * @example
 * ```ts
 * import { Base64Span, decodeBase64 } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...decodeBase64("AQID", "layer 0")], [1, 2, 3]);
 * const span = new Base64Span(new TextEncoder().encode("A\\/8="));
 * assert.deepEqual([...decodeBase64(span, "layer 0")], [3, 255]);
 * assert.throws(() => decodeBase64("AQ!D", "layer 7"), /Cannot decode layer 7: data is not valid base64/);
 * ```
 */
export function decodeBase64(
  text: string | Base64Span,
  where: string,
): Uint8Array {
  try {
    if (typeof text === "string") return Uint8Array.fromBase64(text);
    if (text.decoded) {
      // Handed over once: the caller may transfer its buffer to a worker.
      const decoded = text.decoded;
      text.decoded = null;
      return decoded;
    }
    const slices = takeDecodedSlices(text);
    if (slices) return join(slices);
    let ascii = text.bytes;
    if (ascii.indexOf(0x5c) >= 0) ascii = unescapeJson(ascii, where);
    return decodeAscii(ascii);
  } catch (error) {
    if (!(error instanceof SyntaxError) || error.message.startsWith("Cannot")) {
      throw error;
    }
    throw new SyntaxError(
      `Cannot decode ${where}: data is not valid base64 (${error.message}); the server must send base64(gzip(float16 bytes))`,
    );
  }
}

/**
 * Decodes the base64 text that starts at `start` in a JSON body up to the
 * quote that closes its string, chunk by chunk. The closing quote is found
 * in each decoded chunk string (a search far faster than over bytes), so
 * finding the end and decoding take one pass.
 *
 * @param body The body bytes.
 * @param start Index of the string's first character (after the quote).
 * @returns The closing quote's index and the decoded bytes (filling their
 *   own resizable buffer), or
 *   `null` when the text has escapes, bad characters or no end, for the
 *   caller to handle the slow way.
 *
 * @example
 * ```ts
 * import { decodeBase64Until } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * const body = new TextEncoder().encode('{"data": "AQID", "x": 1}');
 * const found = decodeBase64Until(body, 10);
 * assert.equal(found?.end, 14);
 * assert.deepEqual([...found!.bytes], [1, 2, 3]);
 * assert.equal(decodeBase64Until(new TextEncoder().encode('"A\\/8="'), 1), null);
 * ```
 */
export function decodeBase64Until(
  body: Uint8Array,
  start: number,
): { end: number; bytes: Uint8Array } | null {
  // A resizable buffer grows in place as chunks are decoded and ends at the
  // exact size, so the result can move to a worker without a copy.
  const buffer = new ArrayBuffer(0, {
    maxByteLength: Math.ceil((body.length - start) / 4) * 3,
  });
  let pos = start;
  let written = 0;
  while (pos < body.length) {
    const stop = Math.min(body.length, pos + CHUNK);
    // One character per byte, so positions in the text are positions in the
    // body; a byte past ASCII is a character base64 refuses (null below).
    const text = latin1(body.subarray(pos, stop));
    const quote = text.indexOf('"');
    const cut = quote < 0 ? text.length : quote;
    const slash = text.indexOf("\\");
    if (slash >= 0 && slash < cut) return null;
    buffer.resize(
      Math.min(buffer.maxByteLength, written + Math.ceil(cut / 4) * 3),
    );
    let result: { read: number; written: number };
    try {
      result = new Uint8Array(buffer, written).setFromBase64(
        quote < 0 ? text : text.slice(0, quote),
        { lastChunkHandling: quote < 0 ? "stop-before-partial" : "loose" },
      );
    } catch {
      return null;
    }
    written += result.written;
    if (quote >= 0) {
      // The base64 decoder skips whitespace, which JSON forbids raw in a
      // string: a span that decoded to fewer bytes than its length implies
      // had some, and is left for the checked path.
      if (written !== base64Length(body, start, pos + quote)) return null;
      buffer.resize(written);
      return { end: pos + quote, bytes: new Uint8Array(buffer, 0, written) };
    }
    if (result.read === 0) return null;
    pos += result.read;
  }
  return null;
}

/** Bytes that `body[start, end)`, plain base64 without whitespace, decodes to. */
function base64Length(body: Uint8Array, start: number, end: number): number {
  let pads = 0;
  while (pads < 2 && end - 1 - pads >= start && body[end - 1 - pads] === 0x3d) {
    pads++;
  }
  const n = end - start;
  const whole = Math.floor(n / 4) * 3;
  const rest = n % 4;
  // One character past whole groups is never plain base64.
  return rest === 0 ? whole - pads : rest === 1 ? -1 : whole + rest - 1 - pads;
}

/** Decodes base64 held as ASCII bytes, one chunk-sized string at a time. */
function decodeAscii(ascii: Uint8Array): Uint8Array {
  // Sized exactly for plain padded base64, so the result fills its buffer
  // and can be transferred to a worker without a copy.
  let pads = 0;
  while (pads < 2 && ascii[ascii.length - 1 - pads] === 0x3d) pads++;
  const out = new Uint8Array(Math.ceil(ascii.length / 4) * 3 - pads);
  let read = 0;
  let written = 0;
  let chunk = CHUNK;
  while (read < ascii.length) {
    const end = Math.min(ascii.length, read + chunk);
    const last = end === ascii.length;
    const result = out.subarray(written).setFromBase64(
      latin1(ascii.subarray(read, end)),
      { lastChunkHandling: last ? "loose" : "stop-before-partial" },
    );
    read += result.read;
    written += result.written;
    // "loose" consumes the last chunk whole or throws.
    if (last) break;
    // Chunks hold whole 4-character groups unless whitespace shifted them;
    // a chunk with no whole group (almost all whitespace) is retried larger.
    if (result.read === 0) chunk *= 2;
  }
  return out.subarray(0, written);
}

/**
 * Resolves the JSON escapes of a string's raw bytes: `\/`, `\"`, `\\`, the
 * one-letter escapes and `\uXXXX` (as UTF-8).
 *
 * @param raw The bytes between the quotes.
 * @param where What is decoded, for error messages.
 * @returns The unescaped bytes.
 * @throws {SyntaxError} On a malformed escape.
 *
 * @example
 * ```ts
 * import { unescapeJson } from "./base64.ts";
 * import assert from "node:assert/strict";
 *
 * const raw = new TextEncoder().encode("a\\/b\\u002Bc");
 * assert.equal(new TextDecoder().decode(unescapeJson(raw, "layer 0")), "a/b+c");
 * ```
 */
export function unescapeJson(raw: Uint8Array, where: string): Uint8Array {
  const out = new Uint8Array(raw.length);
  let w = 0;
  let from = 0;
  for (;;) {
    const slash = raw.indexOf(0x5c, from);
    const stop = slash < 0 ? raw.length : slash;
    out.set(raw.subarray(from, stop), w);
    w += stop - from;
    if (slash < 0) break;
    const c = raw[slash + 1];
    from = slash + 2;
    switch (c) {
      case 0x2f: // \/
      case 0x5c: // \\
      case 0x22: // \"
        out[w++] = c;
        break;
      case 0x62: // \b
        out[w++] = 0x08;
        break;
      case 0x66: // \f
        out[w++] = 0x0c;
        break;
      case 0x6e: // \n
        out[w++] = 0x0a;
        break;
      case 0x72: // \r
        out[w++] = 0x0d;
        break;
      case 0x74: // \t
        out[w++] = 0x09;
        break;
      case 0x75: { // \uXXXX
        const hex = new TextDecoder().decode(raw.subarray(from, from + 4));
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw badEscape(where, slash);
        w += new TextEncoder().encodeInto(
          String.fromCharCode(parseInt(hex, 16)),
          out.subarray(w),
        ).written;
        from += 4;
        break;
      }
      default:
        throw badEscape(where, slash);
    }
  }
  return out.subarray(0, w);
}

function badEscape(where: string, at: number): SyntaxError {
  return new SyntaxError(
    `Cannot decode ${where}: data has a malformed JSON escape at character ${at}; pass the body exactly as the server sent it`,
  );
}
