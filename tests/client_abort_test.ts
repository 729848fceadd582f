/**
 * Cancelling captureAttention() in each phase, against real loopback
 * servers that stall where the test needs them to: before the headers,
 * in the middle of the body, and (with the whole body sent) while large
 * layers are decoding on workers.
 */

import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { captureAttention } from "../lib/client/client.ts";
import { DecodePool } from "../lib/sources/vllm/decode.ts";
import type { ProgressEvent } from "../lib/progress.ts";
import { bodyBytes, layerEntry, response } from "./_captures.ts";

/** What the stalling server saw. */
interface Seen {
  /** Resolves when the chat request has arrived. */
  arrived: Promise<void>;
  /** Resolves when the client has gone (request aborted or body cancelled). */
  gone: Promise<void>;
}

/**
 * A loopback server that lists one model and answers the chat request with
 * `answer`, which decides how far it gets.
 */
function stallingServer(
  answer: (
    request: Request,
    seen: { gone: () => void },
  ) => Response | Promise<Response>,
) {
  let arrived!: () => void;
  let gone!: () => void;
  const seen: Seen = {
    arrived: new Promise((r) => (arrived = r)),
    gone: new Promise((r) => (gone = r)),
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      if (new URL(request.url).pathname === "/v1/models") {
        return Response.json({ data: [{ id: "stall", object: "model" }] });
      }
      arrived();
      return answer(request, { gone });
    },
  );
  return {
    baseUrl: `http://127.0.0.1:${server.addr.port}/v1`,
    seen,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** No headers until the client gives up. */
function neverAnswer(
  request: Request,
  seen: { gone: () => void },
): Promise<Response> {
  return new Promise((resolve) =>
    request.signal.addEventListener("abort", () => {
      seen.gone();
      resolve(new Response(null));
    })
  );
}

async function rejectsWith(
  promise: Promise<unknown>,
  name: string,
  message: RegExp,
): Promise<void> {
  const error = await promise.then(
    () => assert.fail("the capture should have been stopped"),
    (e) => e,
  );
  assert.ok(error instanceof DOMException, String(error));
  assert.equal(error.name, name);
  assert.match(error.message, message);
}

Deno.test("captureAttention() rejects with an AbortError and cancels the request when aborted while waiting for the headers", async () => {
  await using server = stallingServer(neverAnswer);
  const controller = new AbortController();
  server.seen.arrived.then(() => setTimeout(() => controller.abort(), 600));
  const events: ProgressEvent[] = [];
  await rejectsWith(
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: "x",
      signal: controller.signal,
      onProgress: (e) => events.push(e),
    }),
    "AbortError",
    /Cannot capture attention from http:\/\/127\.0\.0\.1:\d+\/v1: it was aborted/,
  );
  await server.seen.gone;
  assert.deepEqual([...new Set(events.map((e) => e.phase))], ["waiting"]);
  // While the server is silent, waiting events keep coming, the clock going.
  assert.ok(events.length >= 3, `${events.length} events`);
  assert.ok(events.at(-1)!.elapsedMs > events[0].elapsedMs + 400);
});

Deno.test("captureAttention() rejects with an AbortError and closes the connection when aborted while receiving the body", async () => {
  const body = bodyBytes(
    response([0, 1, 2].map((i) => layerEntry(i, [16, 2, 32]))),
  );
  await using server = stallingServer((_, seen) =>
    new Response(
      new ReadableStream({
        start(c) {
          // Half the body, then nothing: a stalled link.
          c.enqueue(body.slice(0, body.length >> 1));
        },
        cancel: () => seen.gone(),
      }),
      { headers: { "content-type": "application/json" } },
    )
  );
  const controller = new AbortController();
  const events: ProgressEvent[] = [];
  await rejectsWith(
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: "x",
      signal: controller.signal,
      onProgress: (e) => {
        events.push(e);
        if (e.phase === "receiving" && e.bytes > 0) controller.abort();
      },
    }),
    "AbortError",
    /it was aborted/,
  );
  await server.seen.gone;
  assert.ok(events.some((e) => e.bytes > 0));
  assert.ok(events.every((e) => e.phase !== "done"));
});

Deno.test("captureAttention() rejects with an AbortError and leaves no worker running when aborted while decoding", async () => {
  // Four layers of 8 MiB of float32 output: decoded on workers.
  const values = new Float16Array(256 * 8 * 1024).fill(1 / 1024);
  const data = gzipSync(new Uint8Array(values.buffer), { level: 1 })
    .toBase64();
  const body = bodyBytes(response([0, 1, 2, 3].map((i) => ({
    ...layerEntry(i, [1, 1, 4]),
    data,
    shape: [256, 8, 1024],
  }))));
  await using server = stallingServer(() => new Response(body));
  const before = DecodePool.liveWorkers;
  const controller = new AbortController();
  let decoding: ProgressEvent | null = null;
  await rejectsWith(
    captureAttention({
      baseUrl: server.baseUrl,
      prompt: "x",
      signal: controller.signal,
      onProgress: (e) => {
        if (e.phase === "decoding" && !decoding) {
          decoding = e;
          controller.abort();
        }
      },
    }),
    "AbortError",
    /it was aborted/,
  );
  const at = decoding as ProgressEvent | null;
  assert.ok(at, "the abort came in the decoding phase");
  assert.equal(at.bytes, body.length);
  assert.ok(at.layers < 4, "layers were still decoding");
  assert.equal(DecodePool.liveWorkers, before, "no decode worker is left");
});

Deno.test("captureAttention() rejects with a TimeoutError naming the timeout when the server stalls", async () => {
  await using server = stallingServer(neverAnswer);
  await rejectsWith(
    captureAttention({ baseUrl: server.baseUrl, prompt: "x", timeout: 300 }),
    "TimeoutError",
    /no complete answer within 300 ms; pass a larger timeout/,
  );
  await server.seen.gone;
});
