/**
 * Runs the demo server: in-process on a free loopback port from code
 * ({@linkcode startDemoServer}), or from the command line as
 * `deno task serve [--host 127.0.0.1] [--port 8000]
 * [--enable-attention-instrumentation] [--attention-instrumentation-layers all|0,1]
 * [--api-key KEY] [--max-model-len N] [--max-attention-capture-mb MB]`.
 *
 * @module
 */

import { createHandler } from "./handler.ts";
import { LocalRunner, type ModelRunner, WorkerRunner } from "./runner.ts";
import type { DemoModel } from "./model/types.ts";
import {
  parseServerArgs,
  resolveServerOptions,
  SERVE_USAGE,
  type ServerOptions,
} from "./options.ts";

/** Options for {@linkcode startDemoServer}. */
export interface StartDemoServerOptions extends ServerOptions {
  /**
   * Port to listen on; `0` picks a free one.
   * @default {0}
   */
  port?: number;
  /**
   * Whether requests may capture attention. In code the server is started to
   * be looked into, so this is on unless turned off (the command line keeps
   * vLLM's default, off).
   * @default {true}
   */
  enableAttentionInstrumentation?: boolean;
  /**
   * The model to serve. The bundled demo model runs in a worker, so the
   * server answers `/health` while it computes; a model given here runs on
   * this thread between the server's turns (a worker cannot receive it).
   * A string is a real checkpoint, a folder or a HuggingFace id: it is
   * resolved (and downloaded to the HF cache if missing) before listening,
   * then loads in a worker while `/health` answers 503.
   * @default {undefined} the demo model from `server/model/`
   */
  model?: DemoModel | string;
  /** Kernel threads for a real checkpoint. */
  threads?: number;
  /** Loading progress of a real checkpoint: what, bytes so far, in all. */
  onLoadProgress?: (what: string, bytes: number, totalBytes: number) => void;
  /**
   * Called once the server listens, with its address.
   * @default {undefined} silent
   */
  onListen?: (address: { hostname: string; port: number }) => void;
}

/** A running demo server. */
export interface DemoServer {
  /** The server's root, e.g. `http://127.0.0.1:43123`. */
  readonly url: string;
  /** The OpenAI base URL, `url + "/v1"`. */
  readonly baseUrl: string;
  /** The model name `/v1/models` lists. */
  readonly model: string;
  /**
   * Labels of a single-user-message prompt's positions, from the served
   * model's own tokenizer and chat template: the reference client's local
   * tokenizer labels (`build_token_map`), which also name position 0, the
   * one `prompt_logprobs` leaves out.
   */
  labelPrompt(prompt: string): string[];
  /**
   * Resolves once the model has loaded (at once for the demo model);
   * rejects with the reason a real checkpoint failed to load.
   */
  readonly ready: Promise<void>;
  /**
   * Stops listening, cancels the model's open requests (they get a 503) and
   * ends its worker.
   */
  close(): Promise<void>;
  /** Same as {@linkcode DemoServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Starts the demo server in this process.
 *
 * @param options Port (default a free one), model, and the server settings.
 * @returns The running server; call `close()` to stop it.
 *
 * @example
 * ```ts
 * import { startDemoServer } from "./serve.ts";
 * import assert from "node:assert/strict";
 *
 * const server = await startDemoServer();
 * try {
 *   const res = await fetch(`${server.baseUrl}/models`);
 *   assert.equal((await res.json()).data[0].id, server.model);
 *   assert.equal(server.labelPrompt("Hi")[0], "<bos>");
 * } finally {
 *   await server.close();
 * }
 * ```
 */
export async function startDemoServer(
  options: StartDemoServerOptions = {},
): Promise<DemoServer> {
  const { model: given, onListen, threads, onLoadProgress, ...rest } = options;
  const settings = resolveServerOptions({
    ...rest,
    port: rest.port ?? 0,
    enableAttentionInstrumentation: rest.enableAttentionInstrumentation ?? true,
  });
  let model: DemoModel;
  let runner: ModelRunner;
  let ready: Promise<void> = Promise.resolve();
  if (typeof given === "string") {
    const { realModelFacade } = await import("./model/real/facade.ts");
    const facade = await realModelFacade(given, {
      name: settings.servedModelName,
      onProgress: onLoadProgress,
    });
    model = facade.model;
    const worker = new WorkerRunner(settings, {
      pathOrId: facade.dir,
      name: model.name,
      threads,
    }, onLoadProgress);
    runner = worker;
    ready = worker.loaded.then(() => {});
  } else {
    model = given ?? await loadBundledModel();
    runner = given
      ? new LocalRunner(given, settings)
      : new WorkerRunner(settings);
  }
  ready.catch(() => {});
  const handler = createHandler(model, settings, runner);
  const { promise: listening, resolve } = Promise.withResolvers<
    { hostname: string; port: number }
  >();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: settings.host,
      port: settings.port,
      onListen: (addr) => resolve(addr),
    }, handler);
  } catch (error) {
    runner.close();
    throw new Error(
      `Cannot start the demo server on ${settings.host}:${settings.port}: ${
        (error as Error).message
      }; pick another --port (0 picks a free one) or stop what is using it`,
      { cause: error },
    );
  }
  const addr = await listening;
  onListen?.(addr);
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  let closed: Promise<void> | null = null;
  const close = () =>
    closed ??= (async () => {
      // Open generations end now, not when they would have finished.
      runner.close();
      await server.shutdown();
    })();
  return {
    url,
    baseUrl: `${url}/v1`,
    model: settings.servedModelName ?? model.name,
    labelPrompt: (prompt) => labelPrompt(model, prompt),
    ready,
    close,
    [Symbol.asyncDispose]: close,
  };
}

function labelPrompt(model: DemoModel, prompt: string): string[] {
  const { ids } = model.renderChat([{
    role: "user",
    parts: [{ type: "text", text: prompt }],
  }]);
  return [...ids].map((id) => model.tokenText(id).replaceAll("\n", "↵"));
}

async function loadBundledModel(): Promise<DemoModel> {
  // Loaded on demand: a server given its own model never reads the weights.
  const { loadDemoModel } = await import("./model/mod.ts");
  return await loadDemoModel();
}

/**
 * The `deno task serve` entry: parses vLLM-style flags, serves until
 * interrupted.
 *
 * @param args The command-line arguments.
 * @returns The running server.
 *
 * @example
 * ```ts
 * import { serveFromArgs } from "./serve.ts";
 * import assert from "node:assert/strict";
 *
 * const server = await serveFromArgs(["--port", "0", "--enable-attention-instrumentation"], { quiet: true });
 * assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
 * await server.close();
 * ```
 */
export async function serveFromArgs(
  args: readonly string[],
  options: {
    /** Print nothing on start. @default {false} */
    quiet?: boolean;
  } = {},
): Promise<DemoServer> {
  const { model, rest } = takeModelFlag(args);
  const parsed = parseServerArgs(rest);
  const server = await startDemoServer({
    ...parsed,
    ...(model === undefined ? {} : {
      model,
      onLoadProgress: options.quiet ? undefined : loadProgressPrinter(),
    }),
    port: parsed.port ?? 8000,
    enableAttentionInstrumentation: parsed.enableAttentionInstrumentation ??
      false,
  });
  if (!options.quiet) {
    const capture = parsed.enableAttentionInstrumentation
      ? `attention instrumentation on (layers ${
        formatLayers(parsed.attentionInstrumentationLayers)
      })`
      : "attention instrumentation off (add --enable-attention-instrumentation to capture)";
    console.log(
      `attnscope demo server: model ${server.model} at ${server.baseUrl}, ${capture}`,
    );
  }
  return server;
}

/** Splits `--model PATH_OR_ID` (or `--model=...`) off the vLLM flags. */
function takeModelFlag(
  args: readonly string[],
): { model: string | undefined; rest: string[] } {
  const rest: string[] = [];
  let model: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--model") {
      model = args[++i];
      if (model === undefined || model.startsWith("--")) {
        throw new TypeError(
          "Cannot read the command line: --model needs a checkpoint folder or a HuggingFace id; pass e.g. --model google/gemma-3-270m-it",
        );
      }
    } else if (a.startsWith("--model=")) model = a.slice("--model=".length);
    else rest.push(a);
  }
  return { model, rest };
}

/** One stderr line per 10% of each file or the weights. */
function loadProgressPrinter() {
  const shown = new Map<string, number>();
  return (what: string, bytes: number, totalBytes: number) => {
    const pct = totalBytes > 0
      ? Math.floor((bytes / totalBytes) * 10) * 10
      : 100;
    if ((shown.get(what) ?? -1) >= pct) return;
    shown.set(what, pct);
    console.error(
      `attnscope: loading ${what}: ${pct}% of ${
        (totalBytes / 1e6).toFixed(1)
      } MB`,
    );
  };
}

function formatLayers(layers: ServerOptions["attentionInstrumentationLayers"]) {
  return layers === undefined || layers === "all" ? "all" : layers.join(",");
}

if (import.meta.main && Deno.args.some((a) => /^--replay(=|$)/.test(a))) {
  // `--replay FILE... [--rate MB/s]`: saved responses, no model (replay.ts).
  const { replayFromArgs } = await import("./replay.ts");
  try {
    const server = await replayFromArgs(Deno.args);
    console.log(
      `attnscope replay server: ${
        server.models.join(", ")
      } at ${server.baseUrl}`,
    );
    const stop = () => server.close().then(() => Deno.exit(0));
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch (error) {
    console.error(`attnscope: ${(error as Error).message}`);
    Deno.exit(2);
  }
} else if (import.meta.main) {
  if (Deno.args.includes("--help") || Deno.args.includes("-h")) {
    console.log(
      `${SERVE_USAGE}\n\n--model PATH_OR_ID serves a real checkpoint (a folder, or a HuggingFace id\nfound in the HF cache, downloaded there with HF_TOKEN when missing) instead.`,
    );
    Deno.exit(0);
  }
  try {
    const server = await serveFromArgs(Deno.args);
    const stop = () => {
      server.close().then(() => Deno.exit(0));
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    await server.ready.then(
      () => console.log(`attnscope: model ${server.model} loaded`),
      async (error) => {
        console.error(`attnscope: ${(error as Error).message}`);
        await server.close();
        Deno.exit(2);
      },
    );
  } catch (error) {
    console.error(`attnscope: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
