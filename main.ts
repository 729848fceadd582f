/**
 * The command line: the reference script's studies.
 *
 * ```sh
 * deno task study --example needle|codename [--layers 0,1] [--api-base URL] [--api-key KEY] [--model NAME]
 * deno task demo   # the needle study on the built-in demo server
 * ```
 *
 * Without `--api-base` the demo server is started in this process on a free
 * loopback port; with it, the study talks to that server (vLLM with
 * attention instrumentation, or `deno task serve`). Without `--api-base`,
 * `--model PATH_OR_ID` serves a real checkpoint (a folder or a HuggingFace
 * id, from the HF cache) in that in-process server instead of the demo model.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getStudy } from "./lib/client/studies.ts";
import { runStudy, studyReport } from "./lib/client/run_study.ts";
import { startDemoServer } from "./server/serve.ts";

const USAGE =
  "usage: deno task study [--example needle|codename] [--layers 2,18,27|all] [--api-base URL] [--api-key KEY] [--model NAME]";

/** Parsed command line of {@linkcode runCli}. */
export interface CliArgs {
  /** `needle` or `codename`. */
  example: string;
  /** `--layers`, if given. */
  layers?: string;
  /** `--api-base`, if given. */
  apiBase?: string;
  /** `--api-key`. */
  apiKey: string;
  /** `--model`, if given. */
  model?: string;
  /** `--help`. */
  help: boolean;
}

/**
 * Parses the CLI's arguments (the reference script's names).
 *
 * @param args The arguments.
 * @returns The parsed arguments.
 * @throws {TypeError} On an unknown flag or a missing value.
 *
 * @example
 * ```ts
 * import { parseCliArgs } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * const a = parseCliArgs(["--example", "codename", "--layers", "0,1"]);
 * assert.deepEqual([a.example, a.layers, a.apiKey], ["codename", "0,1", "EMPTY"]);
 * assert.throws(() => parseCliArgs(["--exmaple", "needle"]), /Cannot read the command line/);
 * ```
 */
export function parseCliArgs(args: readonly string[]): CliArgs {
  try {
    const { values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        example: { type: "string", default: "needle" },
        layers: { type: "string" },
        "api-base": { type: "string" },
        "api-key": { type: "string", default: "EMPTY" },
        model: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    return {
      example: values.example,
      layers: values.layers,
      apiBase: values["api-base"],
      apiKey: values["api-key"],
      model: values.model,
      help: values.help,
    };
  } catch (error) {
    throw new TypeError(
      `Cannot read the command line: ${(error as Error).message}; ${USAGE}`,
    );
  }
}

/**
 * Runs the CLI and returns its exit code: 0 after printing the report (✓ or
 * ✗, as the reference), 2 on bad arguments, 1 when the study could not run,
 * 130 when `signal` stopped it (Ctrl-C).
 *
 * While the capture runs, a progress line goes to stderr when stderr is a
 * terminal (captures over a second only), and nothing otherwise.
 *
 * @param args The arguments.
 * @param print Where report lines go.
 * @param signal Stops the study (the CLI aborts it on SIGINT).
 * @returns The exit code.
 *
 * @example
 * ```ts
 * import { runCli } from "./main.ts";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * assert.equal(await runCli(["--example", "needle"], (l) => lines.push(l)), 0);
 * assert.ok(lines.some((l) => l.startsWith("Output: '1729' ✓")));
 * ```
 */
export async function runCli(
  args: readonly string[],
  print: (line: string) => void = console.log,
  signal?: AbortSignal,
): Promise<number> {
  let parsed: CliArgs;
  let study;
  try {
    parsed = parseCliArgs(args);
    if (parsed.help) {
      print(USAGE);
      return 0;
    }
    study = getStudy(parsed.example);
  } catch (error) {
    console.error(`attnscope: ${(error as Error).message}`);
    return 2;
  }
  // Without --api-base, --model names a real checkpoint to serve here.
  const checkpoint = parsed.apiBase ? undefined : parsed.model;
  let server;
  try {
    server = parsed.apiBase
      ? null
      : await startDemoServer(checkpoint ? { model: checkpoint } : {});
    await server?.ready;
  } catch (error) {
    await server?.close();
    console.error(`attnscope: ${(error as Error).message}`);
    return 1;
  }
  try {
    const run = await runStudy(study, {
      baseUrl: parsed.apiBase ?? server!.baseUrl,
      demo: server !== null,
      layers: parsed.layers,
      apiKey: parsed.apiKey,
      model: checkpoint ? server!.model : parsed.model,
      // As the reference labels prompt tokens with a local tokenizer, the
      // in-process demo labels them with the demo model's own (a real
      // checkpoint's tokenizer lives in its worker: the server's labels).
      promptLabels: checkpoint ? undefined : server?.labelPrompt,
      signal,
      progress: "tty",
    });
    for (const line of studyReport(run)) print(line);
    return 0;
  } catch (error) {
    if (signal?.aborted) {
      console.error("attnscope: interrupted; the capture was stopped");
      return EXIT_INTERRUPTED;
    }
    const message = (error as Error).message;
    const layersHint = /valid layers are/.test(message) &&
        !parsed.layers
      ? " (pass --layers with layers the server has, or --layers all)"
      : "";
    console.error(`attnscope: ${message}${layersHint}`);
    return 1;
  } finally {
    await server?.close();
  }
}

/** The shell's code for a process stopped by SIGINT (128 + 2). */
const EXIT_INTERRUPTED = 130;

if (import.meta.main) {
  // Ctrl-C stops the capture (request, decoding, workers) and the demo
  // server cleanly; a second Ctrl-C exits at once.
  const interrupt = new AbortController();
  const onSigint = () => {
    if (interrupt.signal.aborted) Deno.exit(EXIT_INTERRUPTED);
    interrupt.abort(new DOMException("interrupted (SIGINT)", "AbortError"));
  };
  Deno.addSignalListener("SIGINT", onSigint);
  const code = await runCli(Deno.args, console.log, interrupt.signal);
  Deno.removeSignalListener("SIGINT", onSigint);
  Deno.exit(code);
}
