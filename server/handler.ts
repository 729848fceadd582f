/**
 * The demo server's HTTP handler: `GET /health`, `GET /metrics` (vLLM's
 * queue gauges), `GET /v1/models`, `POST /v1/chat/completions` (JSON or
 * `stream: true` server-sent events) and `POST /tokenize` (on the HTTP
 * thread: tokenizing is cheap), answering as vLLM with attention
 * instrumentation does, and refusing bad requests with OpenAI-style JSON
 * errors that say how to fix them. The model runs behind a
 * {@linkcode ModelRunner}; a client that disconnects cancels its request.
 *
 * The handler is a plain `(Request) => Promise<Response>`, so it runs
 * without a port (tests) or behind `Deno.serve` (see `serve.ts`).
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import { asHttpError } from "./engine.ts";
import { HttpError } from "./http_error.ts";
import type { DemoModel } from "./model/types.ts";
import { resolveServerOptions, type ServerOptions } from "./options.ts";
import { type ChatRequest, validateChatRequest } from "./request.ts";
import { LocalRunner, type ModelRunner } from "./runner.ts";
import { tokenizeBody } from "./tokenize.ts";

/** Handles one HTTP request. */
export type Handler = (request: Request) => Promise<Response>;

/** Largest request body read, in bytes (images travel inside the JSON). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

const ROUTES: Record<string, string> = {
  "/health": "GET",
  "/metrics": "GET",
  "/v1/models": "GET",
  "/v1/chat/completions": "POST",
  "/tokenize": "POST",
};

/**
 * Builds the handler for a model and server settings.
 *
 * @param model The demo model (or any model honoring the contract in `model/types.ts`).
 * @param options Instrumentation, layers, API key and limits.
 * @param runner Where the model runs; by default an engine on this thread
 *   (see `runner.ts`; {@linkcode startDemoServer} runs the bundled model in
 *   a worker).
 * @returns The request handler; it never throws, every failure is a response.
 *
 * @example
 * ```ts
 * import { createHandler } from "./handler.ts";
 * import type { DemoModel } from "./model/types.ts";
 * import assert from "node:assert/strict";
 *
 * const model = { name: "tiny", numLayers: 2, numHeads: 1, maxPositions: 8 } as DemoModel;
 * const handler = createHandler(model, { apiKey: "k" });
 * const res = await handler(new Request("http://x/v1/models", { headers: { authorization: "Bearer k" } }));
 * assert.equal((await res.json()).data[0].id, "tiny");
 * const denied = await handler(new Request("http://x/v1/models"));
 * assert.equal(denied.status, 401);
 * await denied.body?.cancel();
 * ```
 */
export function createHandler(
  model: DemoModel,
  options: ServerOptions = {},
  runner?: ModelRunner,
): Handler {
  const settings = resolveServerOptions(options);
  const models: ModelRunner = runner ?? new LocalRunner(model, settings);
  const modelName = settings.servedModelName ?? model.name;
  const maxModelLen = Math.min(
    settings.maxModelLen ?? model.maxPositions,
    model.maxPositions,
  );
  const created = Math.floor(Date.now() / 1000);
  const expectedKey = settings.apiKey === undefined
    ? null
    : new TextEncoder().encode(`Bearer ${settings.apiKey}`);

  function checkKey(request: Request): void {
    if (!expectedKey) return;
    const given = new TextEncoder().encode(
      request.headers.get("authorization") ?? "",
    );
    const ok = given.length === expectedKey.length &&
      timingSafeEqual(given, expectedKey);
    if (!ok) {
      throw new HttpError(
        401,
        "Cannot authorize the request: the API key is missing or wrong; send the key the server was started with (--api-key) as 'Authorization: Bearer <key>'",
        { code: "invalid_api_key" },
      );
    }
  }

  function listModels(): Response {
    return Response.json({
      object: "list",
      data: [{
        id: modelName,
        object: "model",
        created,
        owned_by: "attnscope",
        root: modelName,
        parent: null,
        max_model_len: maxModelLen,
      }],
    });
  }

  async function run(req: ChatRequest, signal: AbortSignal): Promise<Response> {
    if (req.model !== modelName) {
      throw new HttpError(
        404,
        `Cannot find model ${JSON.stringify(req.model)}: this server serves ${
          JSON.stringify(modelName)
        }; pass that name (GET /v1/models lists it)`,
        { param: "model", code: "model_not_found" },
      );
    }
    return await models.run(req, signal);
  }

  async function metrics(): Promise<Response> {
    const { running, waiting, queuedTokens, heapUsedBytes, externalBytes } =
      await models.stats();
    const label = `{model_name=${JSON.stringify(modelName)}}`;
    const lines = [
      "# HELP vllm:num_requests_running Number of requests being stepped.",
      "# TYPE vllm:num_requests_running gauge",
      `vllm:num_requests_running${label} ${running}`,
      "# HELP vllm:num_requests_waiting Number of requests waiting for a slot (--max-num-seqs).",
      "# TYPE vllm:num_requests_waiting gauge",
      `vllm:num_requests_waiting${label} ${waiting}`,
      "# HELP attnscope:queued_tokens Tokens of admitted work (prompt plus max_tokens), bounded by --max-queued-tokens.",
      "# TYPE attnscope:queued_tokens gauge",
      `attnscope:queued_tokens${label} ${queuedTokens}`,
      "# HELP attnscope:engine_heap_used_bytes JavaScript heap in use on the model's thread.",
      "# TYPE attnscope:engine_heap_used_bytes gauge",
      `attnscope:engine_heap_used_bytes ${heapUsedBytes}`,
      "# HELP attnscope:engine_external_bytes ArrayBuffer memory (caches, captures) on the model's thread.",
      "# TYPE attnscope:engine_external_bytes gauge",
      `attnscope:engine_external_bytes ${externalBytes}`,
      "# HELP process_resident_memory_bytes Resident memory of the server process.",
      "# TYPE process_resident_memory_bytes gauge",
      `process_resident_memory_bytes ${Deno.memoryUsage().rss}`,
    ];
    return new Response(lines.join("\n") + "\n", {
      headers: { "content-type": "text/plain; version=0.0.4" },
    });
  }

  return async function handler(request: Request): Promise<Response> {
    try {
      const path = new URL(request.url).pathname;
      const method = ROUTES[path];
      if (!method) {
        throw new HttpError(
          404,
          `Cannot find ${path}: the server answers GET /health, GET /metrics, GET /v1/models, POST /v1/chat/completions and POST /tokenize; check the URL (the OpenAI client's base URL ends in /v1)`,
          { code: "not_found" },
        );
      }
      if (request.method !== method) {
        throw new HttpError(
          405,
          `Cannot ${request.method} ${path}: it only answers ${method}; send a ${method} request`,
          { code: "method_not_allowed", headers: { Allow: method } },
        );
      }
      if (path === "/health") {
        return new Response(null, { status: models.loading ? 503 : 200 });
      }
      if (path === "/metrics") return await metrics();
      checkKey(request);
      if (path === "/v1/models") return listModels();
      if (path === "/tokenize") {
        return Response.json(
          tokenizeBody(model, modelName, maxModelLen, await readJson(request)),
        );
      }
      return await run(
        validateChatRequest(await readJson(request)),
        request.signal,
      );
    } catch (error) {
      return asHttpError(error).toResponse();
    } finally {
      // Unread request bodies (e.g. a 404 for a POST) are released here.
      if (!request.bodyUsed) await request.body?.cancel().catch(() => {});
    }
  };
}

async function readJson(request: Request): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw tooLarge(declared);
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (request.body) {
    for await (const chunk of request.body) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) throw tooLarge(size);
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  const text = new TextDecoder().decode(bytes);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(
      400,
      `Cannot parse the request body as JSON: ${
        text.trim() === "" ? "the body is empty" : (error as Error).message
      }; send a JSON object like {"model": "...", "messages": [{"role": "user", "content": "Hello"}]}`,
      { code: "invalid_json" },
    );
  }
}

function tooLarge(bytes: number): HttpError {
  return new HttpError(
    413,
    `Cannot read the request: its body has ${bytes} bytes, over the limit of ${MAX_BODY_BYTES}; send smaller images or a shorter conversation`,
    { code: "request_too_large" },
  );
}
