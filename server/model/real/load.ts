/**
 * Loads a real checkpoint for the server: resolves a folder or hub id
 * (cache, then download), refuses one too big for memory before reading
 * weights, loads the weights and the tokenizer, and records provenance.
 *
 * @module
 */

import { basename, join } from "node:path";
import denoJson from "../../../deno.json" with { type: "json" };
import { resolveCheckpoint } from "../../../lib/models/hub/resolve.ts";
import { loadModelFromFolder } from "../../../lib/models/load_model.ts";
import { loadTokenizer } from "../../../lib/models/tokenizer/tokenizer.ts";
import type { DemoModel } from "../types.ts";
import { realDemoModel } from "./adapter.ts";

/** Weights in memory stay at their stored width; this covers caches and buffers. */
export const MEMORY_FACTOR = 1.3;

/** Options for {@linkcode loadRealServerModel}. */
export interface LoadRealServerModelOptions {
  /** The served name; defaults to the hub id or the folder's name. */
  name?: string;
  /** Kernel threads. */
  threads?: number;
  /** Weights and downloads as they arrive: bytes so far and in all. */
  onProgress?: (what: string, bytes: number, totalBytes: number) => void;
  /** Memory available, in bytes; defaults to the system's. */
  availableBytes?: number;
}

async function sha256File(path: string): Promise<string> {
  const bytes = await Deno.readFile(path);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** The weight files of a folder with their sizes and (hub blobs) sha256. */
async function weightFiles(dir: string) {
  const files: { file: string; bytes: number; sha256: string | null }[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".safetensors")) continue;
    const path = join(dir, entry.name);
    const { size } = await Deno.stat(path);
    let sha256: string | null = null;
    try {
      // A hub cache's blob is named by its LFS sha256, verified on download.
      const target = basename(await Deno.readLink(path));
      if (/^[0-9a-f]{64}$/.test(target)) sha256 = target;
    } catch { /* a plain file: hashing GBs here would stall loading */ }
    files.push({ file: entry.name, bytes: size, sha256 });
  }
  return files.sort((a, b) => a.file.localeCompare(b.file));
}

const GB = 1024 ** 3;
const gb = (n: number) => `${(n / GB).toFixed(2)} GB`;

/**
 * Loads a checkpoint folder or hub id as the server's model.
 *
 * @param pathOrId A checkpoint folder, or a hub id like `google/gemma-3-270m-it`.
 * @param options Name, threads, progress, the memory to plan for.
 * @returns The model behind the server's contract.
 * @throws {Error} `Cannot load model ...` when it would not fit in memory
 *   (with the numbers), or as the loader and tokenizer report.
 *
 * @example Too big for the memory given
 * ```ts
 * import { loadRealServerModel } from "./load.ts";
 * import assert from "node:assert/strict";
 * import { join } from "node:path";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(join(dir, "model.safetensors"), new Uint8Array(4096));
 * await assert.rejects(
 *   loadRealServerModel(dir, { availableBytes: 1000 }),
 *   /Cannot load model .*: its weights take .* needs about .* available/,
 * );
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function loadRealServerModel(
  pathOrId: string,
  options: LoadRealServerModelOptions = {},
): Promise<DemoModel> {
  const found = await resolveCheckpoint(pathOrId, {
    onProgress: (file, b, t) => options.onProgress?.(`download ${file}`, b, t),
  });
  const name = options.name ?? found.repoId ?? basename(found.dir);
  const weights = await weightFiles(found.dir);
  const onDisk = weights.reduce((s, f) => s + f.bytes, 0);
  const available = options.availableBytes ?? Deno.systemMemoryInfo().available;
  const needed = onDisk * MEMORY_FACTOR;
  if (needed > available) {
    throw new Error(
      `Cannot load model ${name}: its weights take ${
        gb(onDisk)
      } on disk and the engine needs about ${
        gb(needed)
      } (${MEMORY_FACTOR}x), but only ${
        gb(available)
      } of memory is available; free memory, or pick a smaller checkpoint`,
    );
  }
  const tokenizer = await loadTokenizer(found.dir);
  const model = await loadModelFromFolder(found.dir, {
    name,
    threads: options.threads,
    onProgress: (b, t) => options.onProgress?.("weights", b, t),
  });
  const provenance = {
    model_id: found.repoId ?? found.dir,
    revision: found.commit,
    dtype: model.info.dtype,
    config_sha256: await sha256File(join(found.dir, "config.json")),
    weights,
    tokenizer_sha256: tokenizer.provenance.tokenizerSha256,
    tokenizer_config_sha256: tokenizer.provenance.tokenizerConfigSha256,
    chat_template_sha256: tokenizer.provenance.chatTemplateSha256,
    attnscope_version: denoJson.version,
  };
  return realDemoModel(model, tokenizer, provenance);
}
