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
 * @param ablateHeads The heads zeroed (`attn_ablate_heads`), echoed at the
 *   body's top level so a client can tell a server that ignored the field;
 *   left out when the request gave none.
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
  ablateHeads?: readonly (readonly [number, number])[],
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
  attn_ablate_heads?: [number, number][];
  provenance?: Readonly<Record<string, unknown>>;
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
    ...(ablateHeads
      ? { attn_ablate_heads: ablateHeads.map(([l, h]) => [l, h]) }
      : {}),
    // Where a real model's weights and tokenizer came from (DemoModel.provenance).
    ...(gen.model.provenance ? { provenance: gen.model.provenance } : {}),
  } as ReturnType<typeof completionBody>;
}

/** What a streamed completion needs before its first token. */
export interface StreamSettings {
  /** The model that runs (its `decode` and `tokenText`). */
  model: DemoModel;
  /** The name the chunks report. */
  modelName: string;
  /** Prompt tokens, for the usage chunk. */
  promptLen: number;
  /** Whether chunks carry generated-token logprobs. */
  logprobs: boolean;
  /** Alternatives per generated token. */
  topLogprobs: number;
  /** Whether to send the usage chunk before `[DONE]`. */
  includeUsage: boolean;
  /** The request's stop strings: text that may begin one is held back. */
  stops: readonly string[];
  /**
   * The heads zeroed (`attn_ablate_heads`), echoed at the top level of the
   * first (role) chunk; left out when the request gave none.
   */
  ablateHeads?: readonly (readonly [number, number])[];
}

/**
 * The server-sent events of a completion streamed as it is generated: a role
 * chunk, one chunk per generated token whose text pieces add up to the
 * reply, a final chunk with the finish reason, an optional usage chunk, and
 * `[DONE]`. As on vLLM, streams carry no attention.
 *
 * Text that might be the start of a stop string, or half of a character
 * split over tokens, is held back until the next token settles it, so no
 * piece ever has to be taken back.
 *
 * @example
 * ```ts
 * import { CompletionStream } from "./completion.ts";
 * import type { DemoModel } from "./model/types.ts";
 * import assert from "node:assert/strict";
 *
 * const model = {
 *   tokenText: (id: number) => ["a", "b", "c"][id],
 *   decode: (ids: readonly number[]) => ids.map((id) => ["a", "b", "c"][id]).join(""),
 * } as unknown as DemoModel;
 * const stream = new CompletionStream({
 *   model, modelName: "m", promptLen: 2, logprobs: false, topLogprobs: 0,
 *   includeUsage: false, stops: ["bc"],
 * });
 * const piece = (e: string) => JSON.parse(e.slice(6)).choices[0].delta.content;
 * stream.open();
 * assert.deepEqual(stream.advance([0], []).map(piece), ["a"]);
 * assert.deepEqual(stream.advance([0, 1], []).map(piece), [""]); // "b" may begin "bc"
 * const end = stream.finish([0, 1, 2], [], "stop", "bc");
 * assert.equal(piece(end[0]), ""); // the stop string never reaches the client
 * assert.equal(end.at(-1), "data: [DONE]\n\n");
 * ```
 */
export class CompletionStream {
  readonly #s: StreamSettings;
  readonly #id = newId();
  readonly #created = Math.floor(Date.now() / 1000);
  #sentChars = 0;
  #sentTokens = 0;

  /**
   * Starts a stream; nothing is sent until {@linkcode CompletionStream.open}.
   *
   * @param settings The model, the names and what to include.
   */
  constructor(settings: StreamSettings) {
    this.#s = settings;
  }

  #chunk(choices: unknown[], extra: Record<string, unknown> = {}): string {
    return `data: ${
      JSON.stringify({
        id: this.#id,
        object: "chat.completion.chunk",
        created: this.#created,
        model: this.#s.modelName,
        choices,
        ...extra,
      })
    }\n\n`;
  }

  #tokenChunk(piece: string, entry: LogprobEntry | null): string {
    return this.#chunk([{
      index: 0,
      delta: { content: piece },
      logprobs: entry ? { content: [entry] } : null,
      finish_reason: null,
    }]);
  }

  #entry(lp: GenerateResult["logprobs"][number] | undefined) {
    return this.#s.logprobs && lp
      ? logprobEntry(this.#s.model, lp, this.#s.topLogprobs)
      : null;
  }

  /**
   * The first event.
   *
   * @returns The role chunk.
   */
  open(): string {
    const ablate = this.#s.ablateHeads;
    return this.#chunk(
      [{
        index: 0,
        delta: { role: "assistant", content: "" },
        logprobs: null,
        finish_reason: null,
      }],
      ablate ? { attn_ablate_heads: ablate.map(([l, h]) => [l, h]) } : {},
    );
  }

  /**
   * Events for the tokens generated since the last call, generation still
   * running.
   *
   * @param tokens Every token generated so far.
   * @param logprobs Their logprob entries.
   * @returns One chunk per new token.
   */
  advance(
    tokens: readonly number[],
    logprobs: GenerateResult["logprobs"],
  ): string[] {
    const events: string[] = [];
    for (let i = this.#sentTokens; i < tokens.length; i++) {
      const text = this.#s.model.decode(tokens.slice(0, i + 1));
      const safe = text.length - heldBack(text, this.#s.stops);
      const piece = text.slice(
        this.#sentChars,
        Math.max(safe, this.#sentChars),
      );
      this.#sentChars = Math.max(safe, this.#sentChars);
      events.push(this.#tokenChunk(piece, this.#entry(logprobs[i])));
    }
    this.#sentTokens = tokens.length;
    return events;
  }

  /**
   * The closing events: chunks for the tokens not yet sent (the last one
   * carries the rest of the reply), the finish chunk, usage, `[DONE]`.
   *
   * @param tokens Every generated token.
   * @param logprobs Their logprob entries.
   * @param finishReason Why generation ended.
   * @param stopReason The stop string that ended it, if one did.
   * @returns The remaining events.
   */
  finish(
    tokens: readonly number[],
    logprobs: GenerateResult["logprobs"],
    finishReason: GenerateResult["finishReason"],
    stopReason: string | null,
  ): string[] {
    const events = this.advance(tokens.slice(0, -1), logprobs);
    const text = this.#s.model.decode(tokens);
    const content = stopReason === null
      ? text
      : text.slice(0, firstStop(text, this.#s.stops)?.index ?? text.length);
    if (tokens.length > this.#sentTokens) {
      events.push(this.#tokenChunk(
        content.slice(this.#sentChars),
        this.#entry(logprobs[tokens.length - 1]),
      ));
      this.#sentChars = content.length;
      this.#sentTokens = tokens.length;
    }
    events.push(this.#chunk([{
      index: 0,
      delta: {},
      logprobs: null,
      finish_reason: finishReason,
      stop_reason: stopReason,
    }]));
    if (this.#s.includeUsage) {
      events.push(this.#chunk([], {
        usage: {
          prompt_tokens: this.#s.promptLen,
          completion_tokens: tokens.length,
          total_tokens: this.#s.promptLen + tokens.length,
        },
      }));
    }
    events.push("data: [DONE]\n\n");
    return events;
  }
}

/**
 * Characters at the end of `text` not to send yet: the longest tail that
 * begins a stop string, or a trailing replacement character (a character
 * whose bytes the next token completes).
 */
function heldBack(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > held; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        held = n;
        break;
      }
    }
  }
  let partial = 0;
  while (text[text.length - 1 - partial] === "\uFFFD") partial++;
  return Math.max(held, partial);
}

/**
 * The first stop string in `text` and where it starts.
 *
 * @param text The reply so far.
 * @param stops The stop strings.
 * @returns The earliest hit, or `null`.
 *
 * @example
 * ```ts
 * import { firstStop } from "./completion.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(firstStop("ab. cd!", ["!", "."]), { index: 2, stop: "." });
 * assert.equal(firstStop("abc", ["x"]), null);
 * ```
 */
export function firstStop(
  text: string,
  stops: readonly string[],
): { index: number; stop: string } | null {
  let best: { index: number; stop: string } | null = null;
  for (const stop of stops) {
    const index = text.indexOf(stop);
    if (index >= 0 && (!best || index < best.index)) best = { index, stop };
  }
  return best;
}

/**
 * The server-sent events of a finished completion, all at once: what
 * {@linkcode CompletionStream} sends over a generation's life.
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
  const stream = new CompletionStream({
    model: gen.model,
    modelName: gen.modelName,
    promptLen: gen.promptLen,
    logprobs: gen.logprobs,
    topLogprobs: gen.topLogprobs,
    includeUsage,
    stops: gen.stopReason === null ? [] : [gen.stopReason],
  });
  const { tokens, logprobs, finishReason } = gen.result;
  return [
    stream.open(),
    ...stream.finish(tokens, logprobs, finishReason, gen.stopReason),
  ];
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

function logprobEntry(
  model: DemoModel,
  lp: GenerateResult["logprobs"][number],
  topLogprobs: number,
): LogprobEntry {
  const item = (t: TokenLogprob) => {
    const token = model.tokenText(t.id);
    return { token, logprob: t.logprob, bytes: [...encoder.encode(token)] };
  };
  return {
    ...item(lp.token),
    top_logprobs: lp.top.slice(0, topLogprobs).map(item),
  };
}

function logprobEntries(gen: FinishedGeneration): LogprobEntry[] {
  return gen.result.logprobs.map((lp) =>
    logprobEntry(gen.model, lp, gen.topLogprobs)
  );
}

function newId(): string {
  return `chatcmpl-${crypto.randomUUID().replaceAll("-", "")}`;
}
