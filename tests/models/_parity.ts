/**
 * Test helper for the engine's PyTorch parity tests: writes tiny random
 * checkpoints with tests/models/torch/make_checkpoint.py, runs the eager
 * transcription (reference.py) on them, and reads its .npy outputs.
 *
 * @module
 */

import { join } from "node:path";
import { readNpyHeader } from "../../lib/sources/files/npy_read.ts";
import { CI, findTorchPython, runPython } from "../_torch.ts";

const TORCH_DIR = new URL("./torch/", import.meta.url).pathname;

/** The Python with torch, or why the parity tests are skipped. */
export const torch = await findTorchPython();
if (!torch.ok) {
  console.log(
    `${CI ? "FAIL" : "Skipping"} engine parity tests: ${torch.reason}`,
  );
}
/** `true` when the parity tests cannot run here (never on CI, where they fail instead). */
export const ignoreParity = !CI && !torch.ok;

function python(): string {
  if (!torch.ok) throw new Error(torch.reason);
  return torch.python;
}

/** Writes a checkpoint with make_checkpoint.py; returns its folder. */
export async function makeCheckpoint(
  root: string,
  name: string,
  family: string,
  args: string[] = [],
): Promise<string> {
  const out = join(root, name);
  await runPython(python(), [
    join(TORCH_DIR, "make_checkpoint.py"),
    family,
    out,
    ...args,
  ], TORCH_DIR);
  return out;
}

/** What reference.py dumped. */
export interface Reference {
  /** Greedy tokens. */
  tokens: number[];
  /** Last-position logits per step, `[steps][vocab]`. */
  logits: Float32Array[];
  /** Per layer `[T, H, T]` and its shape. */
  attention: { data: Float32Array; shape: number[] }[];
}

/** Reads a little-endian float32 .npy. */
export async function readNpyF32(
  path: string,
): Promise<{ data: Float32Array; shape: number[] }> {
  const bytes = await Deno.readFile(path);
  const header = readNpyHeader(bytes);
  if (header.descr !== "<f4") throw new Error(`${path}: ${header.descr}`);
  const n = header.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  new Uint8Array(data.buffer).set(
    bytes.subarray(header.dataOffset, header.dataOffset + 4 * n),
  );
  return { data, shape: header.shape };
}

/** Runs reference.py greedily on a checkpoint. */
export async function runReference(
  ckpt: string,
  prompt: number[],
  maxTokens: number,
  extra: string[] = [],
): Promise<Reference> {
  const out = join(ckpt, `ref-${crypto.randomUUID()}`);
  await runPython(python(), [
    join(TORCH_DIR, "reference.py"),
    ckpt,
    out,
    "--prompt",
    prompt.join(","),
    "--max-tokens",
    String(maxTokens),
    ...extra,
  ], TORCH_DIR);
  const result = JSON.parse(await Deno.readTextFile(join(out, "result.json")));
  const logits = await readNpyF32(join(out, "logits.npy"));
  const vocab = logits.shape[1];
  const steps: Float32Array[] = [];
  for (let i = 0; i < logits.shape[0]; i++) {
    steps.push(logits.data.slice(i * vocab, (i + 1) * vocab));
  }
  const attention = [];
  for (let l = 0; l < result.numLayers; l++) {
    attention.push(await readNpyF32(join(out, `attn_${l}.npy`)));
  }
  await Deno.remove(out, { recursive: true });
  return { tokens: result.tokens, logits: steps, attention };
}

/** Largest absolute difference. */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  }
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
