/**
 * Chat templates from a checkpoint (`tokenizer_config.json`'s
 * `chat_template`, or `chat_template.jinja`), rendered with
 * `@huggingface/jinja`, the engine transformers.js uses, so real templates
 * (Gemma 3's included) render as HF's `apply_chat_template` renders them.
 *
 * @module
 */

import { Template } from "npm:@huggingface/jinja@^0.5.13";

/** One message as chat templates take it. */
export interface TemplateMessage {
  /** `system`, `user` or `assistant`. */
  role: string;
  /** The message text. */
  content: string;
}

/** A compiled chat template with the special tokens it refers to. */
export class ChatTemplate {
  /** The template's source. */
  readonly source: string;
  #template: Template;
  #specials: Record<string, string>;

  /**
   * Compiles a template.
   *
   * @param source Jinja source, as the checkpoint ships it.
   * @param specials `bos_token`, `eos_token`, ... as the template reads them.
   * @throws {Error} When the source does not parse.
   *
   * @example
   * ```ts
   * import { ChatTemplate } from "./template.ts";
   * import assert from "node:assert/strict";
   *
   * const t = new ChatTemplate(
   *   "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[model] {% endif %}",
   *   { bos_token: "<s>" },
   * );
   * assert.equal(t.render([{ role: "user", content: "Hi" }]), "<s>[user] Hi\n[model] ");
   * ```
   */
  constructor(source: string, specials: Record<string, string> = {}) {
    this.source = source;
    try {
      this.#template = new Template(source);
    } catch (error) {
      throw new Error(
        `Cannot parse the chat template: ${
          (error as Error).message
        }; check the checkpoint's chat_template (tokenizer_config.json or chat_template.jinja)`,
        { cause: error },
      );
    }
    this.#specials = specials;
  }

  /**
   * Renders messages, with the generation prompt by default.
   *
   * @param messages The conversation.
   * @param addGenerationPrompt Whether to open the model's turn. @default {true}
   * @returns The prompt text, special tokens spelled out.
   */
  render(
    messages: readonly TemplateMessage[],
    addGenerationPrompt = true,
  ): string {
    try {
      return this.#template.render({
        ...this.#specials,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: addGenerationPrompt,
      });
    } catch (error) {
      throw new Error(
        `Cannot render the chat template: ${
          (error as Error).message
        }; check the messages (roles and their order) against the model's template`,
        { cause: error },
      );
    }
  }
}
