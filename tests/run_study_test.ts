/**
 * runStudy() and studyReport() on the demo server: the shared study
 * definitions, local prompt labels (the reference's build_token_map) and
 * the report lines.
 */

import assert from "node:assert/strict";
import { runStudy, studyReport } from "../lib/client/run_study.ts";
import {
  CODENAME_STUDY,
  markedPositions,
  NEEDLE_STUDY,
} from "../lib/client/studies.ts";
import { collectWarningsAsync } from "../lib/warn.ts";
import { findSpan, spanAttention } from "../lib/analysis/span.ts";
import { formatFixed } from "../lib/client/compact.ts";
import { startDemoServer } from "../server/serve.ts";

Deno.test("runStudy() with the demo's local labels agrees with prompt_logprobs and names position 0", async () => {
  await using server = await startDemoServer();
  const plain = await runStudy(NEEDLE_STUDY, {
    baseUrl: server.baseUrl,
    demo: true,
  });
  const local = await runStudy(NEEDLE_STUDY, {
    baseUrl: server.baseUrl,
    demo: true,
    promptLabels: server.labelPrompt,
  });
  const p = plain.capture.promptLen;
  assert.equal(
    plain.capture.labels[0],
    "0",
    "prompt_logprobs leaves position 0 out",
  );
  assert.equal(local.capture.labels[0], "<bos>");
  assert.deepEqual(
    local.capture.labels.slice(1),
    plain.capture.labels.slice(1),
  );
  assert.equal(local.layers, "all");
  assert.ok(local.correct);
  // The needle's marks are the tokens spelling "alpha", twice (record and query).
  const spelled = [...local.marks].map((i) => local.capture.labels[i]).join("");
  assert.equal(spelled, "alphaalpha");
  assert.deepEqual(
    local.marks,
    markedPositions(NEEDLE_STUDY, local.capture.labels),
  );
  assert.ok(p > 0);
});

Deno.test("runStudy() keeps the server's labels and warns when the local tokenizer disagrees", async () => {
  await using server = await startDemoServer();
  const { result, warnings } = await collectWarningsAsync(() =>
    runStudy(CODENAME_STUDY, {
      baseUrl: server.baseUrl,
      demo: true,
      layers: "0",
      promptLabels: () => ["<bos>", "too", "short"],
    })
  );
  assert.equal(result.capture.labels[0], "0");
  assert.deepEqual(warnings, [
    `The local tokenizer made 3 prompt tokens but the server reported ${result.capture.promptLen}, so the server's labels are kept; check that the local tokenizer matches the served model`,
  ]);
});

Deno.test("studyReport() prints the banner, the output with ✓ and one block per layer in order", async () => {
  await using server = await startDemoServer();
  const run = await runStudy(CODENAME_STUDY, {
    baseUrl: server.baseUrl,
    demo: true,
  });
  const report = studyReport(run);
  assert.equal(report[0], "=".repeat(60));
  assert.equal(
    report[1],
    `Codename retrieval | model=${server.model} layers=all`,
  );
  assert.equal(report[2], "Prompt:");
  assert.equal(report[3], CODENAME_STUDY.prompt);
  assert.equal(report[4], "Expected: 'Phantom'");
  assert.match(report[5], /^Output: .*Phantom.* ✓$/);
  const headers = report.filter((l) => l.startsWith("── L"));
  const layers = Object.keys(run.capture.attention!).map(Number).sort((a, b) =>
    a - b
  );
  assert.deepEqual(headers.map((h) => Number(h.match(/L(\d+)/)![1])), layers);
  // Each header follows a blank line, as the reference prints "\n── L..".
  for (const h of headers) assert.equal(report[report.indexOf(h) - 1], "");
});

Deno.test("studyReport() ends with the heads that read the answer's record, from spanAttention()", async () => {
  await using server = await startDemoServer();
  const run = await runStudy(NEEDLE_STUDY, {
    baseUrl: server.baseUrl,
    demo: true,
    promptLabels: server.labelPrompt,
  });
  const record = findSpan(run.capture.labels, "alpha", { wholeLine: true });
  assert.equal(record.text, "alpha: 1729↵");
  const direct = spanAttention(run.capture, { span: record });
  assert.deepEqual(run.reading!.heads, direct.heads);
  const [best] = direct.top(1);
  assert.ok(best.mass >= 0.5, `${best.mass}`);
  const report = studyReport(run);
  assert.equal(
    report.at(-1),
    `Readers of "alpha: 1729↵" (positions ${record.start}-${
      record.end - 1
    }), query ${run.capture.promptLen - 1}: ${
      direct.top(3).map((h) =>
        `L${h.layer}H${h.head}=${formatFixed(h.mass, 2)}`
      )
        .join(" ")
    }`,
  );
  assert.equal(report.at(-2), "");
  // Server labels alone (indices at position 0) still spell the record.
  const plain = await runStudy(NEEDLE_STUDY, {
    baseUrl: server.baseUrl,
    demo: true,
  });
  assert.ok(plain.reading !== null);
});
