/**
 * `deno task soak`: the reliability soak, part by part, each in its own
 * process with its own time limit, so a part that hangs or crashes is
 * reported and the next still runs.
 *
 * Parts: `soak/fuzz.ts` (10,000 seeded decoder fuzz cases), then
 * `soak/load.ts` (the demo server under load). A new part is one more entry
 * in {@linkcode PARTS}. `deno task soak load` runs only the parts named;
 * flags go to every part, each reading the ones it knows, e.g.
 * `deno task soak fuzz --seed 7` reruns the fuzz cases of seed 7.
 *
 * @module
 */

/** A soak part: a script run with `deno run --allow-all`. */
interface Part {
  name: string;
  file: string;
  /** Skipped, with a note, when the file does not exist. */
  optional: boolean;
  /** The part fails when it runs longer. */
  limitMinutes: number;
}

const PARTS: Part[] = [
  { name: "fuzz", file: "soak/fuzz.ts", optional: false, limitMinutes: 30 },
  { name: "load", file: "soak/load.ts", optional: false, limitMinutes: 15 },
];

const root = new URL("../", import.meta.url);

async function exists(url: URL): Promise<boolean> {
  try {
    await Deno.stat(url);
    return true;
  } catch {
    return false;
  }
}

async function runPart(part: Part, args: string[]): Promise<boolean> {
  const url = new URL(part.file, root);
  if (!(await exists(url))) {
    if (part.optional) {
      console.log(`soak ${part.name}: skipped, ${part.file} is not there`);
      return true;
    }
    console.log(`soak ${part.name}: FAILED, ${part.file} is missing`);
    return false;
  }
  console.log(`soak ${part.name}: ${part.file}`);
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", url.pathname, ...args],
    cwd: root.pathname,
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const timer = setTimeout(() => {
    console.log(
      `soak ${part.name}: over its ${part.limitMinutes}-minute limit, stopping it`,
    );
    child.kill("SIGKILL");
  }, part.limitMinutes * 60_000);
  const status = await child.status;
  clearTimeout(timer);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `soak ${part.name}: ${
      status.success ? "passed" : "FAILED"
    } in ${seconds} s`,
  );
  return status.success;
}

/** The parts named on the command line (all when none), and the flags. */
function selectParts(args: string[]): { parts: Part[]; flags: string[] } {
  const names = args.filter((a, i) =>
    !a.startsWith("-") &&
    // `--seed 7`: the 7 is the flag's value, not a part's name.
    !(i > 0 && args[i - 1].startsWith("--") && !args[i - 1].includes("="))
  );
  const unknown = names.filter((n) => !PARTS.some((p) => p.name === n));
  if (unknown.length) {
    console.error(
      `Cannot run soak part ${unknown.join(", ")}: the parts are ${
        PARTS.map((p) => p.name).join(", ")
      }`,
    );
    Deno.exit(2);
  }
  return {
    parts: names.length ? PARTS.filter((p) => names.includes(p.name)) : PARTS,
    flags: args.filter((a) => !names.includes(a)),
  };
}

if (import.meta.main) {
  const { parts, flags } = selectParts(Deno.args);
  let ok = true;
  for (const part of parts) ok = (await runPart(part, flags)) && ok;
  Deno.exit(ok ? 0 : 1);
}
