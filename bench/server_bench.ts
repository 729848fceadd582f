/**
 * The demo server's latency on the needle study, side by side in one run:
 * with every layer captured through HTTP (client decode included), the same
 * request's raw HTTP round trip, the handler without a port, and the request
 * without capture (what attention costs).
 *
 * Run: deno bench --allow-all bench/server_bench.ts
 */

import { captureAttention } from "../lib/client/client.ts";
import { NEEDLE_STUDY } from "../lib/client/studies.ts";
import { createHandler } from "../server/handler.ts";
import { loadDemoModel } from "../server/model/mod.ts";
import { startDemoServer } from "../server/serve.ts";

const model = await loadDemoModel();
const server = await startDemoServer({ model });
const handler = createHandler(model, { enableAttentionInstrumentation: true });
const body = (capture: boolean) =>
  JSON.stringify({
    model: model.name,
    messages: [{ role: "user", content: NEEDLE_STUDY.prompt }],
    temperature: 0,
    logprobs: true,
    prompt_logprobs: 0,
    ...(capture ? { attn_capture: 1, attn_capture_layers: "all" } : {}),
  });
const withCapture = body(true);
const withoutCapture = body(false);

addEventListener("unload", () => server.close());

Deno.bench({
  name: "captureAttention(): needle, all layers, HTTP + decode",
  group: "needle request",
  baseline: true,
  async fn() {
    const r = await captureAttention({
      baseUrl: server.baseUrl,
      model: model.name,
      prompt: NEEDLE_STUDY.prompt,
      layers: "all",
    });
    if (r.text.trim() !== NEEDLE_STUDY.expected) throw new Error(r.text);
  },
});

Deno.bench({
  name: "fetch(): needle, all layers, HTTP round trip only",
  group: "needle request",
  async fn() {
    const res = await fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      body: withCapture,
    });
    await res.arrayBuffer();
  },
});

Deno.bench({
  name: "handler(): needle, all layers, no port",
  group: "needle request",
  async fn() {
    const res = await handler(
      new Request("http://demo/v1/chat/completions", {
        method: "POST",
        body: withCapture,
      }),
    );
    await res.arrayBuffer();
  },
});

Deno.bench({
  name: "fetch(): needle, no capture",
  group: "needle request",
  async fn() {
    const res = await fetch(`${server.baseUrl}/chat/completions`, {
      method: "POST",
      body: withoutCapture,
    });
    await res.arrayBuffer();
  },
});
