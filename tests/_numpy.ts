/**
 * Test helper: run a numpy script on arrays written with attnscope's own
 * `toNpy` (so every such test also checks the `.npy` writer) and read back
 * what it prints as JSON. Uses `python3` from PATH, which has numpy here.
 *
 * @module
 */

import {
  type NpyArray,
  type NpyDType,
  toNpy,
} from "../lib/sources/files/npy.ts";
import type { AttentionScores } from "../lib/data/scores.ts";
import { seededRandom } from "../lib/random.ts";

/** Arrays to hand to Python, by variable name. */
export type NumpyInputs = Record<
  string,
  AttentionScores | NpyArray | {
    array: AttentionScores | NpyArray;
    dtype: NpyDType;
  }
>;

/**
 * Writes each input to `<dir>/<name>.npy`, runs `script` with those names
 * bound to `numpy.load(...)` results, and parses the JSON the script prints.
 */
export async function runNumpy(
  script: string,
  inputs: NumpyInputs,
): Promise<unknown> {
  const dir = await Deno.makeTempDir({ prefix: "attnscope-np-" });
  try {
    const loads: string[] = [];
    for (const [name, value] of Object.entries(inputs)) {
      const bytes = "array" in value
        ? toNpy(value.array, { dtype: value.dtype })
        : toNpy(value);
      await Deno.writeFile(`${dir}/${name}.npy`, bytes);
      loads.push(`${name} = np.load(${JSON.stringify(`${dir}/${name}.npy`)})`);
    }
    const program = [
      "import json, math, sys",
      "import numpy as np",
      ...loads,
      script,
    ].join("\n");
    const { code, stdout, stderr } = await new Deno.Command("python3", {
      args: ["-c", program],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(stderr);
    if (code !== 0) throw new Error(`python3 failed (${code}):\n${err}`);
    return JSON.parse(new TextDecoder().decode(stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Random causal softmax attention `[T, H, T]` (float32), with some peaked
 * heads so that scores are not all alike.
 */
export function randomCausalAttention(
  t: number,
  heads: number,
  seed: number,
): Float32Array {
  const rand = seededRandom(seed);
  const data = new Float32Array(t * heads * t);
  for (let q = 0; q < t; q++) {
    for (let h = 0; h < heads; h++) {
      const base = (q * heads + h) * t;
      const sharp = 1 + 4 * h; // higher heads are more peaked
      let sum = 0;
      for (let k = 0; k <= q; k++) {
        const v = Math.exp(sharp * (rand() * 2 - 1));
        data[base + k] = v;
        sum += v;
      }
      for (let k = 0; k <= q; k++) data[base + k] /= sum;
    }
  }
  return data;
}
