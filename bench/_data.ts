/**
 * Bench captures: generated once by `make_bench_data.py` (the exact wire
 * format, gzip level 9 as Python's `gzip.compress`) and cached under
 * `bench/.data/` (gitignored).
 */

const here = new URL(".", import.meta.url);

/**
 * Path of the cached capture body for T, H and a layer count, generating it
 * first when missing (T=4096 takes about 30 s per layer).
 */
export async function benchCapture(
  t: number,
  h = 8,
  layers = 3,
): Promise<string> {
  const dir = new URL(".data/", here);
  await Deno.mkdir(dir, { recursive: true });
  const path = new URL(`capture-T${t}-H${h}-L${layers}.json`, dir).pathname;
  try {
    await Deno.stat(path);
    return path;
  } catch {
    // Not generated yet.
  }
  console.error(`generating ${path} (T=${t}, H=${h}, ${layers} layers)...`);
  const { success, stderr } = await new Deno.Command("python3", {
    args: [
      new URL("make_bench_data.py", here).pathname,
      path,
      String(t),
      String(h),
      String(layers),
    ],
    stdout: "inherit",
    stderr: "piped",
  }).output();
  if (!success) {
    throw new Error(
      `Cannot generate bench data: make_bench_data.py failed (${
        new TextDecoder().decode(stderr).trim()
      }); it needs python3 with numpy`,
    );
  }
  return path;
}
