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

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.type) {
    case "init":
      engine = new Engine(loadDemoModel(), message.settings);
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
