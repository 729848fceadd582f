/**
 * The demo server's settings and its command line, with vLLM's flag names
 * (`--host`, `--port`, `--enable-attention-instrumentation`,
 * `--attention-instrumentation-layers`, `--api-key`, `--max-model-len`,
 * `--served-model-name`, `--max-num-seqs`) plus limits of its own
 * (`--max-attention-capture-mb`, `--max-queued-tokens`).
 *
 * @module
 */

import { parseArgs } from "node:util";

/** Which layers the server captures by default: every layer, or a list. */
export type InstrumentedLayers = "all" | readonly number[];

/** The demo server's settings, as the command line or code gives them. */
export interface ServerOptions {
  /**
   * Interface to bind to; loopback unless told otherwise.
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Port to listen on; `0` picks a free one.
   * @default {8000}
   */
  port?: number;
  /**
   * Whether requests may ask for attention (`attn_capture: 1`); as on vLLM,
   * a server started without it answers such requests with an error.
   * @default {false}
   */
  enableAttentionInstrumentation?: boolean;
  /**
   * Layers captured when a request says `attn_capture_layers: "all"` or
   * names none.
   * @default {"all"}
   */
  attentionInstrumentationLayers?: InstrumentedLayers;
  /**
   * When set, `/v1/*` requests must carry `Authorization: Bearer <apiKey>`.
   * @default {undefined} no key needed
   */
  apiKey?: string;
  /**
   * Longest sequence (prompt plus generated tokens) a request may need.
   * @default {undefined} the model's own limit
   */
  maxModelLen?: number;
  /**
   * Most bytes of float16 scores one response may carry
   * (`layers * H * T * T * 2`), so a capture cannot exhaust memory.
   * @default {256} MiB
   */
  maxAttentionCaptureMb?: number;
  /**
   * The model name `/v1/models` lists and requests must use.
   * @default {undefined} the model's own name
   */
  servedModelName?: string;
  /**
   * Most requests stepped together, as vLLM's `--max-num-seqs`; more wait
   * in a queue, in order. The demo's default is lower than vLLM's 256: on
   * one CPU thread, more sequences in a round add memory and everyone's
   * latency, not throughput.
   * @default {16}
   */
  maxNumSeqs?: number;
  /**
   * Most tokens of work admitted at once: over running and waiting
   * requests, the prompt plus the most tokens each may generate (without
   * `max_tokens`, the rest of the context). A request past it gets a 503
   * that says to retry later; one alone is always admitted.
   * @default {262144}
   */
  maxQueuedTokens?: number;
}

/** Settings with every default filled in, except those the model supplies. */
export type ResolvedServerOptions =
  & Required<
    Omit<ServerOptions, "apiKey" | "maxModelLen" | "servedModelName">
  >
  & Pick<ServerOptions, "apiKey" | "maxModelLen" | "servedModelName">;

/**
 * The defaults of {@linkcode ServerOptions}.
 *
 * @example
 * ```ts
 * import { DEFAULT_SERVER_OPTIONS } from "./options.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_SERVER_OPTIONS.host, "127.0.0.1"); // loopback only
 * assert.equal(DEFAULT_SERVER_OPTIONS.enableAttentionInstrumentation, false);
 * ```
 */
export const DEFAULT_SERVER_OPTIONS: Readonly<ResolvedServerOptions> = {
  host: "127.0.0.1",
  port: 8000,
  enableAttentionInstrumentation: false,
  attentionInstrumentationLayers: "all",
  maxAttentionCaptureMb: 256,
  maxNumSeqs: 16,
  maxQueuedTokens: 262144,
};

/**
 * Fills in the defaults and checks the values.
 *
 * @param options Partial settings.
 * @returns Complete settings.
 * @throws {RangeError} On a port, limit or layer list out of range.
 *
 * @example
 * ```ts
 * import { resolveServerOptions } from "./options.ts";
 * import assert from "node:assert/strict";
 *
 * const o = resolveServerOptions({ port: 0 });
 * assert.equal(o.host, "127.0.0.1");
 * assert.equal(o.enableAttentionInstrumentation, false);
 * assert.throws(() => resolveServerOptions({ port: 70000 }), RangeError);
 * assert.equal(o.maxNumSeqs, 16);
 * assert.throws(() => resolveServerOptions({ maxQueuedTokens: 0 }), /--max-queued-tokens/);
 * ```
 */
export function resolveServerOptions(
  options: ServerOptions = {},
): ResolvedServerOptions {
  const o = { ...DEFAULT_SERVER_OPTIONS };
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw new RangeError(
      `Cannot start the demo server: port ${o.port} is not an integer in 0..65535; pick another port (0 picks a free one)`,
    );
  }
  if (!(o.maxAttentionCaptureMb > 0)) {
    throw new RangeError(
      `Cannot start the demo server: the capture limit ${o.maxAttentionCaptureMb} MiB is not positive; pass a positive --max-attention-capture-mb`,
    );
  }
  if (
    o.maxModelLen !== undefined &&
    !(Number.isInteger(o.maxModelLen) && o.maxModelLen > 1)
  ) {
    throw new RangeError(
      `Cannot start the demo server: --max-model-len ${o.maxModelLen} is not an integer above 1; pass a larger length`,
    );
  }
  for (
    const [value, flag] of [
      [o.maxNumSeqs, "--max-num-seqs"],
      [o.maxQueuedTokens, "--max-queued-tokens"],
    ] as const
  ) {
    if (!(Number.isSafeInteger(value) && value >= 1)) {
      throw new RangeError(
        `Cannot start the demo server: ${flag} ${value} is not a whole number of at least 1; pass a positive integer`,
      );
    }
  }
  const layers = o.attentionInstrumentationLayers;
  if (layers !== "all" && !layers.every((l) => Number.isInteger(l) && l >= 0)) {
    throw new RangeError(
      `Cannot start the demo server: instrumentation layers ${
        JSON.stringify(layers)
      } are not non-negative integers; pass "all" or a list like 0,1`,
    );
  }
  return o;
}

/**
 * Parses a layer list the way vLLM reads `--attention-instrumentation-layers`
 * and `attn_capture_layers`: `all` in any case, or comma-separated indices.
 *
 * @param text The list, e.g. `"2,18,27"` or `"all"`.
 * @returns `"all"` or the indices in the order given, duplicates removed.
 * @throws {SyntaxError} When an entry is not a non-negative integer.
 *
 * @example
 * ```ts
 * import { parseLayerList } from "./options.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseLayerList("2, 18,27"), [2, 18, 27]);
 * assert.equal(parseLayerList("ALL"), "all");
 * assert.throws(() => parseLayerList("2,x"), SyntaxError);
 * ```
 */
export function parseLayerList(text: string): InstrumentedLayers {
  const trimmed = text.trim();
  if (trimmed.toLowerCase() === "all") return "all";
  const parts = trimmed.split(",").map((p) => p.trim());
  const bad = parts.find((p) => !/^\d+$/.test(p));
  if (bad !== undefined) {
    throw new SyntaxError(
      `Cannot read the layer list ${JSON.stringify(text)}: ${
        bad === ""
          ? "an entry is empty"
          : `${JSON.stringify(bad)} is not a layer index`
      }; write "all" or comma-separated indices like "0,1"`,
    );
  }
  return [...new Set(parts.map(Number))];
}

/** What `deno task serve --help` prints. */
export const SERVE_USAGE =
  `usage: deno task serve [--host 127.0.0.1] [--port 8000]
  [--enable-attention-instrumentation] [--attention-instrumentation-layers all|0,1]
  [--api-key KEY] [--max-model-len N] [--max-attention-capture-mb 256]
  [--served-model-name NAME] [--max-num-seqs 16] [--max-queued-tokens 262144]

Starts attnscope's demo server: vLLM's OpenAI-compatible API and attention
capture (attn_capture, attn_capture_layers) on a small CPU transformer.
Flags are vLLM's; without --enable-attention-instrumentation, requests that
ask for attention are refused, as on vLLM. Requests take turns token by
token; at most --max-num-seqs run at once (the rest wait), and past
--max-queued-tokens of admitted work (prompt plus max_tokens) new requests
get 503 and should retry later.`;

/**
 * Parses the `deno task serve` command line (vLLM's flag names).
 *
 * @param args The arguments, e.g. `Deno.args`.
 * @returns The settings the flags name (unnamed ones stay `undefined`).
 * @throws {TypeError} On an unknown flag or a flag missing its value.
 * @throws {SyntaxError} On a malformed number or layer list.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./options.ts";
 * import assert from "node:assert/strict";
 *
 * const o = parseServerArgs([
 *   "--port", "8001", "--enable-attention-instrumentation",
 *   "--attention-instrumentation-layers", "0,1", "--api-key", "k",
 * ]);
 * assert.deepEqual(
 *   [o.port, o.enableAttentionInstrumentation, o.attentionInstrumentationLayers, o.apiKey],
 *   [8001, true, [0, 1], "k"],
 * );
 * assert.throws(() => parseServerArgs(["--prot", "1"]), TypeError);
 * const limits = parseServerArgs(["--max-num-seqs", "4", "--max-queued-tokens", "9000"]);
 * assert.deepEqual([limits.maxNumSeqs, limits.maxQueuedTokens], [4, 9000]);
 * ```
 */
export function parseServerArgs(args: readonly string[]): ServerOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        host: { type: "string" },
        port: { type: "string" },
        "enable-attention-instrumentation": { type: "boolean" },
        "attention-instrumentation-layers": { type: "string" },
        "api-key": { type: "string" },
        "max-model-len": { type: "string" },
        "max-attention-capture-mb": { type: "string" },
        "served-model-name": { type: "string" },
        "max-num-seqs": { type: "string" },
        "max-queued-tokens": { type: "string" },
      },
    }));
  } catch (error) {
    throw new TypeError(
      `Cannot read the command line: ${
        (error as Error).message
      }; the flags are --host, --port, --enable-attention-instrumentation, --attention-instrumentation-layers, --api-key, --max-model-len, --max-attention-capture-mb, --served-model-name, --max-num-seqs, --max-queued-tokens`,
    );
  }
  const layers = values["attention-instrumentation-layers"];
  return {
    host: values.host,
    port: readNumber(values.port, "--port"),
    enableAttentionInstrumentation: values["enable-attention-instrumentation"],
    attentionInstrumentationLayers: layers === undefined
      ? undefined
      : parseLayerList(layers),
    apiKey: values["api-key"],
    maxModelLen: readNumber(values["max-model-len"], "--max-model-len"),
    maxAttentionCaptureMb: readNumber(
      values["max-attention-capture-mb"],
      "--max-attention-capture-mb",
    ),
    servedModelName: values["served-model-name"],
    maxNumSeqs: readNumber(values["max-num-seqs"], "--max-num-seqs"),
    maxQueuedTokens: readNumber(
      values["max-queued-tokens"],
      "--max-queued-tokens",
    ),
  };
}

function readNumber(
  text: string | undefined,
  flag: string,
): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n)) {
    throw new SyntaxError(
      `Cannot read ${flag}: ${
        JSON.stringify(text)
      } is not a number; pass a number like ${flag} 8000`,
    );
  }
  return n;
}
