/**
 * `POST /tokenize`, as vLLM serves it: a prompt
 * (`{model?, prompt, add_special_tokens?}`, special tokens added by
 * default) or a chat (`{model?, messages, add_generation_prompt?}`,
 * rendered with the model's chat template exactly as a chat completion
 * renders it), answered with `{count, max_model_len, tokens, token_strs}`.
 * A chat's `count` is the `usage.prompt_tokens` the same messages get from
 * `POST /v1/chat/completions`, so clients can size prompts in the server's
 * own tokens.
 *
 * @module
 */

import { HttpError } from "./http_error.ts";
import type { DemoModel } from "./model/types.ts";
import { describe, readMessages } from "./request.ts";

/** vLLM's `TokenizeResponse`. */
export interface TokenizeResponse {
  /** Number of tokens. */
  count: number;
  /** The server's context length. */
  max_model_len: number;
  /** The token ids. */
  tokens: number[];
  /** Each token's text when `return_token_strs` was true, else `null`. */
  token_strs: string[] | null;
}

/**
 * Validates a `/tokenize` body and tokenizes it.
 *
 * @param model The served model.
 * @param modelName The name it is served under (a request naming another gets a 404).
 * @param maxModelLen The context length reported.
 * @param body The parsed JSON body.
 * @returns The response body.
 * @throws {HttpError} 400 for a malformed body, 404 for another model's
 *   name, 501 when the model cannot tokenize raw text.
 *
 * @example
 * ```ts
 * import { tokenizeBody } from "./tokenize.ts";
 * import { loadDemoModel } from "./model/mod.ts";
 * import assert from "node:assert/strict";
 *
 * const model = loadDemoModel();
 * const chat = tokenizeBody(model, model.name, 4096, { messages: [{ role: "user", content: "Hi" }] });
 * assert.equal(chat.count, model.renderChat([{ role: "user", parts: [{ type: "text", text: "Hi" }] }]).ids.length);
 * const text = tokenizeBody(model, model.name, 4096, { prompt: "Hi", add_special_tokens: false, return_token_strs: true });
 * assert.equal(text.token_strs?.join(""), "Hi");
 * ```
 */
export function tokenizeBody(
  model: DemoModel,
  modelName: string,
  maxModelLen: number,
  body: unknown,
): TokenizeResponse {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw bad(
      `Cannot read the request: the body is ${
        describe(body)
      }, not a JSON object; send {"prompt": "..."} or {"messages": [...]}`,
      null,
    );
  }
  const b = body as Record<string, unknown>;
  if (b.model !== undefined && b.model !== null && b.model !== modelName) {
    throw new HttpError(
      404,
      `Cannot find model ${JSON.stringify(b.model)}: this server serves ${
        JSON.stringify(modelName)
      }; pass that name or leave model out`,
      { param: "model", code: "model_not_found" },
    );
  }
  const hasPrompt = b.prompt !== undefined;
  const hasMessages = b.messages !== undefined;
  if (hasPrompt === hasMessages) {
    throw bad(
      `Cannot tokenize: the body has ${
        hasPrompt ? "both prompt and messages" : "neither prompt nor messages"
      }; send {"prompt": "..."} or {"messages": [...]}`,
      hasPrompt ? "messages" : "prompt",
    );
  }
  const strs = flag(b.return_token_strs, "return_token_strs") ?? false;
  let tokens: number[];
  if (hasPrompt) {
    if (typeof b.prompt !== "string") {
      throw bad(
        `Cannot read prompt: it is ${
          describe(b.prompt)
        }, not a string; pass the text to tokenize`,
        "prompt",
      );
    }
    const special = flag(b.add_special_tokens, "add_special_tokens") ?? true;
    if (!model.tokenize) {
      throw new HttpError(
        501,
        `Cannot tokenize a prompt: ${modelName} tokenizes chats only; send {"messages": [...]} instead`,
        { param: "prompt", code: "not_implemented" },
      );
    }
    tokens = model.tokenize(b.prompt, special);
  } else {
    const messages = readMessages(b.messages);
    const generation = flag(b.add_generation_prompt, "add_generation_prompt") ??
      true;
    if (flag(b.continue_final_message, "continue_final_message")) {
      throw bad(
        "Cannot tokenize with continue_final_message: this server's chat template always closes the final message; leave continue_final_message out",
        "continue_final_message",
      );
    }
    if (flag(b.add_special_tokens, "add_special_tokens")) {
      throw bad(
        "Cannot tokenize with add_special_tokens: the chat template writes the special tokens itself (as chat completions use it); leave add_special_tokens out or false",
        "add_special_tokens",
      );
    }
    try {
      tokens = [
        ...model.renderChat(messages, { addGenerationPrompt: generation }).ids,
      ];
    } catch (error) {
      if (error instanceof TypeError || error instanceof RangeError) {
        throw bad(error.message, "messages");
      }
      throw error;
    }
  }
  return {
    count: tokens.length,
    max_model_len: maxModelLen,
    tokens,
    token_strs: strs ? tokens.map((id) => model.tokenText(id)) : null,
  };
}

function flag(value: unknown, field: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") {
    throw bad(
      `Cannot read ${field}: it is ${describe(value)}; pass true or false`,
      field,
    );
  }
  return value;
}

function bad(message: string, param: string | null): HttpError {
  return new HttpError(400, message, { param });
}
