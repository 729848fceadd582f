/**
 * Row capture (`attn_capture_prefix`) on the demo server and through the
 * client: the rows of a prefix capture are bit for bit the matching rows of
 * a full capture, `token_idx` names each row's position, the model keeps
 * only those rows, and bad ranges are refused with a 400 that says why.
 */

import assert from "node:assert/strict";
import { createHandler } from "../server/handler.ts";
import { loadDemoModel } from "../server/model/mod.ts";
import { startDemoServer } from "../server/serve.ts";
import { captureAttention } from "../lib/client/client.ts";
import { extractAttentionFromResponseSync } from "../lib/sources/vllm/extract.ts";
import { collectWarnings } from "../lib/warn.ts";

const model = loadDemoModel();
const handler = createHandler(model, { enableAttentionInstrumentation: true });
const QUESTION = "alpha: 1729\nbeta: 2048\ngamma: 77\nalpha:";

function post(body: Record<string, unknown>, path = "/v1/chat/completions") {
  return handler(
    new Request(`http://x${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }),
  );
}

const base = {
  model: model.name,
  messages: [{ role: "user", content: QUESTION }],
  temperature: 0,
  max_tokens: 6,
  attn_capture: 1,
  attn_capture_layers: "all",
};

async function capture(extra: Record<string, unknown>) {
  const res = await post({ ...base, ...extra });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body).slice(0, 300));
  return body as Record<string, unknown> & {
    usage: { prompt_tokens: number; completion_tokens: number };
    attn_capture_data: {
      shape: number[];
      token_meta: { token_idx: number[]; total_len: number };
    }[];
  };
}

Deno.test("attn_capture_prefix returns the same numbers as the matching rows of a full capture", async () => {
  const full = await capture({});
  const P = full.usage.prompt_tokens;
  const T = P + full.usage.completion_tokens - 1;
  const H = model.numHeads;
  const start = P - 3, end = P + 2;
  for (
    const extra of [
      { attn_capture_prefix: `${start}:${end}` },
      { vllm_xargs: { attn_capture_prefix: `${start}:${end}` } },
    ]
  ) {
    const part = await capture(extra);
    assert.equal(part.usage.completion_tokens, full.usage.completion_tokens);
    for (const entry of part.attn_capture_data) {
      assert.deepEqual(entry.shape, [end - start, H, T]);
      assert.deepEqual(entry.token_meta.token_idx, [
        start,
        start + 1,
        start + 2,
        start + 3,
        start + 4,
      ]);
      assert.equal(entry.token_meta.total_len, T);
    }
    const a = extractAttentionFromResponseSync(full)!;
    const b = extractAttentionFromResponseSync(part)!;
    assert.deepEqual(Object.keys(b), Object.keys(a));
    for (const l of Object.keys(a).map(Number)) {
      assert.deepEqual([...b[l].scores.queryPositions], [
        ...a[l].scores.queryPositions.slice(start, end),
      ]);
      assert.equal(b[l].scores.keyOffset, 0);
      for (let r = 0; r < end - start; r++) {
        for (let h = 0; h < H; h++) {
          assert.deepEqual(
            [...b[l].scores.row(r, h)],
            [...a[l].scores.row(start + r, h)],
            `layer ${l} row ${start + r} head ${h}`,
          );
        }
      }
    }
  }
});

Deno.test('attn_capture_prefix "start:" runs to the last row, and an end past it is clamped', async () => {
  const full = await capture({});
  const T = full.usage.prompt_tokens + full.usage.completion_tokens - 1;
  for (const prefix of [`${T - 4}:`, `${T - 4}:${T + 50}`]) {
    const part = await capture({ attn_capture_prefix: prefix });
    assert.deepEqual(part.attn_capture_data[0].token_meta.token_idx, [
      T - 4,
      T - 3,
      T - 2,
      T - 1,
    ]);
  }
  const head = await capture({ attn_capture_prefix: ":2" });
  assert.deepEqual(head.attn_capture_data[0].token_meta.token_idx, [0, 1]);
});

Deno.test("attn_capture_prefix: the model keeps only the rows asked for", () => {
  const input = model.renderChat([{
    role: "user",
    parts: [{ type: "text", text: QUESTION }],
  }]);
  const P = input.ids.length;
  const full = model.generate(input, {
    maxTokens: 6,
    temperature: 0,
    captureLayers: [1],
  });
  const T = P + full.tokens.length - 1;
  const part = model.generate(input, {
    maxTokens: 6,
    temperature: 0,
    captureLayers: [1],
    captureRows: { start: P - 1, end: P + 1 },
  });
  const H = model.numHeads;
  assert.equal(part.attention.get(1)!.length, 2 * H * T);
  assert.deepEqual(
    part.attention.get(1),
    full.attention.get(1)!.subarray((P - 1) * H * T, (P + 1) * H * T),
  );
  assert.throws(
    () =>
      model.generate(input, {
        maxTokens: 2,
        temperature: 0,
        captureRows: { start: 4, end: 4 },
      }),
    /Cannot capture rows/,
  );
});

Deno.test("attn_capture_prefix: bad ranges get a 400 that says what is wrong", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ attn_capture_prefix: "5:3" }, /end 3 is not after start 5/],
    [{ attn_capture_prefix: "4:4" }, /end 4 is not after start 4/],
    [{ attn_capture_prefix: "-2:" }, /not a non-negative integer/],
    [{ attn_capture_prefix: "a:b" }, /not a non-negative integer/],
    [{ attn_capture_prefix: "3" }, /is not start:end/],
    [{ attn_capture_prefix: 3 }, /not a string/],
    [
      { vllm_xargs: { attn_capture_prefix: "1:2:3" } },
      /vllm_xargs\.attn_capture_prefix/,
    ],
    [{ vllm_xargs: "x" }, /Cannot read vllm_xargs/],
    [
      {
        attn_capture_prefix: "0:4",
        vllm_xargs: { attn_capture_prefix: "0:5" },
      },
      /disagree/,
    ],
    [
      { attn_capture_prefix: "5000:" },
      /Cannot capture rows from 5000: this request has at most/,
    ],
  ];
  for (const [extra, message] of cases) {
    const res = await post({ ...base, ...extra });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(extra));
    assert.match(body.error.message, message, JSON.stringify(extra));
    assert.match(body.error.message, /^Cannot /);
  }
});

Deno.test("attn_capture_prefix past the rows a short reply produced: empty layers, skipped by the decoder with a warning", async () => {
  // The reply stops after one or two tokens, far below max_tokens.
  const full = await capture({ max_tokens: 40 });
  const T = full.usage.prompt_tokens + full.usage.completion_tokens - 1;
  const part = await capture({
    max_tokens: 40,
    attn_capture_prefix: `${T + 3}:`,
  });
  assert.deepEqual(part.attn_capture_data[0].shape, [0, model.numHeads, T]);
  assert.deepEqual(part.attn_capture_data[0].token_meta.token_idx, []);
  const { result, warnings } = collectWarnings(() =>
    extractAttentionFromResponseSync(part)
  );
  assert.equal(result, null);
  assert.match(warnings.join("\n"), /holds no query rows/);
});

Deno.test("captureAttention({ capturePrefix }) sends vllm_xargs and returns the rows with their positions", async () => {
  await using server = await startDemoServer({
    enableAttentionInstrumentation: true,
  });
  const full = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: QUESTION,
    layers: [1],
    progress: false,
  });
  const P = full.promptLen;
  for (const capturePrefix of [`${P - 1}:`, { start: P - 1 }]) {
    const part = await captureAttention({
      baseUrl: server.baseUrl,
      prompt: QUESTION,
      layers: [1],
      capturePrefix,
      progress: false,
    });
    assert.equal(part.text, full.text);
    const rows = part.attention![1].scores;
    const T = full.attention![1].scores.queryLength;
    assert.deepEqual(
      [...rows.queryPositions],
      Array.from({ length: T - (P - 1) }, (_, i) => P - 1 + i),
    );
    for (let r = 0; r < rows.queryLength; r++) {
      assert.deepEqual(
        [...rows.row(r, 3)],
        [...full.attention![1].scores.row(P - 1 + r, 3)],
      );
    }
  }
  await assert.rejects(
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: QUESTION,
      capturePrefix: "x",
      progress: false,
    }),
    /capturePrefix "x" is not "start:end"/,
  );
});

Deno.test("attn_capture_prefix: --max-attention-capture-mb counts only the rows kept", async () => {
  const text = "word ".repeat(100);
  const P =
    model.renderChat([{ role: "user", parts: [{ type: "text", text }] }])
      .ids.length;
  const rows = P + 4 - 1;
  // Room for 8 rows of every key, far from the full square.
  const limitMb = (2 * model.numHeads * 2 * 8 * rows) / 2 ** 20;
  const small = createHandler(model, {
    enableAttentionInstrumentation: true,
    maxAttentionCaptureMb: limitMb,
  });
  const send = (extra: Record<string, unknown>) =>
    small(
      new Request("http://x/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({
          ...base,
          messages: [{ role: "user", content: text }],
          max_tokens: 4,
          ...extra,
        }),
      }),
    );
  const full = await send({});
  assert.equal(full.status, 400);
  assert.match((await full.json()).error.message, /Cannot capture attention/);
  const some = await send({ attn_capture_prefix: `${P - 2}:` });
  const body = await some.json();
  assert.equal(some.status, 200, JSON.stringify(body).slice(0, 300));
  assert.equal(body.attn_capture_data[0].token_meta.token_idx[0], P - 2);
  const many = await send({ attn_capture_prefix: `${P - 40}:` });
  assert.equal(many.status, 400);
  assert.match(
    (await many.json()).error.message,
    /capture fewer layers \(attn_capture_layers\) or rows \(attn_capture_prefix\)/,
  );
});
