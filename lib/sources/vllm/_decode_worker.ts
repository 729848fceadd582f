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
  gz: Uint8Array;
  shape: ScoresShape;
  dtype: ScoresDType;
  where: string;
}

self.onmessage = (event: MessageEvent<Job>) => {
  const { gz, shape, dtype, where } = event.data;
  try {
    const data = decodeScores(gz, shape, { dtype, where });
    const buffer = data.buffer as ArrayBuffer;
    self.postMessage({ buffer }, [buffer]);
  } catch (error) {
    const e = error as Error;
    self.postMessage({ error: { name: e.name, message: e.message } });
  }
};
