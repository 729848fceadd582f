/**
 * Runs one of the reference script's studies against a server and writes
 * the report the reference prints. The CLI (`main.ts`) and the notebooks
 * share this.
 *
 * @module
 */

import {
  captureAttention,
  type CaptureAttentionOptions,
  type CaptureResult,
} from "./client.ts";
import { warn } from "../warn.ts";
import {
  codenameLayerLines,
  needleLayerLines,
  pythonRepr,
  readersLine,
} from "./compact.ts";
import {
  findSpans,
  type SpanAttention,
  spanAttention,
} from "../analysis/span.ts";
import {
  isCorrect,
  markedPositions,
  type Study,
  studyLayers,
} from "./studies.ts";

/** Options for {@linkcode runStudy}. */
export interface RunStudyOptions {
  /** The OpenAI base URL of the server. */
  baseUrl: string;
  /**
   * Layers to capture.
   * @default {undefined} `"all"` on the demo server, else the reference's defaults
   */
  layers?: string;
  /**
   * Whether the server is attnscope's demo server (it has few layers).
   * @default {false}
   */
  demo?: boolean;
  /**
   * The API key.
   * @default {"EMPTY"}
   */
  apiKey?: string;
  /**
   * The model name.
   * @default {undefined} the first of `/v1/models`
   */
  model?: string;
  /**
   * Labels for the prompt's positions from a local tokenizer, as the
   * reference's `build_token_map` makes them (e.g. the demo server's
   * `labelPrompt`); they replace the server's `prompt_logprobs` labels when
   * their count matches the prompt length, else a warning says so.
   * @default {undefined} the server's labels
   */
  promptLabels?: (prompt: string) => readonly string[];
  /**
   * Cancels the capture (see `captureAttention`'s `signal`).
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * The capture's progress bar (see `captureAttention`'s `progress`).
   * @default {"auto"}
   */
  progress?: CaptureAttentionOptions["progress"];
}

/** A finished study run. */
export interface StudyRun {
  /** The study. */
  study: Study;
  /** The layers asked for. */
  layers: string;
  /** The capture. */
  capture: CaptureResult;
  /** The generated text, trimmed as the reference trims it. */
  output: string;
  /** Whether the output holds the expected answer. */
  correct: boolean;
  /** Positions marked `◀` (the needle's key). */
  marks: Set<number>;
  /**
   * How much each head's last prompt row reads the line of the mark token's
   * first occurrence (the record that holds the answer), or `null` when the
   * labels do not spell the token or nothing was captured.
   */
  reading: SpanAttention | null;
}

/**
 * Captures a study's prompt at temperature 0, as the reference does.
 *
 * @param study The study.
 * @param options Server and layers.
 * @returns The run.
 *
 * @example
 * ```ts
 * import { runStudy } from "./run_study.ts";
 * import { NEEDLE_STUDY } from "./studies.ts";
 * import { startDemoServer } from "../../server/serve.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const run = await runStudy(NEEDLE_STUDY, { baseUrl: server.baseUrl, demo: true });
 * assert.equal(run.correct, true);
 * assert.ok(run.marks.size > 0);
 * ```
 */
export async function runStudy(
  study: Study,
  options: RunStudyOptions,
): Promise<StudyRun> {
  const layers = studyLayers(study, options);
  const capture = await captureAttention({
    baseUrl: options.baseUrl,
    apiKey: options.apiKey,
    model: options.model,
    prompt: study.prompt,
    layers,
    temperature: 0,
    signal: options.signal,
    progress: options.progress,
  });
  if (options.promptLabels) {
    const local = options.promptLabels(study.prompt);
    if (local.length === capture.promptLen) {
      capture.labels.splice(0, local.length, ...local);
    } else {
      warn(
        `The local tokenizer made ${local.length} prompt tokens but the server reported ${capture.promptLen}, so the server's labels are kept; check that the local tokenizer matches the served model`,
      );
    }
  }
  const output = capture.text.trim();
  const [record] = study.markToken === null ? [] : findSpans(
    capture.labels,
    study.markToken,
    { wholeWord: true, wholeLine: true },
  );
  return {
    study,
    layers,
    capture,
    output,
    correct: isCorrect(study, output),
    marks: markedPositions(study, capture.labels),
    reading: record && capture.attention
      ? spanAttention(capture, { span: record })
      : null,
  };
}

/**
 * The banner the reference prints before sending the request.
 *
 * @param study The study.
 * @param model The model name.
 * @param layers The layers asked for.
 * @returns The lines.
 *
 * @example
 * ```ts
 * import { studyBanner } from "./run_study.ts";
 * import { NEEDLE_STUDY } from "./studies.ts";
 * import assert from "node:assert/strict";
 *
 * const lines = studyBanner(NEEDLE_STUDY, "m", "all");
 * assert.equal(lines[1], "Needle-in-a-haystack | model=m layers=all");
 * assert.equal(lines.at(-1), "Expected: '1729'");
 * ```
 */
export function studyBanner(
  study: Study,
  model: string,
  layers: string,
): string[] {
  return [
    "=".repeat(60),
    `${study.title} | model=${model} layers=${layers}`,
    "Prompt:",
    study.prompt,
    `Expected: ${pythonRepr(study.expected)}`,
  ];
}

/**
 * The reference's report of a run: banner, output with ✓ or ✗, then each
 * layer's compact block in layer order, then the heads that read the
 * answer's record most (from {@linkcode spanAttention}).
 *
 * @param run The run.
 * @returns The text, one string per line.
 *
 * @example
 * ```ts
 * import { runStudy, studyReport } from "./run_study.ts";
 * import { CODENAME_STUDY } from "./studies.ts";
 * import { startDemoServer } from "../../server/serve.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const run = await runStudy(CODENAME_STUDY, { baseUrl: server.baseUrl, demo: true });
 * const report = studyReport(run);
 * assert.ok(report.some((l) => /^Output: .*Phantom.* ✓$/.test(l)));
 * assert.ok(report.some((l) => l.startsWith("── L0 (T=")));
 * assert.match(report.at(-1)!, /^Readers of "\[Entry 04\] Agent: Omega, Codename: 'Phantom'↵" \(positions \d+-\d+\), query \d+: L1H0=/);
 * ```
 */
export function studyReport(run: StudyRun): string[] {
  const lines = studyBanner(run.study, run.capture.model, run.layers);
  lines.push(`Output: ${pythonRepr(run.output)} ${run.correct ? "✓" : "✗"}`);
  const attention = run.capture.attention ?? {};
  const order = Object.keys(attention).map(Number).sort((a, b) => a - b);
  for (const li of order) {
    lines.push("");
    lines.push(
      ...(run.study.name === "needle"
        ? needleLayerLines(attention[li], run.capture.labels, run.marks)
        : codenameLayerLines(attention[li], run.capture.labels)),
    );
  }
  if (run.reading) lines.push("", readersLine(run.reading));
  return lines;
}
