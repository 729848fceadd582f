/**
 * The model worker: loads the bundled demo model and runs its
 * {@linkcode Engine} off the HTTP thread. It speaks the messages of
 * `runner.ts` ({@linkcode ToWorker} in, {@linkcode FromWorker} out); JSON
 * bodies travel as transferred bytes, not copied.
 *
 * @module
 */

/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />

import { Engine, type JobSink } from "./engine.ts";
import { loadDemoModel } from "./model/mod.ts";
import type { FromWorker, ToWorker } from "./runner.ts";

let engine: Engine | null = null;
const cancels = new Map<number, () => void>();

function post(message: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

function sinkFor(id: number): JobSink {
  return {
    error(error) {
      cancels.delete(id);
      post({
        type: "error",
        id,
        status: error.status,
        message: error.message,
        param: error.param,
        code: error.code,
        headers: error.headers,
      });
    },
    json(body) {
      cancels.delete(id);
      post({ type: "json", id, body }, [body.buffer as ArrayBuffer]);
    },
    events(text) {
      post({ type: "events", id, text });
    },
    end() {
      cancels.delete(id);
      post({ type: "end", id });
    },
  };
}

/** Resolves once the model is loaded; messages wait for it. */
let loaded: Promise<void> = Promise.resolve();

async function loadReal(
  spec: { pathOrId: string; name?: string; threads?: number },
  settings: ToWorker & { type: "init" },
): Promise<void> {
  // A real checkpoint (server/model/real/), loaded here so /health answers
  // while it loads; a failure is reported, and requests get a 503.
  try {
    const { loadRealServerModel } = await import("./model/real/load.ts");
    const model = await loadRealServerModel(spec.pathOrId, {
      name: spec.name,
      threads: spec.threads,
      onProgress: (what, bytes, totalBytes) =>
        post({ type: "progress", what, bytes, totalBytes }),
    });
    engine = new Engine(model, settings.settings);
    post({ type: "ready", info: modelInfo(model) });
  } catch (error) {
    post({ type: "loadError", message: (error as Error).message });
    throw error;
  }
}

function modelInfo(model: import("./model/types.ts").DemoModel) {
  return {
    name: model.name,
    numLayers: model.numLayers,
    numHeads: model.numHeads,
    maxPositions: model.maxPositions,
  };
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type !== "init") {
    try {
      await loaded;
    } catch {
      if (message.type === "submit") {
        sinkFor(message.id).error(
          {
            status: 503,
            message:
              "Cannot answer the request: the model failed to load; see the server's log, fix the checkpoint and restart",
            param: null,
            code: null,
            headers: {},
          } as Parameters<JobSink["error"]>[0],
        );
      } else if (message.type === "stats") {
        post({
          type: "stats",
          id: message.id,
          stats: {
            running: 0,
            waiting: 0,
            queuedTokens: 0,
            heapUsedBytes: 0,
            externalBytes: 0,
          },
        });
      }
      return;
    }
  }
  switch (message.type) {
    case "init":
      if (message.model) {
        loaded = loadReal(message.model, message);
        loaded.catch(() => {});
      } else {
        engine = new Engine(loadDemoModel(), message.settings);
      }
      break;
    case "submit": {
      // A job refused at once reports (and leaves the map) inside submit.
      cancels.set(message.id, () => {});
      const cancel = engine!.submit(message.request, sinkFor(message.id));
      if (cancels.has(message.id)) cancels.set(message.id, cancel);
      break;
    }
    case "cancel":
      cancels.get(message.id)?.();
      cancels.delete(message.id);
      break;
    case "stats":
      post({
        type: "stats",
        id: message.id,
        stats: engine?.stats() ?? {
          running: 0,
          waiting: 0,
          queuedTokens: 0,
          heapUsedBytes: 0,
          externalBytes: 0,
        },
      });
      break;
  }
};
