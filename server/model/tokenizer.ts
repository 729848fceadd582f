/**
 * The demo model's tokenizer: whole words and syllable pieces by greedy
 * longest match inside each word, single digits (as Gemma splits numbers), and
 * UTF-8 byte tokens as the fallback, so every string encodes and decodes back
 * exactly.
 *
 * @module
 */

import { buildVocab, byteTokenId, SPECIAL_TOKENS } from "./vocab.ts";

const BYTE_PATTERN = /^<0x([0-9A-F]{2})>$/;
/**
 * Pre-split: a word with its optional leading space, a space before a quote,
 * or any single character. Pieces never cross these chunks.
 */
const CHUNK = /( ?[A-Za-z]+| ?['"]|[\s\S])/gu;

/** Encodes text to ids and back with the demo vocabulary. */
export class Tokenizer {
  /** Token strings by id. */
  readonly vocab: readonly string[];
  #pieces = new Map<string, number>();
  #maxPiece = 1;
  #byteOf: Int16Array;
  #encoder = new TextEncoder();

  /**
   * @param vocab Token strings by id; defaults to {@linkcode buildVocab}.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "./tokenizer.ts";
   * import assert from "node:assert/strict";
   * const tok = new Tokenizer();
   * assert.equal(tok.decode(tok.encode("Agent: Zyx-9, ok")), "Agent: Zyx-9, ok");
   * ```
   */
  constructor(vocab: readonly string[] = buildVocab()) {
    this.vocab = vocab;
    this.#byteOf = new Int16Array(vocab.length).fill(-1);
    const specials = new Set<string>(SPECIAL_TOKENS);
    vocab.forEach((text, id) => {
      const byte = BYTE_PATTERN.exec(text);
      if (byte) this.#byteOf[id] = parseInt(byte[1], 16);
      else if (!specials.has(text)) {
        this.#pieces.set(text, id);
        this.#maxPiece = Math.max(this.#maxPiece, text.length);
      }
    });
  }

  /**
   * Encodes plain text (special-token spellings in the text stay plain text).
   *
   * @param text Any string.
   * @returns Token ids.
   *
   * @example Digits are single tokens, known words whole
   * ```ts
   * import { Tokenizer } from "./tokenizer.ts";
   * import assert from "node:assert/strict";
   * const tok = new Tokenizer();
   * const ids = tok.encode("name: 42");
   * assert.deepEqual(ids.map((id) => tok.tokenText(id)), ["name", ":", " ", "4", "2"]);
   * ```
   */
  encode(text: string): number[] {
    const ids: number[] = [];
    for (const [chunk] of text.matchAll(CHUNK)) this.#encodeChunk(chunk, ids);
    return ids;
  }

  #encodeChunk(chunk: string, ids: number[]): void {
    let i = 0;
    while (i < chunk.length) {
      let matched = 0;
      for (
        let len = Math.min(this.#maxPiece, chunk.length - i);
        len > 0;
        len--
      ) {
        const id = this.#pieces.get(chunk.slice(i, i + len));
        if (id !== undefined) {
          ids.push(id);
          matched = len;
          break;
        }
      }
      if (matched > 0) {
        i += matched;
        continue;
      }
      // Character fallback: the UTF-8 bytes of one code point.
      const codePoint = chunk.codePointAt(i)!;
      const char = String.fromCodePoint(codePoint);
      for (const b of this.#encoder.encode(char)) ids.push(byteTokenId(b));
      i += char.length;
    }
  }

  /**
   * The text of one token: its characters, or `<0xNN>` for a byte that is
   * only part of a UTF-8 character, or the special token's name.
   *
   * @param id Token id.
   * @returns The token text.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "./tokenizer.ts";
   * import assert from "node:assert/strict";
   * const tok = new Tokenizer();
   * assert.equal(tok.tokenText(tok.encode("\n")[0]), "\n");
   * assert.equal(tok.tokenText(2), "<bos>");
   * ```
   */
  tokenText(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.length) {
      throw new RangeError(
        `Cannot look up token ${id}: ids run from 0 to ${
          this.vocab.length - 1
        }; pass an id the model produced`,
      );
    }
    const byte = this.#byteOf[id];
    if (byte >= 0) {
      return byte < 0x80 ? String.fromCharCode(byte) : this.vocab[id];
    }
    return this.vocab[id];
  }

  /** Whether `id` is a byte token. */
  isByte(id: number): boolean {
    return this.#byteOf[id] >= 0;
  }

  /**
   * Decodes ids to text, joining byte tokens into UTF-8 characters; with
   * `skipSpecial` special tokens are dropped.
   *
   * @param ids Token ids.
   * @param options `skipSpecial` (@default {false}).
   * @returns The text.
   *
   * @example
   * ```ts
   * import { Tokenizer } from "./tokenizer.ts";
   * import assert from "node:assert/strict";
   * const tok = new Tokenizer();
   * assert.equal(tok.decode(tok.encode("naïve ✓")), "naïve ✓");
   * ```
   */
  decode(
    ids: readonly number[],
    options: { skipSpecial?: boolean } = {},
  ): string {
    let out = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) {
        out += new TextDecoder().decode(new Uint8Array(bytes));
        bytes = [];
      }
    };
    for (const id of ids) {
      const byte = this.#byteOf[id];
      if (byte >= 0) {
        bytes.push(byte);
        continue;
      }
      flush();
      if (id < SPECIAL_TOKENS.length) {
        if (!options.skipSpecial) out += this.vocab[id];
      } else out += this.tokenText(id);
    }
    flush();
    return out;
  }
}
