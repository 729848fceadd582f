/**
 * The demo model's vocabulary, built from short word lists so the weights
 * script and the tokenizer agree on every id.
 *
 * Layout (Gemma's first ids kept: pad 0, eos 1, bos 2, unk 3):
 * special tokens, then the 256 byte tokens (the character fallback that makes
 * any text encodable), then the two opening-quote tokens, then common words in
 * four spellings (`word`, ` word`, `Word`, ` Word`), then consonant-vowel
 * syllables (lower and capitalized) so made-up words stay a few tokens long.
 *
 * @module
 */

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

/** Common English words (no study-specific entries; any other word falls back to pieces). */
const WORDS = [
  "the",
  "a",
  "an",
  "and",
  "or",
  "of",
  "to",
  "in",
  "on",
  "for",
  "with",
  "is",
  "are",
  "was",
  "be",
  "it",
  "this",
  "that",
  "what",
  "which",
  "who",
  "where",
  "when",
  "how",
  "not",
  "no",
  "yes",
  "my",
  "your",
  "our",
  "their",
  "his",
  "her",
  "its",
  "at",
  "by",
  "from",
  "as",
  "all",
  "one",
  "two",
  "three",
  "name",
  "code",
  "key",
  "value",
  "list",
  "log",
  "entry",
  "record",
  "agent",
  "user",
  "model",
  "system",
  "request",
  "retrieve",
  "find",
  "number",
  "word",
  "line",
  "file",
  "data",
  "text",
  "image",
  "colour",
  "color",
  "red",
  "green",
  "blue",
  "please",
  "answer",
  "question",
  "give",
  "tell",
  "me",
  "id",
  "date",
  "time",
  "city",
  "secret",
  "password",
  "field",
  "item",
  "table",
  "report",
  "security",
  "hello",
  "world",
  "status",
  "level",
  "rank",
  "team",
  "project",
  "dominates",
  "picture",
  "here",
  "there",
  "you",
  "we",
  "they",
  "can",
  "will",
] as const;

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
  for (const word of WORDS) {
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
  return vocab;
}
