/**
 * `deno task soak`: the reliability soak, part by part, each in its own
 * process with its own time limit, so a part that hangs or crashes is
 * reported and the next still runs.
 *
 * Parts: `soak/fuzz.ts` (10,000 seeded decoder fuzz cases), then
 * `soak/load.ts` when it exists (the demo server under load). A new part is
 * one more entry in {@linkcode PARTS}. Arguments go to every part, e.g.
 * `deno task soak --seed 7` reruns the fuzz cases of seed 7.
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
  { name: "load", file: "soak/load.ts", optional: true, limitMinutes: 15 },
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

if (import.meta.main) {
  let ok = true;
  for (const part of PARTS) ok = (await runPart(part, Deno.args)) && ok;
  Deno.exit(ok ? 0 : 1);
}
