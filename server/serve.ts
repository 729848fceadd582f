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
   * @default {undefined} the demo model from `server/model/`
   */
  model?: DemoModel;
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
  const { model: given, onListen, ...rest } = options;
  const settings = resolveServerOptions({
    ...rest,
    port: rest.port ?? 0,
    enableAttentionInstrumentation: rest.enableAttentionInstrumentation ?? true,
  });
  const model = given ?? await loadBundledModel();
  const runner: ModelRunner = given
    ? new LocalRunner(given, settings)
    : new WorkerRunner(settings);
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
  const parsed = parseServerArgs(args);
  const server = await startDemoServer({
    ...parsed,
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
    console.log(SERVE_USAGE);
    Deno.exit(0);
  }
  try {
    const server = await serveFromArgs(Deno.args);
    const stop = () => {
      server.close().then(() => Deno.exit(0));
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch (error) {
    console.error(`attnscope: ${(error as Error).message}`);
    Deno.exit(2);
  }
}
