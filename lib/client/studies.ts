/**
 * The reference script's two studies, defined once for the CLI and the
 * notebooks: the prompt, the expected answer, how to judge the output, the
 * layers to capture and which positions to mark.
 *
 * Layers: the reference's defaults (`2,18,27` and `0,9,12,18,24,27`) are
 * layers of Gemma 3 4B (34 layers). The demo model has only a few, so a study
 * run against the demo server captures `"all"` of them; against another
 * server it uses the reference's defaults unless told otherwise.
 *
 * @module
 */

import { findSpans } from "../analysis/span.ts";

/** One of the reference script's studies. */
export interface Study {
  /** `"needle"` or `"codename"`, as `--example` names it. */
  readonly name: "needle" | "codename";
  /** The reference's banner title. */
  readonly title: string;
  /** The user message. */
  readonly prompt: string;
  /** The answer the output must contain. */
  readonly expected: string;
  /** Whether the check ignores case (codename) or not (needle). */
  readonly ignoreCase: boolean;
  /** The reference's default layers, for a real (e.g. Gemma 3) server. */
  readonly layers: string;
  /** Layers captured on the demo server: all of its few layers. */
  readonly demoLayers: string;
  /** The token text whose positions are marked (◀) in the views. */
  readonly markToken: string | null;
}

/** Builds the needle prompt from `key: value` pairs, the query key last. */
function needlePrompt(
  pairs: readonly (readonly [string, string])[],
  key: string,
) {
  return [...pairs.map(([k, v]) => `${k}: ${v}`), `${key}:`].join("\n");
}

/** The reference's 15 pairs; the study asks for `alpha`. */
const NEEDLE_PAIRS = [
  ["alpha", "1729"],
  ["beta", "2048"],
  ["gamma", "3141"],
  ["delta", "4096"],
  ["epsilon", "5678"],
  ["zeta", "6174"],
  ["eta", "7777"],
  ["theta", "8008"],
  ["iota", "9999"],
  ["kappa", "1234"],
  ["lambda", "5555"],
  ["mu", "3721"],
  ["nu", "8642"],
  ["xi", "2468"],
  ["omicron", "1357"],
] as const;

/**
 * Needle in a haystack: recall a value by key from a list of `key: value`
 * lines; the key's positions are marked.
 *
 * @example
 * ```ts
 * import { NEEDLE_STUDY } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(NEEDLE_STUDY.prompt.startsWith("alpha: 1729\nbeta: 2048\n"));
 * assert.ok(NEEDLE_STUDY.prompt.endsWith("omicron: 1357\nalpha:"));
 * assert.equal(NEEDLE_STUDY.expected, "1729");
 * ```
 */
export const NEEDLE_STUDY: Study = {
  name: "needle",
  title: "Needle-in-a-haystack",
  prompt: needlePrompt(NEEDLE_PAIRS, "alpha"),
  expected: "1729",
  ignoreCase: false,
  layers: "2,18,27",
  demoLayers: "all",
  markToken: "alpha",
};

/**
 * Codename retrieval: find an agent's codename in a structured log. The
 * reference marks nothing in this study's text view; notebooks mark the
 * agent's name.
 *
 * @example
 * ```ts
 * import { CODENAME_STUDY } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.match(CODENAME_STUDY.prompt, /\[Entry 04\] Agent: Omega, Codename: 'Phantom'\n/);
 * assert.ok(CODENAME_STUDY.prompt.endsWith("Agent: Omega, Codename:"));
 * ```
 */
export const CODENAME_STUDY: Study = {
  name: "codename",
  title: "Codename retrieval",
  prompt: "Security Log: Agent Codename Retrieval\n\n" +
    "[Entry 01] Agent: James, Codename: 'Falcon'\n" +
    "[Entry 02] Agent: Sarah, Codename: 'Whisper'\n" +
    "[Entry 03] Agent: Mike, Codename: 'Hammer'\n" +
    "[Entry 04] Agent: Omega, Codename: 'Phantom'\n" +
    "[Entry 05] Agent: Linda, Codename: 'Spark'\n" +
    "[Entry 06] Agent: Robert, Codename: 'Echo'\n\n" +
    "Request: Retrieve the codename for Agent Omega.\n" +
    "Agent: Omega, Codename:",
  expected: "Phantom",
  ignoreCase: true,
  layers: "0,9,12,18,24,27",
  demoLayers: "all",
  markToken: "Omega",
};

/**
 * Both studies by `--example` name.
 *
 * @example
 * ```ts
 * import { STUDIES } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(Object.keys(STUDIES), ["needle", "codename"]);
 * assert.equal(STUDIES.needle.expected, "1729");
 * ```
 */
export const STUDIES: Readonly<Record<Study["name"], Study>> = {
  needle: NEEDLE_STUDY,
  codename: CODENAME_STUDY,
};

/**
 * Looks a study up by name.
 *
 * @param name `"needle"` or `"codename"`.
 * @returns The study.
 * @throws {RangeError} For another name, listing the valid ones.
 *
 * @example
 * ```ts
 * import { getStudy } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(getStudy("codename").expected, "Phantom");
 * assert.throws(() => getStudy("haystack"), /choose needle or codename/);
 * ```
 */
export function getStudy(name: string): Study {
  if (name === "needle" || name === "codename") return STUDIES[name];
  throw new RangeError(
    `Cannot run study ${
      JSON.stringify(name)
    }: there is no such study; choose needle or codename`,
  );
}

/**
 * Whether an output contains the expected answer, as the reference judges
 * it (`expected in generated`; case-insensitive for codename).
 *
 * @param study The study.
 * @param output The generated text.
 * @returns `true` for ✓.
 *
 * @example
 * ```ts
 * import { CODENAME_STUDY, NEEDLE_STUDY, isCorrect } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isCorrect(NEEDLE_STUDY, " 1729"), true);
 * assert.equal(isCorrect(CODENAME_STUDY, "'phantom'"), true);
 * assert.equal(isCorrect(NEEDLE_STUDY, "2048"), false);
 * ```
 */
export function isCorrect(study: Study, output: string): boolean {
  const text = output.trim();
  return study.ignoreCase
    ? text.toLowerCase().includes(study.expected.toLowerCase())
    : text.includes(study.expected);
}

/**
 * The positions to mark (◀): the tokens that spell the study's mark token.
 * The reference marks single tokens whose text, trimmed, equals the key
 * (`t.strip() == "alpha"`), which is how Gemma's tokenizer splits it; here
 * every whole-word occurrence is found with {@linkcode findSpans}, so a
 * tokenizer that splits the key into pieces (`al`, `p`, `ha`) gets every
 * piece marked.
 *
 * @param study The study.
 * @param labels One label per absolute position.
 * @returns The marked positions.
 *
 * @example
 * ```ts
 * import { NEEDLE_STUDY, markedPositions } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...markedPositions(NEEDLE_STUDY, ["<bos>", "alpha", ":", " alpha"])], [1, 3]);
 * assert.deepEqual([...markedPositions(NEEDLE_STUDY, ["al", "p", "ha", ":", "al", "p", "ha", "bet"])], [0, 1, 2]);
 * ```
 */
export function markedPositions(
  study: Study,
  labels: readonly string[],
): Set<number> {
  const out = new Set<number>();
  if (study.markToken === null) return out;
  for (const span of findSpans(labels, study.markToken, { wholeWord: true })) {
    for (let p = span.start; p < span.end; p++) out.add(p);
  }
  return out;
}

/**
 * The layers a study captures: the caller's choice, else all layers on the
 * demo server, else the reference's defaults.
 *
 * @param study The study.
 * @param options The caller's layers and whether the server is the demo.
 * @returns An `attn_capture_layers` string.
 *
 * @example
 * ```ts
 * import { NEEDLE_STUDY, studyLayers } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(studyLayers(NEEDLE_STUDY, { demo: true }), "all");
 * assert.equal(studyLayers(NEEDLE_STUDY, { demo: false }), "2,18,27");
 * assert.equal(studyLayers(NEEDLE_STUDY, { demo: true, layers: "0,1" }), "0,1");
 * ```
 */
export function studyLayers(
  study: Study,
  options: {
    /** Layers the caller chose. @default {undefined} */
    layers?: string;
    /** Whether the server is attnscope's demo server. @default {false} */
    demo?: boolean;
  } = {},
): string {
  return options.layers ?? (options.demo ? study.demoLayers : study.layers);
}
