/**
 * The demo server under load, on a real loopback port with its model worker:
 * `/health` answers during a long generation, a short capture interleaves
 * with a long generation, a client that disconnects (or cancels its stream)
 * stops its generation, `--max-num-seqs` queues, and `--max-queued-tokens`
 * refuses with a 503 that says to retry later.
 *
 * A "long generation" is a prompt the model never ends (a run of one letter)
 * without max_tokens: as on vLLM it may generate to the end of the context,
 * which takes the demo model a minute. No test waits for one to end.
 */

import assert from "node:assert/strict";
import { type DemoServer, startDemoServer } from "../server/serve.ts";

const NEVER_ENDS = "xxxxxxxxxxxxxx";
const SHORT = "alpha: 1729\nbeta: 2048\nalpha:";

function chat(
  server: DemoServer,
  content: string,
  extra: Record<string, unknown> = {},
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(`${server.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: server.model,
      messages: [{ role: "user", content }],
      temperature: 0,
      ...extra,
    }),
    signal,
  });
}

/** Starts a generation that would run for a minute; abort it to end it. */
function startLong(
  server: DemoServer,
  extra: Record<string, unknown> = {},
): { controller: AbortController; response: Promise<Response | Error> } {
  const controller = new AbortController();
  const response = chat(server, NEVER_ENDS, extra, controller.signal)
    .catch((error: Error) => error);
  return { controller, response };
}

interface Gauges {
  running: number;
  waiting: number;
  queuedTokens: number;
}

async function gauges(server: DemoServer): Promise<Gauges> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const read = (name: string) => {
    const match = new RegExp(`^${name}\\{[^}]*\\} (\\d+)$`, "m").exec(text);
    assert.ok(match, `/metrics has no ${name}:\n${text}`);
    return Number(match[1]);
  };
  return {
    running: read("vllm:num_requests_running"),
    waiting: read("vllm:num_requests_waiting"),
    queuedTokens: read("attnscope:queued_tokens"),
  };
}

/**
 * Polls the gauges until `ok` holds; fails after `ms`. The bounds are
 * generous for a loaded machine and cost nothing when things go well (it
 * returns as soon as `ok` holds); the long generation never ends by itself,
 * so any bound still tells a stopped one from one that runs on.
 */
async function until(
  server: DemoServer,
  ok: (g: Gauges) => boolean,
  ms = 30_000,
): Promise<Gauges> {
  const end = performance.now() + ms;
  while (true) {
    const g = await gauges(server);
    if (ok(g)) return g;
    if (performance.now() > end) {
      assert.fail(`the gauges never got there: ${JSON.stringify(g)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function timed(run: () => Promise<Response>) {
  const start = performance.now();
  const res = await run();
  const body = await res.json();
  return { res, body, ms: performance.now() - start };
}

Deno.test("startDemoServer() answers /health and /v1/models within 100 ms during a long generation", async () => {
  await using server = await startDemoServer();
  const long = startLong(server);
  await until(server, (g) => g.running === 1);
  const worst: Record<string, number> = { "/health": 0, "/v1/models": 0 };
  for (let i = 0; i < 10; i++) {
    for (const path of ["/health", "/v1/models"]) {
      const start = performance.now();
      const res = await fetch(`${server.url}${path}`);
      await res.body?.cancel();
      assert.equal(res.status, 200);
      worst[path] = Math.max(worst[path], performance.now() - start);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  // Still generating: the answers came while the model computed.
  assert.equal((await gauges(server)).running, 1);
  long.controller.abort();
  await long.response;
  assert.ok(worst["/health"] < 100, `/health took ${worst["/health"]} ms`);
  assert.ok(
    worst["/v1/models"] < 100,
    `/v1/models took ${worst["/v1/models"]} ms`,
  );
});

Deno.test("startDemoServer() finishes a short capture while a long generation keeps running", async () => {
  await using server = await startDemoServer();
  const alone = await timed(() =>
    chat(server, SHORT, { attn_capture: 1, max_tokens: 8 })
  );
  assert.equal(alone.body.choices[0].message.content, "1729");
  const long = startLong(server);
  await until(server, (g) => g.running === 1);
  const during = await timed(() =>
    chat(server, SHORT, { attn_capture: 1, max_tokens: 8 })
  );
  const after = await gauges(server);
  long.controller.abort();
  await long.response;
  assert.equal(during.res.status, 200);
  assert.equal(during.body.choices[0].message.content, "1729");
  assert.equal(during.body.attn_capture_data.length, 2);
  // The long one, a minute of work, was still running when the short one
  // was answered: they took turns.
  assert.equal(after.running, 1);
  // Its own time plus the long one's steps, not the long one's whole run.
  assert.ok(
    during.ms < 5 * alone.ms + 2000,
    `the short capture took ${during.ms.toFixed(0)} ms beside the long one, ${
      alone.ms.toFixed(0)
    } ms alone`,
  );
});

Deno.test("startDemoServer() stops the generation of a client that disconnects, and the next request is not delayed", async () => {
  await using server = await startDemoServer();
  const alone = await timed(() => chat(server, SHORT, { max_tokens: 8 }));
  const long = startLong(server);
  const busy = await until(server, (g) => g.running === 1);
  assert.ok(busy.queuedTokens > 8000); // the whole context, as vLLM's default
  await new Promise((r) => setTimeout(r, 300));
  long.controller.abort();
  assert.equal(((await long.response) as Error).name, "AbortError");
  // Stopped and its work released, long before it would have ended.
  await until(server, (g) => g.running === 0 && g.queuedTokens === 0, 10_000);
  const next = await timed(() => chat(server, SHORT, { max_tokens: 8 }));
  assert.equal(next.body.choices[0].message.content, "1729");
  assert.ok(
    next.ms < 5 * alone.ms + 2000,
    `the next request took ${next.ms.toFixed(0)} ms, ${
      alone.ms.toFixed(0)
    } ms before`,
  );
});

Deno.test("startDemoServer() stops a streamed generation whose reader cancels the stream", async () => {
  await using server = await startDemoServer();
  const res = await chat(server, NEVER_ENDS, { stream: true });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  // Events arrive while the model generates, not at the end.
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /^data: /);
  assert.equal((await gauges(server)).running, 1);
  await reader.cancel();
  await until(server, (g) => g.running === 0 && g.queuedTokens === 0, 10_000);
});

Deno.test("startDemoServer() refuses with a 503 to retry later past --max-queued-tokens, and admits again once work is done", async () => {
  await using server = await startDemoServer({ maxQueuedTokens: 9000 });
  const long = startLong(server);
  await until(server, (g) => g.running === 1);
  const refused = await chat(server, NEVER_ENDS);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("retry-after"), "1");
  const error = (await refused.json()).error;
  assert.equal(error.code, "server_overloaded");
  assert.equal(error.type, "server_error");
  assert.match(
    error.message,
    /^Cannot accept the request now: .*8192.*9000 \(--max-queued-tokens\); retry later/,
  );
  // A request that fits beside the long one is admitted.
  const small = await chat(server, SHORT, { max_tokens: 8 });
  assert.equal((await small.json()).choices[0].message.content, "1729");
  long.controller.abort();
  await long.response;
  await until(server, (g) => g.queuedTokens === 0, 10_000);
  const again = await chat(server, SHORT);
  assert.equal(again.status, 200);
  await again.body?.cancel();
});

Deno.test("startDemoServer() queues requests past --max-num-seqs and runs them when a slot frees", async () => {
  await using server = await startDemoServer({ maxNumSeqs: 1 });
  const long = startLong(server);
  await until(server, (g) => g.running === 1);
  let answered = false;
  const queued = chat(server, SHORT, { max_tokens: 8 }).then(async (res) => {
    answered = true;
    return await res.json();
  });
  const g = await until(server, (g) => g.waiting === 1);
  assert.equal(g.running, 1);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(answered, false, "the queued request ran beside the long one");
  long.controller.abort();
  await long.response;
  assert.equal((await queued).choices[0].message.content, "1729");
  await until(server, (g) => g.running === 0 && g.waiting === 0);
});

Deno.test("startDemoServer() cancels a waiting request whose client disconnects", async () => {
  await using server = await startDemoServer({ maxNumSeqs: 1 });
  const long = startLong(server);
  await until(server, (g) => g.running === 1);
  const waiting = startLong(server);
  await until(server, (g) => g.waiting === 1);
  waiting.controller.abort();
  await waiting.response;
  const g = await until(server, (g) => g.waiting === 0);
  assert.equal(g.running, 1);
  long.controller.abort();
  await long.response;
  await until(server, (g) => g.running === 0 && g.queuedTokens === 0);
});
