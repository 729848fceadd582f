import assert from "node:assert/strict";
import { runSweep } from "../../lib/studies/sweep.ts";
import { causalChart } from "../../lib/charts/sweep.ts";
import { setWarningHandler } from "../../lib/warn.ts";
import { startDemoServer } from "../../server/serve.ts";

const GRID = { lengths: [48], depths: [0, 100] };

Deno.test("runSweep causalTest zeroes the top retrieval heads (retrieval breaks) and random ones (it does not)", async () => {
  await using server = await startDemoServer();
  const sweep = await runSweep("needle", {
    baseUrl: server.baseUrl,
    grid: GRID,
    progress: false,
    causalTest: "top-retrieval",
    causalK: 1,
  });
  const c = sweep.causal!;
  assert.equal(c.ran, true);
  assert.deepEqual(c.topHeads, [[1, 0]]);
  assert.equal(c.randomHeads.length, 1);
  assert.notDeepEqual(c.randomHeads[0], [1, 0]);
  assert.deepEqual(c.top!.trials.map((t) => t.ablated), [[[1, 0]], [[1, 0]]]);
  assert.equal(c.accuracy.baseline, 1);
  assert.equal(c.accuracy.top, 0);
  assert.match(causalChart(sweep).toSVG(), /top-1 retrieval heads zeroed/);
});

Deno.test("runSweep causalTest says plainly and skips when the server does not echo attn_ablate_heads", async () => {
  await using server = await startDemoServer();
  // A loopback proxy that removes the echo, as a server without ablation would send.
  const proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      const body = req.method === "POST" ? await req.text() : undefined;
      const res = await fetch(server.url + url.pathname, {
        method: req.method,
        body,
        headers: req.headers,
      });
      if (!url.pathname.endsWith("/chat/completions")) return res;
      const json = await res.json();
      delete json.attn_ablate_heads;
      return Response.json(json, { status: res.status });
    },
  );
  const warnings: string[] = [];
  const previous = setWarningHandler((m: string) => {
    warnings.push(m);
  });
  try {
    const sweep = await runSweep("needle", {
      baseUrl: `http://127.0.0.1:${proxy.addr.port}/v1`,
      grid: GRID,
      progress: false,
      causalTest: "top-retrieval",
    });
    assert.equal(sweep.causal!.ran, false);
    assert.match(sweep.causal!.reason!, /does not echo attn_ablate_heads/);
    assert.ok(
      warnings.some((w) => /The causal test is skipped/.test(w)),
      warnings.join("\n"),
    );
    assert.throws(
      () => causalChart(sweep),
      /Cannot draw the causal test: it was skipped/,
    );
  } finally {
    setWarningHandler(previous);
    await proxy.shutdown();
  }
});
