/**
 * CI's slice of the decoder fuzz soak (`deno task soak` runs 10,000 cases):
 * 1,000 cases with a new seed each run, printed so a failure can be rerun
 * with `deno run --allow-all soak/fuzz.ts --seed <seed>`. Set
 * `ATTNSCOPE_FUZZ_SEED` to pin the seed.
 */

import assert from "node:assert/strict";
import { formatReport, MUTATION_CLASSES, runFuzz } from "../soak/fuzz.ts";

const CASES = 1000;

function seedFromEnv(): number {
  const text = Deno.env.get("ATTNSCOPE_FUZZ_SEED");
  if (text === undefined || text === "") {
    return Math.floor(Math.random() * 2 ** 31);
  }
  const seed = Number(text);
  if (!Number.isInteger(seed) || seed < 0) {
    throw new RangeError(
      `Cannot run the fuzz slice: ATTNSCOPE_FUZZ_SEED ${
        JSON.stringify(text)
      } is not a non-negative integer; unset it for a random seed`,
    );
  }
  return seed;
}

Deno.test("runFuzz() decodes 1,000 seeded mutations of real bodies, whole and streamed in random chunks, to their declared sizes or refuses them with Cannot errors, within 5 s each, the stream agreeing with the whole body", async () => {
  const seed = seedFromEnv();
  console.log(
    `fuzz seed ${seed} (rerun: ATTNSCOPE_FUZZ_SEED=${seed}, or deno run --allow-all soak/fuzz.ts --seed ${seed} --cases ${CASES})`,
  );
  const report = await runFuzz({ seed, cases: CASES });
  console.log(formatReport(report));
  assert.deepEqual(
    report.failures,
    [],
    `seed ${seed}: ${report.failures.length} case(s) failed`,
  );
  // The slice covers what the soak covers: every class, form and path.
  for (const name of MUTATION_CLASSES) {
    const c = report.classes[name];
    assert.ok(c.cases >= 80, `${name}: ${c.cases} cases`);
    assert.equal(c.decoded + c.refused, c.cases);
  }
  for (const form of ["object", "string", "bytes", "stream"]) {
    assert.ok(report.forms[form] > 100, `${form}: ${report.forms[form]}`);
  }
  assert.equal(Object.keys(report.paths).length, 4);
  // Streams are read on this thread and on a shared pool's workers.
  for (const combo of ["stream, this thread", "stream, shared pool"]) {
    const c = report.byFormAndPath[combo];
    assert.ok(c?.cases > 30, `${combo}: ${c?.cases} cases`);
  }
  assert.ok(report.onWorkers > 100, `${report.onWorkers} cases on workers`);
  assert.ok(report.slowestMs < 5000);
});
