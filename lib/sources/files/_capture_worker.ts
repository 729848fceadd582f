/**
 * Worker side of `loadCapture`: restores one layer's values per message and
 * transfers them back.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import {
  CorruptLayerError,
  restoreLayerData,
  type StoredLayer,
} from "./_capture_codec.ts";

self.onmessage = (
  event: MessageEvent<{ entry: StoredLayer; blob: Uint8Array; action: string }>,
) => {
  const { entry, blob, action } = event.data;
  try {
    const data = restoreLayerData(entry, blob, action);
    const buffer = data.buffer as ArrayBuffer;
    self.postMessage({
      buffer,
      byteOffset: data.byteOffset,
      length: data.length,
    }, [buffer]);
  } catch (error) {
    // A corrupt blob and a failed allocation get different advice.
    self.postMessage({
      error: (error as Error).message,
      corrupt: error instanceof CorruptLayerError,
      name: (error as Error).name,
    });
  }
};
