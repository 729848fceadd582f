/**
 * `POST /tokenize` on the demo server over real HTTP, in vLLM's shapes: a
 * chat's count is the prompt_tokens a chat completion of the same messages
 * reports, a prompt gets `<bos>` unless `add_special_tokens` is false, and
 * malformed bodies get a 400 naming the field.
 */

import assert from "node:assert/strict";
import { startDemoServer } from "../server/serve.ts";
import { loadDemoModel } from "../server/model/mod.ts";

const model = loadDemoModel();
const QUESTION = "alpha: 1729\nbeta: 2048\nalpha:";

Deno.test("POST /tokenize answers vLLM's {count, max_model_len, tokens} for chats and prompts", async () => {
  await using server = await startDemoServer({ apiKey: "k" });
  const root = server.baseUrl.replace(/\/v1$/, "");
  const call = (body: unknown, key = "k") =>
    fetch(`${root}/tokenize`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify(body),
    });
  const messages = [{ role: "user", content: QUESTION }];

  const chat = await (await call({ model: model.name, messages })).json();
  const completion = await (await fetch(`${server.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer k" },
    body: JSON.stringify({ model: model.name, messages, max_tokens: 1 }),
  })).json();
  assert.equal(chat.count, completion.usage.prompt_tokens);
  assert.equal(chat.tokens.length, chat.count);
  assert.equal(chat.max_model_len, model.maxPositions);
  assert.equal(chat.token_strs, null);
  assert.deepEqual(chat.tokens, [
    ...model.renderChat([{
      role: "user",
      parts: [{ type: "text", text: QUESTION }],
    }]).ids,
  ]);

  // Without the generation prompt: the same tokens less the model-turn header.
  const bare = await (await call({
    messages,
    add_generation_prompt: false,
    return_token_strs: true,
  })).json();
  assert.deepEqual(bare.tokens, chat.tokens.slice(0, bare.count));
  assert.ok(bare.count < chat.count);
  assert.equal(bare.token_strs.at(-1), "\n");

  const withBos =
    await (await call({ prompt: QUESTION, return_token_strs: true })).json();
  const plain = await (await call({
    prompt: QUESTION,
    add_special_tokens: false,
    return_token_strs: true,
  })).json();
  assert.equal(withBos.count, plain.count + 1);
  assert.equal(withBos.token_strs[0], "<bos>");
  assert.equal(plain.token_strs.join(""), QUESTION);

  const cases: [unknown, number, RegExp][] = [
    [{ prompt: "x", messages }, 400, /both prompt and messages/],
    [{}, 400, /neither prompt nor messages/],
    [{ prompt: 3 }, 400, /Cannot read prompt: it is the number 3/],
    [
      { prompt: "x", add_special_tokens: "yes" },
      400,
      /Cannot read add_special_tokens/,
    ],
    [{ messages: [] }, 400, /Cannot read messages/],
    [{ messages, continue_final_message: true }, 400, /continue_final_message/],
    [{ model: "other", prompt: "x" }, 404, /Cannot find model "other"/],
    [[1], 400, /not a JSON object/],
  ];
  for (const [body, status, message] of cases) {
    const res = await call(body);
    const error = (await res.json()).error;
    assert.equal(res.status, status, JSON.stringify(body));
    assert.match(error.message, message);
  }
  const denied = await call({ prompt: "x" }, "wrong");
  assert.equal(denied.status, 401);
  await denied.body?.cancel();
  const get = await fetch(`${root}/tokenize`, {
    headers: { authorization: "Bearer k" },
  });
  assert.equal(get.status, 405);
  await get.body?.cancel();
});
