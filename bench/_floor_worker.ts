/**
 * Worker side of the inflate floor (`_floor.ts`): holds the body (shared,
 * sent once), and for each `[start, end, inflated size]` span of a layer's base64 decodes
 * it with `setFromBase64` (in 1 MiB one-byte strings, V8's fast path, as the
 * decoder does) and inflates it with `node:zlib`'s
 * `gunzipSync`, answering the inflated length. Nothing else: no checks, no
 * float conversion, no copy back.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { gunzipSync } from "node:zlib";
import { Buffer } from "node:buffer";

let body: Uint8Array | null = null;
/** Base64 characters per string (a multiple of 4). */
const CHUNK = 1 << 20;

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
  // Base64 in 1 MiB one-byte strings: V8 decodes those at GB/s, where one
  // whole-layer string or TextDecoder's strings are many times slower.
  const ascii = Buffer.from(
    body!.buffer,
    body!.byteOffset + start,
    end - start,
  );
  const gz = new Uint8Array(Math.ceil((end - start) / 4) * 3);
  let written = 0;
  for (let p = 0; p < ascii.length; p += CHUNK) {
    written += gz.subarray(written).setFromBase64(
      ascii.toString("latin1", p, Math.min(p + CHUNK, ascii.length)),
    ).written;
  }
  // One output chunk of the known size: the fastest node:zlib call (no
  // concatenation of chunks), as the decoder makes it.
  const raw = gunzipSync(gz.subarray(0, written), { chunkSize: size });
  self.postMessage(raw.length);
};
