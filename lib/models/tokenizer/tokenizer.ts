/**
 * A checkpoint's own tokenizer: `tokenizer.json` through the HF tokenizers
 * port on npm (`@huggingface/tokenizers`), its chat template, and labels.
 *
 * @module
 */

import { join } from "node:path";
import { Tokenizer } from "npm:@huggingface/tokenizers@^0.2.0";
import { tokenLabels } from "./labels.ts";
import { ChatTemplate, type TemplateMessage } from "./template.ts";

/** Hashes that say which tokenizer and template made a capture. */
export interface TokenizerProvenance {
  /** sha256 of `tokenizer.json`, hex. */
  tokenizerSha256: string;
  /** sha256 of `tokenizer_config.json`, hex. */
  tokenizerConfigSha256: string;
  /** sha256 of the chat template's source, hex; null without one. */
  chatTemplateSha256: string | null;
}

/** A tokenizer and chat template loaded from a checkpoint folder. */
export interface ModelTokenizer {
  /** Encodes text; special tokens (BOS) added only when asked. */
  encode(text: string, addSpecialTokens?: boolean): number[];
  /** Decodes ids, special tokens dropped unless `skipSpecial` is false. */
  decode(ids: readonly number[], skipSpecial?: boolean): string;
  /** One token's text, special tokens kept, `▁` as a space. */
  tokenText(id: number): string;
  /** One label per id (see {@linkcode tokenLabels}). */
  labels(ids: readonly number[]): string[];
  /** The chat template, or null when the checkpoint has none. */
  readonly chatTemplate: ChatTemplate | null;
  /**
   * Renders the chat template and tokenizes it without adding special
   * tokens again (the template writes `<bos>` itself), as HF and vLLM do.
   * `addGenerationPrompt: false` leaves off the header of the model's turn
   * (as `POST /tokenize` may ask).
   */
  encodeChat(
    messages: readonly TemplateMessage[],
    options?: { addGenerationPrompt?: boolean },
  ): number[];
  /** Hashes of the files. */
  readonly provenance: TokenizerProvenance;
}

async function sha256Hex(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string"
    ? new TextEncoder().encode(bytes)
    : bytes;
  const digest = await crypto.subtle.digest(
    "SHA-256",
    data as Uint8Array<ArrayBuffer>,
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

async function readOptional(path: string): Promise<Uint8Array | null> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** A special token as tokenizer_config.json writes it: text or AddedToken. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "content" in value) {
    return String((value as { content: unknown }).content);
  }
  return undefined;
}

/**
 * Builds a {@linkcode ModelTokenizer} from the parsed files.
 *
 * @param tokenizerJson Parsed `tokenizer.json`.
 * @param config Parsed `tokenizer_config.json`.
 * @param options The template source when it sits in `chat_template.jinja`,
 *   and the file hashes.
 * @returns The tokenizer.
 */
export function createModelTokenizer(
  tokenizerJson: object,
  config: Record<string, unknown>,
  options: { chatTemplate?: string | null; provenance: TokenizerProvenance },
): ModelTokenizer {
  const tok = new Tokenizer(tokenizerJson, config);
  let source = options.chatTemplate ?? null;
  if (source === null) {
    const t = config.chat_template;
    if (typeof t === "string") source = t;
    else if (Array.isArray(t)) {
      const named = t.find((e) => e?.name === "default") ?? t[0];
      if (typeof named?.template === "string") source = named.template;
    }
  }
  const specials: Record<string, string> = {};
  for (const key of ["bos_token", "eos_token", "pad_token", "unk_token"]) {
    const v = tokenContent(config[key]);
    if (v !== undefined) specials[key] = v;
  }
  const chatTemplate = source === null
    ? null
    : new ChatTemplate(source, specials);
  const decodeKeep = (ids: number[]) =>
    tok.decode(ids, {
      skip_special_tokens: false,
      clean_up_tokenization_spaces: false,
    });
  return {
    encode: (text, addSpecialTokens = false) =>
      Array.from(
        tok.encode(text, { add_special_tokens: addSpecialTokens }).ids,
      ),
    decode: (ids, skipSpecial = true) =>
      tok.decode([...ids], {
        skip_special_tokens: skipSpecial,
        clean_up_tokenization_spaces: false,
      }),
    tokenText: (id) => decodeKeep([id]),
    labels: (ids) => tokenLabels({ decode: decodeKeep }, ids),
    chatTemplate,
    encodeChat(messages, chatOptions = {}) {
      if (!chatTemplate) {
        throw new Error(
          "Cannot apply a chat template: the checkpoint has none (no chat_template in tokenizer_config.json, no chat_template.jinja); send a plain completion prompt instead",
        );
      }
      const text = chatTemplate.render(
        messages,
        chatOptions.addGenerationPrompt ?? true,
      );
      return Array.from(tok.encode(text, { add_special_tokens: false }).ids);
    },
    provenance: options.provenance,
  };
}

/**
 * Loads `tokenizer.json`, `tokenizer_config.json` and the chat template
 * (`chat_template` in the config, or `chat_template.jinja`) from a folder.
 *
 * @param dir The checkpoint folder.
 * @returns The tokenizer.
 * @throws {Error} `Cannot load the tokenizer: ...` when a file is missing or
 *   not JSON.
 *
 * @example A folder without tokenizer.json
 * ```ts
 * import { loadTokenizer } from "./tokenizer.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await assert.rejects(loadTokenizer(dir), /Cannot load the tokenizer: .*tokenizer.json does not exist/);
 * await Deno.remove(dir);
 * ```
 */
export async function loadTokenizer(dir: string): Promise<ModelTokenizer> {
  const read = async (name: string, required: boolean) => {
    const bytes = await readOptional(join(dir, name));
    if (!bytes && required) {
      throw new Error(
        `Cannot load the tokenizer: ${
          join(dir, name)
        } does not exist; download the checkpoint's ${name} next to config.json`,
      );
    }
    return bytes;
  };
  const parse = (name: string, bytes: Uint8Array) => {
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      throw new Error(
        `Cannot load the tokenizer: ${join(dir, name)} is not valid JSON (${
          (error as Error).message
        }); download it again`,
        { cause: error },
      );
    }
  };
  const tjBytes = (await read("tokenizer.json", true))!;
  const tcBytes = await read("tokenizer_config.json", false) ??
    new TextEncoder().encode("{}");
  const jinja = await read("chat_template.jinja", false);
  const tokenizerJson = parse("tokenizer.json", tjBytes);
  const config = parse("tokenizer_config.json", tcBytes);
  const chatTemplate = jinja ? new TextDecoder().decode(jinja) : null;
  const source = chatTemplate ??
    (typeof config.chat_template === "string" ? config.chat_template : null);
  return createModelTokenizer(tokenizerJson, config, {
    chatTemplate,
    provenance: {
      tokenizerSha256: await sha256Hex(tjBytes),
      tokenizerConfigSha256: await sha256Hex(tcBytes),
      chatTemplateSha256: source === null ? null : await sha256Hex(source),
    },
  });
}
