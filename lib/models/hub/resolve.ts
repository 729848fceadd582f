/**
 * A checkpoint as `loadModel` takes it: a local folder, or a hub repository
 * id found in the HuggingFace cache, downloading what is missing.
 *
 * @module
 */

import { cachedSnapshot, hubCacheDir, isRepoId } from "./cache.ts";
import { downloadHubFile, HubFileMissing } from "./download.ts";

/** Options for {@linkcode resolveCheckpoint}. */
export interface ResolveCheckpointOptions {
  /** The hub cache folder; defaults to `huggingface_hub`'s. */
  cacheDir?: string;
  /** The hub's address; defaults to `$HF_ENDPOINT` or huggingface.co. */
  endpoint?: string;
  /** A branch, tag or commit. @default {"main"} */
  revision?: string;
  /** An access token; defaults to `$HF_TOKEN`. */
  token?: string;
  /** Never download; the cache must hold every file. */
  offline?: boolean;
  /** Called per file as bytes arrive. */
  onProgress?: (file: string, bytes: number, totalBytes: number) => void;
}

/** Where a checkpoint was found. */
export interface ResolvedCheckpoint {
  /** The folder holding config.json, the weights and the tokenizer. */
  dir: string;
  /** The repository id, or null for a local folder. */
  repoId: string | null;
  /** The commit the files came from, or null for a local folder. */
  commit: string | null;
}

const REQUIRED = ["config.json", "tokenizer.json"];
const OPTIONAL = [
  "generation_config.json",
  "tokenizer_config.json",
  "chat_template.jinja",
];

/**
 * Finds a checkpoint: a folder that exists is used as it is; an `ORG/NAME`
 * id is looked up in the HuggingFace cache, and missing files are
 * downloaded (config, tokenizer, and `model.safetensors` or the shards its
 * index names).
 *
 * @param pathOrId A folder, or a hub repository id.
 * @param options Cache, endpoint, revision, token, offline, progress.
 * @returns The folder, and the id and commit for hub checkpoints.
 * @throws {Error} `Cannot find checkpoint ...` for neither a folder nor an
 *   id, or an offline cache miss; download errors as they come.
 *
 * @example
 * ```ts
 * import { resolveCheckpoint } from "./resolve.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.deepEqual(await resolveCheckpoint(dir), { dir, repoId: null, commit: null });
 * await assert.rejects(resolveCheckpoint("./no/such/dir"), /Cannot find checkpoint/);
 * await Deno.remove(dir);
 * ```
 */
export async function resolveCheckpoint(
  pathOrId: string,
  options: ResolveCheckpointOptions = {},
): Promise<ResolvedCheckpoint> {
  try {
    if ((await Deno.stat(pathOrId)).isDirectory) {
      return { dir: pathOrId, repoId: null, commit: null };
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (!isRepoId(pathOrId)) {
    throw new Error(
      `Cannot find checkpoint ${pathOrId}: no such folder, and it is not a hub id (ORG/NAME); pass a checkpoint folder or an id like google/gemma-3-270m-it`,
    );
  }
  const repoId = pathOrId;
  const cacheDir = hubCacheDir(options);
  const revision = options.revision ?? "main";
  const cached = await cachedSnapshot(cacheDir, repoId, REQUIRED, revision);
  if (cached && await hasWeights(cached)) {
    return { dir: cached, repoId, commit: cached.split("/").at(-1)! };
  }
  if (options.offline) {
    throw new Error(
      `Cannot find checkpoint ${repoId} in the cache ${cacheDir} (revision ${revision}); run once online, or download it with huggingface-cli`,
    );
  }
  const get = (file: string) =>
    downloadHubFile(repoId, file, {
      cacheDir,
      endpoint: options.endpoint,
      revision,
      token: options.token,
      onProgress: (b, t) => options.onProgress?.(file, b, t),
    });
  const first = await get("config.json");
  // The other files come from the commit config.json came from.
  const getPinned = (file: string) =>
    downloadHubFile(repoId, file, {
      cacheDir,
      endpoint: options.endpoint,
      revision: first.commit,
      token: options.token,
      onProgress: (b, t) => options.onProgress?.(file, b, t),
    });
  await getPinned("tokenizer.json");
  for (const file of OPTIONAL) {
    try {
      await getPinned(file);
    } catch (error) {
      if (!(error instanceof HubFileMissing)) throw error;
    }
  }
  let index: { weight_map?: Record<string, string> } | null = null;
  try {
    const { path } = await getPinned("model.safetensors.index.json");
    index = JSON.parse(await Deno.readTextFile(path));
  } catch (error) {
    if (!(error instanceof HubFileMissing)) throw error;
  }
  const shards = index
    ? [...new Set(Object.values(index.weight_map ?? {}))]
    : ["model.safetensors"];
  for (const shard of shards) await getPinned(shard);
  const dir = first.path.slice(0, -"/config.json".length);
  return { dir, repoId, commit: first.commit };
}

async function hasWeights(dir: string): Promise<boolean> {
  for (const f of ["model.safetensors", "model.safetensors.index.json"]) {
    try {
      await Deno.stat(`${dir}/${f}`);
      if (f === "model.safetensors") return true;
      const index = JSON.parse(await Deno.readTextFile(`${dir}/${f}`));
      for (const shard of new Set(Object.values(index.weight_map ?? {}))) {
        await Deno.stat(`${dir}/${shard}`);
      }
      return true;
    } catch { /* try the next layout */ }
  }
  return false;
}
