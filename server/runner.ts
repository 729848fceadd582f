/**
 * Where the demo server's model runs, as the HTTP handler sees it: a
 * {@linkcode ModelRunner} takes a validated request and an `AbortSignal`
 * and resolves with the response. {@linkcode WorkerRunner} runs the bundled
 * model's engine in a worker, so the HTTP thread never computes;
 * {@linkcode LocalRunner} runs an engine on the calling thread, for a model
 * given in code (a worker cannot receive one).
 *
 * Either way a request's engine job is cancelled when its signal aborts (the
 * client disconnected) or its event stream is cancelled.
 *
 * @module
 */

import { Engine, type EngineStats, type JobSink } from "./engine.ts";
import { HttpError } from "./http_error.ts";
import type { DemoModel } from "./model/types.ts";
import type { ResolvedServerOptions } from "./options.ts";
import type { ChatRequest } from "./request.ts";

/** Runs chat requests on a model, somewhere. */
export interface ModelRunner {
  /**
   * Runs one request.
   *
   * @param request The validated request (its model name already checked).
   * @param signal Aborts the run: the model stops within one step.
   * @returns The response; a stream's resolves once its first event is ready.
   */
  run(request: ChatRequest, signal: AbortSignal): Promise<Response>;
  /** The engine's queues. */
  stats(): Promise<EngineStats>;
  /** Stops the runner (a worker is terminated); open requests get a 503. */
  close(): void;
  /** True while the model loads (`/health` answers 503). */
  readonly loading?: boolean;
}

/**
 * Turns an engine job into a response: the first report decides its kind
 * (JSON, error, or an event stream that later reports feed), and an abort
 * or a cancelled stream cancels the job.
 *
 * @param submit Starts the job with a sink; returns its cancel function.
 * @param signal The request's signal.
 * @returns The response.
 */
function respond(
  submit: (sink: JobSink) => () => void,
  signal: AbortSignal,
): Promise<Response> {
  const { promise, resolve } = Promise.withResolvers<Response>();
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  let settled = false;
  const encoder = new TextEncoder();
  let cancel = () => {};
  const onAbort = () => {
    cancel();
    settle();
    // The client is gone; the response is never read.
    resolve(new Response(null, { status: 499 }));
    try {
      controller?.close();
    } catch { /* already closed */ }
  };
  // Deno.serve also aborts the signal once a response is delivered: listen
  // only while the job runs.
  const settle = () => {
    settled = true;
    signal.removeEventListener("abort", onAbort);
  };
  const sink: JobSink = {
    error(error: HttpError) {
      settle();
      resolve(error.toResponse());
    },
    json(body: Uint8Array) {
      settle();
      resolve(
        new Response(body as Uint8Array<ArrayBuffer>, {
          headers: { "content-type": "application/json" },
        }),
      );
    },
    events(text: string) {
      if (!controller) {
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            controller = c;
          },
          cancel() {
            cancel();
            settle();
          },
        });
        resolve(
          new Response(stream, {
            headers: {
              "content-type": "text/event-stream; charset=utf-8",
              "cache-control": "no-cache",
            },
          }),
        );
      }
      controller!.enqueue(encoder.encode(text));
    },
    end() {
      settle();
      controller?.close();
    },
  };
  if (signal.aborted) {
    resolve(new Response(null, { status: 499 }));
    return promise;
  }
  signal.addEventListener("abort", onAbort, { once: true });
  cancel = submit(sink);
  if (settled) signal.removeEventListener("abort", onAbort);
  return promise;
}

/**
 * Runs an engine on the calling thread. The engine yields between rounds, so
 * the thread still answers other requests between steps.
 *
 * @example
 * ```ts
 * import { LocalRunner } from "./runner.ts";
 * import { loadDemoModel } from "./model/mod.ts";
 * import { resolveServerOptions } from "./options.ts";
 * import { validateChatRequest } from "./request.ts";
 * import assert from "node:assert/strict";
 *
 * const model = loadDemoModel();
 * const runner = new LocalRunner(model, resolveServerOptions());
 * const res = await runner.run(validateChatRequest({
 *   model: model.name, temperature: 0,
 *   messages: [{ role: "user", content: "a: 12\nb: 34\na:" }],
 * }), new AbortController().signal);
 * assert.equal((await res.json()).choices[0].message.content, "12");
 * ```
 */
export class LocalRunner implements ModelRunner {
  readonly #engine: Engine;

  /**
   * Creates the engine on this thread.
   *
   * @param model The model.
   * @param settings Resolved server settings.
   */
  constructor(model: DemoModel, settings: ResolvedServerOptions) {
    this.#engine = new Engine(model, settings);
  }

  /** {@inheritDoc ModelRunner.run} */
  run(request: ChatRequest, signal: AbortSignal): Promise<Response> {
    return respond((sink) => this.#engine.submit(request, sink), signal);
  }

  /** {@inheritDoc ModelRunner.stats} */
  stats(): Promise<EngineStats> {
    return Promise.resolve(this.#engine.stats());
  }

  /** Nothing to stop: the engine's loop ends when its queues are empty. */
  close(): void {}
}

const IDLE: EngineStats = {
  running: 0,
  waiting: 0,
  queuedTokens: 0,
  heapUsedBytes: 0,
  externalBytes: 0,
};

/** Messages to the model worker. */
export type ToWorker =
  | {
    type: "init";
    settings: ResolvedServerOptions;
    /** A real checkpoint to load instead of the demo model. */
    model?: RealModelSpec;
  }
  | { type: "submit"; id: number; request: ChatRequest }
  | { type: "cancel"; id: number }
  | { type: "stats"; id: number };

/** Messages from the model worker. */
export type FromWorker =
  | {
    type: "error";
    id: number;
    status: number;
    message: string;
    param: string | null;
    code: string | null;
    headers: Record<string, string>;
  }
  | { type: "json"; id: number; body: Uint8Array }
  | { type: "events"; id: number; text: string }
  | { type: "end"; id: number }
  | { type: "stats"; id: number; stats: EngineStats }
  | { type: "progress"; what: string; bytes: number; totalBytes: number }
  | { type: "ready"; info: RealModelInfo }
  | { type: "loadError"; message: string };

/** A real checkpoint for {@linkcode WorkerRunner} to load in its worker. */
export interface RealModelSpec {
  /** A checkpoint folder or a hub id. */
  pathOrId: string;
  /** The served name; defaults to the id or the folder's name. */
  name?: string;
  /** Kernel threads. */
  threads?: number;
}

/** What a loaded real model reports. */
export interface RealModelInfo {
  /** Its name. */
  name: string;
  /** Decoder layers. */
  numLayers: number;
  /** Query heads per layer. */
  numHeads: number;
  /** Longest sequence. */
  maxPositions: number;
}

/**
 * Runs the bundled demo model's engine in a worker (`model_worker.ts`), so
 * the thread that serves HTTP stays free: `/health` and `/v1/models` answer
 * at once whatever the model is doing. A worker that crashes fails its open
 * requests with a 500 and is started again on the next request.
 *
 * @example
 * ```ts
 * import { WorkerRunner } from "./runner.ts";
 * import { resolveServerOptions } from "./options.ts";
 * import { validateChatRequest } from "./request.ts";
 * import assert from "node:assert/strict";
 *
 * const runner = new WorkerRunner(resolveServerOptions());
 * try {
 *   const res = await runner.run(validateChatRequest({
 *     model: "attnscope-demo", temperature: 0,
 *     messages: [{ role: "user", content: "a: 12\nb: 34\na:" }],
 *   }), new AbortController().signal);
 *   assert.equal((await res.json()).choices[0].message.content, "12");
 * } finally {
 *   runner.close();
 * }
 * ```
 */
export class WorkerRunner implements ModelRunner {
  readonly #settings: ResolvedServerOptions;
  #worker: Worker | null = null;
  #sinks = new Map<number, JobSink>();
  #statsWaiters = new Map<number, (stats: EngineStats) => void>();
  #nextId = 1;
  #closed = false;
  readonly #model: RealModelSpec | undefined;
  readonly #onProgress:
    | ((what: string, bytes: number, totalBytes: number) => void)
    | undefined;
  #loaded = Promise.withResolvers<RealModelInfo | null>();
  /** {@inheritDoc ModelRunner.loading} */
  loading = false;

  /**
   * Starts the worker; it loads the model while the first requests queue.
   *
   * @param settings Resolved server settings, passed to the worker's engine.
   * @param model A real checkpoint to load instead of the demo model.
   * @param onProgress Loading progress of a real checkpoint.
   */
  constructor(
    settings: ResolvedServerOptions,
    model?: RealModelSpec,
    onProgress?: (what: string, bytes: number, totalBytes: number) => void,
  ) {
    this.#settings = settings;
    this.#model = model;
    this.#onProgress = onProgress;
    this.#loaded.promise.catch(() => {});
    if (!model) this.#loaded.resolve(null);
    this.#ensureWorker();
  }

  /** Resolves once the model is loaded (with a real model's info), or rejects with why it failed. */
  get loaded(): Promise<RealModelInfo | null> {
    return this.#loaded.promise;
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(
      new URL("./model_worker.ts", import.meta.url).href,
      { type: "module" },
    );
    worker.onmessage = (event: MessageEvent<FromWorker>) =>
      this.#receive(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#fail(
        `the model worker stopped (${event.message}); the request was lost, send it again`,
        500,
      );
    };
    if (this.#model) this.loading = true;
    worker.postMessage(
      {
        type: "init",
        settings: this.#settings,
        ...(this.#model ? { model: this.#model } : {}),
      } satisfies ToWorker,
    );
    this.#worker = worker;
    return worker;
  }

  /** Ends the worker and answers everything open with an error. */
  #fail(reason: string, status: number): void {
    this.#worker?.terminate();
    this.#worker = null;
    const sinks = [...this.#sinks.values()];
    this.#sinks.clear();
    for (const sink of sinks) {
      sink.error(new HttpError(status, `Cannot answer the request: ${reason}`));
    }
    for (const waiter of this.#statsWaiters.values()) {
      waiter(IDLE);
    }
    this.#statsWaiters.clear();
  }

  #receive(message: FromWorker): void {
    if (message.type === "progress") {
      this.#onProgress?.(message.what, message.bytes, message.totalBytes);
      return;
    }
    if (message.type === "ready" || message.type === "loadError") {
      this.loading = false;
      if (message.type === "ready") this.#loaded.resolve(message.info);
      else this.#loaded.reject(new Error(message.message));
      return;
    }
    if (message.type === "stats") {
      this.#statsWaiters.get(message.id)?.(message.stats);
      this.#statsWaiters.delete(message.id);
      return;
    }
    const sink = this.#sinks.get(message.id);
    if (!sink) return; // cancelled meanwhile
    switch (message.type) {
      case "error":
        this.#sinks.delete(message.id);
        sink.error(
          new HttpError(message.status, message.message, {
            param: message.param,
            code: message.code,
            headers: message.headers,
          }),
        );
        break;
      case "json":
        this.#sinks.delete(message.id);
        sink.json(message.body);
        break;
      case "events":
        sink.events(message.text);
        break;
      case "end":
        this.#sinks.delete(message.id);
        sink.end();
        break;
    }
  }

  /** {@inheritDoc ModelRunner.run} */
  run(request: ChatRequest, signal: AbortSignal): Promise<Response> {
    if (this.#closed) {
      return Promise.resolve(
        new HttpError(
          503,
          "Cannot answer the request: the server is shutting down; retry against a running server",
        ).toResponse(),
      );
    }
    return respond((sink) => {
      const id = this.#nextId++;
      this.#sinks.set(id, sink);
      this.#ensureWorker().postMessage(
        { type: "submit", id, request } satisfies ToWorker,
      );
      return () => {
        if (this.#sinks.delete(id)) {
          this.#worker?.postMessage({ type: "cancel", id } satisfies ToWorker);
        }
      };
    }, signal);
  }

  /** {@inheritDoc ModelRunner.stats} */
  stats(): Promise<EngineStats> {
    if (this.#closed) {
      return Promise.resolve(IDLE);
    }
    const id = this.#nextId++;
    const { promise, resolve } = Promise.withResolvers<EngineStats>();
    this.#statsWaiters.set(id, resolve);
    this.#ensureWorker().postMessage({ type: "stats", id } satisfies ToWorker);
    return promise;
  }

  /** Terminates the worker; open requests get a 503. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#fail(
      "the server is shutting down; retry against a running server",
      503,
    );
  }
}
