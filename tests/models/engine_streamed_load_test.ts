/**
 * loadModel into the WebAssembly backend streams every matrix from the file
 * (no whole-tensor array), including a tied head read back for embeddings,
 * and gives what the reference backend gives.
 */

import assert from "node:assert/strict";
import type { MatmulBackend } from "../../lib/models/kernels/backend.ts";
import { createReferenceBackend } from "../../lib/models/kernels/reference.ts";
import { createWasmBackend } from "../../lib/models/kernels/wasm/backend.ts";
import { loadModel } from "../../lib/models/load_model.ts";
import { ignoreParity as ignore, makeCheckpoint, maxDiff } from "./_parity.ts";

/** The backend, counting whole and streamed uploads. */
function counting(backend: MatmulBackend) {
  const counts = { upload: 0, uploadStreamed: 0 };
  const proxy = new Proxy(backend, {
    get(target, key) {
      const v = Reflect.get(target, key, target);
      if (typeof v !== "function") return v;
      return (...a: unknown[]) => {
        if (key === "upload" || key === "uploadStreamed") counts[key]++;
        return v.apply(target, a);
      };
    },
  });
  return { proxy, counts };
}

for (
  const [family, args, whole] of [
    ["gemma3_text", ["--layers", "2", "--dtype", "bf16", "--tied"], 0],
    ["llama", ["--dtype", "f32", "--untied", "--kv-heads", "1"], 0],
    // GPT-2's Conv1D weights (6 a layer, 2 layers) are transposed in JS,
    // so they go whole; its tied head streams.
    ["gpt2", [], 12],
  ] as const
) {
  Deno.test({
    name:
      `loadModel streams ${family}'s matrices into the wasm backend and generates what the reference backend does`,
    ignore,
    async fn() {
      const root = await Deno.makeTempDir({ prefix: "attnscope-stream-" });
      try {
        const dir = await makeCheckpoint(root, "ckpt", family, [...args]);
        const { proxy, counts } = counting(
          await createWasmBackend({ threads: 2 }),
        );
        const wasm = await loadModel(dir, { backend: proxy });
        const ref = await loadModel(dir, { backend: createReferenceBackend() });
        try {
          assert.equal(counts.upload, whole);
          assert.ok(counts.uploadStreamed > 0);
          const opts = {
            inputIds: [3, 1, 4, 1, 5, 9, 2, 6],
            maxTokens: 3,
            logits: true,
            stopTokenIds: [],
          };
          const a = await wasm.generate(opts);
          const b = await ref.generate(opts);
          assert.deepEqual(a.tokens, b.tokens);
          for (let i = 0; i < b.logits!.length; i++) {
            assert.ok(maxDiff(a.logits![i], b.logits![i]) < 1e-3);
          }
        } finally {
          wasm.close();
          ref.close();
        }
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    },
  });
}
