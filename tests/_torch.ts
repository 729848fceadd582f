/**
 * Test helper: find a Python with torch and numpy (Debian's python3-torch
 * installs into /usr/bin/python3, which may not be the python3 on PATH).
 *
 * @module
 */

/** A Python interpreter, or why there is none. */
export type TorchPython = { ok: true; python: string } | {
  ok: false;
  reason: string;
};

/** Whether a missing tool should fail the run (CI) rather than skip. */
export const CI = Deno.env.get("CI") === "true";

/** Tries `ATTNSCOPE_PYTHON`, `/usr/bin/python3`, then `python3`. */
export async function findTorchPython(): Promise<TorchPython> {
  const candidates = [
    Deno.env.get("ATTNSCOPE_PYTHON"),
    "/usr/bin/python3",
    "python3",
  ].filter((c): c is string => Boolean(c));
  for (const python of candidates) {
    try {
      const { code } = await new Deno.Command(python, {
        args: ["-c", "import torch, numpy"],
        stdout: "null",
        stderr: "null",
      }).output();
      if (code === 0) return { ok: true, python };
    } catch {
      // Not installed; try the next.
    }
  }
  return {
    ok: false,
    reason: `no Python with torch and numpy (tried ${
      candidates.join(", ")
    }); apt-get install python3-torch (bash .ci/install-system-packages)`,
  };
}

/** Runs a Python script; throws with its stderr when it fails. */
export async function runPython(
  python: string,
  args: string[],
  cwd?: string,
): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(python, {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `${python} ${args.join(" ")} failed (${code}):\n${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  return new TextDecoder().decode(stdout);
}
