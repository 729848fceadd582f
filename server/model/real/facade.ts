/**
 * What the HTTP thread knows of a real checkpoint while its worker loads
 * it: the name, layer and head counts and context length from `config.json`
 * (the handler validates requests with them), and the checkpoint's
 * tokenizer, loaded here too so that `POST /tokenize` answers on the HTTP
 * thread without a round trip to a worker busy generating.
 *
 * @module
 */

import { basename, join } from "node:path";
import { parseModelConfig } from "../../../lib/models/config.ts";
import { resolveCheckpoint } from "../../../lib/models/hub/resolve.ts";
import { loadTokenizer } from "../../../lib/models/tokenizer/tokenizer.ts";
import type { DemoModel } from "../types.ts";
import { tokenizerParts } from "./adapter.ts";

/**
 * Resolves a checkpoint (downloading to the HF cache if missing) and reads
 * its config.
 *
 * @param pathOrId A folder or a hub id.
 * @param options The served name, download progress.
 * @returns The resolved folder and a model that tokenizes but does not
 *   generate (the worker holds the weights).
 */
export async function realModelFacade(
  pathOrId: string,
  options: {
    name?: string;
    onProgress?: (what: string, bytes: number, totalBytes: number) => void;
  } = {},
): Promise<{ dir: string; model: DemoModel }> {
  const found = await resolveCheckpoint(pathOrId, {
    onProgress: (file, b, t) => options.onProgress?.(`download ${file}`, b, t),
  });
  const read = async (file: string) => {
    try {
      return JSON.parse(await Deno.readTextFile(join(found.dir, file)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound && file !== "config.json") {
        return undefined;
      }
      throw new Error(
        `Cannot load model ${pathOrId}: ${join(found.dir, file)} ${
          error instanceof Deno.errors.NotFound
            ? "does not exist"
            : `is not valid JSON (${(error as Error).message})`
        }; pass a HuggingFace checkpoint folder`,
        { cause: error },
      );
    }
  };
  const config = parseModelConfig(
    await read("config.json"),
    await read("generation_config.json"),
  );
  const name = options.name ?? found.repoId ?? basename(found.dir);
  const inWorker = (): never => {
    throw new Error(
      `Cannot generate on the HTTP thread: ${name}'s weights live in the model worker; send the request to the server`,
    );
  };
  return {
    dir: found.dir,
    model: {
      name,
      numLayers: config.numLayers,
      numHeads: config.numHeads,
      maxPositions: config.maxPositions,
      ...tokenizerParts(await loadTokenizer(found.dir), name),
      generate: inWorker,
    },
  };
}
