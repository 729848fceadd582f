/**
 * Where browser tests save their screenshots.
 *
 * A test run must leave a clone as it found it, so photographs go to the
 * untracked `.artifacts/photos/`. To refresh the README's pictures under
 * `docs/`, run the photographing tests with `ATTNSCOPE_UPDATE_DOCS=1`.
 *
 * @module
 */

const UPDATE_DOCS = Deno.env.get("ATTNSCOPE_UPDATE_DOCS") === "1";

/**
 * Writes a screenshot named `name` (e.g. "explorer-dark.png") into
 * `.artifacts/photos/`, or into `docs/` when ATTNSCOPE_UPDATE_DOCS=1.
 *
 * @returns The path written.
 */
export async function savePhoto(
  name: string,
  png: Uint8Array,
): Promise<string> {
  const folder = new URL(
    UPDATE_DOCS ? "../docs/" : "../.artifacts/photos/",
    import.meta.url,
  );
  await Deno.mkdir(folder, { recursive: true });
  const file = new URL(name, folder);
  await Deno.writeFile(file, png);
  return file.pathname;
}
