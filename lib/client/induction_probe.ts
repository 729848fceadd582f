/**
 * The repeated-random-tokens test for induction heads (Olsson et al. 2022,
 * "In-context Learning and Induction Heads"): a sequence of random tokens
 * followed by the same sequence again. On the second copy an induction head
 * attends from each token to the token right after its first occurrence;
 * nothing else in the text predicts that position. This builds such a
 * prompt, captures it through `captureAttention` (any attention-instrumented
 * server: the demo server or vLLM), finds the two copies in the token labels
 * and scores every head on the second copy.
 *
 * @module
 */

import { captureAttention, type CaptureResult } from "./client.ts";
import { displayBundle, JUPYTER_DISPLAY, type MimeBundle } from "../jupyter.ts";
import { tokensFromLabels } from "../analysis/metrics/_common.ts";
import type { ErrorMeasure } from "../analysis/metrics/detection.ts";
import {
  type HeadSummary,
  headSummary,
  type HeadValue,
} from "../analysis/metrics/head_summary.ts";
import { seededRandom } from "../random.ts";

/** Options for {@linkcode inductionProbe}. */
export interface InductionProbeOptions {
  /** The OpenAI base URL of an attention-instrumented server. */
  baseUrl: string;
  /** API key. @default {"EMPTY"} */
  apiKey?: string;
  /** Model name. @default {the first model the server lists} */
  model?: string;
  /** Layers to capture. @default {"all"} */
  layers?: string | readonly number[];
  /**
   * Random words per copy.
   * @default {40}
   */
  length?: number;
  /**
   * Seed of the random word choice (same seed, same prompt).
   * @default {0}
   */
  seed?: number;
  /**
   * Words to draw from, without repetition inside a copy; each is sent with a
   * leading space, so both copies tokenize alike.
   * @default {PROBE_WORDS, 216 common English words}
   */
  vocabulary?: readonly string[];
  /** Detection-score error measure. @default {"mul"} */
  errorMeasure?: ErrorMeasure;
  /**
   * Leave attention to position 0 out of the scores (the sink would
   * otherwise dominate every denominator).
   * @default {false}
   */
  excludeBos?: boolean;
  /** Request timeout in milliseconds. @default {600000} */
  timeout?: number;
}

/** Where the two copies lie among the prompt's positions. */
export interface RepeatSpan {
  /** Absolute position of the first copy's first token. */
  start: number;
  /** Tokens per copy. */
  length: number;
}

/**
 * 216 common English words: short, and single tokens in most vocabularies.
 *
 * @example
 * ```ts
 * import { PROBE_WORDS } from "./induction_probe.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new Set(PROBE_WORDS).size, PROBE_WORDS.length);
 * assert.ok(PROBE_WORDS.every((w) => /^[a-z]+$/.test(w)));
 * ```
 */
export const PROBE_WORDS: readonly string[] = Object.freeze(
  ("time year people way day man thing woman life child world school state " +
    "family student group country problem hand part place case week company " +
    "system program question work government number night point home water " +
    "room mother area money story fact month lot right study book eye job " +
    "word business issue side kind head house service friend father power " +
    "hour game line end member law car city name team minute idea kid body " +
    "back parent face others level office door health person art war history " +
    "party result change morning reason research girl guy moment air teacher " +
    "force education foot boy age policy music market sense nation plan " +
    "college interest death experience effect class control care field " +
    "development role effort rate heart drug show leader light voice wife " +
    "police mind price report decision son view relationship town road arm " +
    "difference value building action model season society tax director " +
    "position player record paper space ground form event official matter " +
    "center couple site project activity star table need court oil " +
    "situation cost industry figure street image phone data picture practice " +
    "piece land product doctor wall patient worker news test movie north " +
    "love support technology step baby computer type attention film tree " +
    "source organization hair window evidence population site ship bird " +
    "horse river stone cloud apple bread chair glass paper shoe song train")
    .split(" ").filter((w, i, all) => all.indexOf(w) === i),
);

/**
 * The probe's prompt: a lead word, then `length` random distinct words, then
 * the same words again, each with a leading space.
 *
 * @param options Length, seed and vocabulary.
 * @returns The prompt text and the words of one copy.
 * @throws {RangeError} When the vocabulary has fewer distinct words than `length`.
 *
 * @example
 * ```ts
 * import { inductionPrompt } from "./induction_probe.ts";
 * import assert from "node:assert/strict";
 *
 * const { text, words } = inductionPrompt({ length: 3, seed: 1, vocabulary: ["a", "b", "c", "d"] });
 * assert.equal(words.length, 3);
 * assert.equal(text, `Words: ${words.join(" ")} ${words.join(" ")}`);
 * ```
 */
export function inductionPrompt(
  options: Pick<InductionProbeOptions, "length" | "seed" | "vocabulary"> = {},
): { text: string; words: string[] } {
  const length = options.length ?? 40;
  const vocabulary = [...new Set(options.vocabulary ?? PROBE_WORDS)];
  if (!Number.isInteger(length) || length < 2) {
    throw new RangeError(
      `Cannot build the induction prompt: length ${length} is not an integer of at least 2`,
    );
  }
  if (vocabulary.length < length) {
    throw new RangeError(
      `Cannot build the induction prompt: ${length} distinct words needed but the vocabulary has ${vocabulary.length}; pass a shorter length or a larger vocabulary`,
    );
  }
  const rand = seededRandom(options.seed ?? 0);
  // Partial Fisher-Yates: the first `length` entries become a random sample.
  for (let i = 0; i < length; i++) {
    const j = i + Math.floor(rand() * (vocabulary.length - i));
    [vocabulary[i], vocabulary[j]] = [vocabulary[j], vocabulary[i]];
  }
  const words = vocabulary.slice(0, length);
  // The lead word gives the first copy's first word a leading space too.
  return { text: `Words: ${words.join(" ")} ${words.join(" ")}`, words };
}

/**
 * Finds the longest run of tokens immediately repeated (`x x`) in a token
 * sequence: the two copies of the probe prompt.
 *
 * @param tokens Token ids or labels per position.
 * @param minLength The shortest run accepted.
 * @returns The first copy's start and the run length, or `null`.
 *
 * @example
 * ```ts
 * import { findRepeat } from "./induction_probe.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(findRepeat(["<bos>", "x", "a", "b", "c", "a", "b", "c", "!"], 2), { start: 2, length: 3 });
 * assert.equal(findRepeat(["a", "b", "c"], 2), null);
 * ```
 */
export function findRepeat(
  tokens: ArrayLike<string | number>,
  minLength: number,
): RepeatSpan | null {
  const n = tokens.length;
  for (let len = Math.floor(n / 2); len >= Math.max(1, minLength); len--) {
    for (let s = 0; s + 2 * len <= n; s++) {
      let same = true;
      for (let i = 0; i < len && same; i++) {
        same = tokens[s + i] === tokens[s + len + i];
      }
      if (same) return { start: s, length: len };
    }
  }
  return null;
}

/**
 * What {@linkcode inductionProbe} finds.
 *
 * @example Against the demo server
 * ```ts
 * import { inductionProbe } from "../../mod.ts";
 * import { startDemoServer } from "../../server/mod.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const probe = await inductionProbe({ baseUrl: server.baseUrl, length: 12, seed: 3 });
 * assert.equal(probe.words.length, 12); // each copy: 12 words, some split into several tokens
 * assert.ok(probe.repeat.length >= 12);
 * const [best] = probe.inductionHeads(0.5);
 * assert.equal(best.layer, 1); // the demo model's induction head
 * ```
 */
export class InductionProbeResult {
  /** Every head metric, counted on the second copy's query rows only. */
  readonly summary: HeadSummary;
  /** The two copies' place in the prompt. */
  readonly repeat: RepeatSpan;
  /** The prompt text sent. */
  readonly prompt: string;
  /** The random words of one copy. */
  readonly words: readonly string[];
  /** The capture, as `captureAttention` returned it. */
  readonly capture: CaptureResult;

  /**
   * Groups the parts; {@linkcode inductionProbe} builds it.
   *
   * @param parts Summary, repeat span, prompt and capture.
   *
   * @example
   * ```ts
   * import { InductionProbeResult } from "./induction_probe.ts";
   * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const summary = new HeadSummary({ layers: [1], metrics: { induction: [new Float64Array([0.2, 0.9])] } });
   * const r = new InductionProbeResult({ summary, repeat: { start: 5, length: 10 }, prompt: "p", capture: null! });
   * assert.deepEqual(r.inductionHeads(0.5), [{ layer: 1, head: 1, value: 0.9 }]);
   * ```
   */
  constructor(parts: {
    summary: HeadSummary;
    repeat: RepeatSpan;
    prompt: string;
    words?: readonly string[];
    capture: CaptureResult;
  }) {
    this.summary = parts.summary;
    this.repeat = parts.repeat;
    this.prompt = parts.prompt;
    this.words = parts.words ?? [];
    this.capture = parts.capture;
  }

  /**
   * Heads whose induction score on the second copy reaches a threshold,
   * strongest first.
   *
   * @param threshold The smallest score counted.
   * @returns The heads.
   *
   * @example
   * ```ts
   * import { InductionProbeResult } from "./induction_probe.ts";
   * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const summary = new HeadSummary({ layers: [0], metrics: { induction: [new Float64Array([0.45])] } });
   * const r = new InductionProbeResult({ summary, repeat: { start: 0, length: 2 }, prompt: "", capture: null! });
   * assert.deepEqual(r.inductionHeads(), []);
   * ```
   */
  inductionHeads(threshold: number = 0.5): HeadValue[] {
    return this.summary.top("induction", Infinity).filter((v) =>
      v.value >= threshold
    );
  }

  /**
   * Text: the strongest induction and previous-token heads.
   *
   * @returns Multi-line text.
   *
   * @example
   * ```ts
   * import { InductionProbeResult } from "./induction_probe.ts";
   * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const summary = new HeadSummary({ layers: [1], metrics: { induction: [new Float64Array([0.9])] } });
   * const r = new InductionProbeResult({ summary, repeat: { start: 4, length: 20 }, prompt: "", capture: null! });
   * assert.match(r.toString(), /induction: L1H0 0\.900/);
   * ```
   */
  toString(): string {
    const top = (m: "induction" | "previousToken") =>
      this.summary.top(m, 3).map((v) =>
        `L${v.layer}H${v.head} ${v.value.toFixed(3)}`
      ).join(", ");
    return [
      `Induction probe: ${this.words.length} random words (${this.repeat.length} tokens) repeated (second copy at positions ${
        this.repeat.start + this.repeat.length
      }-${this.repeat.start + 2 * this.repeat.length - 1})`,
      `  induction: ${top("induction")}`,
      ...(this.summary.metrics.previousToken
        ? [`  previousToken: ${top("previousToken")}`]
        : []),
    ].join("\n");
  }

  /**
   * The MIME bundle Deno's Jupyter kernel shows: the per-head heatmaps once
   * the chart layer is loaded.
   *
   * @returns The bundle.
   *
   * @example
   * ```ts
   * import { JUPYTER_DISPLAY } from "../jupyter.ts";
   * import { InductionProbeResult } from "./induction_probe.ts";
   * import { HeadSummary } from "../analysis/metrics/head_summary.ts";
   * import assert from "node:assert/strict";
   *
   * const summary = new HeadSummary({ layers: [1], metrics: { induction: [new Float64Array([0.9])] } });
   * const r = new InductionProbeResult({ summary, repeat: { start: 4, length: 20 }, prompt: "", capture: null! });
   * assert.match(String((await r[JUPYTER_DISPLAY]())["text/plain"]), /^Induction probe/);
   * ```
   */
  [JUPYTER_DISPLAY](): Promise<MimeBundle> {
    return displayBundle("induction-probe", this, this.toString());
  }
}

/**
 * Runs the repeated-random-tokens induction test against a server: builds
 * the prompt, captures every requested layer (one generated token: only the
 * prompt's attention matters), locates the two copies in the token labels and
 * scores every head on the second copy's rows.
 *
 * @param options Server, model, layers, prompt size and seed.
 * @returns Head scores on the second copy, the strongest induction heads first.
 * @throws {Error} When the server cannot be reached or sends no attention (from `captureAttention`).
 * @throws {TypeError} When the labels show no repeated run (the server sent no prompt token text).
 *
 * @example
 * ```ts
 * import { inductionProbe } from "./induction_probe.ts";
 * import { startDemoServer } from "../../server/serve.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const probe = await inductionProbe({ baseUrl: server.baseUrl, length: 20 });
 * assert.ok(probe.inductionHeads().length > 0);
 * ```
 */
export async function inductionProbe(
  options: InductionProbeOptions,
): Promise<InductionProbeResult> {
  const { text, words } = inductionPrompt(options);
  const capture = await captureAttention({
    baseUrl: options.baseUrl,
    apiKey: options.apiKey,
    model: options.model,
    prompt: text,
    layers: options.layers ?? "all",
    maxTokens: 1,
    temperature: 0,
    timeout: options.timeout,
  });
  const tokens = tokensFromLabels(capture.labels);
  const repeat = tokens
    ? findRepeat(
      Array.from(tokens).slice(0, capture.promptLen),
      Math.ceil(words.length / 2),
    )
    : null;
  if (!repeat) {
    throw new TypeError(
      `Cannot score the induction probe: the ${capture.promptLen} prompt token labels show no repeated run of at least ${
        Math.ceil(words.length / 2)
      } tokens; the server must label prompt tokens (vLLM: prompt_logprobs), or the chat template changed the text`,
    );
  }
  const summary = headSummary(capture, {
    tokens: tokens!,
    queryRange: {
      start: repeat.start + repeat.length,
      end: repeat.start + 2 * repeat.length,
    },
    errorMeasure: options.errorMeasure,
    excludeBos: options.excludeBos,
  });
  return new InductionProbeResult({
    summary,
    repeat,
    prompt: text,
    words,
    capture,
  });
}
