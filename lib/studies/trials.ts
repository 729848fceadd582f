/**
 * Sweep studies and their grids: each trial is fixed by its grid cell and
 * seed (records, key, value, needle position), so a rerun builds the same
 * prompts.
 *
 * @module
 */

import { seededRandom } from "../random.ts";

/** The studies a sweep runs. */
export const STUDY_NAMES = [
  "needle",
  "kv",
  "codename",
  "retrieval-heads",
  "sinks",
] as const;

/** One of {@linkcode STUDY_NAMES}. */
export type StudyName = typeof STUDY_NAMES[number];

/** Bumped whenever a study's prompts or numbers change (part of the cache key). */
export const STUDY_VERSION = 1;

/** A sweep's grid. */
export interface SweepGrid {
  /** Prompt lengths in the server's tokens (`usage.prompt_tokens`). */
  lengths: number[];
  /** Needle depths in percent, 0 (first record) to 100 (last). */
  depths: number[];
  /** Seeds 0 to `seeds - 1` run in every cell. */
  seeds: number;
  /** Needles with distinct keys (one asked), RULER's multikey. */
  keys: number;
  /** Values under the asked key (all must appear), RULER's multivalue. */
  values: number;
}

/**
 * The grid each study uses when none is given.
 *
 * @example
 * ```ts
 * import { defaultGrid } from "./trials.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(defaultGrid("sinks").depths, [50]);
 * assert.equal(defaultGrid("needle").seeds, 1);
 * ```
 */
export function defaultGrid(study: StudyName): SweepGrid {
  const depths = study === "sinks" ? [50] : [0, 25, 50, 75, 100];
  return { lengths: [256, 512], depths, seeds: 1, keys: 1, values: 1 };
}

/**
 * Checks a study name and fills and checks a grid.
 *
 * @param study The study's name.
 * @param grid Parts of the grid; the rest from {@linkcode defaultGrid}.
 * @returns The full grid.
 * @throws {Error} `Cannot run sweep ...` for an unknown study or a malformed grid.
 *
 * @example
 * ```ts
 * import { resolveGrid } from "./trials.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(resolveGrid("needle", { lengths: [128] }).lengths, [128]);
 * assert.throws(() => resolveGrid("nedle", {}), /Cannot run sweep "nedle"/);
 * assert.throws(() => resolveGrid("needle", { depths: [120] }), /Cannot run sweep/);
 * ```
 */
export function resolveGrid(
  study: string,
  grid: Partial<SweepGrid>,
): SweepGrid {
  if (!(STUDY_NAMES as readonly string[]).includes(study)) {
    throw new Error(
      `Cannot run sweep ${JSON.stringify(study)}: no such study; pick one of ${
        STUDY_NAMES.join(", ")
      }`,
    );
  }
  const full = { ...defaultGrid(study as StudyName), ...grid };
  const bad = (what: string) => {
    throw new Error(
      `Cannot run sweep ${JSON.stringify(study)}: the grid's ${what}; fix it`,
    );
  };
  const ints = (xs: unknown, min: number, max: number) =>
    Array.isArray(xs) && xs.length > 0 &&
    xs.every((x) => Number.isInteger(x) && x >= min && x <= max);
  if (!ints(full.lengths, 16, 1e7)) {
    bad(
      `lengths ${
        JSON.stringify(full.lengths)
      } are not a list of whole token counts of at least 16`,
    );
  }
  if (!ints(full.depths, 0, 100)) {
    bad(
      `depths ${
        JSON.stringify(full.depths)
      } are not a list of whole percentages 0 to 100`,
    );
  }
  for (const k of ["seeds", "keys", "values"] as const) {
    if (!Number.isInteger(full[k]) || full[k] < 1 || full[k] > 1000) {
      bad(`${k} ${JSON.stringify(full[k])} is not a whole number 1 to 1000`);
    }
  }
  return full;
}

/** One trial of a sweep. */
export interface Trial {
  /** The study. */
  study: StudyName;
  /** The target prompt length in server tokens. */
  length: number;
  /** The needle's depth in percent. */
  depth: number;
  /** The seed. */
  seed: number;
}

/**
 * Every trial of a grid, in a fixed order (length, depth, seed).
 *
 * @example
 * ```ts
 * import { gridTrials, resolveGrid } from "./trials.ts";
 * import assert from "node:assert/strict";
 *
 * const t = gridTrials("needle", resolveGrid("needle", { lengths: [64, 128], depths: [0, 100], seeds: 2 }));
 * assert.equal(t.length, 8);
 * ```
 */
export function gridTrials(study: StudyName, grid: SweepGrid): Trial[] {
  const out: Trial[] = [];
  for (const length of grid.lengths) {
    for (const depth of grid.depths) {
      for (let seed = 0; seed < grid.seeds; seed++) {
        out.push({ study, length, depth, seed });
      }
    }
  }
  return out;
}

/** The text of one trial, for a given number of haystack records. */
export interface TrialPrompt {
  /** The user message. */
  prompt: string;
  /** The needle record's text, as it stands in the prompt. */
  needle: string;
  /** The answer text inside the needle (the values joined by `, `). */
  answer: string;
  /** Each value that must appear in the output. */
  expected: string[];
  /** Index of the needle among the records. */
  index: number;
  /** All records. */
  records: number;
}

function hashSeed(trial: Trial): number {
  let h = 2166136261;
  for (
    const c of `${trial.study}|${trial.length}|${trial.depth}|${trial.seed}`
  ) {
    h = Math.imul(h ^ c.charCodeAt(0), 16777619);
  }
  return h >>> 0;
}

/**
 * Builds a trial's prompt with `records` haystack records: `key: value`
 * lines the demo model answers by copying, the needle at the trial's depth
 * (on a record boundary), the asked key last.
 *
 * @example
 * ```ts
 * import { trialPrompt } from "./trials.ts";
 * import assert from "node:assert/strict";
 *
 * const t = { study: "needle", length: 64, depth: 100, seed: 0 } as const;
 * const a = trialPrompt(t, 5, { keys: 1, values: 1 });
 * assert.deepEqual(a, trialPrompt(t, 5, { keys: 1, values: 1 }));
 * assert.equal(a.index, 4);
 * assert.ok(a.prompt.includes(a.needle));
 * ```
 */
export function trialPrompt(
  trial: Trial,
  records: number,
  grid: Pick<SweepGrid, "keys" | "values">,
): TrialPrompt {
  const rand = seededRandom(hashSeed(trial));
  const n = Math.max(records, grid.keys);
  const used = new Set<string>();
  const key = () => {
    for (;;) {
      const k = trial.study === "codename"
        ? `agent ${String(100 + Math.floor(rand() * 900))}`
        : `item${String(100 + Math.floor(rand() * 900))}`;
      if (!used.has(k)) {
        used.add(k);
        return k;
      }
      if (used.size >= 899) {
        throw new Error(
          "Cannot build the haystack: out of keys; use a shorter length",
        );
      }
    }
  };
  const value = () => String(1000 + Math.floor(rand() * 9000));
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`${key()}: ${value()}`);
  const index = Math.round(trial.depth / 100 * (n - 1));
  const asked = lines[index].split(": ")[0];
  const values = Array.from({ length: grid.values }, value);
  const answer = values.join(", ");
  const needle = `${asked}: ${answer}`;
  lines[index] = needle;
  // Further keys (multikey distractors) replace records away from the needle.
  for (let k = 1; k < grid.keys; k++) {
    const at = (index + Math.round(k * n / grid.keys)) % n;
    if (at !== index) lines[at] = `${key()}: ${value()}`;
  }
  return {
    prompt: `${lines.join("\n")}\n${asked}:`,
    needle,
    answer,
    expected: values,
    index,
    records: n,
  };
}
