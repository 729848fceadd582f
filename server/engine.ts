/**
 * The demo server's engine: turns validated chat requests into model runs
 * and interleaves them as continuous batching does. Every round steps each
 * running request once (a chunk of its prompt, one generated token, or one
 * captured layer's encoding), then yields to the event loop, where new
 * requests and cancellations arrive. So a short request issued during a long
 * generation finishes in about its own time plus a few of the long one's
 * steps, and a cancelled request stops within one step and lets go of its
 * memory.
 *
 * Admission follows vLLM's `--max-num-seqs`: at most that many requests run
 * at once, the rest wait in order. The work all admitted requests may still
 * need (prompt plus most tokens to generate, each) is bounded by
 * `--max-queued-tokens`; a request past it is refused with a 503 that says
 * to retry later.
 *
 * The engine knows nothing of HTTP or threads: it reports through a
 * {@linkcode JobSink}, so it runs in the model worker (see `model_worker.ts`)
 * or, for a model given in code, on the calling thread.
 *
 * @module
 */

import {
  completionBody,
  CompletionStream,
  type FinishedGeneration,
  firstStop,
} from "./completion.ts";
import { encodeAttentionLayer, type WireLayer } from "./encode.ts";
import { type CapturePrefix, rowsHeld } from "./capture_rows.ts";
import { HttpError } from "./http_error.ts";
import type {
  DemoModel,
  GenerateOptions,
  GenerateResult,
  GenerationSteps,
  ModelInput,
} from "./model/types.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { ChatRequest } from "./request.ts";

/** Where the engine reports one request's outcome. */
export interface JobSink {
  /** The request is refused or failed; nothing else follows. */
  error(error: HttpError): void;
  /** The whole JSON body of a non-streamed completion; nothing else follows. */
  json(body: Uint8Array): void;
  /** Server-sent events of a streamed completion, in order. */
  events(text: string): void;
  /** The stream is complete; nothing else follows. */
  end(): void;
}

/** A snapshot of the engine's queues. */
export interface EngineStats {
  /** Requests being stepped. */
  running: number;
  /** Requests admitted but waiting for a slot. */
  waiting: number;
  /** Tokens of work admitted and not yet done or cancelled. */
  queuedTokens: number;
  /** JavaScript heap in use on the engine's thread, in bytes. */
  heapUsedBytes: number;
  /** Memory of live ArrayBuffers (caches, captures) on the engine's thread, in bytes. */
  externalBytes: number;
}

type Phase = "generate" | "encode";

interface Job {
  request: ChatRequest;
  sink: JobSink;
  input: ModelInput;
  layers: number[];
  options: GenerateOptions;
  work: number;
  phase: Phase;
  run: GenerationSteps | null;
  result: GenerateResult | null;
  encoded: WireLayer[];
  stream: CompletionStream | null;
  cancelled: boolean;
}

/**
 * Runs requests on a model, interleaved.
 *
 * @example
 * ```ts
 * import { Engine } from "./engine.ts";
 * import { loadDemoModel } from "./model/mod.ts";
 * import { resolveServerOptions } from "./options.ts";
 * import { validateChatRequest } from "./request.ts";
 * import assert from "node:assert/strict";
 *
 * const model = loadDemoModel();
 * const engine = new Engine(model, resolveServerOptions());
 * const request = validateChatRequest({
 *   model: model.name, temperature: 0,
 *   messages: [{ role: "user", content: "a: 12\nb: 34\na:" }],
 * });
 * const body = await new Promise<Uint8Array>((resolve, reject) =>
 *   engine.submit(request, {
 *     json: resolve, error: reject, events: () => {}, end: () => {},
 *   })
 * );
 * const reply = JSON.parse(new TextDecoder().decode(body));
 * assert.equal(reply.choices[0].message.content, "12");
 * assert.equal(engine.stats().queuedTokens, 0);
 * ```
 */
export class Engine {
  readonly #model: DemoModel;
  readonly #settings: ResolvedServerOptions;
  readonly #modelName: string;
  readonly #maxModelLen: number;
  #waiting: Job[] = [];
  #running: Job[] = [];
  #queuedTokens = 0;
  #looping = false;

  /**
   * Creates an idle engine; its loop runs only while it has requests.
   *
   * @param model The model to run.
   * @param settings Resolved server settings (limits, layers, name).
   */
  constructor(model: DemoModel, settings: ResolvedServerOptions) {
    this.#model = model;
    this.#settings = settings;
    this.#modelName = settings.servedModelName ?? model.name;
    this.#maxModelLen = Math.min(
      settings.maxModelLen ?? model.maxPositions,
      model.maxPositions,
    );
  }

  /**
   * The engine's queues right now.
   *
   * @returns Running and waiting requests, the queued tokens, and the
   *   memory of the thread the engine runs on.
   */
  stats(): EngineStats {
    const { heapUsed, external } = Deno.memoryUsage();
    return {
      running: this.#running.length,
      waiting: this.#waiting.length,
      queuedTokens: this.#queuedTokens,
      heapUsedBytes: heapUsed,
      externalBytes: external,
    };
  }

  /**
   * Admits a request, or refuses it through the sink (400 for what the model
   * cannot run, 503 when the queue is full).
   *
   * @param request The validated request (its model name already checked).
   * @param sink Where the outcome goes.
   * @returns Cancels the request: it is dropped before its next step, and
   *   its sink hears nothing more.
   */
  submit(request: ChatRequest, sink: JobSink): () => void {
    let job: Job;
    try {
      job = this.#prepare(request, sink);
    } catch (error) {
      sink.error(asHttpError(error));
      return () => {};
    }
    this.#waiting.push(job);
    this.#queuedTokens += job.work;
    this.#startLoop();
    return () => this.#cancel(job);
  }

  #prepare(request: ChatRequest, sink: JobSink): Job {
    const layers = this.#captureLayers(request);
    this.#checkAblation(request);
    const input = renderChat(this.#model, request);
    const prefix = layers.length && !request.stream
      ? request.attnCapturePrefix
      : undefined;
    const maxTokens = this.#checkLimits(input, request, layers, prefix);
    const captureRows = prefix
      ? checkPrefix(prefix, input.ids.length, maxTokens)
      : undefined;
    const work = input.ids.length + maxTokens;
    const busy = this.#running.length + this.#waiting.length;
    if (
      busy > 0 && this.#queuedTokens + work > this.#settings.maxQueuedTokens
    ) {
      throw new HttpError(
        503,
        `Cannot accept the request now: the server has ${busy} request${
          busy > 1 ? "s" : ""
        } holding ${this.#queuedTokens} tokens of work, and this one's ${work} (prompt plus max_tokens) would pass the limit of ${this.#settings.maxQueuedTokens} (--max-queued-tokens); retry later, or lower max_tokens`,
        {
          code: "server_overloaded",
          headers: { "Retry-After": "1" },
        },
      );
    }
    const stop = request.stop;
    const model = this.#model;
    return {
      request,
      sink,
      input,
      layers,
      work,
      options: {
        maxTokens,
        temperature: request.temperature,
        seed: request.seed,
        topLogprobs: request.topLogprobs,
        // Undefined when not asked: a real model computes none then.
        promptTopLogprobs: request.promptLogprobs ?? undefined,
        captureLayers: request.stream ? [] : layers,
        ...(captureRows ? { captureRows } : {}),
        ...(request.ablateHeads ? { ablateHeads: request.ablateHeads } : {}),
        shouldStop: stop.length
          ? (ids) => firstStop(model.decode(ids), stop) !== null
          : undefined,
      },
      phase: "generate",
      run: null,
      result: null,
      encoded: [],
      stream: null,
      cancelled: false,
    };
  }

  #cancel(job: Job): void {
    if (job.cancelled) return;
    job.cancelled = true;
    const waiting = this.#waiting.indexOf(job);
    if (waiting >= 0) this.#waiting.splice(waiting, 1);
    const running = this.#running.indexOf(job);
    if (running >= 0) this.#running.splice(running, 1);
    if (waiting >= 0 || running >= 0) this.#queuedTokens -= job.work;
    this.#release(job);
  }

  /** Drops the job's caches and results so they can be collected. */
  #release(job: Job): void {
    job.run = null;
    job.result = null;
    job.encoded = [];
  }

  #startLoop(): void {
    if (this.#looping) return;
    this.#looping = true;
    this.#loop().finally(() => {
      this.#looping = false;
      collectGarbage();
    });
  }

  async #loop(): Promise<void> {
    while (this.#running.length > 0 || this.#waiting.length > 0) {
      while (
        this.#running.length < this.#settings.maxNumSeqs &&
        this.#waiting.length > 0
      ) {
        this.#running.push(this.#waiting.shift()!);
      }
      for (const job of [...this.#running]) {
        if (job.cancelled) continue;
        let finished: boolean;
        try {
          finished = this.#advance(job);
        } catch (error) {
          this.#finish(job);
          job.sink.error(asHttpError(error));
          continue;
        }
        if (finished) this.#finish(job);
      }
      // A macrotask turn, so cancellations and new requests are seen
      // between rounds (a timer would be clamped to 4 ms a turn).
      await nextTurn();
    }
  }

  #finish(job: Job): void {
    const at = this.#running.indexOf(job);
    if (at >= 0) {
      this.#running.splice(at, 1);
      this.#queuedTokens -= job.work;
    }
  }

  /** One step of a job; `true` when it has answered. */
  #advance(job: Job): boolean {
    if (job.phase === "encode") return this.#encodeStep(job);
    if (!job.run) {
      job.run = startRun(this.#model, job.input, job.options);
      if (job.request.stream) {
        job.stream = new CompletionStream({
          model: this.#model,
          modelName: this.#modelName,
          promptLen: job.input.ids.length,
          logprobs: job.request.logprobs,
          topLogprobs: job.request.topLogprobs,
          includeUsage: job.request.includeUsage,
          stops: job.request.stop,
          ablateHeads: job.request.ablateHeads,
        });
        job.sink.events(job.stream.open());
      }
    }
    const run = job.run;
    const done = run.step();
    if (job.stream) {
      if (!done) {
        const events = job.stream.advance(run.tokens, run.logprobs);
        if (events.length) job.sink.events(events.join(""));
        return false;
      }
      const result = run.result();
      const text = this.#model.decode(result.tokens);
      const hit = job.request.stop.length
        ? firstStop(text, job.request.stop)
        : null;
      job.sink.events(
        job.stream.finish(
          result.tokens,
          result.logprobs,
          result.finishReason,
          hit?.stop ?? null,
        ).join(""),
      );
      job.sink.end();
      this.#release(job);
      return true;
    }
    if (!done) return false;
    // A step-wise run hands over one layer at a time (see #encodeStep).
    job.result = run.attention
      ? run.result({ attention: false })
      : run.result();
    if (!run.attention) job.run = null;
    job.phase = "encode";
    return job.layers.length === 0 ? this.#answer(job) : false;
  }

  /** Encodes one captured layer (gzip is the costly part); answers after the last. */
  #encodeStep(job: Job): boolean {
    const result = job.result!;
    const l = job.layers[job.encoded.length];
    const scores = job.run?.attention?.(l) ?? result.attention.get(l);
    if (!scores) {
      throw new Error(`the model returned no attention for layer ${l}`);
    }
    const total = job.input.ids.length + result.tokens.length - 1;
    const { first, rows } = rowsHeld(job.options.captureRows, total);
    job.encoded.push(
      encodeAttentionLayer(l, scores, [rows, this.#model.numHeads, total], {
        promptLen: job.input.ids.length,
        visionRanges: job.input.visionRanges,
        firstRow: first,
        totalLen: total,
      }, { layerMeta: this.#model.layerMeta?.[l] }),
    );
    // Each layer's float32 scores go as soon as they are encoded.
    result.attention.delete(l);
    if (job.encoded.length < job.layers.length) return false;
    return this.#answer(job);
  }

  #answer(job: Job): boolean {
    const result = job.result!;
    const req = job.request;
    const text = this.#model.decode(result.tokens);
    const hit = req.stop.length ? firstStop(text, req.stop) : null;
    const gen: FinishedGeneration = {
      model: this.#model,
      modelName: this.#modelName,
      promptLen: job.input.ids.length,
      result,
      content: hit ? text.slice(0, hit.index) : text,
      stopReason: hit?.stop ?? null,
      logprobs: req.logprobs,
      topLogprobs: req.topLogprobs,
      promptLogprobs: req.promptLogprobs !== null,
    };
    const body = completionBody(
      gen,
      req.attnCapture ? job.encoded : null,
      req.ablateHeads,
    );
    job.sink.json(new TextEncoder().encode(JSON.stringify(body)));
    this.#release(job);
    return true;
  }

  /** Every ablated head must exist: a 400 names the first that does not. */
  #checkAblation(req: ChatRequest): void {
    const { numLayers, numHeads } = this.#model;
    const wrong = req.ablateHeads?.find(([l, h]) =>
      l >= numLayers || h >= numHeads
    );
    if (!wrong) return;
    const [l, h] = wrong;
    const what = l >= numLayers
      ? `layer ${l} does not exist (${this.#modelName} has layers 0..${
        numLayers - 1
      })`
      : `head ${h} does not exist (${this.#modelName} has query heads 0..${
        numHeads - 1
      } in each layer)`;
    throw new HttpError(
      400,
      `Cannot ablate head [${l}, ${h}]: ${what}; fix attn_ablate_heads`,
      { param: "attn_ablate_heads", code: "head_out_of_range" },
    );
  }

  #captureLayers(req: ChatRequest): number[] {
    const model = this.#model;
    if (!req.attnCapture) return [];
    if (!this.#settings.enableAttentionInstrumentation) {
      throw new HttpError(
        400,
        "Cannot capture attention: the server was started without attention instrumentation; restart it with --enable-attention-instrumentation (or startDemoServer({ enableAttentionInstrumentation: true })), or send attn_capture: 0",
        { param: "attn_capture", code: "attention_instrumentation_disabled" },
      );
    }
    const asked = req.attnCaptureLayers ?? "all";
    const list = asked === "all"
      ? this.#settings.attentionInstrumentationLayers
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
        }: ${this.#modelName} has ${model.numLayers} layers, so valid layers are 0..${
          model.numLayers - 1
        }; fix ${where} (or pass "all")`,
        { param: "attn_capture_layers", code: "layer_out_of_range" },
      );
    }
    return [...list].sort((a, b) => a - b);
  }

  #checkLimits(
    input: ModelInput,
    req: ChatRequest,
    layers: number[],
    prefix?: CapturePrefix,
  ): number {
    const maxModelLen = this.#maxModelLen;
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
    // Captured scores grow with the rows kept times the sequence: a request
    // that names max_tokens must fit the limit; the default length is
    // shortened to fit it, as the default already stops at the context's end.
    const numHeads = this.#model.numHeads;
    const limitMb = this.#settings.maxAttentionCaptureMb;
    const perCell = layers.length * numHeads * 2;
    const limit = limitMb * 1024 * 1024;
    const kept = (rows: number) => rowsHeld(prefix, rows).rows;
    const bytes = (rows: number) => perCell * kept(rows) * rows;
    const mib = (rows: number) => (bytes(rows) / 2 ** 20).toPrecision(3);
    const maxRows = largestWithin(bytes, limit, maxModelLen);
    const room = maxRows - promptLen + 1;
    const what = (rows: number) =>
      `${layers.length} layer${layers.length > 1 ? "s" : ""} of ${
        kept(rows)
      } x ${numHeads} x ${rows} float16 scores need ${
        mib(rows)
      } MiB, over the server's limit of ${limitMb} MiB`;
    const fewer = prefix
      ? "capture fewer layers (attn_capture_layers) or rows (attn_capture_prefix)"
      : "capture fewer layers (attn_capture_layers)";
    if (room < 1) {
      throw new HttpError(
        400,
        `Cannot capture attention: for the prompt alone, ${
          what(promptLen)
        }; ${fewer} or shorten the prompt, or restart the server with a larger --max-attention-capture-mb`,
        { param: "attn_capture_layers", code: "capture_too_large" },
      );
    }
    if (req.maxTokens !== undefined && maxTokens > room) {
      throw new HttpError(
        400,
        `Cannot capture attention: with max_tokens ${maxTokens}, ${
          what(promptLen + maxTokens - 1)
        }; lower max_tokens to at most ${room}, ${fewer}, or restart the server with a larger --max-attention-capture-mb`,
        { param: "max_tokens", code: "capture_too_large" },
      );
    }
    return Math.min(maxTokens, room);
  }
}

/**
 * The largest `rows` in `1..upTo` whose `bytes(rows)` fits `limit`
 * (`bytes` never decreases), or 0 when none does.
 */
function largestWithin(
  bytes: (rows: number) => number,
  limit: number,
  upTo: number,
): number {
  let lo = 0, hi = upTo;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (bytes(mid) <= limit) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The rows to keep for a prefix, refused when no row of it can exist: a
 * generation of at most `maxTokens` has `promptLen + maxTokens - 1` rows.
 */
function checkPrefix(
  prefix: CapturePrefix,
  promptLen: number,
  maxTokens: number,
): { start: number; end: number } {
  const most = promptLen + maxTokens - 1;
  if (prefix.start >= most) {
    throw new HttpError(
      400,
      `Cannot capture rows from ${prefix.start}: this request has at most ${most} rows (${promptLen} prompt tokens plus max_tokens ${maxTokens}, less the last token, whose query is never computed), so rows 0..${
        most - 1
      }; lower the start of attn_capture_prefix (the last prompt row is ${
        promptLen - 1
      }) or raise max_tokens`,
      { param: "attn_capture_prefix", code: "invalid_capture_prefix" },
    );
  }
  return { start: prefix.start, end: Math.min(prefix.end ?? most, most) };
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

/** A step-wise run; a model without `start` runs `generate` as one step. */
function startRun(
  model: DemoModel,
  input: ModelInput,
  options: GenerateOptions,
): GenerationSteps {
  try {
    if (model.start) return model.start(input, options);
  } catch (error) {
    throw refusal(error);
  }
  let result: GenerateResult | null = null;
  return {
    step() {
      try {
        result = model.generate(input, options);
      } catch (error) {
        throw refusal(error);
      }
      return true;
    },
    get tokens() {
      return result?.tokens ?? [];
    },
    get logprobs() {
      return result?.logprobs ?? [];
    },
    result() {
      if (!result) throw new Error("the generation has not run");
      return result;
    },
  };
}

/** A model's RangeError refuses its input: the client's fault (400). */
function refusal(error: unknown): unknown {
  return error instanceof RangeError
    ? new HttpError(400, error.message, { code: "generation_refused" })
    : error;
}

/**
 * An error as the client sees it: an {@linkcode HttpError} as it is, anything
 * else a 500 that names the failure without a stack.
 *
 * @param error What was thrown.
 * @returns The error response to send.
 *
 * @example
 * ```ts
 * import { asHttpError } from "./engine.ts";
 * import assert from "node:assert/strict";
 *
 * const e = asHttpError(new Error("boom"));
 * assert.equal(e.status, 500);
 * assert.match(e.message, /boom/);
 * ```
 */
export function asHttpError(error: unknown): HttpError {
  if (error instanceof HttpError) return error;
  // A bug must not take the server down nor leak a stack trace.
  return new HttpError(
    500,
    `Cannot answer the request: the server failed (${
      (error as Error)?.message ?? String(error)
    }); this is a bug in the demo server, please report it with the request`,
  );
}

/**
 * A full collection once the queues are empty, where the runtime allows it
 * (`deno task serve` passes `--v8-flags=--expose-gc`): an idle isolate is
 * not collected on its own, so the dead caches and captures of a burst would
 * otherwise hold their memory until the next burst.
 */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

/** Resolves on a later macrotask turn, unclamped (unlike a zero timer). */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      port2.close();
      resolve();
    };
    port2.postMessage(null);
  });
}
