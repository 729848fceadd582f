/**
 * `deno task explore FILE [-o out.html] [--layout AXES] [--max-bytes N]
 * [--top-k K]`: turns a saved capture (an attnscope capture file, or
 * attention saved from transformers or TransformerLens as .npy, .npz or
 * safetensors) into one shareable explorer page that opens in any browser,
 * offline, with no Deno or Jupyter on the reader's side.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  loadAttention,
  type LoadedAttention,
} from "../lib/sources/files/load_attention.ts";
import { explore } from "../lib/explorer/explorer.ts";

const USAGE =
  'usage: deno task explore FILE [-o out.html] [--layout "batch head query key"] [--max-bytes N] [--top-k K]';

/**
 * Reads a capture for the explorer in any format `loadAttention` reads (it
 * tells them apart by their first bytes).
 *
 * @param path The file.
 * @param layout The tensors' axes, when the default for their rank is wrong.
 * @returns The capture, with labels when the file has them.
 */
export function loadForExplorer(
  path: string,
  layout?: string,
): Promise<LoadedAttention> {
  return loadAttention(path, layout ? { layout } : {});
}

/**
 * Runs the command.
 *
 * @param args Command-line arguments.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        output: { type: "string", short: "o" },
        layout: { type: "string" },
        "max-bytes": { type: "string" },
        "top-k": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(
      `Cannot read the arguments: ${(error as Error).message}; ${USAGE}`,
    );
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    console.error(
      `Cannot explore: expected one capture file, got ${positionals.length}; ${USAGE}`,
    );
    return 2;
  }
  const input = positionals[0];
  const output = values.output ?? input.replace(/(\.[^./]*)?$/, ".html");
  const number = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) {
      throw new RangeError(
        `Cannot explore: --${name} ${v} is not a positive integer`,
      );
    }
    return n;
  };
  try {
    const capture = await loadForExplorer(input, values.layout);
    const view = explore(capture, {
      maxBytes: number("max-bytes", values["max-bytes"]),
      topK: number("top-k", values["top-k"]),
    });
    await view.save(output);
    const stats = await view.stats();
    console.log(
      `${output}: ${String(view)}, ${(stats.bytes / 1024).toFixed(0)} KiB${
        stats.reduced ? `\n${stats.reduced}` : ""
      }`,
    );
    return 0;
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
