/**
 * RealModel.generate and start beyond parity: prefill + decode equal to a
 * full forward, stop ids, float16 captures, logprobs and prompt logprobs
 * (the head in vocabulary slices), seeded sampling, the step API and its
 * errors. One tiny checkpoint from make_checkpoint.py.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadModel } from "../../lib/models/load_model.ts";
import type {
  MatmulBackend,
  MatmulOp,
  MatrixWeight,
  WeightHandle,
} from "../../lib/models/kernels/backend.ts";
import { ReferenceBackend } from "../../lib/models/kernels/reference.ts";
import type { RealModel } from "../../lib/models/types.ts";
import { ignoreParity as ignore, makeCheckpoint, maxDiff } from "./_parity.ts";

let root = "";
let dir = "";
let model: RealModel;
const PROMPT = [5, 17, 3, 99, 1024, 42, 7, 8, 9];

async function setup(): Promise<void> {
  if (dir) return;
  root = await Deno.makeTempDir({ prefix: "attnscope-engine-" });
  // 20,000 ids: prompt logprobs run the head in three vocabulary slices.
  dir = await makeCheckpoint(root, "ckpt", "gemma3_text", [
    "--vocab",
    "20000",
    "--layers",
    "3",
    "--layer-types",
    "sfs",
    "--sliding-window",
    "3",
    "--kv-heads",
    "2",
    "--dtype",
    "bf16",
  ]);
  model = await loadModel(dir, { name: "tiny-gemma" });
}

function logSoftmax(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let s = 0;
  for (const v of logits) s += Math.exp(v - max);
  return logits[id] - max - Math.log(s);
}

Deno.test({
  name:
    "generate: the generated rows of a prefill + decode run equal one full forward over the sequence",
  ignore,
  async fn() {
    await setup();
    const run = await model.generate({
      inputIds: PROMPT,
      maxTokens: 4,
      layers: "all",
      logits: true,
      stopTokenIds: [],
    });
    const seq = [...PROMPT, ...run.tokens.slice(0, -1)];
    const full = await model.generate({
      inputIds: seq,
      maxTokens: 1,
      layers: "all",
      logits: true,
      stopTokenIds: [],
    });
    assert.equal(full.tokens[0], run.tokens[3]);
    assert.ok(maxDiff(full.logits![0], run.logits![3]) < 1e-4);
    for (let l = 0; l < 3; l++) {
      const a = run.attention[l].scores, b = full.attention[l].scores;
      assert.deepEqual(a.shape, [seq.length, 4, seq.length]);
      assert.deepEqual(a.shape, b.shape);
      assert.ok(maxDiff(a.data, b.data) < 1e-5, `layer ${l}`);
      assert.equal(run.attention[l].model, "tiny-gemma");
      assert.equal(run.attention[l].tokenMeta.promptLen, PROMPT.length);
      assert.equal(full.attention[l].tokenMeta.promptLen, seq.length);
    }
    // The sliding layer sees 3 keys: row 8 puts nothing on keys 0..5.
    const s0 = run.attention[0].scores;
    for (let k = 0; k <= 5; k++) assert.equal(s0.get(8, 0, k), 0);
    assert.ok(
      Math.abs(
        [0, 1, 2, 3, 4, 5, 6, 7, 8].reduce((a, k) => a + s0.get(8, 1, k), 0) -
          1,
      ) < 1e-6,
    );
  },
});

Deno.test({
  name:
    "generate: stopTokenIds ends at the stop id (kept), [] never stops early, and the config's EOS ids are the default",
  ignore,
  async fn() {
    await setup();
    const free = await model.generate({
      inputIds: PROMPT,
      maxTokens: 3,
      stopTokenIds: [],
    });
    assert.equal(free.finishReason, "length");
    assert.equal(free.tokens.length, 3);
    const stopped = await model.generate({
      inputIds: PROMPT,
      maxTokens: 3,
      stopTokenIds: [free.tokens[1]],
      layers: [1],
    });
    assert.deepEqual(stopped.tokens, free.tokens.slice(0, 2));
    assert.equal(stopped.finishReason, "stop");
    assert.deepEqual(Object.keys(stopped.attention), ["1"]);
    assert.deepEqual(stopped.attention[1].scores.shape, [
      PROMPT.length + 1,
      4,
      PROMPT.length + 1,
    ]);
    await Deno.writeTextFile(
      join(dir, "generation_config.json"),
      JSON.stringify({ eos_token_id: [free.tokens[0], 1] }),
    );
    const eosModel = await loadModel(dir);
    try {
      assert.deepEqual(eosModel.info.eosTokenIds, [1, free.tokens[0]]);
      const r = await eosModel.generate({ inputIds: PROMPT, maxTokens: 3 });
      assert.deepEqual(r.tokens, [free.tokens[0]]);
      assert.equal(r.finishReason, "stop");
    } finally {
      eosModel.close();
    }
  },
});

Deno.test({
  name:
    "generate: dtype float16 gives Float16Array scores within float16 rounding of float32's",
  ignore,
  async fn() {
    await setup();
    const a = await model.generate({
      inputIds: PROMPT,
      maxTokens: 2,
      layers: [0, 2],
      stopTokenIds: [],
    });
    const b = await model.generate({
      inputIds: PROMPT,
      maxTokens: 2,
      layers: [0, 2],
      dtype: "float16",
      stopTokenIds: [],
    });
    assert.ok(b.attention[2].scores.data instanceof Float16Array);
    assert.equal(b.attention[2].scores.dtype, "float16");
    assert.ok(
      maxDiff(a.attention[2].scores.data, b.attention[2].scores.data) < 1e-3,
    );
  },
});

Deno.test({
  name:
    "generate: logprobs and prompt logprobs (head in vocabulary slices) agree with log-softmax of full logits",
  ignore,
  async fn() {
    await setup();
    const r = await model.generate({
      inputIds: PROMPT,
      maxTokens: 2,
      logits: true,
      topLogprobs: 3,
      promptTopLogprobs: 4,
      stopTokenIds: [],
    });
    const step = r.logits![0];
    assert.ok(
      Math.abs(r.logprobs[0].token.logprob - logSoftmax(step, r.tokens[0])) <
        1e-4,
    );
    assert.equal(r.logprobs[0].top.length, 3);
    assert.equal(r.logprobs[0].top[0].id, r.tokens[0]);
    assert.equal(r.promptLogprobs.length, PROMPT.length);
    assert.equal(r.promptLogprobs[0], null);
    for (const i of [1, 5, PROMPT.length - 1]) {
      // Position i's logprob comes from the logits after PROMPT[0..i-1].
      const prefix = await model.generate({
        inputIds: PROMPT.slice(0, i),
        maxTokens: 1,
        logits: true,
        stopTokenIds: [],
      });
      const logits = prefix.logits![0];
      const entry = r.promptLogprobs[i]!;
      assert.equal(entry.token.id, PROMPT[i]);
      assert.ok(
        Math.abs(entry.token.logprob - logSoftmax(logits, PROMPT[i])) < 1e-4,
      );
      // Separate runs agree within the logits tolerance (1e-4), so near-ties may order either way.
      const t = logits[PROMPT[i]];
      const surely = logits.filter((v) => v > t + 1e-4).length;
      const maybe = logits.filter((v) => v > t - 1e-4).length;
      assert.ok(
        surely + 1 <= entry.rank && entry.rank <= maybe,
        `rank ${entry.rank} not in [${surely + 1}, ${maybe}]`,
      );
      const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a])
        .slice(0, 4);
      assert.deepEqual(entry.top.map((e) => e.id), order);
      assert.ok(
        Math.abs(entry.top[0].logprob - logSoftmax(logits, order[0])) < 1e-4,
      );
    }
  },
});

Deno.test({
  name:
    "generate: temperature sampling is reproducible by seed and needs no logits option",
  ignore,
  async fn() {
    await setup();
    const opts = {
      inputIds: PROMPT,
      maxTokens: 6,
      temperature: 1.5,
      stopTokenIds: [],
    };
    const a = await model.generate({ ...opts, seed: 7 });
    const b = await model.generate({ ...opts, seed: 7 });
    assert.deepEqual(a.tokens, b.tokens);
    assert.equal(a.logits, undefined);
    const seeds = await Promise.all(
      [1, 2, 3, 4].map((seed) => model.generate({ ...opts, seed })),
    );
    assert.ok(
      new Set(seeds.map((s) => s.tokens.join())).size > 1,
      "different seeds sample differently",
    );
  },
});

Deno.test({
  name:
    "start: steps are the prefill then one token each; result before the end and a second run at once throw",
  ignore,
  async fn() {
    await setup();
    const steps = model.start({
      inputIds: PROMPT,
      maxTokens: 3,
      stopTokenIds: [],
    });
    assert.throws(() => steps.result(), /generation has not ended/);
    assert.throws(
      () => model.start({ inputIds: PROMPT, maxTokens: 1 }),
      /already running/,
    );
    assert.equal(steps.step(), false);
    assert.equal(steps.tokens.length, 1);
    assert.equal(steps.step(), false);
    assert.equal(steps.step(), true);
    assert.equal(steps.result().tokens.length, 3);
    assert.equal(steps.step(), true);
  },
});

Deno.test({
  name:
    "start: bad layers, heads, ids and lengths are RangeErrors naming the problem",
  ignore,
  async fn() {
    await setup();
    const base = { inputIds: PROMPT, maxTokens: 2 };
    assert.throws(() => model.start({ ...base, layers: [3] }), {
      name: "RangeError",
      message: /layer 3 does not exist; the model has layers 0..2/,
    });
    assert.throws(() => model.start({ ...base, ablateHeads: [[0, 4]] }), {
      name: "RangeError",
      message: /names no head; heads are 0..3/,
    });
    assert.throws(() => model.start({ ...base, inputIds: [20000] }), {
      name: "RangeError",
      message: /outside the vocabulary \[0, 20000\)/,
    });
    assert.throws(() => model.start({ ...base, inputIds: [] }), {
      name: "RangeError",
      message: /inputIds is empty/,
    });
    assert.throws(() => model.start({ ...base, maxTokens: 0 }), {
      name: "RangeError",
      message: /maxTokens 0/,
    });
    assert.throws(() => model.start({ inputIds: PROMPT, maxTokens: 200 }), {
      name: "RangeError",
      message: /needs 208 positions but the model takes 128/,
    });
    // After the errors the model still runs.
    assert.equal((await model.generate(base)).tokens.length > 0, true);
  },
});

Deno.test({
  name: "close: frees the model; generate afterwards says to load it again",
  ignore,
  async fn() {
    await setup();
    assert.equal(model.info.family, "gemma3_text");
    assert.equal(model.info.dtype, "bfloat16");
    assert.ok(model.info.checkpointBytes > 20000 * 32 * 2);
    model.close();
    model.close();
    await assert.rejects(
      model.generate({ inputIds: PROMPT, maxTokens: 1 }),
      /the model was closed; load it again/,
    );
    await Deno.remove(root, { recursive: true });
  },
});

/** A backend that copies every weight (as the WebAssembly one does), over the reference. */
class CopyingBackend implements MatmulBackend {
  readonly name = "copying";
  #inner = new ReferenceBackend();
  upload(w: MatrixWeight, bias?: Float32Array | null): WeightHandle {
    return this.#inner.upload({ ...w, data: w.data.slice() }, bias?.slice());
  }
  linear(
    x: Float32Array,
    m: number,
    w: WeightHandle,
    out?: Float32Array,
    rowRange?: [number, number],
  ): Float32Array {
    return this.#inner.linear(x, m, w, out, rowRange);
  }
  matmul(op: MatmulOp): void {
    this.#inner.matmul(op);
  }
  release(w: WeightHandle): void {
    this.#inner.release(w);
  }
  close(): void {
    this.#inner.close();
  }
}

Deno.test({
  name:
    "loadModel: with a backend that copies weights, a tied head is held once and embeddings read back through it",
  ignore,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "attnscope-engine-" });
    try {
      for (const family of ["gemma3_text", "gpt2"]) {
        const ckpt = await makeCheckpoint(tmp, family, family, [
          "--dtype",
          "bf16",
          "--kv-heads",
          "2",
        ]);
        const a = await loadModel(ckpt);
        const b = await loadModel(ckpt, { backend: new CopyingBackend() });
        try {
          const opts = {
            inputIds: [3, 1, 4, 1, 5],
            maxTokens: 3,
            logits: true,
            layers: "all" as const,
            stopTokenIds: [],
          };
          const ra = await a.generate(opts);
          const rb = await b.generate(opts);
          assert.deepEqual(rb.tokens, ra.tokens);
          assert.ok(maxDiff(rb.logits![2], ra.logits![2]) < 1e-5, family);
          assert.ok(
            maxDiff(rb.attention[1].scores.data, ra.attention[1].scores.data) <
              1e-6,
          );
        } finally {
          a.close();
          b.close();
        }
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
