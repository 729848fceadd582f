/**
 * captureAttention() against the demo server on a real loopback port:
 * decoded attention and labels, the default model, and the errors and
 * warnings a user meets (unreachable server, server without
 * instrumentation, wrong key, layers missing from a vLLM-like response).
 */

import assert from "node:assert/strict";
import { captureAttention } from "../lib/client/client.ts";
import { collectWarningsAsync } from "../lib/warn.ts";
import { startDemoServer } from "../server/serve.ts";

/**
 * A loopback server in front of the demo server that behaves as vLLM does
 * where the demo server is stricter: it drops requested layers the model
 * does not have (vLLM leaves them out of the response silently), and with
 * `ignoreCapture` it drops `attn_capture` (vLLM started without
 * instrumentation answers with no attention at all).
 */
function startVllmLikeProxy(
  target: string,
  options: { numLayers: number; ignoreCapture?: boolean },
) {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const url = new URL(req.url);
      const init: RequestInit = { method: req.method, headers: req.headers };
      if (req.method === "POST") {
        const body = await req.json();
        if (typeof body.attn_capture_layers === "string") {
          body.attn_capture_layers = body.attn_capture_layers.split(",")
            .filter((l: string) => Number(l) < options.numLayers).join(",");
        }
        if (options.ignoreCapture) delete body.attn_capture;
        init.body = JSON.stringify(body);
      }
      return await fetch(`${target}${url.pathname}`, init);
    },
  );
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}/v1`,
    close: () => server.shutdown(),
  };
}

Deno.test("captureAttention() returns the reply, every layer decoded and one label per position", async () => {
  await using server = await startDemoServer();
  const result = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: "red: 4821\nblue: 9034\ngreen: 1175\nblue:",
    layers: "all",
  });
  assert.equal(result.text.trim(), "9034");
  assert.equal(result.model, server.model);
  assert.equal(result.finishReason, "stop");
  const layers = Object.keys(result.attention!).map(Number);
  assert.ok(layers.length >= 2);
  const usage = result.response.usage as {
    prompt_tokens: number;
    completion_tokens: number;
  };
  assert.equal(result.promptLen, usage.prompt_tokens);
  assert.equal(
    result.labels.length,
    usage.prompt_tokens + usage.completion_tokens,
  );
  for (const li of layers) {
    const layer = result.attention![li];
    assert.equal(layer.scores.queryLength, result.labels.length - 1);
    assert.equal(layer.tokenMeta.promptLen, result.promptLen);
  }
  // Prompt labels come from prompt_logprobs, generated ones from logprobs.
  assert.ok(result.labels.includes("blue"));
  const generated = result.labels.slice(result.promptLen).join("");
  assert.match(generated, /^\s*9034/);
  // The payloads were decoded, not kept twice.
  const wire = result.response.attn_capture_data as Record<string, unknown>[];
  assert.ok(wire.every((l) => !("data" in l) && Array.isArray(l.shape)));
  // The body is not kept unless asked for.
  assert.equal(result.body, null);
});

Deno.test("captureAttention() labels the prompt from prompt_logprobs: k > 0 where the prompt token can be told apart, and warns where not", async () => {
  await using server = await startDemoServer();
  const ask = (extraBody: Record<string, unknown>) =>
    collectWarningsAsync(() =>
      captureAttention({
        baseUrl: server.baseUrl,
        prompt: "red: 4821\nblue: 9034\nblue:",
        capture: false,
        extraBody,
      })
    );
  const plain = await ask({});
  assert.deepEqual(plain.warnings, []);
  const alternatives = await ask({ prompt_logprobs: 2 });
  const raw = alternatives.result.response
    .prompt_logprobs as (Record<string, { rank: number }> | null)[];
  // Positions whose token is not in the top 2 carry 3 entries: labelled as
  // with k = 0. The rest (token among the top 2) are labelled by index.
  let told = 0, untold = 0;
  raw.forEach((entry, p) => {
    if (entry === null) return;
    if (Object.keys(entry).length === 3) {
      told++;
      assert.equal(alternatives.result.labels[p], plain.result.labels[p]);
    } else {
      untold++;
      assert.equal(alternatives.result.labels[p], String(p));
    }
  });
  assert.ok(told > 0 && untold > 0, `${told} told, ${untold} not`);
  assert.equal(alternatives.warnings.length, 1);
  assert.match(
    alternatives.warnings[0],
    new RegExp(`prompt_logprobs lists alternatives at ${untold} positions`),
  );
});

Deno.test("captureAttention() sends messages, max_tokens and the chosen layers", async () => {
  await using server = await startDemoServer();
  const result = await captureAttention({
    baseUrl: server.baseUrl,
    model: server.model,
    messages: [
      { role: "system", content: "Answer briefly." },
      { role: "user", content: "x: 12\ny: 34\nx:" },
    ],
    layers: [0],
    maxTokens: 1,
  });
  assert.deepEqual(Object.keys(result.attention!), ["0"]);
  assert.equal(result.finishReason, "length");
  assert.equal(result.labels.length, result.promptLen + 1);
  assert.equal(result.attention![0].scores.queryLength, result.promptLen);
});

Deno.test("captureAttention() without capture returns no attention", async () => {
  await using server = await startDemoServer({
    enableAttentionInstrumentation: false,
  });
  const result = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: "a: 1\na:",
    capture: false,
  });
  assert.equal(result.attention, null);
  assert.equal(result.text.trim(), "1");
});

Deno.test("captureAttention() names the URL and how to start a server when nothing listens", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const baseUrl = `http://127.0.0.1:${port}/v1`;
  await assert.rejects(
    captureAttention({ baseUrl, prompt: "hi" }),
    (error: Error) => {
      assert.match(
        error.message,
        new RegExp(
          `^Cannot reach the attention server at ${
            baseUrl.replaceAll(".", "\\.")
          }: `,
        ),
      );
      assert.match(
        error.message,
        /deno task serve --enable-attention-instrumentation/,
      );
      assert.match(
        error.message,
        /vLLM with --enable-attention-instrumentation/,
      );
      return true;
    },
  );
});

Deno.test("captureAttention() passes on the demo server's refusal naming --enable-attention-instrumentation", async () => {
  await using server = await startDemoServer({
    enableAttentionInstrumentation: false,
  });
  await assert.rejects(
    captureAttention({ baseUrl: server.baseUrl, prompt: "a: 1\na:" }),
    /Cannot capture attention from .*: the server answered 400: .*restart it with --enable-attention-instrumentation/,
  );
});

Deno.test("captureAttention() names the flags when a vLLM-like server answers without attention", async () => {
  await using server = await startDemoServer();
  const proxy = startVllmLikeProxy(server.url, {
    numLayers: 99,
    ignoreCapture: true,
  });
  try {
    await assert.rejects(
      captureAttention({ baseUrl: proxy.baseUrl, prompt: "a: 1\na:" }),
      /carries no attn_capture_data; start the server with --enable-attention-instrumentation \(vLLM also needs --enforce-eager --no-enable-chunked-prefill --no-enable-prefix-caching/,
    );
  } finally {
    await proxy.close();
  }
});

Deno.test("captureAttention() warns, naming them, when requested layers are missing from the response", async () => {
  await using server = await startDemoServer();
  const { numLayers } = await layerCount(server.baseUrl, server.model);
  const proxy = startVllmLikeProxy(server.url, { numLayers });
  try {
    const { result, warnings } = await collectWarningsAsync(() =>
      captureAttention({
        baseUrl: proxy.baseUrl,
        prompt: "a: 1\nb: 2\na:",
        layers: `0,${numLayers + 3},${numLayers + 10}`,
      })
    );
    assert.deepEqual(Object.keys(result.attention!), ["0"]);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      new RegExp(
        `^Layers ${numLayers + 3}, ${
          numLayers + 10
        } were requested from .* but are missing from the response \\(it has 0\\)`,
      ),
    );
  } finally {
    await proxy.close();
  }
});

Deno.test("captureAttention() says to pass the server's --api-key on 401", async () => {
  await using server = await startDemoServer({ apiKey: "sesame" });
  await assert.rejects(
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: "hi",
      apiKey: "wrong",
    }),
    /answered 401: .*; pass the key the server was started with \(--api-key\) as apiKey/,
  );
  const ok = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: "k: 5\nk:",
    apiKey: "sesame",
    layers: "0",
  });
  assert.equal(ok.text.trim(), "5");
});

Deno.test("captureAttention() refuses neither or both of messages and prompt", async () => {
  await assert.rejects(
    captureAttention({ baseUrl: "http://127.0.0.1:1/v1" }),
    /Cannot capture attention: neither messages and prompt are given; pass exactly one/,
  );
  await assert.rejects(
    captureAttention({
      baseUrl: "http://127.0.0.1:1/v1",
      prompt: "a",
      messages: [{ role: "user", content: "a" }],
    }),
    /both messages and prompt were given/,
  );
});

/** The model's layer count, read from a capture of all layers. */
async function layerCount(baseUrl: string, model: string) {
  const { attention } = await captureAttention({
    baseUrl,
    model,
    prompt: "a: 1\na:",
    layers: "all",
    maxTokens: 1,
  });
  return { numLayers: Object.keys(attention!).length };
}
