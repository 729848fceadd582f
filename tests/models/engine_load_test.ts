/**
 * loadModel's bad-input cases: each gives a `Cannot load model ...` error
 * saying what to do, and nothing uploaded stays behind.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type {
  MatrixWeight,
  WeightHandle,
} from "../../lib/models/kernels/backend.ts";
import { ReferenceBackend } from "../../lib/models/kernels/reference.ts";
import { loadModel } from "../../lib/models/load_model.ts";
import { ignoreParity as ignore, makeCheckpoint } from "./_parity.ts";

/** A reference backend that counts what is uploaded, released and closed. */
class CountingBackend extends ReferenceBackend {
  live = new Set<WeightHandle>();
  uploads = 0;
  closed = false;
  override upload(w: MatrixWeight, b?: Float32Array | null): WeightHandle {
    const h = super.upload(w, b);
    this.live.add(h);
    this.uploads++;
    return h;
  }
  override release(h: WeightHandle): void {
    this.live.delete(h);
    super.release(h);
  }
  override close(): void {
    this.closed = true;
    super.close();
  }
}

async function withCheckpoint(
  family: string,
  args: string[],
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "attnscope-badinput-" });
  try {
    await fn(await makeCheckpoint(root, "ckpt", family, args));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function editConfig(
  dir: string,
  edit: (c: Record<string, unknown>) => void,
): Promise<void> {
  const path = join(dir, "config.json");
  const c = JSON.parse(await Deno.readTextFile(path));
  edit(c);
  await Deno.writeTextFile(path, JSON.stringify(c));
}

async function rejectsCleanly(
  dir: string,
  pattern: RegExp,
): Promise<CountingBackend> {
  const backend = new CountingBackend();
  await assert.rejects(loadModel(dir, { backend }), (error: Error) => {
    assert.match(error.message, /^Cannot load model: /);
    assert.match(error.message, pattern);
    return true;
  });
  assert.equal(backend.live.size, 0, "every uploaded weight is released");
  return backend;
}

Deno.test("loadModel rejects a folder without config.json, saying what a checkpoint folder holds", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      loadModel(dir),
      /Cannot load model: .*config.json does not exist; pass a HuggingFace checkpoint folder/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "loadModel rejects a missing model.safetensors",
  ignore,
  async fn() {
    await withCheckpoint("llama", [], async (dir) => {
      await Deno.remove(join(dir, "model.safetensors"));
      await rejectsCleanly(
        dir,
        /has no model.safetensors nor model.safetensors.index.json/,
      );
    });
  },
});

Deno.test({
  name: "loadModel rejects a missing shard, naming it",
  ignore,
  async fn() {
    await withCheckpoint("llama", ["--shards", "2"], async (dir) => {
      await Deno.remove(join(dir, "model-00002-of-00002.safetensors"));
      await rejectsCleanly(
        dir,
        /shard model-00002-of-00002.safetensors .* is missing .*download every shard/,
      );
    });
  },
});

Deno.test({
  name:
    "loadModel rejects a tensor whose shape does not match config.json, after releasing the layers already uploaded",
  ignore,
  async fn() {
    await withCheckpoint(
      "llama",
      ["--untied", "--vocab", "50"],
      async (dir) => {
        // The head is read last: every layer is uploaded before the mismatch.
        await editConfig(dir, (c) => c.tie_word_embeddings = false);
        const path = join(dir, "model.safetensors");
        const bytes = await Deno.readFile(path);
        const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
        const edited = header.replace(
          /("lm_head.weight":\{"dtype":"F32","shape":\[)50,32/,
          "$125,64",
        );
        assert.notEqual(edited, header);
        bytes.set(new TextEncoder().encode(edited), 8);
        await Deno.writeFile(path, bytes);
        const backend = await rejectsCleanly(
          dir,
          /tensor lm_head.weight has shape \[25, 64\] but config.json implies \[50, 32\]; check config.json/,
        );
        assert.ok(
          backend.uploads > 10,
          `${backend.uploads} weights were uploaded first`,
        );
        assert.ok(backend.closed, "the backend is closed");
      },
    );
  },
});

Deno.test({
  name:
    "loadModel rejects a layer count past the checkpoint's, naming the missing tensor",
  ignore,
  async fn() {
    await withCheckpoint("gemma3_text", ["--layers", "2"], async (dir) => {
      await editConfig(dir, (c) => c.num_hidden_layers = 3);
      const backend = await rejectsCleanly(
        dir,
        /tensor model.layers.2.input_layernorm.weight is missing/,
      );
      assert.ok(backend.uploads > 0 && backend.closed);
    });
  },
});

Deno.test({
  name: "loadModel rejects a tensor of an integer dtype",
  ignore,
  async fn() {
    await withCheckpoint("gpt2", [], async (dir) => {
      const path = join(dir, "model.safetensors");
      const bytes = await Deno.readFile(path);
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      const header = new TextDecoder().decode(bytes.subarray(8, 8 + n));
      const edited = header.replace(
        /("h.0.attn.c_attn.weight":\{"dtype":)"F32"/,
        '$1"I32"',
      );
      assert.notEqual(edited, header);
      bytes.set(new TextEncoder().encode(edited), 8);
      await Deno.writeFile(path, bytes);
      await rejectsCleanly(
        dir,
        /tensor h.0.attn.c_attn.weight is I32; weights must be BF16, F16 or F32/,
      );
    });
  },
});

Deno.test({
  name:
    "loadModel rejects a config.json without model_type and one with a malformed field",
  ignore,
  async fn() {
    await withCheckpoint("qwen2", [], async (dir) => {
      await editConfig(dir, (c) => delete c.model_type);
      await rejectsCleanly(dir, /config.json has no "model_type".*add it/);
      await editConfig(dir, (c) => {
        c.model_type = "qwen2";
        c.hidden_size = "32";
      });
      await rejectsCleanly(
        dir,
        /config.json "hidden_size" is "32", not a positive integer; fix config.json/,
      );
    });
  },
});

Deno.test({
  name: "loadModel rejects a truncated safetensors file",
  ignore,
  async fn() {
    await withCheckpoint("llama", [], async (dir) => {
      const path = join(dir, "model.safetensors");
      const size = (await Deno.stat(path)).size;
      await Deno.truncate(path, size - 100);
      await rejectsCleanly(
        dir,
        /model.safetensors is truncated or corrupt: .*re-download it/,
      );
    });
  },
});

Deno.test({
  name:
    "loadModel rejects an unsupported architecture, listing the supported ones",
  ignore,
  async fn() {
    await withCheckpoint("llama", [], async (dir) => {
      await editConfig(dir, (c) => c.model_type = "mistral");
      await rejectsCleanly(
        dir,
        /architecture mistral is not supported; supported: gemma3_text .*llama, qwen2, gpt2/,
      );
    });
  },
});

Deno.test({
  name: "loadModel rejects rope_scaling types it does not implement",
  ignore,
  async fn() {
    await withCheckpoint("llama", [], async (dir) => {
      await editConfig(
        dir,
        (c) => c.rope_scaling = { rope_type: "yarn", factor: 4 },
      );
      await rejectsCleanly(
        dir,
        /rope_scaling type "yarn" is not supported; supported: default, linear, llama3/,
      );
    });
  },
});
