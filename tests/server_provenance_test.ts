/**
 * A model's provenance (`DemoModel.provenance`, set by real-model adapters)
 * reaches the response's top level; a model without one adds nothing.
 */

import assert from "node:assert/strict";
import { createHandler } from "../server/handler.ts";
import { loadDemoModel } from "../server/model/mod.ts";

Deno.test("createHandler() carries the model's provenance into the completion, and nothing when it has none", async () => {
  const demo = loadDemoModel();
  const provenance = {
    model_id: "org/tiny",
    revision: "abc123",
    dtype: "float32",
  };
  const ask = async (model: typeof demo) => {
    const res = await createHandler(model)(
      new Request("http://x/v1/chat/completions", {
        method: "POST",
        body: JSON.stringify({
          model: model.name,
          messages: [{ role: "user", content: "a: 1\na:" }],
          max_tokens: 1,
        }),
      }),
    );
    assert.equal(res.status, 200);
    return await res.json();
  };
  assert.deepEqual((await ask({ ...demo, provenance })).provenance, provenance);
  assert.equal("provenance" in await ask(demo), false);
});
