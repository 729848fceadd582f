/**
 * The HuggingFace cache layout, as Python's `huggingface_hub` writes it, so
 * checkpoints a user already downloaded are reused:
 * `$HF_HUB_CACHE` (or `$HF_HOME/hub`, or `~/.cache/huggingface/hub`)
 * `/models--ORG--NAME/{refs/REV, blobs/ETAG, snapshots/COMMIT/FILE -> ../../blobs/ETAG}`.
 *
 * @module
 */

import { join } from "node:path";

/** Where to look: an explicit folder, else the environment's. */
export interface HubCacheOptions {
  /** The hub cache folder (the one holding `models--*`). */
  cacheDir?: string;
}

/**
 * The hub cache folder, as `huggingface_hub` picks it.
 *
 * @param options An explicit folder, which wins.
 * @returns The folder (it may not exist yet).
 *
 * @example
 * ```ts
 * import { hubCacheDir } from "./cache.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(hubCacheDir({ cacheDir: "/tmp/hub" }), "/tmp/hub");
 * ```
 */
export function hubCacheDir(options: HubCacheOptions = {}): string {
  if (options.cacheDir) return options.cacheDir;
  const env = (name: string) => Deno.env.get(name) || undefined;
  const hubCache = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  if (hubCache) return hubCache;
  const home = env("HF_HOME") ??
    join(
      env("XDG_CACHE_HOME") ?? join(env("HOME") ?? ".", ".cache"),
      "huggingface",
    );
  return join(home, "hub");
}

const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

/**
 * Whether a string is a hub repository id (`ORG/NAME`).
 *
 * @param id The string.
 * @returns True for `google/gemma-3-270m-it`, false for paths.
 *
 * @example
 * ```ts
 * import { isRepoId } from "./cache.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isRepoId("google/gemma-3-270m-it"), true);
 * assert.equal(isRepoId("./ckpt"), false);
 * assert.equal(isRepoId("/abs/dir"), false);
 * ```
 */
export function isRepoId(id: string): boolean {
  return REPO_ID.test(id) && !id.startsWith(".");
}

/**
 * The repository's folder in the cache.
 *
 * @param cacheDir The hub cache folder.
 * @param repoId `ORG/NAME`.
 * @returns `cacheDir/models--ORG--NAME`.
 *
 * @example
 * ```ts
 * import { repoFolder } from "./cache.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(repoFolder("/c", "google/gemma-3-270m-it"), "/c/models--google--gemma-3-270m-it");
 * ```
 */
export function repoFolder(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.replaceAll("/", "--")}`);
}

/**
 * The commit a revision names in the cache: the revision itself when it is
 * a 40-hex commit, else the content of `refs/REV`.
 *
 * @param cacheDir The hub cache folder.
 * @param repoId `ORG/NAME`.
 * @param revision A branch, tag or commit. @default {"main"}
 * @returns The commit, or null when the cache does not know it.
 */
export async function cachedCommit(
  cacheDir: string,
  repoId: string,
  revision = "main",
): Promise<string | null> {
  if (/^[0-9a-f]{40}$/.test(revision)) return revision;
  try {
    const ref = await Deno.readTextFile(
      join(repoFolder(cacheDir, repoId), "refs", revision),
    );
    return ref.trim() || null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * The snapshot folder of a cached revision, when it holds every file named.
 *
 * @param cacheDir The hub cache folder.
 * @param repoId `ORG/NAME`.
 * @param files Files that must be there (e.g. `config.json`).
 * @param revision A branch, tag or commit. @default {"main"}
 * @returns `.../snapshots/COMMIT`, or null.
 *
 * @example A cache without the repository
 * ```ts
 * import { cachedSnapshot } from "./cache.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * assert.equal(await cachedSnapshot(dir, "a/b", ["config.json"]), null);
 * await Deno.remove(dir);
 * ```
 */
export async function cachedSnapshot(
  cacheDir: string,
  repoId: string,
  files: readonly string[],
  revision = "main",
): Promise<string | null> {
  const commit = await cachedCommit(cacheDir, repoId, revision);
  if (!commit) return null;
  const snapshot = join(repoFolder(cacheDir, repoId), "snapshots", commit);
  for (const file of files) {
    try {
      await Deno.stat(join(snapshot, file)); // follows the blob symlink
    } catch {
      return null;
    }
  }
  return snapshot;
}
