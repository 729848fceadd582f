// A real checkpoint behind the server: a small random Gemma 3 with the real
// Gemma 3 tokenizer (gemma_checkpoint.ts), served by `serve.ts --model DIR`
// as a subprocess and by startDemoServer({ model }) in-process, on loopback.
import assert from "node:assert/strict";
import { startDemoServer } from "../../../server/serve.ts";
import { loadRealServerModel } from "../../../server/model/real/load.ts";
import { extractAttentionFromResponse } from "../../../lib/sources/vllm/extract.ts";
import { makeGemmaCheckpoint } from "./gemma_checkpoint.ts";
import { SEED_CLIENT_IMPORT } from "../../_seed_client.ts";

let checkpoint: Promise<string> | null = null;
function gemmaDir(): Promise<string> {
  checkpoint ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "gemma_rand_" });
    return await makeGemmaCheckpoint(dir);
  })();
  return checkpoint;
}

const SEED_CLIENT = `${SEED_CLIENT_IMPORT}import base64, gzip, json, sys
import numpy as np
import requests
base, model = sys.argv[1], sys.argv[2]
response = requests.post(base + "/chat/completions", json={
    "model": model, "messages": [{"role": "user", "content": "Agent: Zyx, Codename: 'Kite'. Agent: Zyx, Codename:"}],
    "attn_capture": 1, "attn_capture_layers": "all", "temperature": 0, "max_tokens": 4}).json()
attn = extract_attention_from_response(response)
result = {"layers": {}, "usage": response["usage"]}
for li, layer in attn.items():
    s = layer["scores"]
    w = s[-1].mean(0)
    top = np.argsort(w, kind="stable")[::-1][:5]
    result["layers"][str(li)] = {"shape": list(s.shape), "rowsum": float(np.abs(s.sum(-1) - 1).max()),
        "top": [int(i) for i in top]}
print(json.dumps(result))
`;

Deno.test("serve.ts --model DIR on a random Gemma 3 answers 503 while loading, then the guide's curl request and the seed's Python client", async () => {
  const dir = await gemmaDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("../../../server/serve.ts", import.meta.url).pathname,
      "--model",
      dir,
      "--served-model-name",
      "gemma-3-4b-it",
      "--port",
      "0",
      "--enable-attention-instrumentation",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let base = "";
  let seen = "";
  const stdout = child.stdout.pipeThrough(new TextDecoderStream());
  const rest = (async () => {
    for await (const chunk of stdout) {
      seen += chunk;
      const m = / at (http:\/\/\S+\/v1)/.exec(seen);
      if (m && !base) base = m[1];
    }
  })();
  try {
    for (let i = 0; i < 1200 && !base; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(base, "the server printed its address");
    const root = base.slice(0, -3);
    const statuses: number[] = [];
    for (let i = 0; i < 600; i++) {
      const res = await fetch(`${root}/health`);
      await res.body?.cancel();
      statuses.push(res.status);
      if (res.status === 200) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // The 28 MB tokenizer.json alone takes seconds to load: /health says so.
    assert.equal(statuses[0], 503);
    assert.equal(statuses.at(-1), 200);

    const curl = await new Deno.Command("curl", {
      args: [
        "-s",
        `${base}/chat/completions`,
        "-H",
        "Content-Type: application/json",
        "-d",
        `{"model":"gemma-3-4b-it",
"messages":[{"role":"user","content":"Hello"}],
"attn_capture":1, "attn_capture_layers":"2,3", "max_tokens":4}`,
      ],
      stdout: "piped",
    }).output();
    const body = JSON.parse(new TextDecoder().decode(curl.stdout));
    assert.equal(body.model, "gemma-3-4b-it");
    // <bos> <start_of_turn> user \\n Hello <end_of_turn> \\n <start_of_turn> model \\n
    assert.equal(body.usage.prompt_tokens, 10);
    const capture = await extractAttentionFromResponse(curl.stdout);
    assert.deepEqual(Object.keys(capture!).map(Number), [2, 3]);
    const t = body.usage.prompt_tokens + body.usage.completion_tokens - 1;
    for (const layer of Object.values(capture!)) {
      assert.deepEqual(layer.scores.shape, [t, 4, t]);
    }

    const py = await new Deno.Command("/usr/bin/python3", {
      args: ["-c", SEED_CLIENT, base, "gemma-3-4b-it"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(py.code, 0, new TextDecoder().decode(py.stderr));
    const theirs = JSON.parse(new TextDecoder().decode(py.stdout));
    assert.deepEqual(Object.keys(theirs.layers), ["0", "1", "2", "3"]);
    const rows = theirs.usage.prompt_tokens + theirs.usage.completion_tokens -
      1;
    for (
      const layer of Object.values(theirs.layers) as {
        shape: number[];
        rowsum: number;
      }[]
    ) {
      assert.deepEqual(layer.shape, [rows, 4, rows]);
      assert.ok(layer.rowsum < 0.01);
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await stderr;
    await rest;
  }
});

Deno.test("startDemoServer({ model: DIR }) refuses a prompt past the context with a 400 and keeps serving", async () => {
  const dir = await gemmaDir();
  await using server = await startDemoServer({
    model: dir,
    maxQueuedTokens: 100_000,
  });
  await server.ready;
  const ask = (content: string, extra: Record<string, unknown> = {}) =>
    fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: server.model,
        messages: [{ role: "user", content }],
        max_tokens: 2,
        ...extra,
      }),
    });
  const long = await ask("word ".repeat(2100));
  assert.equal(long.status, 400);
  assert.match(
    (await long.json()).error.message,
    /2048|context|max_model_len/i,
  );
  const ok = await ask("Hello", {
    logprobs: true,
    top_logprobs: 2,
    prompt_logprobs: 1,
  });
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.match(server.model, /^gemma_rand_/); // the folder's name
  assert.equal(
    body.choices[0].logprobs.content.length,
    body.usage.completion_tokens,
  );
  assert.equal(body.choices[0].logprobs.content[0].top_logprobs.length, 2);
  assert.equal(body.prompt_logprobs.length, body.usage.prompt_tokens);
  assert.equal(body.prompt_logprobs[0], null);
});

Deno.test("startDemoServer({ model: DIR }) speaks the extended wire for a real model: layer_meta with its sliding layers, attn_capture_prefix rows equal to a full capture's, /tokenize counts, provenance and the ablation echo", async () => {
  const dir = await gemmaDir();
  await using server = await startDemoServer({
    model: dir,
    maxQueuedTokens: 100_000,
  });
  await server.ready;
  const messages = [{ role: "user", content: "Agent: Zyx, Codename: Kite." }];
  const ask = async (extra: Record<string, unknown>) => {
    const r = await fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: server.model,
        messages,
        max_tokens: 3,
        temperature: 0,
        attn_capture: 1,
        attn_capture_layers: "all",
        ...extra,
      }),
    });
    assert.equal(r.status, 200);
    return await r.json();
  };
  const full = await ask({});
  const kinds = full.attn_capture_data.map((e: { layer_meta: unknown }) =>
    e.layer_meta
  );
  assert.ok(
    kinds.some((m: { attention: string }) =>
      m.attention === "sliding_attention"
    ),
    JSON.stringify(kinds),
  );
  assert.ok(
    kinds.some((m: { attention: string }) => m.attention === "full_attention"),
  );
  const fullLayers = (await extractAttentionFromResponse(full))!;
  for (const [l, layer] of Object.entries(fullLayers)) {
    assert.equal(layer.layerMeta?.attention, kinds[Number(l)].attention);
  }
  // Rows 5.. only, as vLLM's fork takes them.
  const part = await ask({ vllm_xargs: { attn_capture_prefix: "5:" } });
  const partLayers = (await extractAttentionFromResponse(part))!;
  const t = fullLayers[0].scores.shape[2];
  for (const [l, layer] of Object.entries(partLayers)) {
    const [rows, h, k] = layer.scores.shape;
    assert.equal(rows, t - 5);
    assert.equal(k, t);
    assert.deepEqual(
      Array.from(layer.scores.data),
      Array.from(
        fullLayers[Number(l)].scores.data.subarray(5 * h * k, t * h * k),
      ),
      `layer ${l}`,
    );
  }
  const tokenized = await (await fetch(
    `${server.baseUrl.replace(/\/v1$/, "")}/tokenize`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: server.model, messages }),
    },
  )).json();
  assert.equal(tokenized.count, full.usage.prompt_tokens);
  assert.equal(typeof full.provenance, "object");
  const ablated = await ask({ attn_ablate_heads: [[1, 0]] });
  assert.deepEqual(ablated.attn_ablate_heads, [[1, 0]]);
});

Deno.test("startDemoServer({ model: DIR }) streams a real model's reply (stream: true) as the same text and tokens as the plain reply, through the official openai client", async () => {
  const dir = await gemmaDir();
  await using server = await startDemoServer({
    model: dir,
    maxQueuedTokens: 100_000,
  });
  await server.ready;
  const { default: OpenAI } = await import("npm:openai@^7.57.0");
  const client = new OpenAI({ baseURL: server.baseUrl, apiKey: "none" });
  const messages = [{ role: "user" as const, content: "Agent: Zyx." }];
  const plain = await client.chat.completions.create({
    model: server.model,
    messages,
    max_tokens: 6,
    temperature: 0,
  });
  const stream = await client.chat.completions.create({
    model: server.model,
    messages,
    max_tokens: 6,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage: { completion_tokens: number } | null = null;
  let finish: string | null = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
    finish = chunk.choices[0]?.finish_reason ?? finish;
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(finish, plain.choices[0].finish_reason);
  assert.ok((plain.usage?.completion_tokens ?? 0) >= 1, JSON.stringify(plain));
  assert.equal(usage?.completion_tokens, plain.usage?.completion_tokens);
});

Deno.test("`study --example needle --model DIR` runs the guide's needle study on a real checkpoint served in-process, printing every layer's view", async () => {
  const dir = await gemmaDir();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../../../main.ts", import.meta.url).pathname,
      "--example",
      "needle",
      "--model",
      dir,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(
    stdout,
    /Needle-in-a-haystack \| model=gemma_rand_\S* layers=all/,
  );
  assert.match(stdout, /^Output: '.*' [✓✗]$/m);
  // The random Gemma 3 has 4 layers: one view each, over the real
  // tokenizer's prompt.
  const headers = stdout.split("\n").filter((l) =>
    /^── L\d+ \(T=\d+ H=\d+ prompt=\d+\) ──$/.test(l)
  );
  assert.equal(headers.length, 4, stdout);
});

Deno.test("loadRealServerModel: ablating a head leaves its and earlier layers' attention bit-identical and changes later ones", async () => {
  const dir = await gemmaDir();
  const model = await loadRealServerModel(dir, { threads: 1 });
  const input = model.renderChat([{
    role: "user",
    parts: [{ type: "text", text: "alpha: 1729\nbeta: 2048\nalpha:" }],
  }]);
  // One generated token: every captured row is a prompt row, so a changed
  // greedy token cannot change the inputs of later rows.
  const run = (ablateHeads: [number, number][]) =>
    model.generate(input, {
      maxTokens: 1,
      temperature: 0,
      captureLayers: [0, 1, 2, 3],
      ablateHeads,
    });
  const base = run([]);
  const ablated = run([[1, 2]]);
  for (const l of [0, 1]) {
    assert.deepEqual(
      ablated.attention.get(l),
      base.attention.get(l),
      `layer ${l}`,
    );
  }
  for (const l of [2, 3]) {
    assert.notDeepEqual(
      ablated.attention.get(l),
      base.attention.get(l),
      `layer ${l}`,
    );
  }
  assert.equal(model.provenance!.dtype, "bfloat16");
  assert.match(String(model.provenance!.tokenizer_sha256), /^[0-9a-f]{64}$/);
  assert.match(
    String(model.provenance!.chat_template_sha256),
    /^[0-9a-f]{64}$/,
  );
  assert.equal(
    model.provenance!.attnscope_version,
    JSON.parse(
      await Deno.readTextFile(new URL("../../../deno.json", import.meta.url)),
    ).version,
  );
  assert.deepEqual(model.layerMeta!.map((m) => m.attention), [
    "sliding_attention",
    "sliding_attention",
    "sliding_attention",
    "full_attention",
  ]);
  // Labels for findSpan come from the real tokenizer.
  assert.equal(model.tokenText(input.ids[0]), "<bos>");
  await assert.rejects(
    loadRealServerModel(dir, { availableBytes: 1_000_000 }),
    /Cannot load model .*: its weights take 0\.02 GB on disk .* only 0\.00 GB of memory is available/,
  );
});

Deno.test("startDemoServer({ model: DIR }) answers /health within 100 ms during a long generation, cancels a disconnected one, and 503s past the queue bound", async () => {
  const dir = await gemmaDir();
  await using server = await startDemoServer({
    model: dir,
    maxQueuedTokens: 3000,
  });
  await server.ready;
  const metrics = async () => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    return Number(/^vllm:num_requests_running\{[^}]*\} (\d+)$/m.exec(text)![1]);
  };
  const controller = new AbortController();
  const long = fetch(`${server.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    // No max_tokens: as on vLLM it may run to the end of the 2048 context.
    body: JSON.stringify({
      model: server.model,
      messages: [{ role: "user", content: "x x x x" }],
      temperature: 0,
    }),
    signal: controller.signal,
  }).catch((e: Error) => e);
  for (let i = 0; i < 200 && await metrics() !== 1; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await metrics(), 1);
  let worst = 0;
  for (let i = 0; i < 10; i++) {
    const start = performance.now();
    const res = await fetch(`${server.url}/health`);
    await res.body?.cancel();
    assert.equal(res.status, 200);
    worst = Math.max(worst, performance.now() - start);
    await new Promise((r) => setTimeout(r, 50));
  }
  const refused = await fetch(`${server.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: server.model,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2000,
    }),
  });
  assert.equal(refused.status, 503);
  await refused.body?.cancel();
  controller.abort();
  await long;
  let running = 1;
  for (let i = 0; i < 100 && (running = await metrics()) !== 0; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(running, 0, "the disconnected generation stopped");
  assert.ok(worst < 100, `/health took ${worst.toFixed(1)} ms`);
});

Deno.test("gemma checkpoint cleanup", async () => {
  if (checkpoint) await Deno.remove(await checkpoint, { recursive: true });
  assert.ok(true);
});
