/**
 * Head ablation (`attn_ablate_heads`) on the demo model, its server and the
 * client: earlier layers' attention stays bit-identical, later layers and
 * the answer change, the response echoes what was applied (JSON and
 * stream), heads that do not exist get a 400 naming them, and a server that
 * ignores the field is reported as such.
 */

import assert from "node:assert/strict";
import { createHandler } from "../server/handler.ts";
import { loadDemoModel } from "../server/model/mod.ts";
import { startDemoServer } from "../server/serve.ts";
import { startReplayServer } from "../server/replay.ts";
import { captureAttention } from "../lib/client/client.ts";
import { collectWarningsAsync } from "../lib/warn.ts";

const model = loadDemoModel();
const QUESTION = "alpha: 1729\nbeta: 2048\ngamma: 77\nalpha:";
const input = model.renderChat([{
  role: "user",
  parts: [{ type: "text", text: QUESTION }],
}]);
const P = input.ids.length;
const H = model.numHeads;

function run(ablateHeads?: [number, number][]) {
  return model.generate(input, {
    maxTokens: 6,
    temperature: 0,
    captureLayers: [0, 1],
    promptTopLogprobs: 0,
    ...(ablateHeads ? { ablateHeads } : {}),
  });
}

/** Rows two runs share: the prompt's and the generated ones while their tokens agree. */
function sharedRows(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < Math.min(a.length, b.length) - 1 && a[n] === b[n]) n++;
  return P + n;
}

Deno.test("ablateHeads keeps earlier layers bit-identical and changes later layers, prompt rows included", () => {
  const base = run();
  let changedSome = false;
  for (let h = 0; h < H; h++) {
    const ablated = run([[0, h]]);
    // Layer 0's attention is computed before any output of layer 0 is used:
    // bit-identical on every row both runs have (the prompt's, and the
    // generated ones while the tokens agree).
    const same = sharedRows(base.tokens, ablated.tokens);
    const a0 = ablated.attention.get(0)!, b0 = base.attention.get(0)!;
    const ta = P + ablated.tokens.length - 1, tb = P + base.tokens.length - 1;
    for (let q = 0; q < same; q++) {
      for (let hh = 0; hh < H; hh++) {
        assert.deepEqual(
          a0.subarray((q * H + hh) * ta, (q * H + hh) * ta + q + 1),
          b0.subarray((q * H + hh) * tb, (q * H + hh) * tb + q + 1),
        );
      }
    }
    const T = P + Math.min(ablated.tokens.length, base.tokens.length) - 1;
    // Layer 0's attention is the same wherever both runs have rows.
    const a = ablated.attention.get(1)!, b = base.attention.get(1)!;
    const Ta = P + ablated.tokens.length - 1, Tb = P + base.tokens.length - 1;
    // Compare the prompt rows, which both runs have.
    let differs = false;
    for (let q = 0; q < Math.min(P, T) && !differs; q++) {
      for (let k = 0; k <= q && !differs; k++) {
        for (let hh = 0; hh < H; hh++) {
          if (a[(q * H + hh) * Ta + k] !== b[(q * H + hh) * Tb + k]) {
            differs = true;
            break;
          }
        }
      }
    }
    changedSome ||= differs;
  }
  assert.ok(
    changedSome,
    "ablating some layer-0 head changes layer 1's attention on the prompt",
  );
  // The layer-1 heads' own attention is unchanged by their ablation; only
  // what they write is gone, which changes the answer for the reading head.
  const answers = new Set<string>();
  for (let h = 0; h < H; h++) {
    answers.add(model.decode(run([[1, h]]).tokens));
  }
  assert.equal(model.decode(run().tokens), "1729");
  assert.ok(
    [...answers].some((a) => a !== "1729"),
    `some layer-1 head carries the answer (answers: ${
      [...answers].join(" | ")
    })`,
  );
  assert.throws(() => run([[2, 0]]), /Cannot ablate head \[2,0\]/);
  assert.throws(() => run([[0, H]]), /Cannot ablate head/);
});

Deno.test("attn_ablate_heads is applied, echoed in JSON and streams, and refused for heads that do not exist", async () => {
  const handler = createHandler(model, {
    enableAttentionInstrumentation: true,
  });
  const post = async (extra: Record<string, unknown>) => {
    const res = await handler(
      new Request("http://x/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({
          model: model.name,
          messages: [{ role: "user", content: QUESTION }],
          temperature: 0,
          max_tokens: 6,
          ...extra,
        }),
      }),
    );
    return {
      status: res.status,
      body: extra.stream ? await res.text() : await res.json(),
    };
  };
  const plain = await post({});
  assert.equal(plain.body.choices[0].message.content, "1729");
  assert.equal("attn_ablate_heads" in plain.body, false);
  // The reading head: the layer-1 head whose ablation changes the answer.
  let reader = -1;
  for (let h = 0; h < H && reader < 0; h++) {
    const r = await post({ attn_ablate_heads: [[1, h]] });
    assert.deepEqual(r.body.attn_ablate_heads, [[1, h]]);
    if (r.body.choices[0].message.content !== "1729") reader = h;
  }
  assert.ok(reader >= 0);
  const messy = await post({
    attn_ablate_heads: [[1, reader], [0, 2], [1, reader]],
  });
  assert.deepEqual(messy.body.attn_ablate_heads, [[0, 2], [1, reader]]);
  assert.deepEqual(
    (await post({ attn_ablate_heads: [] })).body.attn_ablate_heads,
    [],
  );

  const ablated = await post({ attn_ablate_heads: [[1, reader]] });
  const stream = await post({ attn_ablate_heads: [[1, reader]], stream: true });
  const chunks = stream.body.split("\n\n").filter((e: string) =>
    e.startsWith("data: {")
  )
    .map((e: string) => JSON.parse(e.slice(6)));
  assert.deepEqual(chunks[0].attn_ablate_heads, [[1, reader]]);
  const text = chunks.map((c: { choices: { delta: { content?: string } }[] }) =>
    c.choices[0]?.delta.content ?? ""
  ).join("");
  assert.equal(text, ablated.body.choices[0].message.content);

  const cases: [unknown, RegExp][] = [
    [
      [[2, 0]],
      /Cannot ablate head \[2, 0\]: layer 2 does not exist .* layers 0\.\.1/,
    ],
    [
      [[0, H]],
      new RegExp(`Cannot ablate head \\[0, ${H}\\]: head ${H} does not exist`),
    ],
    [[[0]], /attn_ablate_heads\[0\].*not a \[layer, head\] pair/],
    [[[0, -1]], /attn_ablate_heads\[0\]/],
    [[[0, 1.5]], /attn_ablate_heads\[0\]/],
    ["0,1", /not a list/],
  ];
  for (const [value, message] of cases) {
    const r = await post({ attn_ablate_heads: value });
    assert.equal(r.status, 400, JSON.stringify(value));
    assert.match(r.body.error.message, message);
    assert.equal(r.body.error.param, "attn_ablate_heads");
  }
});

Deno.test("captureAttention({ ablateHeads }) surfaces the echo, and says plainly when a server ignored the field", async () => {
  await using server = await startDemoServer({
    enableAttentionInstrumentation: true,
  });
  const recording = await Deno.makeTempFile({ suffix: ".json" });
  try {
    const base = await captureAttention({
      baseUrl: server.baseUrl,
      prompt: QUESTION,
      layers: [0, 1],
      saveBody: recording,
      progress: false,
    });
    assert.equal(base.ablatedHeads, null);
    const ablated = await captureAttention({
      baseUrl: server.baseUrl,
      prompt: QUESTION,
      layers: [0, 1],
      ablateHeads: [[0, 1]],
      progress: false,
    });
    assert.deepEqual(ablated.ablatedHeads, [[0, 1]]);
    const a0 = ablated.attention![0].scores, b0 = base.attention![0].scores;
    for (let q = 0; q < base.promptLen; q++) {
      for (let h = 0; h < H; h++) {
        assert.deepEqual(
          [...a0.row(q, h).slice(0, q + 1)],
          [...b0.row(q, h).slice(0, q + 1)],
        );
      }
    }
    // A server that knows nothing of the field: the recorded, unablated body.
    await using replay = await startReplayServer({ files: [recording] });
    const { result, warnings } = await collectWarningsAsync(() =>
      captureAttention({
        baseUrl: replay.baseUrl,
        prompt: QUESTION,
        ablateHeads: [[1, 0]],
        progress: false,
      })
    );
    assert.equal(result.ablatedHeads, null);
    assert.match(
      warnings.join("\n"),
      /did not echo attn_ablate_heads, so it ignored the ablation/,
    );
    await assert.rejects(
      captureAttention({
        baseUrl: server.baseUrl,
        prompt: QUESTION,
        ablateHeads: [[1]] as never,
        progress: false,
      }),
      /ablateHeads .* is not a list of \[layer, head\] pairs/,
    );
  } finally {
    await Deno.remove(recording);
  }
});
