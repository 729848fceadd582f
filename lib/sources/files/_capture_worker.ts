/**
 * Worker side of `loadCapture`: restores one layer's values per message and
 * transfers them back.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { restoreLayerData, type StoredLayer } from "./_capture_codec.ts";

self.onmessage = (
  event: MessageEvent<{ entry: StoredLayer; blob: Uint8Array }>,
) => {
  const { entry, blob } = event.data;
  try {
    const data = restoreLayerData(entry, blob);
    const buffer = data.buffer as ArrayBuffer;
    self.postMessage({
      buffer,
      byteOffset: data.byteOffset,
      length: data.length,
    }, [buffer]);
  } catch (error) {
    self.postMessage({ error: (error as Error).message });
  }
};
