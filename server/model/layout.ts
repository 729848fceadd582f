/**
 * Where each feature lives in the demo model's residual stream, and the
 * token identity code. Shared by the weights script (which writes weights
 * that read and write these slots) and the tests (which check the derivation).
 *
 * @module
 */

import { buildVocab, SPECIAL_TOKENS } from "./vocab.ts";

const VOCAB = buildVocab();
/** Vocabulary size. */
export const VOCAB_SIZE: number = VOCAB.length;
/**
 * Size of one block of a token-identity code: the smallest n with n * n
 * tokens or more, so every token gets its own (m0, m1) message.
 */
export const CODE_BLOCK: number = Math.ceil(Math.sqrt(VOCAB_SIZE));
/** Dimensions of a token-identity code: three one-hot blocks. */
export const CODE_DIMS: number = 3 * CODE_BLOCK;
/** Layer-0 previous-token heads look back 0..WINDOW content tokens. */
export const WINDOW = 10;

/**
 * The line head counts words, not spellings: `alpha`, ` alpha`, `Alpha` and
 * ` Alpha` (and a letter's byte in either case) share one line id, so a
 * request line shares the key with its record however each writes it, and
 * the line slots stay a quarter of the vocabulary wide.
 */
function lineKey(text: string, id: number): string {
  if (id < SPECIAL_TOKENS.length) return text;
  const byte = /^<0x([0-9A-F]{2})>$/.exec(text);
  if (byte) {
    const b = parseInt(byte[1], 16);
    return b < 0x80 ? String.fromCharCode(b).toLowerCase() : text;
  }
  return (text.length > 1 ? text.replace(/^ /, "") : text).toLowerCase();
}

const LINE_IDS = (() => {
  const ids = new Int32Array(VOCAB_SIZE);
  const byKey = new Map<string, number>();
  VOCAB.forEach((text, id) => {
    const key = lineKey(text, id);
    let lineId = byKey.get(key);
    if (lineId === undefined) byKey.set(key, lineId = byKey.size);
    ids[id] = lineId;
  });
  return { ids, size: byKey.size };
})();

/** Distinct line ids (the one-hot token slot and the line slot are this wide). */
export const LINE_SIZE: number = LINE_IDS.size;

/**
 * The line id of a token: its text without a leading space, lower-cased.
 *
 * @param id Token id.
 * @returns Its index in the one-hot and line slots.
 *
 * @example
 * ```ts
 * import { lineIdOf } from "./layout.ts";
 * import { buildVocab } from "./vocab.ts";
 * import assert from "node:assert/strict";
 * const vocab = buildVocab();
 * assert.equal(lineIdOf(vocab.indexOf(" Name")), lineIdOf(vocab.indexOf("name")));
 * assert.notEqual(lineIdOf(vocab.indexOf("name")), lineIdOf(vocab.indexOf("code")));
 * ```
 */
export function lineIdOf(id: number): number {
  return LINE_IDS.ids[id];
}
/** Sinusoid pairs in the position code. */
export const POSITION_PAIRS = 8;

/** Offsets of the residual-stream slots. */
export const SLOT = (() => {
  let at = 0;
  const take = (n: number) => {
    const start = at;
    at += n;
    return start;
  };
  const tok = take(CODE_DIMS);
  const oneHot = take(LINE_SIZE);
  const prev: number[] = [];
  for (let k = 0; k <= WINDOW; k++) prev.push(take(CODE_DIMS));
  return {
    /** The current token's identity code. */
    tok,
    /** The current token's line id, one-hot (read by the line head). */
    oneHot,
    /** `prev[k]`: identity of the content token k steps back (k = 0 is the latest). */
    prev,
    /** Count of each line id in the current line, over the line head's sink (1e-5 per token). */
    line: take(LINE_SIZE),
    /** What the induction head copied (read by the unembedding). */
    out: take(CODE_DIMS),
    /** Sinusoidal code of the content clock. */
    position: take(2 * POSITION_PAIRS),
    /** Sinusoidal code of the line number. */
    linePosition: take(2 * POSITION_PAIRS),
    /** Constant 1 on every position. */
    one: take(1),
    /** Turn-frame token (`<start_of_turn>`, role, newline, `<end_of_turn>`, image brackets). */
    frame: take(1),
    /** The `<bos>` token. */
    bos: take(1),
    /** An image patch. */
    vision: take(1),
    /** A text token of the conversation (not frame, not image). */
    text: take(1),
    /** A token after which the reply ends (closing quote, colour word). */
    terminal: take(1),
    /** Mean red, green, blue of an image patch. */
    patchRgb: take(3),
    /** Mean red, green, blue over the image patches the image head read. */
    imageRgb: take(3),
    /** Share of the image head's attention that landed on patches. */
    hasImage: take(1),
    /** Total width. */
    width: at,
  };
})();

/**
 * The identity code of a token: three one-hot blocks from the token's
 * "message" (m0, m1) -> (m0, m1, m0 + m1 mod {@linkcode CODE_BLOCK}). Two
 * different tokens share at most one block, so their codes overlap by at
 * most a third.
 *
 * @param id Token id (below `CODE_BLOCK * CODE_BLOCK`).
 * @returns The indices (within the code) that are 1.
 *
 * @example
 * ```ts
 * import { codeOf } from "./layout.ts";
 * import assert from "node:assert/strict";
 * assert.equal(codeOf(10).length, 3);
 * ```
 */
export function codeOf(id: number): [number, number, number] {
  const message = (id * 397 + 11) % (CODE_BLOCK * CODE_BLOCK);
  const m0 = message % CODE_BLOCK;
  const m1 = Math.floor(message / CODE_BLOCK);
  return [m0, CODE_BLOCK + m1, 2 * CODE_BLOCK + (m0 + m1) % CODE_BLOCK];
}
