import { buildVocab } from "./vocab.ts";

/**
 * Where each feature lives in the demo model's residual stream, and the
 * token identity code. Shared by the weights script (which writes weights
 * that read and write these slots) and the tests (which check the derivation).
 *
 * @module
 */

/** Size of one token-identity code: three one-hot blocks of 31. */
export const CODE_BLOCK = 31;
/** Dimensions of a token-identity code. */
export const CODE_DIMS = 3 * CODE_BLOCK;
/** Layer-0 previous-token heads look back 0..WINDOW content tokens. */
export const WINDOW = 10;
/** Vocabulary size (the one-hot token slot and the line slot are this wide). */
export const VOCAB_SIZE: number = buildVocab().length;
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
  const oneHot = take(VOCAB_SIZE);
  const prev: number[] = [];
  for (let k = 0; k <= WINDOW; k++) prev.push(take(CODE_DIMS));
  return {
    /** The current token's identity code. */
    tok,
    /** The current token, one-hot (read by the line head). */
    oneHot,
    /** `prev[k]`: identity of the content token k steps back (k = 0 is the latest). */
    prev,
    /** Count of each token in the current line, over the line head's sink (1e-5 per token). */
    line: take(VOCAB_SIZE),
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
 * "message" (m0, m1) -> (m0, m1, m0 + m1 mod 31). Two different tokens share
 * at most one block, so their codes overlap by at most a third.
 *
 * @param id Token id (below 961).
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
