/**
 * `deno task sweep STUDY [--lengths 256,1024] [--depths 0,25,50,75,100]
 * [--seeds N] [--keys N] [--values N] [--api-base URL[,URL...]]
 * [--model NAME] [--layers ...] [--concurrency N] [--out DIR] [--causal-test]`
 *
 * Without `--api-base` the demo server runs in this process. Exits 0 when
 * the sweep completes, whatever the answers.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runSweep } from "../lib/studies/sweep.ts";
import { retrievalScores } from "../lib/studies/reduce.ts";
import { startDemoServer } from "../server/serve.ts";

const USAGE =
  "usage: deno task sweep STUDY [--lengths 256,1024] [--depths 0,50,100] [--seeds N] [--keys N] [--values N] [--api-base URL[,URL...]] [--model NAME] [--layers all] [--concurrency N] [--out DIR] [--causal-test]";

const list = (s: string | undefined, what: string) => {
  if (s === undefined) return undefined;
  const xs = s.split(",").map((x) => Number(x.trim()));
  if (xs.some((x) => !Number.isInteger(x))) {
    throw new Error(
      `Cannot run sweep: --${what} ${
        JSON.stringify(s)
      } is not a comma-separated list of whole numbers; e.g. --${what} 256,1024`,
    );
  }
  return xs;
};
const int = (s: string | undefined, what: string) => {
  if (s === undefined) return undefined;
  const x = Number(s);
  if (!Number.isInteger(x)) {
    throw new Error(
      `Cannot run sweep: --${what} ${JSON.stringify(s)} is not a whole number`,
    );
  }
  return x;
};

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        lengths: { type: "string" },
        depths: { type: "string" },
        seeds: { type: "string" },
        keys: { type: "string" },
        values: { type: "string" },
        "api-base": { type: "string" },
        model: { type: "string" },
        layers: { type: "string" },
        concurrency: { type: "string" },
        out: { type: "string" },
        "causal-test": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    console.error(`Cannot run sweep: ${(error as Error).message}; ${USAGE}`);
    return 2;
  }
  const { values: v, positionals } = parsed;
  if (v.help || positionals.length !== 1) {
    console.error(USAGE);
    return v.help ? 0 : 2;
  }
  const study = positionals[0];
  try {
    const grid = Object.fromEntries(
      Object.entries({
        lengths: list(v.lengths, "lengths"),
        depths: list(v.depths, "depths"),
        seeds: int(v.seeds, "seeds"),
        keys: int(v.keys, "keys"),
        values: int(v.values, "values"),
      }).filter(([, x]) => x !== undefined),
    );
    const demo = v["api-base"] === undefined ? await startDemoServer() : null;
    try {
      const out = v.out ?? `sweeps/${study}`;
      const t0 = performance.now();
      const sweep = await runSweep(study, {
        baseUrls: demo ? [demo.baseUrl] : v["api-base"]!.split(","),
        grid,
        model: v.model,
        layers: v.layers ?? "all",
        concurrency: int(v.concurrency, "concurrency") ?? 1,
        out,
        progress: "tty",
        ...(v["causal-test"] ? { causalTest: "top-retrieval" as const } : {}),
      });
      const ok = sweep.trials.filter((t) => t.correct).length;
      const failed = sweep.trials.filter((t) => t.error !== null);
      console.log(
        `${study}: ${sweep.trials.length} trials, ${ok} correct, ${failed.length} failed, in ${
          ((performance.now() - t0) / 1000).toFixed(1)
        } s; tables in ${out}/trials.jsonl and ${out}/heads.jsonl`,
      );
      for (const f of failed.slice(0, 5)) {
        console.log(`  failed ${f.length}/${f.depth}/${f.seed}: ${f.error}`);
      }
      if (study === "retrieval-heads" || study === "needle") {
        const top = retrievalScores(sweep.trials, sweep.heads).slice(0, 5);
        console.log(
          "top retrieval heads: " +
            top.map((s) => `L${s.layer}h${s.head} ${s.score.toFixed(3)}`)
              .join(", "),
        );
      }
      const c = sweep.causal;
      if (c && c.ran) {
        console.log(
          `causal test: accuracy ${c.accuracy.baseline.toFixed(2)} baseline, ${
            c.accuracy.top!.toFixed(2)
          } with top ${
            c.topHeads.map(([l, h]) => `L${l}h${h}`).join(",")
          } zeroed, ${c.accuracy.random!.toFixed(2)} with random ${
            c.randomHeads.map(([l, h]) => `L${l}h${h}`).join(",")
          } zeroed`,
        );
      } else if (c) console.log(`causal test skipped: ${c.reason}`);
    } finally {
      await demo?.close();
    }
    return 0;
  } catch (error) {
    console.error((error as Error).message);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
