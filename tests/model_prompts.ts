/**
 * Seeded generators of needle-form and codename-form prompts for the demo
 * model's tests: random word-like keys and names, random numbers and words as
 * values, random order and length, with the line of the record that holds the
 * answer.
 *
 * @module
 */

/** A generated prompt and what the model should answer. */
export interface RecallPrompt {
  /** The user message. */
  text: string;
  /** The expected reply (as the reference checks: contained in the output). */
  expected: string;
  /** Lines of `text` (split on "\n"). */
  lines: string[];
  /** Index in `lines` of the record that holds the answer. */
  answerLine: number;
}

const CONSONANTS = "bcdfghjklmnpqrstvwxyz";
const VOWELS = "aeiouy";

function pick<T>(random: () => number, items: ArrayLike<T>): T {
  return items[Math.floor(random() * items.length)];
}

/** A pronounceable made-up word of 2..4 syllables, sometimes with an odd letter cluster. */
export function randomWord(random: () => number, capitalized = false): string {
  let word = "";
  const syllables = 2 + Math.floor(random() * 3);
  for (let s = 0; s < syllables; s++) {
    word += pick(random, CONSONANTS) + pick(random, VOWELS);
    if (random() < 0.25) word += pick(random, CONSONANTS);
  }
  return capitalized ? word[0].toUpperCase() + word.slice(1) : word;
}

function randomValue(random: () => number): string {
  if (random() < 0.5) {
    return String(Math.floor(random() * 10 ** (1 + Math.floor(random() * 6))));
  }
  return randomWord(random, random() < 0.5);
}

function distinct(
  random: () => number,
  n: number,
  make: () => string,
): string[] {
  const seen = new Set<string>();
  while (seen.size < n) seen.add(make());
  return [...seen].sort(() => random() - 0.5);
}

/**
 * A needle-form prompt: `key: value` lines, then `key:` for one of them.
 *
 * @param random Seeded generator.
 * @param records Number of records (2..40 in the tests).
 * @returns The prompt.
 */
export function needlePrompt(
  random: () => number,
  records: number,
): RecallPrompt {
  const keys = distinct(
    random,
    records,
    () => randomWord(random, random() < 0.2),
  );
  const values = keys.map(() => randomValue(random));
  const target = Math.floor(random() * records);
  const lines = keys.map((k, i) => `${k}: ${values[i]}`);
  lines.push(`${keys[target]}:`);
  return {
    text: lines.join("\n"),
    expected: values[target],
    lines,
    answerLine: target,
  };
}

/**
 * A codename-form prompt: a titled log of `[Entry NN] Field: name, Other:
 * 'value'` records, a request line, then the record's prefix to complete.
 *
 * @param random Seeded generator.
 * @param records Number of records.
 * @returns The prompt.
 */
export function codenamePrompt(
  random: () => number,
  records: number,
): RecallPrompt {
  const who = randomWord(random, true), what = randomWord(random, true);
  const names = distinct(random, records, () => randomWord(random, true));
  const values = names.map(() => randomWord(random, true));
  const target = Math.floor(random() * records);
  const lines = [
    `${randomWord(random, true)} Log: ${who} ${what} Retrieval`,
    "",
  ];
  names.forEach((name, i) => {
    lines.push(
      `[Entry ${String(i + 1).padStart(2, "0")}] ${who}: ${name}, ${what}: '${
        values[i]
      }'`,
    );
  });
  lines.push(
    "",
    `Request: Retrieve the ${what.toLowerCase()} for ${who} ${names[target]}.`,
  );
  lines.push(`${who}: ${names[target]}, ${what}:`);
  return {
    text: lines.join("\n"),
    expected: values[target],
    lines,
    answerLine: target + 2,
  };
}
