/**
 * `deno task soak [PART...] [--seed N] [...]`: runs the soak suite, the long
 * checks kept out of `deno task test`. Each part is a script in `soak/`
 * (`soak/load.ts`: the demo server under load; others as they are added),
 * run in its own process one after another; flags pass through to every
 * part (each reads the ones it knows, e.g. `--seed`). Naming parts runs only
 * those. Prints each part's output, then one line per part, and exits 1 if
 * any failed.
 *
 * @module
 */

const SOAK = new URL("../soak/", import.meta.url);

const names = Deno.args.filter((a) => !a.startsWith("-") && !isFlagValue(a));
const flags = Deno.args.filter((a) => !names.includes(a));

/** `--seed 7`: the 7 is the flag's value, not a part's name. */
function isFlagValue(arg: string): boolean {
  const i = Deno.args.indexOf(arg);
  return i > 0 && Deno.args[i - 1].startsWith("--") &&
    !Deno.args[i - 1].includes("=");
}

const parts = [...Deno.readDirSync(SOAK)]
  .filter((e) => e.isFile && e.name.endsWith(".ts") && !e.name.startsWith("_"))
  .map((e) => e.name.slice(0, -3))
  .sort();
const unknown = names.filter((n) => !parts.includes(n));
if (unknown.length) {
  console.error(
    `Cannot run soak part ${unknown.join(", ")}: there is no soak/${
      unknown[0]
    }.ts; the parts are ${parts.join(", ")}`,
  );
  Deno.exit(2);
}

const results: { part: string; code: number; seconds: number }[] = [];
for (const part of names.length ? names : parts) {
  console.log(`\n== soak/${part}.ts ${flags.join(" ")}`);
  const start = performance.now();
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `soak/${part}.ts`, ...flags],
    cwd: new URL("../", import.meta.url),
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  results.push({ part, code, seconds: (performance.now() - start) / 1000 });
}
console.log("\n== soak summary");
for (const { part, code, seconds } of results) {
  console.log(
    `  ${code === 0 ? "passed" : `FAILED (exit ${code})`}  soak/${part}.ts  ${
      seconds.toFixed(0)
    } s`,
  );
}
if (results.some((r) => r.code !== 0)) Deno.exit(1);
