/**
 * `captureAttention()`: one chat completion with attention capture, through
 * the official OpenAI SDK, against vLLM with attention instrumentation or
 * attnscope's demo server.
 *
 * The SDK drops fields it does not know (`attn_capture_data`,
 * `prompt_logprobs`), so the raw response is taken (`.asResponse()`) and its
 * body decoded as it arrives by {@linkcode readAttentionStream}: each layer
 * is decoding while the next is on the wire, and the body itself is not
 * kept unless asked for (`keepBody`, `saveBody`).
 *
 * @module
 */

import OpenAI from "npm:openai@^7.57.0";
import { readAttentionStream } from "../sources/vllm/extract.ts";
import type { AttentionCapture } from "../data/layer.ts";
import type { ScoresDType } from "../data/scores.ts";
import { warn } from "../warn.ts";
import { Base64Span } from "../sources/vllm/wire.ts";
import {
  type OnProgress,
  progressReporter,
  type ProgressTarget,
} from "../progress.ts";

/** A chat message as the OpenAI SDK takes it. */
export type ChatMessageParam = OpenAI.Chat.ChatCompletionMessageParam;

/** Options for {@linkcode captureAttention}. */
export interface CaptureAttentionOptions {
  /** The OpenAI base URL, e.g. `http://127.0.0.1:8000/v1`. */
  baseUrl: string;
  /**
   * Sent as `Authorization: Bearer <apiKey>`; vLLM and the demo server check
   * it only when started with `--api-key`.
   * @default {"EMPTY"}
   */
  apiKey?: string;
  /**
   * The model name.
   * @default {undefined} the first model `GET /v1/models` lists
   */
  model?: string;
  /** The conversation; give this or `prompt`. */
  messages?: readonly ChatMessageParam[];
  /** A single user message; give this or `messages`. */
  prompt?: string;
  /**
   * Layers to capture: `"all"`, `"2,18,27"` or `[2, 18, 27]`.
   * @default {undefined} the server's `--attention-instrumentation-layers`
   */
  layers?: string | readonly number[];
  /**
   * Most tokens to generate.
   * @default {undefined} the server's default (the rest of the context)
   */
  maxTokens?: number;
  /**
   * Sampling temperature; 0 is greedy, as the reference client uses.
   * @default {0}
   */
  temperature?: number;
  /**
   * Sampling seed, for reproducible sampling above temperature 0.
   * @default {undefined}
   */
  seed?: number;
  /**
   * Stop strings.
   * @default {undefined}
   */
  stop?: string | readonly string[];
  /**
   * Ask for attention at all (`attn_capture: 1`); with `false` the result's
   * `attention` is `null`.
   * @default {true}
   */
  capture?: boolean;
  /**
   * Ask for vLLM's `prompt_logprobs: 0` to label prompt tokens.
   * @default {true}
   */
  promptLogprobs?: boolean;
  /**
   * Element type of the decoded scores.
   * @default {"float32"}
   */
  dtype?: ScoresDType;
  /**
   * Largest decoded size of the capture in bytes (of `dtype`): a larger one
   * is refused before its scores are allocated, with its size and how to
   * raise the limit; `Infinity` turns the check off.
   * @default {DEFAULT_MAX_BYTES} 8 GiB, which a 24 GiB machine survives
   */
  maxBytes?: number;
  /**
   * Only these query rows, absolute positions, half-open: `"start:end"`,
   * `"start:"` (to the last row) or `{ start, end? }`. Sent as vLLM's fork
   * reads it, `vllm_xargs: {"attn_capture_prefix": "start:end"}` (merged
   * with any `vllm_xargs` in `extraBody`); attnscope's servers read it there
   * too. The decoded layers hold those rows, `scores.queryPositions` saying
   * which.
   * @default {undefined} every row
   */
  capturePrefix?: string | { start: number; end?: number | null };
  /**
   * Query heads `[layer, head]` whose outputs the server zeroes before the
   * output projection at every position (`attn_ablate_heads`). attnscope's
   * servers echo what they applied, which the result's `ablatedHeads`
   * carries; a server that does not echo it ignored the field (a warning
   * says so, and `ablatedHeads` is `null`).
   * @default {undefined} no ablation (the field is not sent)
   */
  ablateHeads?: readonly (readonly [number, number])[];
  /**
   * Extra request fields, sent as they are (e.g. `vllm_xargs`).
   * @default {{}}
   */
  extraBody?: Record<string, unknown>;
  /**
   * Milliseconds for the whole capture (waiting, receiving, decoding); past
   * it the capture stops and rejects with a `DOMException` named
   * `TimeoutError`.
   * @default {600000}
   */
  timeout?: number;
  /**
   * Cancels the capture: the HTTP request and any decoding in progress stop,
   * the decode workers end, and the promise rejects with a `DOMException`
   * named `AbortError`.
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Keep the raw response body in the result's `body`.
   * @default {false}
   */
  keepBody?: boolean;
  /**
   * Write the raw response body to this file as it arrives (a recording that
   * `deno task serve --replay FILE` serves again).
   * @default {undefined}
   */
  saveBody?: string;
  /**
   * Receives progress events: phase, bytes of the total, layers decoded of
   * those announced.
   * @default {undefined}
   */
  onProgress?: OnProgress;
  /**
   * A progress bar: `"auto"` (`true`) shows one in Deno's Jupyter kernel
   * for captures that take over a second, `"tty"` on stderr when it is a
   * terminal, `false` (`"off"`) never.
   * @default {"auto"}
   */
  progress?: boolean | ProgressTarget;
  /**
   * Retries on connection errors and 5xx; 0 fails fast with a clear error.
   * @default {0}
   */
  maxRetries?: number;
}

/** What {@linkcode captureAttention} returns. */
export interface CaptureResult {
  /**
   * The parsed response, as the server sent it except that each layer's
   * `data` payload is left out (it is decoded into `attention`).
   */
  response: Record<string, unknown>;
  /** The decoded layers by index, or `null` when `capture: false`. */
  attention: AttentionCapture | null;
  /**
   * One label per absolute position (prompt then generated), from
   * `prompt_logprobs` and `logprobs` where the server gave them, else the
   * position as a string; newlines shown as `↵`, as the reference does.
   */
  labels: string[];
  /** The reply text. */
  text: string;
  /** The model that answered. */
  model: string;
  /** Prompt tokens. */
  promptLen: number;
  /** `"stop"`, `"length"`, ... */
  finishReason: string | null;
  /** The raw response body when `keepBody` was set, else `null`. */
  body: Uint8Array | null;
  /**
   * The ablation the server says it applied (its `attn_ablate_heads` echo),
   * or `null` when `ablateHeads` was not given or the server did not echo
   * it (it ignored the field: the answer is not ablated).
   */
  ablatedHeads: [number, number][] | null;
}

/**
 * Sends one chat completion with attention capture and decodes the result.
 *
 * @param options Server, model, messages and sampling.
 * @returns The response, the decoded attention, token labels and the text.
 * @throws {TypeError} When neither or both of `messages` and `prompt` are given.
 * @throws {Error} When the server cannot be reached (naming the URL and how
 *   to start a server), refuses the request (with its message), or sends no
 *   attention (naming the server flags needed).
 *
 * @example
 * ```ts
 * import { captureAttention } from "./client.ts";
 * import { startDemoServer } from "../../server/serve.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = await startDemoServer();
 * const { text, attention, labels } = await captureAttention({
 *   baseUrl: server.baseUrl,
 *   prompt: "alpha: 12\nbeta: 34\nalpha:",
 *   layers: "all",
 * });
 * assert.equal(text.trim(), "12");
 * const last = attention![Math.max(...Object.keys(attention!).map(Number))];
 * assert.equal(labels.length, last.scores.queryLength + 1);
 * ```
 */
export async function captureAttention(
  options: CaptureAttentionOptions,
): Promise<CaptureResult> {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const messages = readMessages(options);
  const timeout = options.timeout ?? 600_000;
  const signal = AbortSignal.any([
    AbortSignal.timeout(timeout),
    ...(options.signal ? [options.signal] : []),
  ]);
  const client = new OpenAI({
    apiKey: options.apiKey ?? "EMPTY",
    baseURL: baseUrl,
    // The signal above bounds the whole capture; this only the headers.
    timeout: timeout + 1000,
    maxRetries: options.maxRetries ?? 0,
  });
  const capture = options.capture ?? true;
  const layers = options.layers === undefined
    ? undefined
    : typeof options.layers === "string"
    ? options.layers
    : options.layers.join(",");
  const prefix = options.capturePrefix === undefined
    ? undefined
    : prefixText(options.capturePrefix);
  const ablate = options.ablateHeads === undefined
    ? undefined
    : headPairs(options.ablateHeads);
  const display = progressReporter(options, "capture");
  const onProgress: OnProgress = display.onProgress;
  const start = performance.now();
  const waiting = () =>
    onProgress({
      phase: "waiting",
      bytes: 0,
      totalBytes: null,
      layers: 0,
      layersTotal: 0,
      elapsedMs: performance.now() - start,
    });
  waiting();
  // The server may take long to answer (the generation comes first): keep
  // the bar alive meanwhile.
  const ticker = setInterval(waiting, 250);
  // The prompt_logprobs k actually sent (extraBody may override the 0).
  let promptTopK = 0;
  let model = options.model;
  let raw: Record<string, unknown>;
  let attention: AttentionCapture | null;
  const kept: Uint8Array[] = [];
  let saved: Deno.FsFile | null = null;
  try {
    model ??= await firstModel(client, baseUrl, signal);
    const request = {
      model,
      messages: [...messages],
      temperature: options.temperature ?? 0,
      logprobs: true,
      ...(options.maxTokens === undefined
        ? {}
        : { max_tokens: options.maxTokens }),
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.stop === undefined ? {} : {
        stop: typeof options.stop === "string"
          ? options.stop
          : [...options.stop],
      }),
      ...(options.promptLogprobs ?? true ? { prompt_logprobs: 0 } : {}),
      ...(capture ? { attn_capture: 1 } : {}),
      ...(capture && layers !== undefined
        ? { attn_capture_layers: layers }
        : {}),
      ...(ablate === undefined ? {} : { attn_ablate_heads: ablate }),
      ...options.extraBody,
      ...(prefix === undefined ? {} : {
        vllm_xargs: {
          ...(options.extraBody?.vllm_xargs as Record<string, unknown>),
          attn_capture_prefix: prefix,
        },
      }),
      stream: false as const,
    };
    const asked = (request as Record<string, unknown>).prompt_logprobs;
    promptTopK = typeof asked === "number" ? asked : 0;
    const response = await client.chat.completions.create(request, {
      signal,
    }).asResponse();
    clearInterval(ticker);
    if (options.saveBody !== undefined) {
      saved = await Deno.open(options.saveBody, {
        write: true,
        create: true,
        truncate: true,
      });
    }
    const file = saved;
    const read = await readAttentionStream(response, {
      dtype: options.dtype,
      maxBytes: options.maxBytes,
      signal,
      onProgress,
      since: start,
      // Without capture, whatever attention a server sends is not decoded.
      ...(capture ? {} : { layers: [] }),
      onChunk: options.keepBody || file
        ? async (chunk) => {
          if (options.keepBody) kept.push(chunk);
          if (file) await writeAll(file, chunk);
        }
        : undefined,
    });
    raw = read.response;
    attention = read.attention;
  } catch (error) {
    display.finish(null);
    throw explain(error, baseUrl, signal, timeout);
  } finally {
    clearInterval(ticker);
    saved?.close();
  }
  if (capture) {
    if (
      !attention && prefix !== undefined &&
      Array.isArray(raw.attn_capture_data) && raw.attn_capture_data.length > 0
    ) {
      display.finish(null);
      throw new Error(
        `Cannot capture attention from ${baseUrl}: no layer holds rows of capturePrefix ${
          JSON.stringify(prefix)
        }; the range starts past the last row, so ask for rows below the prompt plus generated tokens`,
      );
    }
    if (!attention) {
      display.finish(null);
      throw new Error(
        `Cannot capture attention from ${baseUrl}: the response carries no attn_capture_data; start the server with --enable-attention-instrumentation (vLLM also needs --enforce-eager --no-enable-chunked-prefill --no-enable-prefix-caching to capture every prompt row; attnscope's demo server: deno task serve --enable-attention-instrumentation)`,
      );
    }
    warnMissingLayers(layers, attention, baseUrl);
  }
  display.finish("captured");
  const choice = firstChoice(raw);
  const usage = (raw.usage ?? {}) as Record<string, unknown>;
  const promptLen = typeof usage.prompt_tokens === "number"
    ? usage.prompt_tokens
    : Array.isArray(raw.prompt_logprobs)
    ? raw.prompt_logprobs.length
    : 0;
  const completion = typeof usage.completion_tokens === "number"
    ? usage.completion_tokens
    : 0;
  return {
    response: withoutPayloads(raw),
    attention,
    labels: tokenLabels(raw, promptLen, completion, promptTopK),
    text: typeof choice?.message?.content === "string"
      ? choice.message.content
      : "",
    model: typeof raw.model === "string" ? raw.model : model,
    promptLen,
    finishReason: choice?.finish_reason ?? null,
    body: options.keepBody ? concatChunks(kept) : null,
    ablatedHeads: ablate === undefined
      ? null
      : ablationEcho(raw, ablate, baseUrl),
  };
}

/** `"start:end"` from the option, checked. */
function prefixText(
  prefix: string | { start: number; end?: number | null },
): string {
  const ok = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (typeof prefix === "string") {
    if (/^\s*\d*\s*:\s*\d*\s*$/.test(prefix)) return prefix.replace(/\s/g, "");
  } else if (
    prefix !== null && typeof prefix === "object" && ok(prefix.start) &&
    (prefix.end === undefined || prefix.end === null ||
      (ok(prefix.end) && prefix.end > prefix.start))
  ) {
    return `${prefix.start}:${prefix.end ?? ""}`;
  }
  throw new TypeError(
    `Cannot capture attention: capturePrefix ${
      JSON.stringify(prefix)
    } is not "start:end" or { start, end }; pass absolute positions, half-open, e.g. "0:64" or { start: 30 }`,
  );
}

/** The `[layer, head]` pairs, checked as plain non-negative integers. */
function headPairs(
  heads: readonly (readonly [number, number])[],
): [number, number][] {
  const ok = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (
    !Array.isArray(heads) ||
    !heads.every((p) => Array.isArray(p) && p.length === 2 && p.every(ok))
  ) {
    throw new TypeError(
      `Cannot capture attention: ablateHeads ${
        JSON.stringify(heads)?.slice(0, 80)
      } is not a list of [layer, head] pairs of non-negative integers; pass e.g. [[1, 3]]`,
    );
  }
  return heads.map(([l, h]) => [l, h]);
}

/**
 * The server's `attn_ablate_heads` echo; `null`, with a warning, when the
 * server sent none (it ignored the field) or one that is not pairs.
 */
function ablationEcho(
  raw: Record<string, unknown>,
  asked: [number, number][],
  baseUrl: string,
): [number, number][] | null {
  const echo = raw.attn_ablate_heads;
  const valid = Array.isArray(echo) &&
    echo.every((p) =>
      Array.isArray(p) && p.length === 2 &&
      p.every((n) => Number.isInteger(n))
    );
  if (!valid) {
    warn(
      `The server at ${baseUrl} did not echo attn_ablate_heads, so it ignored the ablation: this answer and its attention are the unablated model's; use a server that supports head ablation (attnscope's demo or real-model server)`,
    );
    return null;
  }
  const pairs = (echo as [number, number][]).map(([l, h]) =>
    [l, h] as [number, number]
  );
  const key = (p: [number, number][]) =>
    [...new Set(p.map(([l, h]) => `${l}:${h}`))].sort().join(",");
  if (key(pairs) !== key(asked)) {
    warn(
      `The server at ${baseUrl} applied attn_ablate_heads ${
        JSON.stringify(pairs)
      }, not the ${JSON.stringify(asked)} asked for; check the server`,
    );
  }
  return pairs;
}

function readMessages(
  options: CaptureAttentionOptions,
): readonly ChatMessageParam[] {
  const { messages, prompt } = options;
  if ((messages === undefined) === (prompt === undefined)) {
    throw new TypeError(
      `Cannot capture attention: ${
        messages === undefined ? "neither" : "both"
      } messages and prompt ${
        messages === undefined ? "are" : "were"
      } given; pass exactly one`,
    );
  }
  return messages ?? [{ role: "user", content: prompt! }];
}

async function writeAll(file: Deno.FsFile, chunk: Uint8Array): Promise<void> {
  for (let at = 0; at < chunk.length;) {
    at += await file.write(chunk.subarray(at));
  }
}

function concatChunks(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function firstModel(
  client: OpenAI,
  baseUrl: string,
  signal: AbortSignal,
): Promise<string> {
  const page = await client.models.list({ signal });
  const id = page.data[0]?.id;
  if (!id) {
    throw new Error(
      `Cannot pick a model: ${baseUrl}/models lists none; pass model explicitly`,
    );
  }
  return id;
}

/** Turns SDK errors into messages that say what to do. */
function explain(
  error: unknown,
  baseUrl: string,
  signal: AbortSignal,
  timeout: number,
): Error {
  if (signal.aborted) {
    const reason = signal.reason;
    const timedOut = reason instanceof DOMException &&
      reason.name === "TimeoutError";
    return new DOMException(
      timedOut
        ? `Cannot capture attention from ${baseUrl}: no complete answer within ${timeout} ms; pass a larger timeout`
        : `Cannot capture attention from ${baseUrl}: it was aborted (${
          reason instanceof Error ? reason.message : String(reason)
        }); the request and its decoding were stopped`,
      timedOut ? "TimeoutError" : "AbortError",
    );
  }
  if (error instanceof OpenAI.APIConnectionError) {
    const cause = (error.cause as Error | undefined)?.message ?? error.message;
    return new Error(
      `Cannot reach the attention server at ${baseUrl}: ${cause}; start one (attnscope's demo server: deno task serve --enable-attention-instrumentation; or vLLM with --enable-attention-instrumentation) or fix baseUrl / --api-base`,
      { cause: error },
    );
  }
  if (error instanceof OpenAI.APIError) {
    const body = error.error as { message?: unknown } | undefined;
    const said = typeof body?.message === "string"
      ? body.message
      : error.message;
    const hint = error.status === 401
      ? "; pass the key the server was started with (--api-key) as apiKey"
      : error.status === 404
      ? "; check the model name and that baseUrl ends in /v1"
      : "";
    return new Error(
      `Cannot capture attention from ${baseUrl}: the server answered ${error.status}: ${said}${hint}`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}

function warnMissingLayers(
  layers: string | undefined,
  attention: AttentionCapture,
  baseUrl: string,
): void {
  if (layers === undefined || layers.trim().toLowerCase() === "all") return;
  const requested = layers.split(",").map((s) => Number(s.trim()));
  const missing = requested.filter((l) => !(l in attention));
  if (missing.length === 0) return;
  const got = Object.keys(attention).join(", ");
  warn(
    `Layer${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${
      missing.length > 1 ? "were" : "was"
    } requested from ${baseUrl} but ${
      missing.length > 1 ? "are" : "is"
    } missing from the response (it has ${got}); vLLM leaves out layers the model does not have, so check the layer indices`,
  );
}

interface Choice {
  message?: { content?: unknown };
  finish_reason?: string | null;
  logprobs?: { content?: { token?: unknown }[] | null } | null;
}

function firstChoice(raw: Record<string, unknown>): Choice | undefined {
  return Array.isArray(raw.choices) ? raw.choices[0] as Choice : undefined;
}

/** One token's entry in a position of vLLM's `prompt_logprobs`. */
interface PromptLogprob {
  decoded_token?: unknown;
  rank?: unknown;
}

/**
 * The prompt token's entry at one position of vLLM's `prompt_logprobs`. With
 * `prompt_logprobs: 0` it is the only entry. With `k > 0` vLLM adds the top
 * k (ranks 1..k), and JSON object order cannot be trusted (integer-like keys
 * sort), so the prompt token is the one ranked below k; when it is itself
 * among the top k (k entries in all), nothing tells it apart and this
 * returns `null`.
 */
function promptToken(
  entry: Record<string, unknown>,
  k: number,
): PromptLogprob | null | undefined {
  const values = Object.values(entry) as PromptLogprob[];
  if (values.length <= 1) return values[0];
  if (values.length !== k + 1) return null;
  const below = values.filter((v) => typeof v?.rank === "number" && v.rank > k);
  return below.length === 1 ? below[0] : null;
}

/**
 * Labels from vLLM's `prompt_logprobs` (each position's prompt token, see
 * {@linkcode promptToken}) and the choice's `logprobs`; a position neither
 * names is labelled by its index.
 */
function tokenLabels(
  raw: Record<string, unknown>,
  promptLen: number,
  completion: number,
  promptTopK: number,
): string[] {
  const labels = Array.from(
    { length: promptLen + completion },
    (_, i) => String(i),
  );
  const show = (t: string) => t.replaceAll("\n", "↵");
  if (Array.isArray(raw.prompt_logprobs)) {
    const unclear: number[] = [];
    raw.prompt_logprobs.forEach((entry, i) => {
      if (i >= promptLen || entry === null || typeof entry !== "object") return;
      const token = promptToken(entry as Record<string, unknown>, promptTopK);
      if (typeof token?.decoded_token === "string") {
        labels[i] = show(token.decoded_token);
      } else if (token === null) unclear.push(i);
    });
    if (unclear.length > 0) {
      warn(
        `prompt_logprobs lists alternatives at ${unclear.length} positions (first: ${
          unclear[0]
        }) where the prompt token is among them and cannot be told apart; those positions are labelled by index (request prompt_logprobs: 0 for labels)`,
      );
    }
  }
  const content = firstChoice(raw)?.logprobs?.content;
  if (Array.isArray(content)) {
    content.forEach((entry, j) => {
      if (typeof entry?.token === "string" && promptLen + j < labels.length) {
        labels[promptLen + j] = show(entry.token);
      }
    });
  }
  return labels;
}

/** A copy of the response whose layers keep everything but `data`. */
function withoutPayloads(
  raw: Record<string, unknown>,
): Record<string, unknown> {
  const list = raw.attn_capture_data;
  if (!Array.isArray(list)) return raw;
  return {
    ...raw,
    attn_capture_data: list.map((item) => {
      if (item === null || typeof item !== "object") return item;
      const { data, ...rest } = item as Record<string, unknown>;
      return data instanceof Base64Span || typeof data === "string"
        ? rest
        : item;
    }),
  };
}
