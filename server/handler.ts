/**
 * The demo server's HTTP handler: `GET /health`, `GET /v1/models` and
 * `POST /v1/chat/completions` (JSON or `stream: true` server-sent events),
 * answering as vLLM with attention instrumentation does, and refusing bad
 * requests with OpenAI-style JSON errors that say how to fix them.
 *
 * The handler is a plain `(Request) => Promise<Response>`, so it runs
 * without a port (tests) or behind `Deno.serve` (see `serve.ts`).
 *
 * @module
 */

import { timingSafeEqual } from "node:crypto";
import {
  completionBody,
  type FinishedGeneration,
  streamEvents,
} from "./completion.ts";
import { encodeAttentionLayer, type WireLayer } from "./encode.ts";
import { HttpError } from "./http_error.ts";
import type { DemoModel, GenerateResult, ModelInput } from "./model/types.ts";
import { resolveServerOptions, type ServerOptions } from "./options.ts";
import { type ChatRequest, validateChatRequest } from "./request.ts";

/** Handles one HTTP request. */
export type Handler = (request: Request) => Promise<Response>;

/** Largest request body read, in bytes (images travel inside the JSON). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

const ROUTES: Record<string, string> = {
  "/health": "GET",
  "/v1/models": "GET",
  "/v1/chat/completions": "POST",
};

/**
 * Builds the handler for a model and server settings.
 *
 * @param model The demo model (or any model honoring the contract in `model/types.ts`).
 * @param options Instrumentation, layers, API key and limits.
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
): Handler {
  const settings = resolveServerOptions(options);
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

  function captureLayers(req: ChatRequest): number[] {
    if (!req.attnCapture) return [];
    if (!settings.enableAttentionInstrumentation) {
      throw new HttpError(
        400,
        "Cannot capture attention: the server was started without attention instrumentation; restart it with --enable-attention-instrumentation (or startDemoServer({ enableAttentionInstrumentation: true })), or send attn_capture: 0",
        { param: "attn_capture", code: "attention_instrumentation_disabled" },
      );
    }
    const asked = req.attnCaptureLayers ?? "all";
    const list = asked === "all"
      ? settings.attentionInstrumentationLayers
      : asked;
    const all = Array.from({ length: model.numLayers }, (_, i) => i);
    if (list === "all") return all;
    const outside = list.filter((l) => l >= model.numLayers);
    if (outside.length) {
      const where = req.attnCaptureLayers === undefined ||
          req.attnCaptureLayers === "all"
        ? "--attention-instrumentation-layers"
        : "attn_capture_layers";
      throw new HttpError(
        400,
        `Cannot capture layer${outside.length > 1 ? "s" : ""} ${
          outside.join(", ")
        }: ${modelName} has ${model.numLayers} layers, so valid layers are 0..${
          model.numLayers - 1
        }; fix ${where} (or pass "all")`,
        { param: "attn_capture_layers", code: "layer_out_of_range" },
      );
    }
    return [...list].sort((a, b) => a - b);
  }

  function checkLimits(
    input: ModelInput,
    req: ChatRequest,
    layers: number[],
  ): number {
    const promptLen = input.ids.length;
    if (promptLen >= maxModelLen) {
      throw new HttpError(
        400,
        `Cannot generate: the prompt has ${promptLen} tokens but the model's context holds ${maxModelLen} (prompt plus reply); shorten the messages`,
        { param: "messages", code: "context_length_exceeded" },
      );
    }
    const maxTokens = req.maxTokens ?? maxModelLen - promptLen;
    if (promptLen + maxTokens > maxModelLen) {
      throw new HttpError(
        400,
        `Cannot generate: this model's maximum context length is ${maxModelLen} tokens, but ${
          promptLen + maxTokens
        } were requested (${promptLen} in the messages, ${maxTokens} in the completion); reduce the messages or max_tokens`,
        { param: "max_tokens", code: "context_length_exceeded" },
      );
    }
    if (layers.length === 0) return maxTokens;
    // Captured scores grow with the square of the sequence: a request that
    // names max_tokens must fit the limit; the default length is shortened
    // to fit it, as the default already stops at the context's end.
    const perRow = layers.length * model.numHeads * 2;
    const limit = settings.maxAttentionCaptureMb * 1024 * 1024;
    const mib = (rows: number) =>
      (perRow * rows * rows / 2 ** 20).toPrecision(3);
    const maxRows = Math.floor(Math.sqrt(limit / perRow));
    const room = maxRows - promptLen + 1;
    const what = (rows: number) =>
      `${layers.length} layer${
        layers.length > 1 ? "s" : ""
      } of ${rows} x ${model.numHeads} x ${rows} float16 scores need ${
        mib(rows)
      } MiB, over the server's limit of ${settings.maxAttentionCaptureMb} MiB`;
    if (room < 1) {
      throw new HttpError(
        400,
        `Cannot capture attention: for the prompt alone, ${
          what(promptLen)
        }; capture fewer layers (attn_capture_layers) or shorten the prompt, or restart the server with a larger --max-attention-capture-mb`,
        { param: "attn_capture_layers", code: "capture_too_large" },
      );
    }
    if (req.maxTokens !== undefined && maxTokens > room) {
      throw new HttpError(
        400,
        `Cannot capture attention: with max_tokens ${maxTokens}, ${
          what(promptLen + maxTokens - 1)
        }; lower max_tokens to at most ${room}, capture fewer layers (attn_capture_layers), or restart the server with a larger --max-attention-capture-mb`,
        { param: "max_tokens", code: "capture_too_large" },
      );
    }
    return Math.min(maxTokens, room);
  }

  function run(req: ChatRequest): Response {
    if (req.model !== modelName) {
      throw new HttpError(
        404,
        `Cannot find model ${JSON.stringify(req.model)}: this server serves ${
          JSON.stringify(modelName)
        }; pass that name (GET /v1/models lists it)`,
        { param: "model", code: "model_not_found" },
      );
    }
    const layers = captureLayers(req);
    const input = renderChat(model, req);
    const maxTokens = checkLimits(input, req, layers);
    const stop = req.stop;
    const result = generate(model, input, {
      maxTokens,
      temperature: req.temperature,
      seed: req.seed,
      topLogprobs: req.topLogprobs,
      promptTopLogprobs: req.promptLogprobs ?? 0,
      captureLayers: req.stream ? [] : layers,
      shouldStop: stop.length
        ? (ids) => firstStop(model.decode(ids), stop) !== null
        : undefined,
    });
    const text = model.decode(result.tokens);
    const hit = stop.length ? firstStop(text, stop) : null;
    const gen: FinishedGeneration = {
      model,
      modelName,
      promptLen: input.ids.length,
      result,
      content: hit ? text.slice(0, hit.index) : text,
      stopReason: hit?.stop ?? null,
      logprobs: req.logprobs,
      topLogprobs: req.topLogprobs,
      promptLogprobs: req.promptLogprobs !== null,
    };
    if (req.stream) {
      const events = streamEvents(gen, req.includeUsage);
      const bytes = new TextEncoder().encode(events.join(""));
      return new Response(bytes, {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
        },
      });
    }
    const attention = req.attnCapture
      ? encodeCapture(model, input, result, layers)
      : null;
    return Response.json(completionBody(gen, attention));
  }

  return async function handler(request: Request): Promise<Response> {
    try {
      const path = new URL(request.url).pathname;
      const method = ROUTES[path];
      if (!method) {
        throw new HttpError(
          404,
          `Cannot find ${path}: the server answers GET /health, GET /v1/models and POST /v1/chat/completions; check the URL (the OpenAI client's base URL ends in /v1)`,
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
      if (path === "/health") return new Response(null, { status: 200 });
      checkKey(request);
      if (path === "/v1/models") return listModels();
      return run(validateChatRequest(await readJson(request)));
    } catch (error) {
      if (error instanceof HttpError) return error.toResponse();
      // A bug must not take the server down nor leak a stack trace.
      return new HttpError(
        500,
        `Cannot answer the request: the server failed (${
          (error as Error)?.message ?? String(error)
        }); this is a bug in the demo server, please report it with the request`,
      ).toResponse();
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

/** The model's own input errors (bad image, bad role order) are the client's fault. */
function renderChat(model: DemoModel, req: ChatRequest): ModelInput {
  try {
    return model.renderChat(req.messages);
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      throw new HttpError(400, error.message, { param: "messages" });
    }
    throw error;
  }
}

function generate(
  model: DemoModel,
  input: ModelInput,
  options: Parameters<DemoModel["generate"]>[1],
): GenerateResult {
  try {
    return model.generate(input, options);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new HttpError(400, error.message, { code: "generation_refused" });
    }
    throw error;
  }
}

function encodeCapture(
  model: DemoModel,
  input: ModelInput,
  result: GenerateResult,
  layers: number[],
): WireLayer[] {
  const rows = input.ids.length + result.tokens.length - 1;
  const positions = {
    promptLen: input.ids.length,
    visionRanges: input.visionRanges,
  };
  return layers.map((l) => {
    const scores = result.attention.get(l);
    if (!scores) {
      throw new Error(`the model returned no attention for layer ${l}`);
    }
    return encodeAttentionLayer(
      l,
      scores,
      [rows, model.numHeads, rows],
      positions,
    );
  });
}

function firstStop(
  text: string,
  stops: readonly string[],
): { index: number; stop: string } | null {
  let best: { index: number; stop: string } | null = null;
  for (const stop of stops) {
    const index = text.indexOf(stop);
    if (index >= 0 && (!best || index < best.index)) best = { index, stop };
  }
  return best;
}
