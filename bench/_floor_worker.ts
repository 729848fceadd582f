/**
 * Worker side of the inflate floor (`_floor.ts`): holds the body (shared,
 * sent once), and for each `[start, end, inflated size]` span of a layer's base64 decodes
 * it with `Uint8Array.fromBase64` and inflates it with `node:zlib`'s
 * `gunzipSync`, answering the inflated length. Nothing else: no checks, no
 * float conversion, no copy back.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { gunzipSync } from "node:zlib";

let body: Uint8Array | null = null;
const latin1 = new TextDecoder("latin1");

self.onmessage = (
  event: MessageEvent<SharedArrayBuffer | [number, number, number]>,
) => {
  const data = event.data;
  if (data instanceof SharedArrayBuffer) {
    body = new Uint8Array(data);
    self.postMessage(0);
    return;
  }
  const [start, end, size] = data;
  const text = latin1.decode(body!.slice(start, end));
  // One output chunk of the known size: the fastest node:zlib call (no
  // concatenation of chunks), as the decoder makes it.
  const raw = gunzipSync(Uint8Array.fromBase64(text), { chunkSize: size });
  self.postMessage(raw.length);
};
