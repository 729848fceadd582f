/**
 * A checkpoint folder's tensors: `model.safetensors`, or the shards that
 * `model.safetensors.index.json` names. Only headers are read up front; each
 * tensor is then read on its own, straight from the file into an array of
 * its stored width (BF16 and F16 as raw 16-bit patterns), so loading never
 * holds the whole file or a widened copy.
 *
 * @module
 */

import { join } from "node:path";
import {
  parseSafetensorsHeader,
  type SafetensorsEntry,
  safetensorsHeaderLength,
} from "../sources/files/safetensors.ts";
import type { WeightDtype } from "./kernels/backend.ts";

/** One tensor of the checkpoint. */
export interface CheckpointTensor {
  /** Its name in the checkpoint. */
  name: string;
  /** The file holding it. */
  file: string;
  /** The safetensors entry (dtype, shape, byte range). */
  entry: SafetensorsEntry;
}

const WEIGHT_DTYPES: Record<string, WeightDtype> = {
  F32: "float32",
  BF16: "bfloat16",
  F16: "float16",
};

function fail(what: string): never {
  throw new Error(`Cannot load model: ${what}`);
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      fail(`${path} does not exist; ${what}`);
    }
    throw error;
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    fail(`${path} is not JSON (${(error as Error).message}); re-download it`);
  }
}

/**
 * Reads a JSON file of the checkpoint, or `undefined` when it is absent.
 *
 * @param dir The folder.
 * @param name The file name.
 * @returns Its parsed content, or `undefined`.
 *
 * @example
 * ```ts
 * import { readOptionalJson } from "./checkpoint.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(await readOptionalJson(await Deno.makeTempDir(), "generation_config.json"), undefined);
 * ```
 */
export async function readOptionalJson(
  dir: string,
  name: string,
): Promise<unknown> {
  try {
    await Deno.stat(join(dir, name));
  } catch {
    return undefined;
  }
  return await readJson(join(dir, name), "");
}

/**
 * Reads `config.json`, with an error saying what to do when it is absent.
 *
 * @param dir The checkpoint folder.
 * @returns The parsed config.
 *
 * @example
 * ```ts
 * import { readConfigJson } from "./checkpoint.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(readConfigJson(await Deno.makeTempDir()), /config.json does not exist/);
 * ```
 */
export function readConfigJson(dir: string): Promise<unknown> {
  return readJson(
    join(dir, "config.json"),
    "pass a HuggingFace checkpoint folder (config.json with model.safetensors or its shards)",
  );
}

/** The open files and the index of every tensor. */
export class Checkpoint {
  /** Tensors by name. */
  readonly tensors: Map<string, CheckpointTensor>;
  /** Bytes of all tensors. */
  readonly totalBytes: number;
  #files: Map<string, Deno.FsFile>;

  private constructor(
    tensors: Map<string, CheckpointTensor>,
    files: Map<string, Deno.FsFile>,
  ) {
    this.tensors = tensors;
    this.#files = files;
    let total = 0;
    for (const t of tensors.values()) total += t.entry.length;
    this.totalBytes = total;
  }

  /**
   * Opens the safetensors file(s) of a folder and reads their headers.
   *
   * @param dir The checkpoint folder.
   * @returns The checkpoint; call `close()` when done.
   * @throws {Error} `Cannot load model: ...` for a missing file or shard, or a corrupt header.
   *
   * @example
   * ```ts
   * import { Checkpoint } from "./checkpoint.ts";
   * import assert from "node:assert/strict";
   *
   * await assert.rejects(Checkpoint.open(await Deno.makeTempDir()), /no model.safetensors/);
   * ```
   */
  static async open(dir: string): Promise<Checkpoint> {
    const indexPath = join(dir, "model.safetensors.index.json");
    let fileNames: string[];
    let weightMap: Record<string, string> | null = null;
    if (await exists(indexPath)) {
      const index = await readJson(indexPath, "") as {
        weight_map?: Record<string, string>;
      };
      if (
        !index || typeof index.weight_map !== "object" ||
        index.weight_map === null
      ) {
        fail(
          `${indexPath} has no weight_map; re-download the checkpoint's index`,
        );
      }
      weightMap = index.weight_map;
      fileNames = [...new Set(Object.values(weightMap))];
    } else if (await exists(join(dir, "model.safetensors"))) {
      fileNames = ["model.safetensors"];
    } else {
      fail(
        `${dir} has no model.safetensors nor model.safetensors.index.json; pass a folder holding the checkpoint's weights`,
      );
    }
    const files = new Map<string, Deno.FsFile>();
    const tensors = new Map<string, CheckpointTensor>();
    try {
      for (const name of fileNames) {
        const path = join(dir, name);
        let file: Deno.FsFile;
        try {
          file = await Deno.open(path, { read: true });
        } catch (error) {
          if (error instanceof Deno.errors.NotFound) {
            fail(
              `shard ${name} (listed in model.safetensors.index.json) is missing from ${dir}; download every shard`,
            );
          }
          throw error;
        }
        files.set(name, file);
        const size = (await file.stat()).size;
        let entries: SafetensorsEntry[];
        try {
          const prefix = await readAt(file, 0, 8, path);
          const n = safetensorsHeaderLength(prefix, size);
          const header = parseSafetensorsHeader(
            await readAt(file, 8, n, path),
            size,
          );
          entries = header.entries;
        } catch (error) {
          if (error instanceof SyntaxError) {
            fail(
              `${path} is truncated or corrupt: ${error.message}; re-download it`,
            );
          }
          throw error;
        }
        for (const entry of entries) {
          if (weightMap && weightMap[entry.name] !== name) continue;
          tensors.set(entry.name, { name: entry.name, file: name, entry });
        }
      }
      if (weightMap) {
        for (const [tensor, file] of Object.entries(weightMap)) {
          if (!tensors.has(tensor)) {
            fail(
              `tensor ${tensor} is listed in model.safetensors.index.json under ${file} but that file does not hold it; re-download ${file}`,
            );
          }
        }
      }
    } catch (error) {
      for (const f of files.values()) f.close();
      throw error;
    }
    return new Checkpoint(tensors, files);
  }

  /**
   * Reads one tensor at its stored width.
   *
   * @param name The tensor's name.
   * @returns Its dtype, shape and elements (16-bit types as raw patterns).
   */
  async read(
    name: string,
  ): Promise<
    { dtype: WeightDtype; shape: number[]; data: Float32Array | Uint16Array }
  > {
    const { t, dtype } = this.#tensor(name);
    const count = t.entry.shape.reduce((a, b) => a * b, 1);
    const data = dtype === "float32"
      ? new Float32Array(count)
      : new Uint16Array(count);
    const file = this.#files.get(t.file)!;
    await readInto(
      file,
      t.entry.start,
      new Uint8Array(data.buffer, 0, t.entry.length),
      t.file,
    );
    return { dtype, shape: t.entry.shape, data };
  }

  /**
   * Streams one tensor's bytes at stored width through one reused buffer,
   * so no whole-tensor copy exists.
   *
   * @param name The tensor's name.
   * @param chunkBytes Bytes per chunk (the last may be shorter).
   * @param onChunk Takes each chunk, in order; the buffer is reused after it returns.
   * @returns The tensor's dtype.
   */
  async readChunks(
    name: string,
    chunkBytes: number,
    onChunk: (bytes: Uint8Array) => void,
  ): Promise<WeightDtype> {
    const { t, dtype } = this.#tensor(name);
    const file = this.#files.get(t.file)!;
    const total = t.entry.length;
    const buf = new Uint8Array(Math.min(chunkBytes, total));
    for (let done = 0; done < total; done += chunkBytes) {
      const n = Math.min(chunkBytes, total - done);
      const view = buf.subarray(0, n);
      await readInto(file, t.entry.start + done, view, t.file);
      onChunk(view);
    }
    return dtype;
  }

  /**
   * A tensor's stored dtype as a weight dtype.
   *
   * @param name The tensor's name.
   * @throws {Error} `Cannot load model: ...` when it is missing or not BF16, F16 or F32.
   */
  dtypeOf(name: string): WeightDtype {
    return this.#tensor(name).dtype;
  }

  #tensor(name: string): { t: CheckpointTensor; dtype: WeightDtype } {
    const t = this.tensors.get(name);
    if (!t) fail(`tensor ${name} is missing from the checkpoint`);
    const dtype = WEIGHT_DTYPES[t.entry.dtype];
    if (!dtype) {
      fail(
        `tensor ${name} is ${t.entry.dtype}; weights must be BF16, F16 or F32, so convert the checkpoint`,
      );
    }
    return { t, dtype };
  }

  /**
   * Closes the files.
   */
  close(): void {
    for (const f of this.#files.values()) {
      try {
        f.close();
      } catch {
        // already closed
      }
    }
    this.#files.clear();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function readAt(
  file: Deno.FsFile,
  position: number,
  length: number,
  path: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await readInto(file, position, buf, path);
  return buf;
}

async function readInto(
  file: Deno.FsFile,
  position: number,
  buf: Uint8Array,
  path: string,
): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  let done = 0;
  while (done < buf.length) {
    const n = await file.read(
      buf.subarray(done, Math.min(buf.length, done + (1 << 24))),
    );
    if (n === null) {
      fail(
        `${path} ends after ${
          position + done
        } bytes, before its tensors do; re-download it`,
      );
    }
    done += n;
  }
}
