/**
 * Side-by-side: attnscope's decoder against the two-core inflate floor on
 * the same bytes (base64 + `node:zlib` gunzip of each layer, on as many
 * workers as the decoder's pool; `_floor.ts`), at T=4096, H=8, 3 and 9
 * layers, float32 and float16 output. Runs alternate (floor, float32,
 * float16, ...) so drift on a shared machine hits all alike; prints a
 * markdown table of medians, the decode / floor ratio of the medians and
 * the median of each run's decode / the floor run just before it.
 *
 *   deno run -A bench/decode_floor.ts [--layers=3,9] [--runs=5] [--t=4096]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { DecodePool } from "../lib/sources/vllm/decode.ts";
import { benchCapture } from "./_data.ts";
import { FloorPool } from "./_floor.ts";

const { values } = parseArgs({
  options: {
    layers: { type: "string", default: "3,9" },
    runs: { type: "string", default: "5" },
    t: { type: "string", default: "4096" },
    warmup: { type: "string", default: "1" },
  },
});
const runs = Number(values.runs);
const t = Number(values.t);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const rows: string[] = [];
for (const layers of values.layers.split(",").map(Number)) {
  const body = await Deno.readFile(await benchCapture(t, 8, layers));
  const floor = await FloorPool.open(body);
  const pool = new DecodePool();
  const times = {
    floor: [] as number[],
    float32: [] as number[],
    float16: [] as number[],
  };
  try {
    for (let run = -Number(values.warmup); run < runs; run++) {
      const t0 = performance.now();
      await floor.run();
      const t1 = performance.now();
      await extractAttentionFromResponse(body, { dtype: "float32", pool });
      const t2 = performance.now();
      await extractAttentionFromResponse(body, { dtype: "float16", pool });
      const t3 = performance.now();
      // Runs below 0 warm up.
      if (run < 0) continue;
      times.floor.push(t1 - t0);
      times.float32.push(t2 - t1);
      times.float16.push(t3 - t2);
      console.error(
        `T=${t} x${layers} run ${run + 1}/${runs}: floor ${
          (t1 - t0).toFixed(0)
        } ms, float32 ${(t2 - t1).toFixed(0)} ms, float16 ${
          (t3 - t2).toFixed(0)
        } ms`,
      );
    }
  } finally {
    floor.close();
    pool.close();
  }
  const f = median(times.floor);
  const a = median(times.float32), b = median(times.float16);
  // Each run's decode against the floor run just before it: on a shared
  // machine whose load swings, adjacent runs are the fairer pairs.
  const paired = (xs: number[]) =>
    median(xs.map((x, i) => x / times.floor[i])).toFixed(2);
  rows.push(
    `| T=${t} x ${layers} layers (${
      (body.length / 2 ** 20).toFixed(0)
    } MiB) | ${f.toFixed(0)} | ${a.toFixed(0)} | ${(a / f).toFixed(2)}x | ${
      paired(times.float32)
    }x | ${b.toFixed(0)} | ${(b / f).toFixed(2)}x | ${
      paired(times.float16)
    }x |`,
  );
}
console.log(
  `\nDecode vs the inflate floor (${FloorPool.defaultSize()} workers each), median of ${runs} alternating runs, ms:\n`,
);
console.log(
  "| body | floor: base64 + node:zlib | attnscope float32 | / floor | median of paired runs | attnscope float16 | / floor | median of paired runs |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const row of rows) console.log(row);
