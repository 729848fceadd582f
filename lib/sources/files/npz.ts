/**
 * Reading numpy's `.npz` (a zip of `.npy` files, stored by `np.savez` or
 * deflated by `np.savez_compressed`, with zip64 headers) as a stream with
 * fflate's `Unzip`: the archive is pushed through in chunks and each entry's
 * bytes come out in chunks, so an entry is never held whole.
 *
 * fflate was picked over unzipit after measuring both on a 96 MiB archive
 * (3 float32 layers, T=1024, H=8; bench/sources_bench.ts): fflate's
 * streaming `Unzip` hands stored entries over as views of the pushed
 * chunks (no copy; unzipSync took about 1.0 s and unzipit 1.6 s to return
 * them whole), reads zip64 local headers as numpy writes them, is
 * synchronous and has no dependencies; unzipit only returns whole entries,
 * which would hold each layer twice. Both inflate in JavaScript (fflate 4.9
 * s, unzipit 3.6 s for the deflated archive), so deflated entries go to
 * `node:zlib` through a decoder registered with fflate (`_zlib_inflate.ts`).
 *
 * @module
 */

import {
  type FlateError,
  Unzip,
  type UnzipDecoder,
  type UnzipDecoderConstructor,
  type UnzipFile,
  UnzipPassThrough,
} from "npm:fflate@^0.8.3";
import { deflateDecoder } from "./_zlib_inflate.ts";
import type { ByteSource } from "./_byte_source.ts";

/** What the archive says about an entry before its bytes arrive. */
export interface ZipEntryInfo {
  /** The entry name. */
  name: string;
  /** Bytes stored in the archive. */
  compressedSize: number;
  /** Bytes after inflating, as the archive claims (undefined when it does not say). */
  originalSize: number | undefined;
  /** 0 stored, 8 deflated. */
  compression: number;
}

/** Receives one entry's bytes in order. */
export interface NpzEntryReader {
  /** The next bytes of the entry; the view is valid only during the call. */
  push(chunk: Uint8Array): void;
  /** The entry is complete. */
  end(): void;
}

/**
 * Decoders that drop the bytes of skipped entries. fflate keeps every chunk
 * of an entry that is not started (so that it can be started later), so a
 * skipped entry is started too, with a decoder that drops what it gets:
 * skipping costs neither memory nor inflating.
 */
function decoders(skipped: Set<string>) {
  const make = (compression: number, Inner: UnzipDecoderConstructor) =>
    class SkippingDecoder implements UnzipDecoder {
      static compression = compression;
      ondata: (
        err: FlateError | null,
        data: Uint8Array,
        final: boolean,
      ) => void = () => {};
      #inner: UnzipDecoder | null;
      constructor(name: string) {
        this.#inner = skipped.has(name) ? null : new Inner(name);
        if (this.#inner) {
          // fflate sets ondata after construction: forward at call time.
          this.#inner.ondata = (err, data, final) =>
            this.ondata(err, data, final);
        }
      }
      push(data: Uint8Array, final: boolean): void {
        if (this.#inner) this.#inner.push(data, final);
        else if (final) this.ondata(null, new Uint8Array(0), true);
      }
    };
  return [make(0, UnzipPassThrough), make(8, deflateDecoder())];
}

/**
 * Whether bytes start like a zip archive (`PK\x03\x04`).
 *
 * @param bytes The first bytes of a file.
 * @returns `true` for a zip local file header.
 *
 * @example
 * ```ts
 * import { isZip } from "./npz.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isZip(new Uint8Array([0x50, 0x4b, 3, 4])), true);
 * ```
 */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    bytes[2] === 3 && bytes[3] === 4;
}

/**
 * Streams an archive's entries: `open` is called with each entry name and
 * returns a reader for its bytes, or `null` to skip it (a skipped entry is
 * not inflated).
 *
 * @param source The archive.
 * @param open Decides per entry.
 * @returns The names of every entry, in order.
 * @throws {Error} The first error a reader throws, or a zip error as `SyntaxError`.
 *
 * @example
 * ```ts
 * import { readZipEntries } from "./npz.ts";
 * import { bytesSource } from "./_byte_source.ts";
 * import { zipSync } from "fflate";
 * import assert from "node:assert/strict";
 *
 * const zip = zipSync({ "a.npy": new Uint8Array([1, 2]), "b.npy": new Uint8Array([3]) });
 * const seen: number[] = [];
 * const names = await readZipEntries(bytesSource(zip, "x.npz"), (name) =>
 *   name === "a.npy" ? { push: (c) => seen.push(...c), end() {} } : null);
 * assert.deepEqual(names, ["a.npy", "b.npy"]);
 * assert.deepEqual(seen, [1, 2]);
 * ```
 */
export async function readZipEntries(
  source: ByteSource,
  open: (name: string, info: ZipEntryInfo) => NpzEntryReader | null,
): Promise<string[]> {
  const names: string[] = [];
  const unfinished = new Set<string>();
  let failure: unknown = null;
  const skipped = new Set<string>();
  const unzip = new Unzip();
  for (const decoder of decoders(skipped)) unzip.register(decoder);
  unzip.onfile = (file: UnzipFile) => {
    names.push(file.name);
    const drop = () => {
      skipped.add(file.name);
      file.ondata = () => {};
      file.start();
    };
    if (failure) return drop();
    let reader: NpzEntryReader | null;
    try {
      reader = open(file.name, {
        name: file.name,
        compressedSize: file.size ?? 0,
        originalSize: file.originalSize,
        compression: file.compression,
      });
    } catch (error) {
      failure = error;
      return drop();
    }
    if (!reader) return drop();
    unfinished.add(file.name);
    file.ondata = (error, chunk, final) => {
      if (failure) return;
      try {
        if (error) {
          throw new SyntaxError(
            `zip entry "${file.name}" cannot be read (${error.message})`,
          );
        }
        if (chunk.length) reader.push(chunk);
        if (final) {
          unfinished.delete(file.name);
          reader.end();
        }
      } catch (e) {
        failure = e;
      }
    };
    file.start();
  };
  let pushed = 0;
  await source.forEachChunk(0, source.size, (chunk) => {
    if (failure) return;
    pushed += chunk.length;
    try {
      unzip.push(chunk, pushed >= source.size);
    } catch (error) {
      const last = names[names.length - 1];
      failure ??= new SyntaxError(
        last === undefined
          ? `it is not a readable zip archive (${(error as Error).message})`
          : `zip entry "${last}" is cut off (${
            (error as Error).message
          }): the archive is truncated`,
      );
    }
  }, 2);
  if (failure) throw failure;
  if (unfinished.size > 0) {
    throw new SyntaxError(
      `zip entry "${[...unfinished][0]}" is cut off: the archive is truncated`,
    );
  }
  return names;
}
