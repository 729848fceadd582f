/**
 * Worker side of `decodeScoresBatch`: decodes one layer per message and
 * transfers the result back.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { decodeScores } from "./decode.ts";
import type { ScoresDType, ScoresShape } from "../../data/scores.ts";

interface Job {
  /** The payload as consecutive slices (one slice for a whole payload). */
  gz: Uint8Array[];
  shape: ScoresShape;
  dtype: ScoresDType;
  where: string;
}

self.onmessage = (event: MessageEvent<Job>) => {
  const { gz, shape, dtype, where } = event.data;
  try {
    // The slices were transferred here: each is emptied once inflated, so
    // the compressed bytes shrink while the output grows.
    const data = decodeScores(gz.length === 1 ? gz[0] : gz, shape, {
      dtype,
      where,
      releaseInput: true,
    });
    const buffer = data.buffer as ArrayBuffer;
    self.postMessage({ buffer }, [buffer]);
  } catch (error) {
    const e = error as Error;
    self.postMessage({ error: { name: e.name, message: e.message } });
  }
};
