import assert from "node:assert/strict";
import { loadSweep, runSweep } from "../../lib/studies/sweep.ts";
import { reduceCapture, retrievalScores } from "../../lib/studies/reduce.ts";
import {
  gridTrials,
  resolveGrid,
  trialPrompt,
} from "../../lib/studies/trials.ts";
import { captureAttention } from "../../lib/client/client.ts";
import { findSpan } from "../../lib/analysis/span.ts";
import { startDemoServer } from "../../server/serve.ts";

const GRID = { lengths: [48], depths: [0, 50, 100] };
const strip = (rows: { latency_ms: number | null; server: string }[]) =>
  rows.map((r) => ({ ...r, latency_ms: 0, server: "" }));

Deno.test("runSweep is deterministic: same grid and seed, same prompts and results", async () => {
  await using server = await startDemoServer();
  const a = await runSweep("needle", {
    baseUrl: server.baseUrl,
    grid: GRID,
    progress: false,
  });
  const b = await runSweep("needle", {
    baseUrl: server.baseUrl,
    grid: GRID,
    progress: false,
  });
  assert.deepEqual(strip(a.trials), strip(b.trials));
  assert.deepEqual(a.heads, b.heads);
  const t = gridTrials("needle", resolveGrid("needle", GRID))[1];
  assert.deepEqual(
    trialPrompt(t, 6, { keys: 1, values: 1 }),
    trialPrompt(t, 6, { keys: 1, values: 1 }),
  );
  assert.equal(a.trials.length, 3);
  for (const r of a.trials) {
    assert.equal(r.error, null);
    assert.ok(
      Math.abs(r.prompt_tokens! - r.length) <= 0.1 * r.length,
      `${r.prompt_tokens} vs ${r.length}`,
    );
  }
  // The retrieval head the demo model is built with (L1 h0, the induction head) ranks first.
  const [top] = retrievalScores(a.trials, a.heads);
  assert.deepEqual([top.layer, top.head], [1, 0]);
});

Deno.test("runSweep refuses an unknown study, a malformed grid and a grid past the context", async () => {
  await using server = await startDemoServer({ maxModelLen: 512 });
  await assert.rejects(
    runSweep("nope", { baseUrl: server.baseUrl }),
    /Cannot run sweep "nope": no such study/,
  );
  await assert.rejects(
    runSweep("needle", { baseUrl: server.baseUrl, grid: { depths: [-1] } }),
    /Cannot run sweep "needle": the grid's depths/,
  );
  await assert.rejects(
    runSweep("needle", {
      baseUrl: server.baseUrl,
      grid: { lengths: [100000] },
      progress: false,
    }),
    /past .*context/,
  );
});

Deno.test("runSweep spreads trials over several endpoints", async () => {
  await using a = await startDemoServer();
  await using b = await startDemoServer();
  const sweep = await runSweep("needle", {
    baseUrls: [a.baseUrl, b.baseUrl],
    concurrency: 2,
    grid: { lengths: [48], depths: [0, 25, 50, 75] },
    progress: false,
  });
  const servers = new Set(sweep.trials.map((t) => t.server));
  assert.deepEqual([...servers].sort(), [a.baseUrl, b.baseUrl].sort());
  assert.ok(sweep.trials.every((t) => t.correct));
});

Deno.test("runSweep retries a 503 after its Retry-After", async () => {
  await using server = await startDemoServer();
  let refused = 0;
  let at = 0;
  let retried = 0;
  const proxy = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      if (url.pathname.endsWith("/chat/completions")) {
        const body = await req.text();
        if (body.includes("attn_capture") && refused < 2) {
          refused++;
          at = performance.now();
          return new Response(JSON.stringify({ error: { message: "busy" } }), {
            status: 503,
            headers: { "retry-after": "1" },
          });
        }
        if (
          body.includes("attn_capture") && refused === 2 && retried === 0
        ) retried = performance.now() - at;
        return await fetch(server.url + url.pathname, {
          method: "POST",
          body,
          headers: req.headers,
        });
      }
      return await fetch(server.url + url.pathname, {
        method: req.method,
        body: req.body,
        headers: req.headers,
      });
    },
  );
  try {
    const sweep = await runSweep("needle", {
      baseUrl: `http://127.0.0.1:${proxy.addr.port}/v1`,
      grid: { lengths: [48], depths: [50] },
      progress: false,
    });
    assert.equal(refused, 2);
    assert.ok(retried >= 900, `retried after ${retried} ms`);
    assert.equal(sweep.trials[0].error, null);
    assert.equal(sweep.trials[0].correct, true);
  } finally {
    await proxy.shutdown();
  }
});

Deno.test("runSweep resumes after its process is killed mid-sweep, without duplicates", async () => {
  const out = await Deno.makeTempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("../../scripts/sweep.ts", import.meta.url).pathname,
      "needle",
      "--lengths",
      "48,64",
      "--depths",
      "0,25,50,75,100",
      "--out",
      out,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const cached = () => {
    try {
      return [...Deno.readDirSync(`${out}/cache`)].filter((e) =>
        e.name.endsWith(".json")
      ).length;
    } catch {
      return 0;
    }
  };
  const deadline = Date.now() + 120_000;
  while (cached() < 2 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill("SIGKILL");
  await child.status;
  const before = cached();
  assert.ok(before >= 2 && before < 10, `cached ${before}`);
  await using server = await startDemoServer();
  let fromCache = 0;
  const grid = { lengths: [48, 64], depths: [0, 25, 50, 75, 100] };
  const sweep = await runSweep("needle", {
    baseUrl: server.baseUrl,
    grid,
    out,
    progress: false,
    onProgress: (p) => {
      fromCache = p.cached;
    },
  });
  assert.equal(fromCache, before);
  assert.equal(sweep.trials.length, 10);
  const again = await runSweep("needle", {
    baseUrl: server.baseUrl,
    grid,
    out,
    progress: false,
    onProgress: (p) => {
      fromCache = p.cached;
    },
  });
  assert.equal(fromCache, 10);
  const loaded = await loadSweep(out);
  assert.equal(loaded.trials.length, 10);
  assert.equal(
    new Set(loaded.trials.map((t) => `${t.length}|${t.depth}|${t.seed}`)).size,
    10,
  );
  assert.deepEqual(loaded.trials, again.trials);
  assert.equal(loaded.heads.length, 10 * 24);
  await Deno.remove(out, { recursive: true });
});

Deno.test("reduceCapture gives the same numbers from attn_capture_prefix rows as from full captures", async () => {
  await using server = await startDemoServer();
  const prompt = "item101: 4321\nitem202: 8765\nitem303: 1111\nitem202:";
  const full = await captureAttention({
    baseUrl: server.baseUrl,
    prompt,
    layers: "all",
    maxTokens: 8,
    progress: false,
  });
  const part = await captureAttention({
    baseUrl: server.baseUrl,
    prompt,
    layers: "all",
    maxTokens: 8,
    progress: false,
    capturePrefix: `${full.promptLen - 1}:`,
  });
  assert.ok(
    part.attention![1].scores.queryLength <
      full.attention![1].scores.queryLength,
  );
  const needle = findSpan(full.labels, "item202: 8765");
  const answer = findSpan(full.labels, "8765");
  const spans = {
    promptLen: full.promptLen,
    labels: full.labels,
    needle,
    answer,
  };
  const a = reduceCapture(full.attention!, spans),
    b = reduceCapture(part.attention!, spans);
  assert.equal(a.length, 24);
  for (let i = 0; i < a.length; i++) {
    for (
      const k of [
        "needle_mass",
        "sink_mass",
        "entropy",
        "retrieval_hits",
      ] as const
    ) {
      assert.ok(
        Math.abs(a[i][k] - b[i][k]) < 1e-6,
        `${k} L${a[i].layer}h${a[i].head}`,
      );
    }
  }
  const l1h0 = a.find((h) => h.layer === 1 && h.head === 0)!;
  assert.equal(l1h0.retrieval_hits, 4);
});

Deno.test("retrievalScores matches a hand-computed case", () => {
  // Two correct trials (answer spans of 4 and 2 tokens), one wrong one that must not count.
  const trials = [
    {
      length: 1,
      depth: 0,
      seed: 0,
      correct: true,
      answer_start: 10,
      answer_end: 14,
    },
    {
      length: 1,
      depth: 0,
      seed: 1,
      correct: true,
      answer_start: 5,
      answer_end: 7,
    },
    {
      length: 1,
      depth: 0,
      seed: 2,
      correct: false,
      answer_start: 5,
      answer_end: 7,
    },
  ];
  const row = (seed: number, layer: number, head: number, hits: number) => ({
    length: 1,
    depth: 0,
    seed,
    layer,
    head,
    retrieval_hits: hits,
  });
  const heads = [
    row(0, 1, 0, 4),
    row(1, 1, 0, 1),
    row(2, 1, 0, 2),
    row(0, 0, 3, 1),
    row(1, 0, 3, 0),
  ];
  // L1h0: (4/4 + 1/2) / 2 = 0.75; L0h3: (1/4 + 0) / 2 = 0.125.
  assert.deepEqual(retrievalScores(trials, heads), [
    { layer: 1, head: 0, score: 0.75 },
    { layer: 0, head: 3, score: 0.125 },
  ]);
});
