/**
 * Segment ids and the content clock, the demo model's position inputs.
 *
 * Like BERT's token-type ids, each position gets a segment: text, turn frame,
 * image patch, or `<bos>`. The position code counts content (text and image)
 * tokens only: frame tokens repeat the clock of the content token before them.
 * That is why the reply's first token continues the user's last line for the
 * previous-token heads, as if the turn markers were not there.
 *
 * @module
 */

import { byteTokenId, SPECIAL } from "./vocab.ts";

/** Segment of a position. */
export const SEGMENT = { text: 0, frame: 1, vision: 2, bos: 3 } as const;

const NEWLINE = byteTokenId(10);

/** Segments and clock values of a sequence. */
export interface Positions {
  /** {@linkcode SEGMENT} value per position. */
  segment: Uint8Array;
  /** Content clock per position. */
  clock: Int32Array;
  /** Line number per position. */
  line: Int32Array;
}

/**
 * Assigns segments and clock values one token at a time, so a generated
 * token gets its position exactly as it would inside a longer prompt.
 *
 * @example
 * ```ts
 * import { PositionTracker, SEGMENT } from "./segments.ts";
 * import { SPECIAL, byteTokenId } from "./vocab.ts";
 * import assert from "node:assert/strict";
 * const tracker = new PositionTracker();
 * assert.deepEqual(tracker.next(SPECIAL.bos), { segment: SEGMENT.bos, clock: 0, line: 0 });
 * assert.deepEqual(tracker.next(byteTokenId(97)), { segment: SEGMENT.text, clock: 1, line: 0 });
 * ```
 */
export class PositionTracker {
  #index = 0;
  #frameRun = 0; // >0: tokens left in a role header; -1: just after <end_of_turn>
  #count = 0;
  #line = 0;

  /**
   * The segment, clock and line of the next token.
   *
   * @param id Token id.
   * @returns Its segment, clock and line number (content line breaks so far;
   * a line break belongs to the line it ends).
   */
  next(id: number): { segment: number; clock: number; line: number } {
    let seg: number;
    const afterEnd = this.#frameRun === -1;
    if (afterEnd) this.#frameRun = 0;
    if (this.#index === 0 && id === SPECIAL.bos) seg = SEGMENT.bos;
    else if (id === SPECIAL.startOfTurn) {
      seg = SEGMENT.frame;
      this.#frameRun = 2; // role word, newline
    } else if (id === SPECIAL.endOfTurn) {
      seg = SEGMENT.frame;
      this.#frameRun = -1;
    } else if (id === SPECIAL.imagePatch) seg = SEGMENT.vision;
    else if (id < byteTokenId(0)) seg = SEGMENT.frame;
    else if (this.#frameRun > 0) {
      seg = SEGMENT.frame;
      this.#frameRun = id === NEWLINE ? 0 : this.#frameRun - 1;
    } else if (afterEnd && id === NEWLINE) seg = SEGMENT.frame;
    else seg = SEGMENT.text;
    if (seg === SEGMENT.text || seg === SEGMENT.vision) this.#count++;
    this.#index++;
    const line = this.#line;
    if (seg === SEGMENT.text && id === NEWLINE) this.#line++;
    return { segment: seg, clock: this.#count, line };
  }
}

/**
 * Assigns segments and clock values to a token sequence.
 *
 * @param ids Token ids (the prompt, optionally followed by generated ids).
 * @returns Segment and clock per position.
 *
 * @example The turn frame does not advance the clock
 * ```ts
 * import { computePositions, SEGMENT } from "./segments.ts";
 * import { SPECIAL, byteTokenId } from "./vocab.ts";
 * import assert from "node:assert/strict";
 * const nl = byteTokenId(10), a = byteTokenId(97);
 * const ids = [SPECIAL.bos, SPECIAL.startOfTurn, a, nl, a, SPECIAL.endOfTurn, nl];
 * const { segment, clock } = computePositions(ids);
 * assert.deepEqual([...clock], [0, 0, 0, 0, 1, 1, 1]);
 * assert.equal(segment[4], SEGMENT.text);
 * assert.equal(segment[6], SEGMENT.frame);
 * ```
 */
export function computePositions(ids: ArrayLike<number>): Positions {
  const n = ids.length;
  const segment = new Uint8Array(n);
  const clock = new Int32Array(n);
  const line = new Int32Array(n);
  const tracker = new PositionTracker();
  for (let i = 0; i < n; i++) {
    const next = tracker.next(ids[i]);
    segment[i] = next.segment;
    clock[i] = next.clock;
    line[i] = next.line;
  }
  return { segment, clock, line };
}
