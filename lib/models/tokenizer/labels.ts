/**
 * Token labels from a real tokenizer: each token's own decoded text, with
 * byte pieces (SentencePiece byte fallback, or byte-level BPE pieces that
 * split a character) joined into the characters they spell.
 *
 * @module
 */

/** What {@linkcode tokenLabels} needs from a tokenizer. */
export interface LabelDecoder {
  /** Decodes ids to text, special tokens kept. */
  decode(ids: number[]): string;
}

const REPLACEMENT = "\uFFFD";
/** A UTF-8 character spans at most 4 byte pieces. */
const MAX_GROUP = 4;

/**
 * Labels ids by decoding each token alone. A token that decodes to an
 * incomplete character (U+FFFD) is decoded together with the next ones (up to
 * four) until the character completes: the first token of the group carries
 * the characters and the others get `""`, so the joined labels read as the
 * text. Line breaks are shown as `↵`, as captures write them.
 *
 * @param decoder The tokenizer.
 * @param ids Token ids.
 * @returns One label per id.
 *
 * @example Byte pieces joined into one character
 * ```ts
 * import { tokenLabels } from "./labels.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = [[0x48, 0x69], [0xf0], [0x9f, 0x98], [0x80], [0x0a]];
 * const decoder = {
 *   decode: (ids: number[]) =>
 *     new TextDecoder().decode(new Uint8Array(ids.flatMap((i) => bytes[i]))),
 * };
 * assert.deepEqual(tokenLabels(decoder, [0, 1, 2, 3, 4]), ["Hi", "😀", "", "", "↵"]);
 * ```
 */
export function tokenLabels(
  decoder: LabelDecoder,
  ids: readonly number[],
): string[] {
  const labels: string[] = new Array(ids.length);
  let i = 0;
  while (i < ids.length) {
    let text = decoder.decode([ids[i]]);
    let end = i + 1;
    if (text.endsWith(REPLACEMENT)) {
      for (let j = i + 2; j <= Math.min(ids.length, i + MAX_GROUP); j++) {
        const joined = decoder.decode(ids.slice(i, j));
        if (!joined.endsWith(REPLACEMENT)) {
          text = joined;
          end = j;
          break;
        }
      }
    }
    labels[i] = text.replaceAll("\n", "↵");
    for (let k = i + 1; k < end; k++) labels[k] = "";
    i = end;
  }
  return labels;
}
