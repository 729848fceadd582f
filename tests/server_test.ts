/**
 * The demo server on a real loopback port, spoken to by the clients users
 * have: npm:openai (parsed, raw and streaming), the seed guide's curl
 * command, and the guide's Python decoding over urllib. Also the full stack
 * on the two studies and on generated prompts of both forms.
 */

import assert from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import OpenAI from "openai";
import { AttentionAnalyzer } from "../lib/analysis/analyzer.ts";
import { captureAttention, type CaptureResult } from "../lib/client/client.ts";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import {
  CODENAME_STUDY,
  isCorrect,
  NEEDLE_STUDY,
} from "../lib/client/studies.ts";
import { startDemoServer } from "../server/serve.ts";
import { SEED_CLIENT_IMPORT } from "./_seed_client.ts";

Deno.test("npm:openai lists the model, completes, keeps the raw body's attention and streams", async () => {
  await using server = await startDemoServer();
  const client = new OpenAI({
    apiKey: "EMPTY",
    baseURL: server.baseUrl,
    maxRetries: 0,
  });
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [server.model]);

  const params = {
    model: server.model,
    messages: [{
      role: "user" as const,
      content: "cat: 3141\ndog: 2718\ncat:",
    }],
    temperature: 0,
  };
  const parsed = await client.chat.completions.create(params);
  assert.equal(parsed.object, "chat.completion");
  assert.equal(parsed.choices[0].message.content?.trim(), "3141");
  assert.equal(
    parsed.usage!.total_tokens,
    parsed.usage!.prompt_tokens + parsed.usage!.completion_tokens,
  );

  // Extra fields pass through the SDK untouched; a variable (not an object
  // literal) keeps TypeScript from refusing fields it does not know.
  const withCapture = {
    ...params,
    attn_capture: 1,
    attn_capture_layers: "all",
  };
  // asResponse() keeps the body the SDK would strip of attn_capture_data.
  const response = await client.chat.completions.create(withCapture)
    .asResponse();
  const bytes = new Uint8Array(await response.arrayBuffer());
  const data = JSON.parse(
    new TextDecoder().decode(bytes),
  ) as OpenAI.ChatCompletion;
  const attention = await extractAttentionFromResponse(bytes);
  const t = data.usage!.prompt_tokens + data.usage!.completion_tokens - 1;
  for (const layer of Object.values(attention!)) {
    assert.deepEqual(layer.scores.shape, [t, layer.scores.numHeads, t]);
    assert.ok(layer.scores.numHeads >= 4);
  }
  assert.ok(Object.keys(attention!).length >= 2);

  const stream = await client.chat.completions.create({
    ...params,
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.ok(!("attn_capture_data" in chunk));
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(text, parsed.choices[0].message.content);
});

Deno.test("npm:openai surfaces the server's 400 for an out-of-range layer, and the server answers the next request", async () => {
  await using server = await startDemoServer();
  const client = new OpenAI({
    apiKey: "EMPTY",
    baseURL: server.baseUrl,
    maxRetries: 0,
  });
  const params = {
    model: server.model,
    messages: [{ role: "user" as const, content: "a: 1\na:" }],
    temperature: 0,
  };
  const outOfRange = {
    ...params,
    attn_capture: 1,
    attn_capture_layers: "2,18,999",
  };
  await assert.rejects(
    client.chat.completions.create(outOfRange),
    (error: InstanceType<typeof OpenAI.BadRequestError>) => {
      assert.equal(error.status, 400);
      assert.match(error.message, /valid layers are 0\.\.\d+/);
      return true;
    },
  );
  const next = await client.chat.completions.create(params);
  assert.equal(next.choices[0].message.content?.trim(), "1");
});

Deno.test("the seed guide's curl request is answered with decodable attention", async () => {
  // The guide asks gemma-3-4b-it; the demo server takes vLLM's
  // --served-model-name, so the guide's command runs unchanged but for the
  // layer list, which names Gemma's layers 2,18,27: those the demo model has
  // are kept, the rest would be refused with a 400 naming the valid range.
  await using server = await startDemoServer({
    servedModelName: "gemma-3-4b-it",
  });
  const models = await (await fetch(`${server.baseUrl}/models`)).json();
  const numLayers = await countLayers(server.baseUrl);
  const layers = [2, 18, 27].filter((l) => l < numLayers);
  const layerList = layers.length ? layers.join(",") : String(numLayers - 1);
  assert.equal(models.data[0].id, "gemma-3-4b-it");
  const curl = await new Deno.Command("curl", {
    args: [
      "-s",
      `${server.baseUrl}/chat/completions`,
      "-H",
      "Content-Type: application/json",
      "-d",
      `{"model":"gemma-3-4b-it",
"messages":[{"role":"user","content":"Hello"}],
"attn_capture":1, "attn_capture_layers":"${layerList}"}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(curl.code, 0, new TextDecoder().decode(curl.stderr));
  const capture = await extractAttentionFromResponse(curl.stdout);
  assert.ok(capture, new TextDecoder().decode(curl.stdout).slice(0, 300));
  const body = JSON.parse(new TextDecoder().decode(curl.stdout));
  assert.equal(body.model, "gemma-3-4b-it");
  const expectedLayers = layerList.split(",").map(Number);
  assert.deepEqual(Object.keys(capture).map(Number), expectedLayers);
  for (const layer of Object.values(capture)) {
    const [t, h] = layer.scores.shape;
    assert.equal(
      t,
      body.usage.prompt_tokens + body.usage.completion_tokens - 1,
    );
    for (let q = 0; q < t; q++) {
      for (let head = 0; head < h; head++) {
        let sum = 0;
        for (const w of layer.scores.row(q, head)) sum += w;
        assert.ok(
          Math.abs(sum - 1) < 0.01,
          `row ${q} head ${head} sums to ${sum}`,
        );
      }
    }
  }
});

Deno.test("the guide's Python client code (urllib + its extract and analyzer) agrees with captureAttention()", async () => {
  await using server = await startDemoServer();
  const ours = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: NEEDLE_STUDY.prompt,
    layers: "all",
    promptLogprobs: false,
  });
  const script =
    `${SEED_CLIENT_IMPORT}import base64, gzip, json, sys, urllib.request
import numpy as np
base, model, prompt = sys.argv[1], sys.argv[2], sys.argv[3]
req = urllib.request.Request(base + "/chat/completions", method="POST",
    headers={"Content-Type": "application/json", "Authorization": "Bearer EMPTY"},
    data=json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}],
        "attn_capture": 1, "attn_capture_layers": "all", "temperature": 0, "logprobs": True}).encode())
response = json.loads(urllib.request.urlopen(req).read())
attn = extract_attention_from_response(response)
result = {"text": response["choices"][0]["message"]["content"], "layers": {}}
for li, layer in attn.items():
    w = layer["scores"][-1].mean(0)
    top = np.argsort(w, kind="stable")[::-1][:5]
    result["layers"][str(li)] = [[int(i), float(w[i])] for i in top]
print(json.dumps(result))
`;
  const out = await new Deno.Command("python3", {
    args: ["-c", script, server.baseUrl, server.model, NEEDLE_STUDY.prompt],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const theirs = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.equal(theirs.text, ours.text);
  assert.deepEqual(Object.keys(theirs.layers), Object.keys(ours.attention!));
  for (
    const [li, top] of Object.entries(theirs.layers) as [
      string,
      [number, number][],
    ][]
  ) {
    const layer = ours.attention![Number(li)];
    const mine = new AttentionAnalyzer(layer.scores, layer.tokenMeta)
      .topAttendedTokens(-1, { avgHeads: true, topK: 5 });
    assert.deepEqual(mine.map((t) => t.index), top.map(([i]) => i));
    mine.forEach((t, i) => assert.ok(Math.abs(t.weight - top[i][1]) < 1e-4));
  }
});

function randomWord(next: () => number, capital: boolean): string {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const n = 3 + Math.floor(next() * 6);
  let w = "";
  for (let i = 0; i < n; i++) w += letters[Math.floor(next() * 26)];
  return capital ? w[0].toUpperCase() + w.slice(1) : w;
}

function distinctWords(
  next: () => number,
  n: number,
  capital: boolean,
): string[] {
  const words = new Set<string>();
  while (words.size < n) words.add(randomWord(next, capital));
  return [...words];
}

/** A needle-form prompt: `key: value` lines, then `key:`. */
function needleCase(next: () => number, n: number) {
  const keys = distinctWords(next, n, false);
  const values = keys.map(() => String(1000 + Math.floor(next() * 9000)));
  const target = Math.floor(next() * n);
  const lines = keys.map((k, i) => `${k}: ${values[i]}`);
  return {
    prompt: [...lines, `${keys[target]}:`].join("\n"),
    expected: values[target],
    record: `${lines[target]}\n`,
  };
}

/** A codename-form prompt: a log of records, then a request for one field. */
function codenameCase(next: () => number, n: number) {
  const agents = distinctWords(next, n, true);
  const codenames = distinctWords(next, n, true);
  const target = Math.floor(next() * n);
  const lines = agents.map((a, i) =>
    `[Entry ${String(i + 1).padStart(2, "0")}] Agent: ${a}, Codename: '${
      codenames[i]
    }'`
  );
  return {
    prompt: "Security Log: Agent Codename Retrieval\n\n" + lines.join("\n") +
      `\n\nRequest: Retrieve the codename for Agent ${
        agents[target]
      }.\nAgent: ${agents[target]}, Codename:`,
    expected: codenames[target],
    record: `${lines[target]}\n`,
  };
}

/**
 * The largest share of the last prompt token's attention that one head of
 * the last layer gives to the positions of `record` (found by the labels).
 */
function recordAttention(result: CaptureResult, record: string): number {
  const text = record.replaceAll("\n", "↵");
  // Label 0 is the unlabeled first position; start the text after it.
  const starts: number[] = [];
  let joined = "";
  for (let i = 1; i < result.promptLen; i++) {
    starts.push(joined.length);
    joined += result.labels[i];
  }
  const at = joined.indexOf(text);
  assert.ok(
    at >= 0,
    `record ${JSON.stringify(record)} not found in the labels`,
  );
  const positions: number[] = [];
  starts.forEach((s, j) => {
    const end = s + result.labels[j + 1].length;
    if (end > at && s < at + text.length) positions.push(j + 1);
  });
  const last = Math.max(...Object.keys(result.attention!).map(Number));
  const { scores } = result.attention![last];
  const row = scores.rowForPosition(result.promptLen - 1);
  let best = 0;
  for (let h = 0; h < scores.numHeads; h++) {
    const w = scores.row(row, h);
    let share = 0;
    for (const p of positions) share += w[p - scores.keyOffset];
    best = Math.max(best, share);
  }
  return best;
}

Deno.test("the full stack answers both studies and generated prompts of both forms, attending to the record", async (t) => {
  await using server = await startDemoServer();
  const ask = (prompt: string) =>
    captureAttention({
      baseUrl: server.baseUrl,
      prompt,
      layers: "all",
      temperature: 0,
      // Answers are a few tokens; a bound keeps a wrong model from running
      // to the end of its context.
      maxTokens: 24,
    });

  await t.step("the needle study", async () => {
    const r = await ask(NEEDLE_STUDY.prompt);
    assert.ok(isCorrect(NEEDLE_STUDY, r.text), r.text);
    assert.ok(recordAttention(r, "alpha: 1729\n") >= 0.5);
  });
  await t.step("the codename study", async () => {
    const r = await ask(CODENAME_STUDY.prompt);
    assert.ok(isCorrect(CODENAME_STUDY, r.text), r.text);
    assert.ok(
      recordAttention(r, "[Entry 04] Agent: Omega, Codename: 'Phantom'\n") >=
        0.5,
    );
  });
  const next = seededRandom(20261126);
  for (const n of [3, 9, 17, 28, 40]) {
    await t.step(`a needle-form prompt of ${n} random pairs`, async () => {
      const c = needleCase(next, n);
      const r = await ask(c.prompt);
      assert.equal(r.text.trim(), c.expected, c.prompt);
      assert.ok(recordAttention(r, c.record) >= 0.5);
    });
    await t.step(`a codename-form prompt of ${n} random records`, async () => {
      const c = codenameCase(next, n);
      const r = await ask(c.prompt);
      assert.ok(
        r.text.toLowerCase().includes(c.expected.toLowerCase()),
        `${r.text} for ${c.prompt}`,
      );
      assert.ok(recordAttention(r, c.record) >= 0.5);
    });
  }
});

Deno.test("the demo server's answers are deterministic at temperature 0 and reproducible with a seed above it", async () => {
  await using server = await startDemoServer();
  const ask = (temperature: number, seed?: number) =>
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: "Tell me a story.",
      capture: false,
      maxTokens: 12,
      temperature,
      seed,
    });
  assert.equal((await ask(0)).text, (await ask(0)).text);
  assert.equal((await ask(1.5, 7)).text, (await ask(1.5, 7)).text);
});

async function countLayers(baseUrl: string): Promise<number> {
  const models = await (await fetch(`${baseUrl}/models`)).json();
  const res = await fetch(`${baseUrl}/chat/completions`, {
    method: "POST",
    body: JSON.stringify({
      model: models.data[0].id,
      messages: [{ role: "user", content: "a" }],
      max_tokens: 1,
      attn_capture: 1,
      attn_capture_layers: "all",
    }),
  });
  return (await res.json()).attn_capture_data.length;
}

Deno.test("the server answers concurrent good and bad requests, each as it deserves", async () => {
  await using server = await startDemoServer();
  const send = (body: string) =>
    fetch(`${server.baseUrl}/chat/completions`, { method: "POST", body })
      .then(async (res) => ({ status: res.status, body: await res.json() }));
  const good = JSON.stringify({
    model: server.model,
    messages: [{ role: "user", content: "sun: 5150\nmoon: 8086\nsun:" }],
    temperature: 0,
    attn_capture: 1,
  });
  const results = await Promise.all([
    send(good),
    send("{not json"),
    send(good),
    send(JSON.stringify({ model: server.model, messages: "hi" })),
    send(
      JSON.stringify({
        model: server.model,
        messages: [{ role: "user", content: "a" }],
        attn_capture: 7,
      }),
    ),
    send(good),
  ]);
  assert.deepEqual(results.map((r) => r.status), [
    200,
    400,
    200,
    400,
    400,
    200,
  ]);
  for (const r of results.filter((r) => r.status === 200)) {
    assert.equal(r.body.choices[0].message.content.trim(), "5150");
    assert.ok(r.body.attn_capture_data.length >= 2);
  }
  assert.deepEqual(
    results.filter((r) => r.status === 400).map((r) => r.body.error.param),
    [null, "messages", "attn_capture"],
  );
});
