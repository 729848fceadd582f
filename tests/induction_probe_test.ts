import assert from "node:assert/strict";
import {
  findRepeat,
  inductionProbe,
  inductionPrompt,
  PROBE_WORDS,
} from "../lib/client/induction_probe.ts";
import {
  inductionScore,
  previousTokenScore,
} from "../lib/analysis/metrics/mod.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { startDemoServer } from "../server/serve.ts";
import "../lib/charts/metrics.ts";

Deno.test("inductionPrompt() draws distinct words, repeated once, reproducibly", () => {
  const a = inductionPrompt({ length: 30, seed: 7 });
  const b = inductionPrompt({ length: 30, seed: 7 });
  const c = inductionPrompt({ length: 30, seed: 8 });
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.words, c.words);
  assert.equal(new Set(a.words).size, 30);
  assert.ok(a.words.every((w) => PROBE_WORDS.includes(w)));
  assert.equal(a.text, `Words: ${a.words.join(" ")} ${a.words.join(" ")}`);
  assert.throws(
    () => inductionPrompt({ length: 5, vocabulary: ["a", "b", "a"] }),
    /5 distinct words needed but the vocabulary has 2/,
  );
  assert.throws(
    () => inductionPrompt({ length: 1 }),
    /length 1 is not an integer of at least 2/,
  );
});

Deno.test("findRepeat() finds the longest immediately repeated run", () => {
  assert.deepEqual(findRepeat([1, 2, 3, 1, 2, 3], 2), { start: 0, length: 3 });
  // The longest run wins over an earlier shorter one.
  assert.deepEqual(
    findRepeat(["x", "x", "a", "b", "c", "d", "a", "b", "c", "d", "z"], 2),
    { start: 2, length: 4 },
  );
  assert.equal(findRepeat([1, 2, 3, 4], 1), null);
  assert.equal(findRepeat([1, 1], 2), null);
});

Deno.test("inductionProbe() finds the demo model's induction head in its last layer and its previous-token head in layer 0", async () => {
  await using server = await startDemoServer();
  const probe = await inductionProbe({
    baseUrl: server.baseUrl,
    length: 30,
    seed: 3,
  });
  const { start, length } = probe.repeat;
  const labels = probe.capture.labels;
  // The two copies are the same tokens, and hold the prompt's words.
  assert.deepEqual(
    labels.slice(start, start + length),
    labels.slice(start + length, start + 2 * length),
  );
  assert.ok(start + 2 * length <= probe.capture.promptLen);
  const layers = probe.summary.layers;
  const last = layers[layers.length - 1];
  const [best] = probe.summary.top("induction", 1);
  assert.equal(
    best.layer,
    last,
    `strongest induction head ${JSON.stringify(best)}`,
  );
  assert.ok(best.value > 0.5, `induction score ${best.value}`);
  assert.deepEqual(probe.inductionHeads().map((h) => h.layer), [last]);
  const [prev] = probe.summary.top("previousToken", 1);
  assert.equal(prev.layer, layers[0]);
  assert.ok(prev.value > 0.5, `previous-token score ${prev.value}`);
  // The summary's scores are the metrics on the second copy's rows.
  const scores = probe.capture.attention![last].scores;
  const second = { start: start + length, end: start + 2 * length };
  const direct = inductionScore(scores, {
    tokens: probe.summary.labels!.map((l, i) => l === String(i) ? `#${i}` : l),
    queryRange: second,
  });
  assert.equal(
    probe.summary.get("induction", last, best.head),
    direct[best.head],
  );
  // On the whole sequence, where the first copy has nothing to induce from, the score is lower.
  const whole = inductionScore(scores, {
    tokens: labels.map((l, i) => l === String(i) ? `#${i}` : l),
  })[best.head];
  assert.ok(whole < best.value, `${whole} vs ${best.value}`);
  assert.ok(
    previousTokenScore(probe.capture.attention![layers[0]].scores)[prev.head] >
      0.5,
  );
  // It shows itself as heatmaps, with the induction head's attention.
  const bundle = await probe[JUPYTER_DISPLAY]();
  assert.match(
    String(bundle["text/plain"]),
    /^Induction probe: 30 random words \(\d+ tokens\) repeated/,
  );
  assert.match(
    String(bundle["text/html"]),
    new RegExp(`Layer ${last} · head ${best.head}`),
  );
});

Deno.test("inductionProbe() captures only the requested layers", async () => {
  await using server = await startDemoServer();
  const probe = await inductionProbe({
    baseUrl: server.baseUrl,
    length: 10,
    layers: [1],
  });
  assert.deepEqual(probe.summary.layers, [1]);
  assert.ok(
    probe.summary.get(
      "induction",
      1,
      probe.summary.top("induction", 1)[0].head,
    ) > 0.5,
  );
});

Deno.test("inductionProbe() reports an unreachable server clearly", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  await assert.rejects(
    inductionProbe({ baseUrl: `http://127.0.0.1:${port}/v1`, length: 5 }),
    (e: Error) => /^Cannot/.test(e.message) && e.message.includes(String(port)),
  );
});
