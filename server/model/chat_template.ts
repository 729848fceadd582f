/**
 * Gemma's chat template for the demo model:
 * `<bos><start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n`,
 * assistant turns as `model`, system messages folded into the next user
 * turn (as Gemma does: system text, a blank line, then the user's text), and
 * each image as `<start_of_image>`, one token per patch, `<end_of_image>`.
 *
 * @module
 */

import { imagePatches } from "./image.ts";
import type { Tokenizer } from "./tokenizer.ts";
import type {
  ChatMessage,
  ChatPart,
  ModelInput,
  RenderChatOptions,
} from "./types.ts";
import { byteTokenId, SPECIAL } from "./vocab.ts";

const NEWLINE = byteTokenId(10);

/**
 * Renders messages with the chat template and tokenizes them, image patches
 * included.
 *
 * @param messages The conversation.
 * @param tokenizer The demo tokenizer.
 * @param options `addGenerationPrompt: false` leaves out the model-turn header.
 * @returns Ids, patch features and vision ranges, ending with the model-turn
 *   header unless `addGenerationPrompt` is false.
 * @throws {TypeError} For an unknown role or an undecodable image.
 *
 * @example
 * ```ts
 * import { renderChat } from "./chat_template.ts";
 * import { Tokenizer } from "./tokenizer.ts";
 * import assert from "node:assert/strict";
 * const tok = new Tokenizer();
 * const input = renderChat([{ role: "user", parts: [{ type: "text", text: "Hi" }] }], tok);
 * assert.equal(
 *   tok.decode([...input.ids]),
 *   "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
 * );
 * ```
 */
export function renderChat(
  messages: readonly ChatMessage[],
  tokenizer: Tokenizer,
  options: RenderChatOptions = {},
): ModelInput {
  if (!Array.isArray(messages)) {
    throw new TypeError(
      "Cannot render the chat: messages is not an array; pass an array of messages",
    );
  }
  const ids: number[] = [SPECIAL.bos];
  const patches = new Map<number, Float32Array>();
  const visionRanges: { start: number; end: number }[] = [];
  let pendingSystem: ChatPart[] = [];

  const renderParts = (parts: readonly ChatPart[]) => {
    for (const part of parts) {
      if (part.type === "text") ids.push(...tokenizer.encode(part.text));
      else if (part.type === "image") {
        const { features } = imagePatches(part.png);
        ids.push(SPECIAL.startOfImage);
        const start = ids.length;
        for (const f of features) {
          patches.set(ids.length, f);
          ids.push(SPECIAL.imagePatch);
        }
        visionRanges.push({ start, end: ids.length });
        ids.push(SPECIAL.endOfImage);
      } else {
        throw new TypeError(
          `Cannot render the chat: a content part has type ${
            (part as { type: unknown }).type
          }; use text or image`,
        );
      }
    }
  };
  const renderTurn = (role: "user" | "model", parts: readonly ChatPart[]) => {
    ids.push(SPECIAL.startOfTurn, ...tokenizer.encode(role), NEWLINE);
    renderParts(parts);
    ids.push(SPECIAL.endOfTurn, NEWLINE);
  };

  messages.forEach((message, i) => {
    const parts = message?.parts;
    if (!Array.isArray(parts)) {
      throw new TypeError(
        `Cannot render the chat: message ${i} has no parts array; give each message its parts`,
      );
    }
    switch (message.role) {
      case "system":
        if (pendingSystem.length) {
          pendingSystem.push({ type: "text", text: "\n\n" });
        }
        pendingSystem.push(...parts);
        break;
      case "user":
        renderTurn(
          "user",
          pendingSystem.length
            ? [...pendingSystem, { type: "text", text: "\n\n" }, ...parts]
            : parts,
        );
        pendingSystem = [];
        break;
      case "assistant":
        if (pendingSystem.length) renderTurn("user", pendingSystem);
        pendingSystem = [];
        renderTurn("model", parts);
        break;
      default:
        throw new TypeError(
          `Cannot render the chat: message ${i} has role ${
            (message as { role: unknown }).role
          }; use system, user or assistant`,
        );
    }
  });
  if (pendingSystem.length) renderTurn("user", pendingSystem);
  if (options.addGenerationPrompt ?? true) {
    ids.push(SPECIAL.startOfTurn, ...tokenizer.encode("model"), NEWLINE);
  }
  return { ids: Int32Array.from(ids), patches, visionRanges };
}
