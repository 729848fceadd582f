/**
 * Downloading one file of a hub repository into the HuggingFace cache, as
 * `huggingface_hub` does: `HEAD {endpoint}/{repo}/resolve/{rev}/{file}`
 * (redirects not followed) for the commit (`X-Repo-Commit`), the blob's
 * ETag (`X-Linked-Etag` for LFS files, else `ETag`) and size; then a GET
 * into `blobs/ETAG.incomplete`, resumed with `Range` after an interruption,
 * checked against the size and (for LFS files, whose ETag is the sha256)
 * the hash, renamed into place, and linked from `snapshots/COMMIT/FILE`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { repoFolder } from "./cache.ts";

/** Options for {@linkcode downloadHubFile}. */
export interface HubDownloadOptions {
  /** The hub cache folder (see `hubCacheDir`). */
  cacheDir: string;
  /** The hub's address. @default {"https://huggingface.co"} (or `$HF_ENDPOINT`) */
  endpoint?: string;
  /** A branch, tag or commit. @default {"main"} */
  revision?: string;
  /** An access token for gated repositories. @default {`$HF_TOKEN`} */
  token?: string;
  /** Called as bytes arrive, with bytes so far and in all. */
  onProgress?: (bytes: number, totalBytes: number) => void;
}

/** The error for a file the repository does not have (HTTP 404). */
export class HubFileMissing extends Error {
  /** The error name. */
  override name = "HubFileMissing";
}

function defaultEndpoint(): string {
  return Deno.env.get("HF_ENDPOINT") || "https://huggingface.co";
}

function cleanEtag(value: string | null): string | null {
  if (!value) return null;
  return value.replace(/^W\//, "").replaceAll('"', "");
}

async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return -1;
    throw error;
  }
}

async function hashFile(path: string, hash: ReturnType<typeof createHash>) {
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
}

/**
 * Downloads one file into the cache (or finds it there) and returns its
 * path in the snapshot.
 *
 * @param repoId `ORG/NAME`.
 * @param filename The file's path in the repository.
 * @param options Cache, endpoint, revision, token, progress.
 * @returns `{ path, commit }`: `snapshots/COMMIT/FILE` and the commit.
 * @throws {HubFileMissing} For a 404.
 * @throws {Error} `Cannot download ...` for a gated repository without a
 *   token (401/403), a size or hash mismatch, or a network failure (the
 *   partial blob stays, so the next call resumes it).
 *
 * @example A hub that cannot be reached
 * ```ts
 * import { downloadHubFile } from "./download.ts";
 * import assert from "node:assert/strict";
 *
 * const cacheDir = await Deno.makeTempDir();
 * await assert.rejects(
 *   downloadHubFile("a/b", "config.json", { cacheDir, endpoint: "http://127.0.0.1:9" }),
 *   /Cannot download a\/b\/config.json from http:\/\/127.0.0.1:9/,
 * );
 * await Deno.remove(cacheDir, { recursive: true });
 * ```
 */
export async function downloadHubFile(
  repoId: string,
  filename: string,
  options: HubDownloadOptions,
): Promise<{ path: string; commit: string }> {
  const endpoint = (options.endpoint ?? defaultEndpoint()).replace(/\/$/, "");
  const revision = options.revision ?? "main";
  const token = options.token ?? (Deno.env.get("HF_TOKEN") || undefined);
  const url = `${endpoint}/${repoId}/resolve/${
    encodeURIComponent(revision)
  }/${filename}`;
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const where = `${repoId}/${filename} from ${endpoint}`;

  let head: Response;
  try {
    head = await fetch(url, { method: "HEAD", headers, redirect: "manual" });
  } catch (error) {
    throw new Error(
      `Cannot download ${where}: ${
        (error as Error).message
      }; check the network (or set HF_ENDPOINT), or pass a local folder`,
      { cause: error },
    );
  }
  await head.body?.cancel();
  if (head.status === 401 || head.status === 403) {
    throw new Error(
      `Cannot download ${where}: the hub answered ${head.status} (a gated or private repository); ${
        token
          ? "the token in HF_TOKEN has no access: accept the model's license on its hub page with that account"
          : "accept the model's license on its hub page and set HF_TOKEN to an access token"
      }`,
    );
  }
  if (head.status === 404) {
    throw new HubFileMissing(
      `Cannot download ${where}: the repository has no such file at ${revision} (404); check the repository id and revision`,
    );
  }
  if (head.status >= 400) {
    throw new Error(
      `Cannot download ${where}: the hub answered ${head.status}; try again later`,
    );
  }
  const commit = head.headers.get("x-repo-commit");
  const etag = cleanEtag(head.headers.get("x-linked-etag")) ??
    cleanEtag(head.headers.get("etag"));
  const sizeHeader = head.headers.get("x-linked-size") ??
    (head.status < 300 ? head.headers.get("content-length") : null);
  if (!commit || !etag) {
    throw new Error(
      `Cannot download ${where}: the answer has no ${
        commit ? "ETag" : "X-Repo-Commit"
      } header; check HF_ENDPOINT points at a HuggingFace hub`,
    );
  }
  const size = sizeHeader === null ? null : Number(sizeHeader);

  const repo = repoFolder(options.cacheDir, repoId);
  const blob = join(repo, "blobs", etag);
  const pointer = join(repo, "snapshots", commit, filename);
  await Deno.mkdir(dirname(blob), { recursive: true });
  await Deno.mkdir(dirname(pointer), { recursive: true });

  if (await fileSize(blob) < 0) {
    await fetchBlob(url, headers, blob, size, etag, where, options.onProgress);
  }
  try {
    await Deno.remove(pointer);
  } catch { /* not there yet */ }
  await Deno.symlink(relative(dirname(pointer), blob), pointer);
  if (revision !== commit) {
    await Deno.mkdir(join(repo, "refs"), { recursive: true });
    await Deno.writeTextFile(join(repo, "refs", revision), commit);
  }
  return { path: pointer, commit };
}

async function fetchBlob(
  url: string,
  headers: Record<string, string>,
  blob: string,
  size: number | null,
  etag: string,
  where: string,
  onProgress?: (bytes: number, totalBytes: number) => void,
): Promise<void> {
  const partial = `${blob}.incomplete`;
  let have = Math.max(0, await fileSize(partial));
  const request = { ...headers };
  if (have > 0) request.Range = `bytes=${have}-`;
  let response: Response;
  try {
    response = await fetch(url, { headers: request });
  } catch (error) {
    throw new Error(
      `Cannot download ${where}: ${
        (error as Error).message
      }; run again to resume`,
      { cause: error },
    );
  }
  if (response.status === 416 && size !== null && have === size) {
    await response.body?.cancel();
  } else if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new Error(
      `Cannot download ${where}: the file answered ${response.status}; run again later`,
    );
  } else {
    if (response.status !== 206) have = 0; // the server sent it whole
    const file = await Deno.open(partial, {
      write: true,
      create: true,
      append: have > 0,
      truncate: have === 0,
    });
    const total = size ??
      have + Number(response.headers.get("content-length") ?? 0);
    try {
      for await (const chunk of response.body) {
        let written = 0;
        while (written < chunk.length) {
          written += await file.write(chunk.subarray(written));
        }
        have += chunk.length;
        onProgress?.(have, total);
      }
    } catch (error) {
      throw new Error(
        `Cannot download ${where}: the transfer broke off at ${have} bytes (${
          (error as Error).message
        }); run again to resume`,
        { cause: error },
      );
    } finally {
      file.close();
    }
  }
  const got = await fileSize(partial);
  if (size !== null && got !== size) {
    if (got > size) await Deno.remove(partial);
    throw new Error(
      `Cannot download ${where}: got ${got} bytes, the hub announced ${size}; run again${
        got > size ? " (the partial file was removed)" : " to resume"
      }`,
    );
  }
  if (/^[0-9a-f]{64}$/.test(etag)) {
    const hash = createHash("sha256");
    await hashFile(partial, hash);
    const digest = hash.digest("hex");
    if (digest !== etag) {
      await Deno.remove(partial);
      throw new Error(
        `Cannot download ${where}: its sha256 is ${digest}, the hub announced ${etag}; the partial file was removed, run again`,
      );
    }
  }
  await Deno.rename(partial, blob);
}
