/**
 * `deno task notebooks [NAME...]`: re-executes the notebooks in
 * `notebooks/` (all, or the named ones) with the nbclient runner and
 * rewrites their outputs in place, so the committed notebooks read well on
 * GitHub. The run uses a private kernelspec for the deno running this task,
 * so it needs no `deno task kernel` first. A notebook with a failing cell is
 * left as it was.
 *
 * @module
 */

import {
  findJupyterPython,
  runNotebooks,
  temporaryJupyter,
} from "./jupyter_env.ts";

/**
 * The notebooks folder, as a path ending in `/`.
 *
 * @example
 * ```ts
 * import { NOTEBOOKS } from "./notebooks.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(NOTEBOOKS.endsWith("/notebooks/"));
 * ```
 */
export const NOTEBOOKS = new URL("../notebooks/", import.meta.url).pathname;

/**
 * Every notebook in `notebooks/`, sorted by name.
 *
 * @returns Absolute paths.
 *
 * @example
 * ```ts
 * import { listNotebooks } from "./notebooks.ts";
 * import assert from "node:assert/strict";
 *
 * const notebooks = await listNotebooks();
 * assert.ok(notebooks.every((path) => path.endsWith(".ipynb")));
 * ```
 */
export async function listNotebooks(): Promise<string[]> {
  const paths: string[] = [];
  for await (const entry of Deno.readDir(NOTEBOOKS)) {
    if (entry.isFile && entry.name.endsWith(".ipynb")) {
      paths.push(NOTEBOOKS + entry.name);
    }
  }
  return paths.sort();
}

if (import.meta.main) {
  const python = await findJupyterPython();
  if (!python.ok) {
    console.error(`Cannot execute the notebooks: ${python.reason}`);
    Deno.exit(1);
  }
  const all = await listNotebooks();
  const wanted = Deno.args.map((a) =>
    a.replace(/^.*\//, "").replace(/\.ipynb$/, "")
  );
  const unknown = wanted.filter((w) =>
    !all.some((p) => p.endsWith(`/${w}.ipynb`))
  );
  if (unknown.length) {
    console.error(
      `Cannot execute ${
        unknown.join(", ")
      }: no such notebook in notebooks/; choose from ${
        all.map((p) => p.replace(/^.*\//, "")).join(", ")
      }`,
    );
    Deno.exit(2);
  }
  const chosen = wanted.length
    ? all.filter((p) => wanted.some((w) => p.endsWith(`/${w}.ipynb`)))
    : all;
  const jupyter = await temporaryJupyter();
  try {
    const result = await runNotebooks(python.path, chosen, {
      env: jupyter.env,
      inherit: true,
    });
    if (!result.success) Deno.exit(1);
  } finally {
    await Deno.remove(jupyter.dir, { recursive: true });
  }
}
