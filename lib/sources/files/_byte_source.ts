/**
 * A file or a byte array, read by ranges. Files are read in chunks through
 * one handle, so a tensor is never held twice: each chunk is converted into
 * the output and dropped.
 *
 * @module
 */

/** Bytes per chunk when streaming a file. */
export const CHUNK_BYTES = 4 << 20;

/** A file or bytes, read by ranges. */
export interface ByteSource {
  /** The file name (or `"bytes"`) for messages. */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /** Reads `[offset, offset + length)` (fewer bytes at the end of the source). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Hands `[offset, offset + length)` to `fn` in chunks, in order. Chunks
   * are read into `buffers` reused buffers in turn, so a chunk stays intact
   * until `buffers - 1` more chunks have been handed over (2 lets a zip
   * reader keep the tail of one chunk until the next arrives).
   */
  forEachChunk(
    offset: number,
    length: number,
    fn: (chunk: Uint8Array) => void,
    buffers?: number,
  ): Promise<void>;
  /** Releases the file handle. */
  close(): void;
}

/**
 * Wraps bytes already in memory (no copies: chunks are views).
 *
 * @param bytes The bytes.
 * @param name What to call them in messages.
 * @returns The source.
 *
 * @example
 * ```ts
 * import { bytesSource } from "./_byte_source.ts";
 * import assert from "node:assert/strict";
 *
 * const source = bytesSource(new Uint8Array([1, 2, 3]), "bytes");
 * assert.deepEqual([...await source.read(1, 5)], [2, 3]);
 * ```
 */
export function bytesSource(bytes: Uint8Array, name: string): ByteSource {
  return {
    name,
    size: bytes.length,
    read: (offset, length) =>
      Promise.resolve(bytes.subarray(offset, offset + length)),
    forEachChunk(offset, length, fn) {
      fn(bytes.subarray(offset, offset + length));
      return Promise.resolve();
    },
    close() {},
  };
}

/**
 * Opens a file for ranged reads.
 *
 * @param path The file.
 * @returns The source; call `close()` when done.
 *
 * @example
 * ```ts
 * import { fileSource } from "./_byte_source.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile();
 * await Deno.writeFile(path, new Uint8Array([5, 6, 7]));
 * const source = await fileSource(path);
 * assert.equal(source.size, 3);
 * assert.deepEqual([...await source.read(2, 1)], [7]);
 * source.close();
 * await Deno.remove(path);
 * ```
 */
export async function fileSource(path: string | URL): Promise<ByteSource> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    // Deno's own message names the syscall, not what to do.
    if (error instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot load ${path}: no such file; check the path (relative paths start at ${Deno.cwd()})`,
      );
    }
    throw error;
  }
  try {
    const size = (await file.stat()).size;
    const fill = async (target: Uint8Array, offset: number) => {
      await file.seek(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < target.length) {
        const n = await file.read(target.subarray(at));
        if (n === null) break;
        at += n;
      }
      return target.subarray(0, at);
    };
    return {
      name: String(path),
      size,
      read(offset, length) {
        const n = Math.max(0, Math.min(length, size - offset));
        return fill(new Uint8Array(n), offset);
      },
      async forEachChunk(offset, length, fn, buffers = 1) {
        const end = Math.min(size, offset + length);
        const pool: Uint8Array[] = [];
        for (let at = offset, turn = 0; at < end; at += CHUNK_BYTES, turn++) {
          const n = Math.min(CHUNK_BYTES, end - at);
          const slot = turn % Math.max(1, buffers);
          pool[slot] ??= new Uint8Array(Math.min(CHUNK_BYTES, end - offset));
          const chunk = await fill(pool[slot].subarray(0, n), at);
          if (chunk.length === 0) break;
          fn(chunk);
        }
      },
      close() {
        file.close();
      },
    };
  } catch (error) {
    file.close();
    throw error;
  }
}
