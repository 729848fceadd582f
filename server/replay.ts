/**
 * The replay server: serves saved responses on the OpenAI API, so clients
 * can be developed and tested against a real-sized (or a real vLLM's)
 * response with no GPU and no model.
 *
 * ```sh
 * deno task serve --replay FILE... [--rate MB/s] [--host 127.0.0.1] [--port 8000]
 * ```
 *
 * A FILE is a recorded response body (what `captureAttention(..., { saveBody })`
 * writes, byte for byte as the server sent it) or an attnscope capture file
 * (`saveCapture`), which is turned back into the wire format once, at start.
 * `POST /v1/chat/completions` answers with the files in turn (the first
 * request gets the first file, and so on, round and round), whatever was
 * asked; `GET /v1/models` lists the files' models; `GET /health` answers 200.
 * Bodies stream from disk at full speed, or at `--rate` MB/s to mimic a slow
 * link.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { loadCapture } from "../lib/sources/files/capture_file.ts";

/** Options for {@linkcode startReplayServer}. */
export interface ReplayServerOptions {
  /** The files to serve, in turn. */
  files: readonly string[];
  /**
   * Bytes per second, in MB (10^6 bytes); `0` is full speed.
   * @default {0}
   */
  rate?: number;
  /**
   * Interface to listen on.
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * Port; `0` picks a free one.
   * @default {0}
   */
  port?: number;
}

/** A running replay server. */
export interface ReplayServer {
  /** The server's root, e.g. `http://127.0.0.1:43123`. */
  readonly url: string;
  /** The OpenAI base URL, `url + "/v1"`. */
  readonly baseUrl: string;
  /** The model names `/v1/models` lists, one per file. */
  readonly models: readonly string[];
  /** Stops listening. */
  close(): Promise<void>;
  /** Same as {@linkcode ReplayServer.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** One file ready to serve. */
interface Recording {
  model: string;
  /** A recorded body on disk, streamed from there. */
  path?: string;
  /** A body made from a capture file, held in memory. */
  body?: Uint8Array;
  size: number;
}

/** The magic of an attnscope capture file. */
const CAPTURE_MAGIC = [0x89, 0x41, 0x54, 0x54, 0x4e, 0x43, 0x41, 0x50];

/** Bytes sent at a time. */
const CHUNK = 1 << 16;

/**
 * Starts a replay server in this process.
 *
 * @param options Files, rate, host and port.
 * @returns The running server.
 * @throws {Error} When a file cannot be read or is neither a JSON body nor
 *   a capture file.
 *
 * @example Record, then replay byte for byte
 * ```ts
 * import { startReplayServer } from "./replay.ts";
 * import assert from "node:assert/strict";
 *
 * const path = await Deno.makeTempFile({ suffix: ".json" });
 * await Deno.writeTextFile(path, '{"model": "recorded", "choices": []}');
 * await using server = await startReplayServer({ files: [path] });
 * assert.deepEqual(server.models, ["recorded"]);
 * const res = await fetch(`${server.baseUrl}/chat/completions`, { method: "POST", body: "{}" });
 * assert.equal(await res.text(), '{"model": "recorded", "choices": []}');
 * await Deno.remove(path);
 * ```
 */
export async function startReplayServer(
  options: ReplayServerOptions,
): Promise<ReplayServer> {
  if (options.files.length === 0) {
    throw new TypeError(
      "Cannot start the replay server: no files given; pass --replay FILE (a recorded response body or a capture file)",
    );
  }
  const rate = options.rate ?? 0;
  if (!(rate >= 0) || !Number.isFinite(rate)) {
    throw new RangeError(
      `Cannot start the replay server: --rate ${rate} is not a number of MB/s; pass a positive number, or leave it out for full speed`,
    );
  }
  const recordings = await Promise.all(options.files.map(readRecording));
  let next = 0;
  const handler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (path === "/health") return new Response(null, { status: 200 });
    if (path === "/v1/models" && request.method === "GET") {
      return Response.json({
        object: "list",
        data: [...new Set(recordings.map((r) => r.model))].map((id) => ({
          id,
          object: "model",
          owned_by: "attnscope-replay",
        })),
      });
    }
    if (path === "/v1/chat/completions" && request.method === "POST") {
      await request.body?.cancel();
      const recording = recordings[next++ % recordings.length];
      return new Response(await bodyStream(recording, rate), {
        headers: {
          "content-type": "application/json",
          "content-length": String(recording.size),
        },
      });
    }
    return Response.json({
      error: {
        message:
          `Cannot serve ${request.method} ${path}: the replay server answers GET /health, GET /v1/models and POST /v1/chat/completions`,
        type: "NotFoundError",
        code: 404,
      },
    }, { status: 404 });
  };
  const { promise: listening, resolve } = Promise.withResolvers<
    Deno.NetAddr
  >();
  const server = Deno.serve({
    hostname: options.host ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: (addr) => resolve(addr as Deno.NetAddr),
  }, handler);
  const addr = await listening;
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  const url = `http://${host}:${addr.port}`;
  let closed: Promise<void> | null = null;
  const close = () => closed ??= server.shutdown();
  return {
    url,
    baseUrl: `${url}/v1`,
    models: recordings.map((r) => r.model),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Reads a file's kind and model; a capture file becomes a body at once. */
async function readRecording(path: string): Promise<Recording> {
  let head: Uint8Array;
  let size: number;
  try {
    using file = await Deno.open(path);
    size = (await file.stat()).size;
    head = new Uint8Array(Math.min(size, 1 << 16));
    let got = 0;
    while (got < head.length) {
      const n = await file.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
  } catch (error) {
    throw new Error(
      `Cannot replay ${path}: ${(error as Error).message}; check the path`,
      { cause: error },
    );
  }
  if (CAPTURE_MAGIC.every((b, i) => head[i] === b)) {
    const body = await captureFileBody(path);
    return {
      model: modelIn(body.subarray(0, 1 << 16)) ?? "replay",
      body,
      size: body.length,
    };
  }
  const first = head.find((b) =>
    b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09
  );
  if (first !== 0x7b) {
    throw new Error(
      `Cannot replay ${path}: it is neither a JSON response body nor an attnscope capture file; record one with captureAttention(..., { saveBody: path }) or saveCapture`,
    );
  }
  return { model: modelIn(head) ?? "replay", path, size };
}

/** The `"model"` of a body, from its first bytes (vLLM writes it early). */
function modelIn(head: Uint8Array): string | null {
  const text = new TextDecoder().decode(head);
  const match = /"model"\s*:\s*("(?:[^"\\]|\\.)*")/.exec(text);
  return match ? JSON.parse(match[1]) : null;
}

/**
 * A capture file as the body a server would have sent: each layer's
 * scores as `base64(gzip(float16))` in the saved response's entries.
 */
async function captureFileBody(path: string): Promise<Uint8Array> {
  const saved = await loadCapture(path);
  const response: Record<string, unknown> = structuredClone(
    saved.response ?? { object: "chat.completion", model: saved.model },
  );
  const saved_entries = Array.isArray(response.attn_capture_data)
    ? response.attn_capture_data as Record<string, unknown>[]
    : [];
  const entries = Object.values(saved.attention).map((layer) => {
    const scores = layer.scores;
    const halves = scores.data instanceof Float16Array
      ? scores.data
      : new Float16Array(scores.data);
    const data = gzipSync(
      new Uint8Array(halves.buffer, halves.byteOffset, halves.byteLength),
    ).toBase64();
    const entry = saved_entries.find((e) => e?.layer_idx === layer.layer) ?? {
      layer_idx: layer.layer,
      shape: [...scores.shape],
      dtype: "torch.float16",
      token_meta: {
        prompt_len: layer.tokenMeta.promptLen,
        total_len: layer.tokenMeta.totalLen,
      },
    };
    return { ...entry, data };
  });
  response.attn_capture_data = entries;
  return new TextEncoder().encode(JSON.stringify(response));
}

/** The body, from memory or disk, at `rate` MB/s (0: full speed). */
async function bodyStream(
  recording: Recording,
  rate: number,
): Promise<ReadableStream<Uint8Array>> {
  const file = recording.path ? await Deno.open(recording.path) : null;
  let sent = 0;
  const start = performance.now();
  // At a set rate, chunks of about 50 ms each, so the flow is smooth.
  const size = rate > 0
    ? Math.max(256, Math.min(CHUNK, Math.round(rate * 1e6 / 20)))
    : CHUNK;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: Uint8Array;
      if (file) {
        const buffer = new Uint8Array(size);
        const n = await file.read(buffer);
        if (n === null) {
          file.close();
          return controller.close();
        }
        chunk = buffer.subarray(0, n);
      } else {
        if (sent >= recording.size) return controller.close();
        chunk = recording.body!.subarray(sent, sent + size);
      }
      if (rate > 0) {
        // Each chunk goes out when the link would have carried its last byte.
        const due = start + (sent + chunk.length) / (rate * 1e6) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      sent += chunk.length;
      controller.enqueue(chunk);
    },
    cancel() {
      file?.close();
    },
  }, { highWaterMark: 0 });
}

/** Usage of `deno task serve --replay`. */
export const REPLAY_USAGE =
  "usage: deno task serve --replay FILE... [--rate MB/s] [--host 127.0.0.1] [--port 8000]";

/**
 * The `deno task serve --replay FILE... [--rate MB/s]` entry.
 *
 * @param args The command-line arguments (with `--replay`).
 * @returns The running server.
 * @throws {TypeError} On unknown flags or no file.
 *
 * @example
 * ```ts
 * import { replayFromArgs } from "./replay.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(replayFromArgs(["--replay"]), /no files given/);
 * ```
 */
export async function replayFromArgs(
  args: readonly string[],
): Promise<ReplayServer> {
  let values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: true,
      options: {
        replay: { type: "string", multiple: true },
        rate: { type: "string" },
        host: { type: "string", default: "127.0.0.1" },
        port: { type: "string", default: "8000" },
      },
    }));
  } catch (error) {
    // `--replay` given with no value at all.
    if (/--replay/.test((error as Error).message)) {
      return await startReplayServer({ files: [] });
    }
    throw new TypeError(
      `Cannot read the command line: ${
        (error as Error).message
      }; ${REPLAY_USAGE}`,
    );
  }
  // `--replay a b c`: the files after the first come as positionals.
  const files = [...(values.replay ?? []), ...positionals];
  return await startReplayServer({
    files,
    rate: values.rate === undefined ? 0 : Number(values.rate),
    host: values.host,
    port: Number(values.port),
  });
}
