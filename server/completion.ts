/**
 * The bodies the demo server sends for a finished generation: the
 * `chat.completion` JSON object (with vLLM's `prompt_logprobs` and
 * `attn_capture_data`) and the `chat.completion.chunk` server-sent events of
 * a streamed one.
 *
 * @module
 */

import type { WireLayer } from "./encode.ts";
import type {
  DemoModel,
  GenerateResult,
  PromptTokenLogprob,
  TokenLogprob,
} from "./model/types.ts";

/** What one finished generation needs to be written out. */
export interface FinishedGeneration {
  /** The model that ran. */
  model: DemoModel;
  /** The name the response reports. */
  modelName: string;
  /** Prompt tokens. */
  promptLen: number;
  /** The model's result. */
  result: GenerateResult;
  /** The reply text, stop string removed. */
  content: string;
  /** The stop string that ended generation, if one did. */
  stopReason: string | null;
  /** Whether to include generated-token logprobs. */
  logprobs: boolean;
  /** Alternatives per generated token. */
  topLogprobs: number;
  /** Whether to include `prompt_logprobs`. */
  promptLogprobs: boolean;
}

/** One generated token's logprob entry, as OpenAI spells it. */
export interface LogprobEntry {
  /** Token text. */
  token: string;
  /** Natural-log probability. */
  logprob: number;
  /** UTF-8 bytes of the text. */
  bytes: number[];
  /** The most likely alternatives. */
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

const encoder = new TextEncoder();

/**
 * The `chat.completion` object.
 *
 * @param gen The finished generation.
 * @param attention The encoded layers, or `null` when none were asked for.
 * @returns The JSON-ready body.
 *
 * @example
 * ```ts
 * import { completionBody } from "./completion.ts";
 * import type { DemoModel } from "./model/types.ts";
 * import assert from "node:assert/strict";
 *
 * const model = { tokenText: (id: number) => `t${id}` } as unknown as DemoModel;
 * const body = completionBody({
 *   model, modelName: "m", promptLen: 3, content: "t7", stopReason: null,
 *   logprobs: true, topLogprobs: 0, promptLogprobs: false,
 *   result: {
 *     tokens: [7], finishReason: "length", attention: new Map(), promptLogprobs: [],
 *     logprobs: [{ token: { id: 7, logprob: -0.5 }, top: [] }],
 *   },
 * }, null);
 * assert.equal(body.usage.total_tokens, 4);
 * assert.equal(body.choices[0].logprobs?.content[0].token, "t7");
 * assert.equal(body.attn_capture_data, null);
 * ```
 */
export function completionBody(
  gen: FinishedGeneration,
  attention: WireLayer[] | null,
): {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: {
    index: 0;
    message: { role: "assistant"; content: string };
    logprobs: { content: LogprobEntry[] } | null;
    finish_reason: "stop" | "length";
    stop_reason: string | null;
  }[];
  usage: {
    prompt_tokens: number;
    completion_tokens: number;
    total_tokens: number;
  };
  prompt_logprobs: (PromptLogprobEntry | null)[] | null;
  attn_capture_data: WireLayer[] | null;
} {
  const completionTokens = gen.result.tokens.length;
  return {
    id: newId(),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: gen.modelName,
    choices: [{
      index: 0,
      message: { role: "assistant", content: gen.content },
      logprobs: gen.logprobs ? { content: logprobEntries(gen) } : null,
      finish_reason: gen.result.finishReason,
      stop_reason: gen.stopReason,
    }],
    usage: {
      prompt_tokens: gen.promptLen,
      completion_tokens: completionTokens,
      total_tokens: gen.promptLen + completionTokens,
    },
    prompt_logprobs: gen.promptLogprobs
      ? gen.result.promptLogprobs.map((lp) =>
        lp === null ? null : promptLogprobEntry(gen, lp)
      )
      : null,
    attn_capture_data: attention,
  };
}

/**
 * The server-sent events of a streamed completion: a role chunk, one chunk
 * per generated token whose text pieces add up to the reply, a final chunk
 * with the finish reason, an optional usage chunk, and `[DONE]`. As on vLLM,
 * streams carry no attention.
 *
 * @param gen The finished generation.
 * @param includeUsage Whether to send the usage chunk.
 * @returns The `data: ...\n\n` events in order.
 *
 * @example
 * ```ts
 * import { streamEvents } from "./completion.ts";
 * import type { DemoModel } from "./model/types.ts";
 * import assert from "node:assert/strict";
 *
 * const model = {
 *   tokenText: (id: number) => `t${id}`,
 *   decode: (ids: readonly number[]) => ids.map((id) => `t${id}`).join(""),
 * } as unknown as DemoModel;
 * const events = streamEvents({
 *   model, modelName: "m", promptLen: 3, content: "t1t2", stopReason: null,
 *   logprobs: false, topLogprobs: 0, promptLogprobs: false,
 *   result: { tokens: [1, 2], finishReason: "length", attention: new Map(), promptLogprobs: [], logprobs: [] },
 * }, false);
 * assert.equal(events.at(-1), "data: [DONE]\n\n");
 * const text = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)).choices[0].delta.content ?? "").join("");
 * assert.equal(text, "t1t2");
 * ```
 */
export function streamEvents(
  gen: FinishedGeneration,
  includeUsage: boolean,
): string[] {
  const id = newId();
  const created = Math.floor(Date.now() / 1000);
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${
      JSON.stringify({
        id,
        object: "chat.completion.chunk",
        created,
        model: gen.modelName,
        choices,
        ...extra,
      })
    }\n\n`;
  const events = [chunk([{
    index: 0,
    delta: { role: "assistant", content: "" },
    logprobs: null,
    finish_reason: null,
  }])];
  const entries = gen.logprobs ? logprobEntries(gen) : null;
  const tokens = gen.result.tokens;
  const limit = gen.content.length;
  let sent = 0;
  for (let i = 0; i < tokens.length; i++) {
    // Cumulative decoding keeps multi-token characters whole; clamping to the
    // reply's length drops the stop string.
    const upTo = Math.min(
      gen.model.decode(tokens.slice(0, i + 1)).length,
      limit,
    );
    const end = i === tokens.length - 1 ? limit : Math.max(upTo, sent);
    const piece = gen.content.slice(sent, end);
    sent = Math.max(sent, end);
    events.push(chunk([{
      index: 0,
      delta: { content: piece },
      logprobs: entries ? { content: [entries[i]] } : null,
      finish_reason: null,
    }]));
  }
  events.push(chunk([{
    index: 0,
    delta: {},
    logprobs: null,
    finish_reason: gen.result.finishReason,
    stop_reason: gen.stopReason,
  }]));
  if (includeUsage) {
    events.push(chunk([], {
      usage: {
        prompt_tokens: gen.promptLen,
        completion_tokens: tokens.length,
        total_tokens: gen.promptLen + tokens.length,
      },
    }));
  }
  events.push("data: [DONE]\n\n");
  return events;
}

/** One prompt position in vLLM's `prompt_logprobs`: token id to its logprob. */
export type PromptLogprobEntry = Record<string, {
  logprob: number;
  rank: number;
  decoded_token: string;
}>;

/**
 * vLLM's shape: the prompt token first, with its rank in the distribution,
 * then the top alternatives ranked 1..k (the prompt token once, where it is
 * among them).
 */
function promptLogprobEntry(
  gen: FinishedGeneration,
  lp: PromptTokenLogprob,
): PromptLogprobEntry {
  const entry: PromptLogprobEntry = {};
  const add = (id: number, logprob: number, rank: number) => {
    entry[String(id)] ??= {
      logprob,
      rank,
      decoded_token: gen.model.tokenText(id),
    };
  };
  add(lp.id, lp.logprob, lp.rank);
  lp.top.forEach((t, i) => add(t.id, t.logprob, i + 1));
  return entry;
}

function logprobEntries(gen: FinishedGeneration): LogprobEntry[] {
  const item = (lp: TokenLogprob) => {
    const token = gen.model.tokenText(lp.id);
    return { token, logprob: lp.logprob, bytes: [...encoder.encode(token)] };
  };
  return gen.result.logprobs.map((lp) => ({
    ...item(lp.token),
    top_logprobs: lp.top.slice(0, gen.topLogprobs).map(item),
  }));
}

function newId(): string {
  return `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
}
