/**
 * Files written whole or not at all: a saved capture or figure replaces the
 * old file only once the new one is completely on disk, so a crash, a full
 * disk or an interrupted kernel never leaves a half-written file where a
 * good one was.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/**
 * Writes `data` to a temporary file beside `path`, flushes it to disk, then
 * renames it over `path` (atomic on POSIX file systems). On failure the
 * temporary file is removed and `path` is left as it was.
 *
 * @param path Where the file goes.
 * @param data Its contents; strings are written as UTF-8.
 * @throws {Deno.errors.NotFound} When the folder does not exist (and the
 * other errors of `Deno.open` and `Deno.rename`), with `path` in the message.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic_write.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/a.txt`, "first");
 * await writeFileAtomic(`${dir}/a.txt`, "second");
 * assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "second");
 * assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["a.txt"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string | URL,
  data: Uint8Array | string,
): Promise<void> {
  const target = path instanceof URL ? fileURLToPath(path) : path;
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  // Same folder, so the rename never crosses file systems.
  const temp = `${target}.${crypto.randomUUID().slice(0, 8)}.partial`;
  try {
    using file = await Deno.open(temp, { write: true, createNew: true });
    for (let at = 0; at < bytes.length;) {
      at += await file.write(bytes.subarray(at));
    }
    await file.sync();
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw rename(error, `Cannot write ${target}`);
  }
  try {
    await Deno.rename(temp, target);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw rename(error, `Cannot replace ${target}`);
  }
}

/** The same error class, with what was being done and what to check. */
function rename(error: unknown, doing: string): Error {
  if (!(error instanceof Error)) return new Error(`${doing}: ${error}`);
  const Class = error.constructor as new (
    message: string,
    options?: ErrorOptions,
  ) => Error;
  return new Class(
    `${doing}: ${error.message}; check that the folder exists and is writable, and that the path is not a folder`,
    { cause: error },
  );
}
