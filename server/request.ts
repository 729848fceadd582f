/**
 * Validation of a `POST /v1/chat/completions` body: every field the demo
 * server reads is checked once here, and anything wrong becomes an
 * {@linkcode HttpError} naming the field and how to fix it.
 *
 * @module
 */

import { HttpError } from "./http_error.ts";
import type { ChatMessage, ChatPart } from "./model/types.ts";
import { parseLayerList } from "./options.ts";
import { MAX_TOP_LOGPROBS } from "./model/generate.ts";
import { type CapturePrefix, readCapturePrefix } from "./capture_rows.ts";

/** A chat completion request after validation. */
export interface ChatRequest {
  /** The requested model name. */
  model: string;
  /** The conversation. */
  messages: ChatMessage[];
  /** Most tokens to generate, when the request says. */
  maxTokens?: number;
  /** Sampling temperature; 0 is greedy. */
  temperature: number;
  /** Sampling seed, when given. */
  seed?: number;
  /** Stop strings. */
  stop: string[];
  /** Whether to return generated-token logprobs. */
  logprobs: boolean;
  /** Alternatives per generated token. */
  topLogprobs: number;
  /** vLLM's `prompt_logprobs`, or `null`. */
  promptLogprobs: number | null;
  /** Server-sent events instead of one JSON body. */
  stream: boolean;
  /** Whether a stream ends with a usage chunk. */
  includeUsage: boolean;
  /** `attn_capture: 1`. */
  attnCapture: boolean;
  /** `attn_capture_layers`, or `undefined` for the server's list. */
  attnCaptureLayers?: "all" | readonly number[];
  /**
   * `attn_capture_prefix` (or `vllm_xargs.attn_capture_prefix`): only these
   * query rows are captured and returned.
   */
  attnCapturePrefix?: CapturePrefix;
  /**
   * `attn_ablate_heads`: query heads `[layer, head]` whose outputs are
   * zeroed, sorted and without repeats; `undefined` when not given.
   */
  ablateHeads?: [number, number][];
}

/** Most stop strings a request may give. */
const MAX_STOP_STRINGS = 16;

/**
 * Checks a parsed request body and returns what the server needs from it.
 * Unknown fields are ignored, as OpenAI-compatible servers do.
 *
 * @param body The parsed JSON.
 * @returns The validated request.
 * @throws {HttpError} 400 naming the first field at fault.
 *
 * @example
 * ```ts
 * import { validateChatRequest } from "./request.ts";
 * import assert from "node:assert/strict";
 *
 * const r = validateChatRequest({
 *   model: "m",
 *   messages: [{ role: "user", content: "Hi" }],
 *   attn_capture: 1,
 *   attn_capture_layers: "0,1",
 * });
 * assert.deepEqual(r.attnCaptureLayers, [0, 1]);
 * assert.equal(r.temperature, 1);
 * assert.throws(() => validateChatRequest({ model: "m", messages: [] }), /messages/);
 * ```
 */
export function validateChatRequest(body: unknown): ChatRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw bad(
      `Cannot read the request: the body is ${
        describe(body)
      }, not a JSON object; send {"model": ..., "messages": [...]}`,
      null,
    );
  }
  const b = body as Record<string, unknown>;
  const model = b.model;
  if (typeof model !== "string" || model === "") {
    throw bad(
      `Cannot read model: it is ${
        describe(model)
      }; pass the model name that GET /v1/models lists`,
      "model",
    );
  }
  const request: ChatRequest = {
    model,
    messages: readMessages(b.messages),
    temperature: readNumber(b.temperature, "temperature", 0, 2) ?? 1,
    stop: readStop(b.stop),
    logprobs: readBoolean(b.logprobs, "logprobs") ?? false,
    topLogprobs:
      readInteger(b.top_logprobs, "top_logprobs", 0, MAX_TOP_LOGPROBS) ?? 0,
    promptLogprobs: readInteger(
      b.prompt_logprobs,
      "prompt_logprobs",
      0,
      MAX_TOP_LOGPROBS,
    ) ??
      null,
    stream: readBoolean(b.stream, "stream") ?? false,
    includeUsage: false,
    attnCapture: readCaptureFlag(b.attn_capture),
  };
  const maxTokens = readInteger(b.max_tokens, "max_tokens", 1) ??
    readInteger(b.max_completion_tokens, "max_completion_tokens", 1);
  if (maxTokens !== undefined) request.maxTokens = maxTokens;
  const seed = readInteger(b.seed, "seed", Number.MIN_SAFE_INTEGER);
  if (seed !== undefined) request.seed = seed;
  const n = readInteger(b.n, "n", 1);
  if (n !== undefined && n !== 1) {
    throw bad(
      `Cannot generate ${n} choices: the demo server generates one; leave n out or set it to 1`,
      "n",
    );
  }
  if (request.topLogprobs > 0 && !request.logprobs) {
    throw bad(
      "Cannot return top_logprobs: logprobs is not true; set logprobs: true as well",
      "top_logprobs",
    );
  }
  const options = b.stream_options;
  if (options !== undefined && options !== null) {
    if (!request.stream) {
      throw bad(
        "Cannot use stream_options: stream is not true; set stream: true or leave stream_options out",
        "stream_options",
      );
    }
    if (typeof options !== "object" || Array.isArray(options)) {
      throw bad(
        `Cannot read stream_options: it is ${
          describe(options)
        }; pass an object like {"include_usage": true}`,
        "stream_options",
      );
    }
    request.includeUsage = readBoolean(
      (options as Record<string, unknown>).include_usage,
      "stream_options.include_usage",
    ) ?? false;
  }
  const tools = b.tools;
  if (Array.isArray(tools) && tools.length > 0) {
    throw bad(
      "Cannot call tools: the demo server's model has no tool use; leave tools out",
      "tools",
    );
  }
  if (b.attn_capture_layers !== undefined && b.attn_capture_layers !== null) {
    const layers = b.attn_capture_layers;
    if (typeof layers !== "string") {
      throw bad(
        `Cannot read attn_capture_layers: it is ${
          describe(layers)
        }, not a string; pass "all" or comma-separated indices like "0,1"`,
        "attn_capture_layers",
      );
    }
    try {
      request.attnCaptureLayers = parseLayerList(layers);
    } catch (error) {
      throw bad((error as Error).message, "attn_capture_layers");
    }
  }
  const prefix = readCapturePrefix(b);
  if (prefix) request.attnCapturePrefix = prefix;
  const ablate = readAblateHeads(b.attn_ablate_heads);
  if (ablate) request.ablateHeads = ablate;
  return request;
}

/**
 * Validates a request's `messages` (text and PNG image parts).
 *
 * @param value The field as the request gave it.
 * @returns The messages.
 * @throws {HttpError} 400 naming the message or part at fault.
 *
 * @example
 * ```ts
 * import { readMessages } from "./request.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(readMessages([{ role: "user", content: "Hi" }]), [
 *   { role: "user", parts: [{ type: "text", text: "Hi" }] },
 * ]);
 * assert.throws(() => readMessages([]), /Cannot read messages/);
 * ```
 */
export function readMessages(value: unknown): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw bad(
      `Cannot read messages: it is ${
        describe(value)
      }; pass a non-empty list like [{"role": "user", "content": "Hello"}]`,
      "messages",
    );
  }
  return value.map((m, i) => readMessage(m, `messages[${i}]`));
}

const ROLES = new Map<string, ChatMessage["role"]>([
  ["system", "system"],
  ["developer", "system"],
  ["user", "user"],
  ["assistant", "assistant"],
]);

function readMessage(value: unknown, where: string): ChatMessage {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw bad(
      `Cannot read ${where}: it is ${
        describe(value)
      }; pass {"role": "user", "content": "..."}`,
      where,
    );
  }
  const m = value as Record<string, unknown>;
  const role = typeof m.role === "string" ? ROLES.get(m.role) : undefined;
  if (!role) {
    throw bad(
      `Cannot read ${where}.role: it is ${
        describe(m.role)
      }; use "system", "user" or "assistant"`,
      `${where}.role`,
    );
  }
  const content = m.content;
  if (typeof content === "string") {
    return { role, parts: [{ type: "text", text: content }] };
  }
  if (!Array.isArray(content)) {
    throw bad(
      `Cannot read ${where}.content: it is ${
        describe(content)
      }; pass a string or a list of {"type": "text", "text": ...} and {"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}} parts`,
      `${where}.content`,
    );
  }
  return {
    role,
    parts: content.map((p, j) => readPart(p, `${where}.content[${j}]`)),
  };
}

function readPart(value: unknown, where: string): ChatPart {
  const p = (value ?? {}) as Record<string, unknown>;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw bad(
      `Cannot read ${where}: it is ${
        describe(value)
      }; pass {"type": "text", "text": "..."}`,
      where,
    );
  }
  if (p.type === "text") {
    if (typeof p.text !== "string") {
      throw bad(
        `Cannot read ${where}.text: it is ${
          describe(p.text)
        }; pass the text as a string`,
        `${where}.text`,
      );
    }
    return { type: "text", text: p.text };
  }
  if (p.type === "image_url") {
    const image = p.image_url;
    const url = typeof image === "string"
      ? image
      : (image as Record<string, unknown> | null)?.url;
    if (typeof url !== "string") {
      throw bad(
        `Cannot read ${where}.image_url.url: it is ${
          describe(url)
        }; pass {"url": "data:image/png;base64,..."}`,
        `${where}.image_url`,
      );
    }
    return {
      type: "image",
      png: readPngDataUrl(url, `${where}.image_url.url`),
    };
  }
  throw bad(
    `Cannot read ${where}: part type ${
      describe(p.type)
    } is not supported; use "text" or "image_url"`,
    `${where}.type`,
  );
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function readPngDataUrl(url: string, where: string): Uint8Array {
  const match = /^data:image\/png;base64,/i.exec(url);
  if (!match) {
    const what = url.startsWith("data:")
      ? `a data: URL of type ${
        JSON.stringify(url.slice(5, url.indexOf(";")).slice(0, 40))
      }`
      : "not a data: URL (the demo server fetches nothing from the network)";
    throw bad(
      `Cannot read the image at ${where}: it is ${what}; embed a PNG as data:image/png;base64,...`,
      where,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.fromBase64(url.slice(match[0].length).trim());
  } catch {
    throw bad(
      `Cannot read the image at ${where}: its data is not valid base64; encode the PNG file's bytes with base64`,
      where,
    );
  }
  if (!PNG_SIGNATURE.every((b, i) => bytes[i] === b)) {
    throw bad(
      `Cannot read the image at ${where}: its bytes do not start with the PNG signature; send a PNG file`,
      where,
    );
  }
  return bytes;
}

function readStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (
    !Array.isArray(list) || list.length > MAX_STOP_STRINGS ||
    !list.every((s) => typeof s === "string" && s !== "")
  ) {
    throw bad(
      `Cannot read stop: it is ${
        describe(value)
      }; pass a non-empty string or a list of at most ${MAX_STOP_STRINGS} of them`,
      "stop",
    );
  }
  return list;
}

/**
 * `attn_ablate_heads`: a list of `[layer, head]` pairs of non-negative
 * integers, returned sorted and without repeats (the list the response
 * echoes); whether the heads exist is the engine's check.
 */
function readAblateHeads(value: unknown): [number, number][] | undefined {
  if (value === undefined || value === null) return undefined;
  const isIndex = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
  if (!Array.isArray(value)) {
    throw bad(
      `Cannot read attn_ablate_heads: it is ${
        describe(value)
      }, not a list; pass [[layer, head], ...] like [[1, 3]]`,
      "attn_ablate_heads",
    );
  }
  value.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every(isIndex)) {
      throw bad(
        `Cannot read attn_ablate_heads[${i}]: it is ${
          JSON.stringify(pair)?.slice(0, 40) ?? describe(pair)
        }, not a [layer, head] pair of non-negative integers; pass e.g. [1, 3]`,
        "attn_ablate_heads",
      );
    }
  });
  const seen = new Map<string, [number, number]>();
  for (const [l, h] of value as [number, number][]) {
    seen.set(`${l}:${h}`, [l, h]);
  }
  return [...seen.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

function readCaptureFlag(value: unknown): boolean {
  if (value === undefined || value === null || value === 0) return false;
  if (value === 1) return true;
  throw bad(
    `Cannot read attn_capture: it is ${
      describe(value)
    }; pass 1 to capture attention or 0 (or nothing) not to`,
    "attn_capture",
  );
}

function readBoolean(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") {
    throw bad(
      `Cannot read ${field}: it is ${describe(value)}; pass true or false`,
      field,
    );
  }
  return value;
}

function readNumber(
  value: unknown,
  field: string,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !(value >= min && value <= max)) {
    throw bad(
      `Cannot read ${field}: it is ${
        describe(value)
      }; pass a number from ${min} to ${max}`,
      field,
    );
  }
  return value;
}

function readInteger(
  value: unknown,
  field: string,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < min ||
    value > max
  ) {
    const range = max === Number.MAX_SAFE_INTEGER
      ? `an integer of at least ${min}`
      : `an integer from ${min} to ${max}`;
    throw bad(
      `Cannot read ${field}: it is ${describe(value)}; pass ${range}`,
      field,
    );
  }
  return value;
}

function bad(message: string, param: string | null): HttpError {
  return new HttpError(400, message, { param });
}

/**
 * A short description of a JSON value for error messages.
 *
 * @param value Any value.
 * @returns E.g. `missing`, `null`, `the string "x"`, `a list`, `the number 2`.
 *
 * @example
 * ```ts
 * import { describe } from "./request.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(describe(undefined), "missing");
 * assert.equal(describe("x"), 'the string "x"');
 * ```
 */
export function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length ? "a list" : "an empty list";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.slice(0, 40))}${
      value.length > 40 ? "..." : ""
    }`;
  }
  if (typeof value === "object") return "an object";
  return `the ${typeof value} ${String(value)}`;
}
