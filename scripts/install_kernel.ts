/**
 * `deno task kernel [--name deno] [--display Deno]`: installs Deno's Jupyter
 * kernel for the current user with `deno jupyter --install`, then adds
 * `NO_COLOR=1` to the kernelspec's environment so that outputs carry no
 * ANSI color codes. The kernelspec runs deno by the absolute path that
 * `deno jupyter --install` finds for it.
 *
 * @module
 */

/** Options for {@linkcode installKernel}. */
export interface InstallKernelOptions {
  /** The kernelspec's folder name. @default {"deno"} */
  name?: string;
  /** The name shown in Jupyter's kernel picker. @default {"Deno"} */
  display?: string;
  /**
   * Environment for `deno jupyter --install` (e.g. `XDG_DATA_HOME` to
   * install somewhere else on Linux). @default {{}}
   */
  env?: Record<string, string>;
}

/**
 * Installs the kernelspec and returns the folder it was written to.
 *
 * @param options Name, display name, environment.
 * @returns The kernelspec folder (holding `kernel.json`).
 * @throws {Error} When `deno jupyter --install` fails or its output names
 * no folder.
 *
 * @example Install into a temporary data folder (Linux honours XDG_DATA_HOME)
 * ```ts
 * import { installKernel } from "./install_kernel.ts";
 * import assert from "node:assert/strict";
 *
 * if (Deno.build.os === "linux") {
 *   const data = await Deno.makeTempDir();
 *   const dir = await installKernel({ name: "deno-doc-test", env: { XDG_DATA_HOME: data } });
 *   const spec = JSON.parse(await Deno.readTextFile(`${dir}/kernel.json`));
 *   assert.equal(spec.env.NO_COLOR, "1");
 *   assert.ok(spec.argv[0].startsWith("/"), "deno by absolute path");
 *   await Deno.remove(data, { recursive: true });
 * }
 * ```
 */
export async function installKernel(
  options: InstallKernelOptions = {},
): Promise<string> {
  const name = options.name ?? "deno";
  const display = options.display ?? "Deno";
  const result = await new Deno.Command(Deno.execPath(), {
    args: [
      "jupyter",
      "--install",
      "--force",
      "--name",
      name,
      "--display",
      display,
    ],
    env: { ...options.env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(result.stdout) +
    new TextDecoder().decode(result.stderr);
  if (!result.success) {
    throw new Error(
      `Cannot install the Deno Jupyter kernel: \`deno jupyter --install\` failed:\n${text}`,
    );
  }
  const dir = text.match(/installed successfully at (.+?)\.?\s*$/m)?.[1];
  if (!dir) {
    throw new Error(
      `Cannot install the Deno Jupyter kernel: \`deno jupyter --install\` did not say where it wrote the kernelspec:\n${text}`,
    );
  }
  const file = `${dir}/kernel.json`;
  const spec = JSON.parse(await Deno.readTextFile(file));
  spec.env = { ...spec.env, NO_COLOR: "1" };
  await Deno.writeTextFile(file, JSON.stringify(spec, null, 2) + "\n");
  return dir;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const take = (flag: string) => {
    const at = args.indexOf(flag);
    return at >= 0 ? args.splice(at, 2)[1] : undefined;
  };
  const name = take("--name");
  const display = take("--display");
  if (args.length) {
    console.error(
      `Cannot install the kernel: unknown arguments ${
        args.join(" ")
      }; use [--name NAME] [--display "Display name"]`,
    );
    Deno.exit(2);
  }
  try {
    const dir = await installKernel({ name, display });
    const spec = JSON.parse(await Deno.readTextFile(`${dir}/kernel.json`));
    console.log(
      `Deno kernel installed at ${dir} (runs ${spec.argv[0]}, NO_COLOR=1).
Open notebooks/*.ipynb in Jupyter (jupyter lab / jupyter notebook) or VS Code and pick the "${
        display ?? "Deno"
      }" kernel.`,
    );
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
}
