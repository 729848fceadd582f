import assert from "node:assert/strict";
import {
  lostInTheMiddleChart,
  needleHeatmap,
  needleMassChart,
  retrievalHeadsChart,
  sinksChart,
} from "../../lib/charts/sweep.ts";
import { runSweep } from "../../lib/studies/sweep.ts";
import { startDemoServer } from "../../server/serve.ts";

Deno.test("sweep charts draw a real demo sweep, failed cells as missing, and export PNG", async () => {
  await using server = await startDemoServer({ maxModelLen: 200 });
  const sweep = await runSweep("needle", {
    baseUrl: server.baseUrl,
    grid: { lengths: [48, 64], depths: [0, 100] },
    progress: false,
  });
  // A failed trial (as a timeout would leave it) shows as a missing cell.
  const trials = sweep.trials.map((t, i) =>
    i === 0
      ? { ...t, score: null, correct: null, error: "timeout after 1 ms" }
      : t
  );
  const heat = needleHeatmap({ ...sweep, trials });
  assert.match(heat.toSVG(), /missing/);
  assert.match(heat.toString(), /3 of 4 trials answered/);
  const png = await heat.toPNG();
  assert.deepEqual([...png.slice(1, 4)], [0x50, 0x4e, 0x47]);
  const rh = retrievalHeadsChart(sweep);
  assert.match(rh.toString(), /top L1 h0 1\.000/);
  for (
    const fig of [
      needleMassChart(sweep),
      lostInTheMiddleChart(sweep),
      sinksChart(sweep),
    ]
  ) {
    assert.ok((await fig.toPNG()).length > 1000, fig.kind);
  }
});
