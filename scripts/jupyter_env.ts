/**
 * Finding Jupyter and Chromium on this machine, writing a Deno kernelspec,
 * and running notebooks through `scripts/run_notebooks.py`. Shared by
 * `deno task kernel`, `deno task notebooks` and the notebook tests.
 *
 * @module
 */

/** A tool found on this machine, or why it is missing. */
export type Found =
  | { ok: true; path: string }
  | { ok: false; reason: string };

/** The folder holding this file (scripts/). */
const SCRIPTS = new URL(".", import.meta.url);

/** `scripts/run_notebooks.py`, the nbclient runner. */
export const RUNNER_PATH: string = new URL("run_notebooks.py", SCRIPTS)
  .pathname;

async function runs(cmd: string, args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(cmd, {
      args,
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/**
 * Finds a Python that can import nbclient, nbformat and nbconvert:
 * `$ATTNSCOPE_JUPYTER_PYTHON` when set (and then only that one), else
 * `/usr/bin/python3` (Debian's Jupyter), then `python3` on PATH.
 *
 * @returns The interpreter, or why none fits and what to install.
 *
 * @example
 * ```ts
 * import { findJupyterPython } from "./jupyter_env.ts";
 * import assert from "node:assert/strict";
 *
 * const found = await findJupyterPython();
 * assert.ok(found.ok ? found.path.length > 0 : /apt-get install/.test(found.reason));
 * ```
 */
export async function findJupyterPython(): Promise<Found> {
  const chosen = Deno.env.get("ATTNSCOPE_JUPYTER_PYTHON");
  const candidates = chosen ? [chosen] : ["/usr/bin/python3", "python3"];
  for (const path of candidates) {
    if (await runs(path, ["-c", "import nbclient, nbformat, nbconvert"])) {
      return { ok: true, path };
    }
  }
  return {
    ok: false,
    reason: `no Python with nbclient and nbconvert (tried ${
      candidates.join(", ")
    }); install Jupyter with \`apt-get install jupyter-nbconvert python3-nbclient jupyter-client\` or set ATTNSCOPE_JUPYTER_PYTHON`,
  };
}

/**
 * Finds a Chromium or Chrome for headless screenshots:
 * `$ATTNSCOPE_CHROMIUM` when set (and then only that one), else
 * `/usr/bin/chromium`, then `chromium`, `chromium-browser` and
 * `google-chrome` on PATH.
 *
 * @returns The browser, or why none runs and what to install.
 *
 * @example
 * ```ts
 * import { findChromium } from "./jupyter_env.ts";
 * import assert from "node:assert/strict";
 *
 * const found = await findChromium();
 * assert.ok(found.ok ? found.path.length > 0 : /chromium/.test(found.reason));
 * ```
 */
export async function findChromium(): Promise<Found> {
  const chosen = Deno.env.get("ATTNSCOPE_CHROMIUM");
  const candidates = chosen
    ? [chosen]
    : ["/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"];
  for (const path of candidates) {
    if (await runs(path, ["--headless", "--no-sandbox", "--version"])) {
      return { ok: true, path };
    }
  }
  return {
    ok: false,
    reason: `no Chromium runs here (tried ${
      candidates.join(", ")
    }); install it with \`apt-get install chromium fonts-dejavu-core\` or set ATTNSCOPE_CHROMIUM`,
  };
}

/** Options for {@linkcode kernelSpec}. */
export interface KernelSpecOptions {
  /** The name shown in Jupyter's kernel picker. @default {"Deno"} */
  displayName?: string;
}

/** A Jupyter kernelspec (`kernel.json`). */
export interface KernelSpec {
  /** The command Jupyter starts, with `{connection_file}` filled in by Jupyter. */
  argv: string[];
  /** The name shown in the kernel picker. */
  display_name: string;
  /** The language of the cells. */
  language: string;
  /** Environment for the kernel process. */
  env: Record<string, string>;
}

/**
 * The kernelspec for Deno's kernel at `denoPath`, with `NO_COLOR=1` so that
 * `text/plain` outputs carry no ANSI color codes.
 *
 * @param denoPath Absolute path of the deno binary (`Deno.execPath()`).
 * @param options Display name.
 * @returns The `kernel.json` content.
 *
 * @example
 * ```ts
 * import { kernelSpec } from "./jupyter_env.ts";
 * import assert from "node:assert/strict";
 *
 * const spec = kernelSpec("/usr/local/bin/deno");
 * assert.deepEqual(spec.argv, ["/usr/local/bin/deno", "jupyter", "--kernel", "--conn", "{connection_file}"]);
 * assert.equal(spec.env.NO_COLOR, "1");
 * ```
 */
export function kernelSpec(
  denoPath: string,
  options: KernelSpecOptions = {},
): KernelSpec {
  return {
    argv: [denoPath, "jupyter", "--kernel", "--conn", "{connection_file}"],
    display_name: options.displayName ?? "Deno",
    language: "typescript",
    env: { NO_COLOR: "1" },
  };
}

/** A private Jupyter setup in a temporary folder. */
export interface TemporaryJupyter {
  /** The temporary folder; remove it when done. */
  dir: string;
  /** Environment variables that point Jupyter at the folder. */
  env: Record<string, string>;
}

/**
 * Writes a Deno kernelspec named `deno` for the running deno binary into a
 * new temporary folder, and returns the environment (`JUPYTER_PATH`,
 * `JUPYTER_DATA_DIR`, `JUPYTER_RUNTIME_DIR`) that makes Jupyter find it
 * first. Runs are then self-contained: they use this deno, whatever the
 * user has installed.
 *
 * @returns The folder and the environment.
 *
 * @example
 * ```ts
 * import { temporaryJupyter } from "./jupyter_env.ts";
 * import assert from "node:assert/strict";
 *
 * const jupyter = await temporaryJupyter();
 * const spec = JSON.parse(await Deno.readTextFile(`${jupyter.dir}/kernels/deno/kernel.json`));
 * assert.equal(spec.argv[0], Deno.execPath());
 * assert.equal(jupyter.env.JUPYTER_PATH, jupyter.dir);
 * await Deno.remove(jupyter.dir, { recursive: true });
 * ```
 */
export async function temporaryJupyter(): Promise<TemporaryJupyter> {
  const dir = await Deno.makeTempDir({ prefix: "attnscope-jupyter-" });
  await Deno.mkdir(`${dir}/kernels/deno`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/kernels/deno/kernel.json`,
    JSON.stringify(kernelSpec(Deno.execPath()), null, 2) + "\n",
  );
  return {
    dir,
    env: {
      JUPYTER_PATH: dir,
      JUPYTER_DATA_DIR: `${dir}/data`,
      JUPYTER_RUNTIME_DIR: `${dir}/runtime`,
      NO_COLOR: "1",
    },
  };
}

/** Options for {@linkcode runNotebooks}. */
export interface RunNotebooksOptions {
  /** Write executed notebooks here; in place when omitted. @default {undefined} */
  outputDir?: string;
  /** Seconds per cell. @default {180} */
  timeout?: number;
  /** Extra environment (e.g. from {@linkcode temporaryJupyter}). @default {{}} */
  env?: Record<string, string>;
  /** Print the runner's output as it comes instead of collecting it. @default {false} */
  inherit?: boolean;
}

/** What a runner invocation returned. */
export interface RunNotebooksResult {
  /** True when every notebook executed without a cell error. */
  success: boolean;
  /** The runner's stdout and stderr (empty with `inherit`). */
  output: string;
}

/**
 * Executes notebooks with `scripts/run_notebooks.py` (nbclient, waiting
 * briefly after idle so no late output is lost).
 *
 * @param python A Python that has nbclient ({@linkcode findJupyterPython}).
 * @param notebooks Notebook paths.
 * @param options Output folder, timeout, environment.
 * @returns Success and the runner's messages.
 *
 * @example A missing notebook is reported, not executed
 * ```ts
 * import { findJupyterPython, runNotebooks } from "./jupyter_env.ts";
 * import assert from "node:assert/strict";
 *
 * const python = await findJupyterPython();
 * if (python.ok) {
 *   const result = await runNotebooks(python.path, ["no-such.ipynb"]);
 *   assert.equal(result.success, false);
 *   assert.match(result.output, /no-such\.ipynb: no such file/);
 * }
 * ```
 */
export async function runNotebooks(
  python: string,
  notebooks: string[],
  options: RunNotebooksOptions = {},
): Promise<RunNotebooksResult> {
  const args = [RUNNER_PATH, "--timeout", String(options.timeout ?? 180)];
  if (options.outputDir) args.push("--output-dir", options.outputDir);
  const stdio = options.inherit ? "inherit" : "piped";
  const result = await new Deno.Command(python, {
    args: [...args, ...notebooks],
    env: options.env ?? {},
    stdout: stdio,
    stderr: stdio,
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    success: result.success,
    output: options.inherit
      ? ""
      : decode(result.stdout) + decode(result.stderr),
  };
}
