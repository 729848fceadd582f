/**
 * The demo server's handler with the demo model, called without a port:
 * routing, auth, the table of bad requests (status, error shape, a message
 * that names the problem), that a good request is answered after each bad
 * one, limits, stop strings, logprobs, streams and the wire format.
 */

import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { encodePng } from "../lib/png.ts";
import { createHandler, type Handler } from "../server/handler.ts";
import { loadDemoModel } from "../server/model/mod.ts";
import type {
  ChatMessage,
  DemoModel,
  GenerateOptions,
  GenerateResult,
  ModelInput,
} from "../server/model/types.ts";

/**
 * A tiny model honoring the contract, kept for the two paths the real model
 * cannot be made to take on demand: a model that throws (the server must
 * answer 500 without a stack and keep serving) and a model that refuses its
 * input with a RangeError (400). Everything else runs on the real model.
 */
class FailingModel implements DemoModel {
  readonly name = "failing";
  readonly numLayers = 2;
  readonly numHeads = 2;
  readonly maxPositions = 64;
  failWith: Error | null = null;

  renderChat(messages: ChatMessage[]): ModelInput {
    const text = messages.flatMap((m) => m.parts).map((p) =>
      p.type === "text" ? p.text : ""
    ).join("");
    return {
      ids: Int32Array.from([1, ...[...text].map((c) => 10 + c.charCodeAt(0))]),
      patches: new Map(),
      visionRanges: [],
    };
  }
  tokenText(id: number): string {
    return String.fromCharCode(id - 10);
  }
  decode(ids: readonly number[]): string {
    return ids.map((id) => this.tokenText(id)).join("");
  }
  generate(input: ModelInput, _options: GenerateOptions): GenerateResult {
    if (this.failWith) throw this.failWith;
    return {
      tokens: [10 + 111, 10 + 107],
      finishReason: "length",
      logprobs: [],
      promptLogprobs: [...input.ids].map(() => null),
      attention: new Map(),
    };
  }
}

const model = loadDemoModel();
const NAME = model.name;
const QUESTION = "key: 42\nother: 77\nkey:";
/** Prompt tokens of a one-message chat, as the model tokenizes it. */
const promptTokens = (text: string) =>
  model.renderChat([{ role: "user", parts: [{ type: "text", text }] }]).ids
    .length;
const P = promptTokens(QUESTION);
const LONG = "word ".repeat(80);
const P_LONG = promptTokens(LONG);
/** A PNG signature followed by garbage: what a truncated upload looks like. */
const DAMAGED_PNG = Uint8Array.from([
  0x89,
  0x50,
  0x4e,
  0x47,
  0x0d,
  0x0a,
  0x1a,
  0x0a,
  0,
  0,
]);
const IMAGE_PNG = encodePng(
  Uint8Array.from(
    { length: 4 * 4 * 4 },
    (_, i) => i % 4 === 3 ? 255 : (i * 37) % 256,
  ),
  4,
);

function post(body: unknown, headers: Record<string, string> = {}): Request {
  return new Request("http://demo/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const good = {
  model: NAME,
  messages: [{ role: "user", content: QUESTION }],
  temperature: 0,
};

async function json(res: Response): Promise<Record<string, unknown>> {
  return await res.json() as Record<string, unknown>;
}

async function assertAnswersGood(
  handler: Handler,
  headers: Record<string, string> = {},
): Promise<void> {
  const res = await handler(post(good, headers));
  assert.equal(res.status, 200);
  const body = await json(res) as {
    choices: { message: { content: string } }[];
  };
  assert.equal(body.choices[0].message.content.trim(), "42");
}

interface BadCase {
  name: string;
  request: () => Request;
  status: number;
  message: RegExp;
  param?: string | null;
}

const badCases: BadCase[] = [
  {
    name: "malformed JSON",
    request: () => post('{"model": "tiny", "messages": ['),
    status: 400,
    message: /^Cannot parse the request body as JSON: .*; send a JSON object/,
  },
  {
    name: "empty body",
    request: () => post(""),
    status: 400,
    message: /the body is empty/,
  },
  {
    name: "body not an object",
    request: () => post("[1,2]"),
    status: 400,
    message: /not a JSON object/,
  },
  {
    name: "missing model",
    request: () => post({ messages: good.messages }),
    status: 400,
    message: /Cannot read model: it is missing; pass the model name/,
    param: "model",
  },
  {
    name: "unknown model",
    request: () => post({ ...good, model: "gpt-4" }),
    status: 404,
    message: new RegExp(
      `Cannot find model "gpt-4": this server serves "${NAME}"`,
    ),
    param: "model",
  },
  {
    name: "messages missing",
    request: () => post({ model: "tiny" }),
    status: 400,
    message: /Cannot read messages: it is missing; pass a non-empty list/,
    param: "messages",
  },
  {
    name: "messages empty",
    request: () => post({ model: "tiny", messages: [] }),
    status: 400,
    message: /messages: it is an empty list/,
  },
  {
    name: "bad role",
    request: () =>
      post({ ...good, messages: [{ role: "robot", content: "x" }] }),
    status: 400,
    message:
      /messages\[0\]\.role: it is the string "robot"; use "system", "user" or "assistant"/,
    param: "messages[0].role",
  },
  {
    name: "content a number",
    request: () => post({ ...good, messages: [{ role: "user", content: 5 }] }),
    status: 400,
    message:
      /messages\[0\]\.content: it is the number 5; pass a string or a list/,
  },
  {
    name: "unknown part type",
    request: () =>
      post({
        ...good,
        messages: [{ role: "user", content: [{ type: "audio" }] }],
      }),
    status: 400,
    message: /part type the string "audio" is not supported/,
  },
  {
    name: "remote image URL",
    request: () =>
      post({
        ...good,
        messages: [{
          role: "user",
          content: [{
            type: "image_url",
            image_url: { url: "http://x/a.png" },
          }],
        }],
      }),
    status: 400,
    message: /not a data: URL .*; embed a PNG as data:image\/png;base64/,
  },
  {
    name: "JPEG data URL",
    request: () =>
      post({
        ...good,
        messages: [{
          role: "user",
          content: [{
            type: "image_url",
            image_url: { url: "data:image/jpeg;base64,AAAA" },
          }],
        }],
      }),
    status: 400,
    message: /data: URL of type "image\/jpeg"/,
  },
  {
    name: "damaged PNG",
    request: () =>
      post({
        ...good,
        messages: [{
          role: "user",
          content: [{
            type: "image_url",
            image_url: {
              url: `data:image/png;base64,${DAMAGED_PNG.toBase64()}`,
            },
          }],
        }],
      }),
    status: 400,
    message: /PNG/,
    param: "messages",
  },
  {
    name: "PNG data URL without a PNG",
    request: () =>
      post({
        ...good,
        messages: [{
          role: "user",
          content: [{
            type: "image_url",
            image_url: { url: "data:image/png;base64,AAAA" },
          }],
        }],
      }),
    status: 400,
    message: /do not start with the PNG signature/,
  },
  {
    name: "max_tokens a string",
    request: () => post({ ...good, max_tokens: "5" }),
    status: 400,
    message:
      /Cannot read max_tokens: it is the string "5"; pass an integer of at least 1/,
    param: "max_tokens",
  },
  {
    name: "max_tokens zero",
    request: () => post({ ...good, max_tokens: 0 }),
    status: 400,
    message: /max_tokens: it is the number 0/,
  },
  {
    name: "temperature too high",
    request: () => post({ ...good, temperature: 3 }),
    status: 400,
    message: /temperature: it is the number 3; pass a number from 0 to 2/,
  },
  {
    name: "stop a number",
    request: () => post({ ...good, stop: 7 }),
    status: 400,
    message: /Cannot read stop/,
  },
  {
    name: "logprobs a string",
    request: () => post({ ...good, logprobs: "yes" }),
    status: 400,
    message: /logprobs: it is the string "yes"; pass true or false/,
  },
  {
    name: "top_logprobs without logprobs",
    request: () => post({ ...good, top_logprobs: 2 }),
    status: 400,
    message: /set logprobs: true as well/,
  },
  {
    name: "prompt_logprobs above 20",
    request: () => post({ ...good, prompt_logprobs: 21 }),
    status: 400,
    message:
      /prompt_logprobs: it is the number 21; pass an integer from 0 to 20/,
  },
  {
    name: "n above 1",
    request: () => post({ ...good, n: 2 }),
    status: 400,
    message: /Cannot generate 2 choices/,
  },
  {
    name: "attn_capture 2",
    request: () => post({ ...good, attn_capture: 2 }),
    status: 400,
    message:
      /Cannot read attn_capture: it is the number 2; pass 1 to capture attention or 0/,
    param: "attn_capture",
  },
  {
    name: "attn_capture true",
    request: () => post({ ...good, attn_capture: true }),
    status: 400,
    message: /attn_capture: it is the boolean true/,
  },
  {
    name: "attn_capture_layers a list",
    request: () =>
      post({ ...good, attn_capture: 1, attn_capture_layers: [0, 1] }),
    status: 400,
    message:
      /attn_capture_layers: it is a list, not a string; pass "all" or comma-separated/,
  },
  {
    name: "attn_capture_layers malformed",
    request: () =>
      post({ ...good, attn_capture: 1, attn_capture_layers: "0,x" }),
    status: 400,
    message: /"x" is not a layer index; write "all" or comma-separated indices/,
    param: "attn_capture_layers",
  },
  {
    name: "attn_capture_layers empty entry",
    request: () =>
      post({ ...good, attn_capture: 1, attn_capture_layers: "0,,1" }),
    status: 400,
    message: /an entry is empty/,
  },
  {
    name: "attn_capture_layers out of range",
    request: () =>
      post({ ...good, attn_capture: 1, attn_capture_layers: "1,18,27" }),
    status: 400,
    message: new RegExp(
      `Cannot capture layers 18, 27: ${NAME} has ${model.numLayers} layers, so valid layers are 0\\.\\.${
        model.numLayers - 1
      }`,
    ),
    param: "attn_capture_layers",
  },
  {
    name: "prompt over the context",
    request: () =>
      post({ ...good, messages: [{ role: "user", content: LONG }] }),
    status: 400,
    message: new RegExp(
      `prompt has ${P_LONG} tokens but the model's context holds 64`,
    ),
  },
  {
    name: "prompt plus max_tokens over the context",
    request: () => post({ ...good, max_tokens: 60 }),
    status: 400,
    message: new RegExp(
      `maximum context length is 64 tokens, but ${
        P + 60
      } were requested \\(${P} in the messages, 60 in the completion\\)`,
    ),
  },
  {
    name: "wrong API key",
    request: () => post(good, { authorization: "Bearer nope" }),
    status: 401,
    message:
      /API key is missing or wrong; send the key the server was started with \(--api-key\)/,
  },
  {
    name: "missing API key",
    request: () => post(good, { authorization: "" }),
    status: 401,
    message: /API key/,
  },
  {
    name: "unknown route",
    request: () =>
      new Request("http://demo/v1/completions", { method: "POST", body: "{}" }),
    status: 404,
    message: /Cannot find \/v1\/completions: the server answers GET \/health/,
  },
  {
    name: "wrong method",
    request: () => new Request("http://demo/v1/chat/completions"),
    status: 405,
    message: /Cannot GET \/v1\/chat\/completions: it only answers POST/,
  },
];

Deno.test("createHandler() refuses each bad request with an OpenAI-style error and answers the next good one", async (t) => {
  const handler = createHandler(model, {
    enableAttentionInstrumentation: true,
    apiKey: "secret",
    maxModelLen: 64,
  });
  const auth = { authorization: "Bearer secret" };
  assert.ok(
    P + 60 > 64 && P_LONG >= 64,
    "the context cases exceed --max-model-len 64",
  );
  for (const c of badCases) {
    await t.step(c.name, async () => {
      const req = c.request();
      if (!req.headers.has("authorization")) {
        req.headers.set("authorization", auth.authorization);
      } else if (req.headers.get("authorization") === "") {
        req.headers.delete("authorization");
      }
      const res = await handler(req);
      assert.equal(res.status, c.status);
      assert.match(res.headers.get("content-type") ?? "", /application\/json/);
      const body = await json(res) as {
        error: { message: string; type: string; param: unknown; code: unknown };
      };
      assert.deepEqual(Object.keys(body.error).sort(), [
        "code",
        "message",
        "param",
        "type",
      ]);
      assert.match(body.error.message, c.message);
      assert.match(body.error.message, /^Cannot /);
      assert.doesNotMatch(body.error.message, /\n\s+at /, "no stack trace");
      if (c.param !== undefined) assert.equal(body.error.param, c.param);
      assert.equal(typeof body.error.type, "string");
      if (c.status === 405) assert.equal(res.headers.get("allow"), "POST");
      await assertAnswersGood(handler, auth);
    });
  }
});

Deno.test("createHandler() names the flag to add when capture is asked of a server without instrumentation", async () => {
  const handler = createHandler(model);
  const res = await handler(post({ ...good, attn_capture: 1 }));
  assert.equal(res.status, 400);
  const { error } = await json(res) as {
    error: { message: string; code: string };
  };
  assert.match(
    error.message,
    /started without attention instrumentation; restart it with --enable-attention-instrumentation/,
  );
  assert.equal(error.code, "attention_instrumentation_disabled");
  // Without attn_capture the same server answers.
  await assertAnswersGood(handler);
});

Deno.test("createHandler() keeps captures under --max-attention-capture-mb: refuses, names the flag, or shortens the default length", async () => {
  const perRow = model.numLayers * model.numHeads * 2;
  const mb = (rows: number) => perRow * rows * rows / 2 ** 20;
  const capture = { ...good, attn_capture: 1, attn_capture_layers: "all" };

  const tooSmall = createHandler(model, {
    enableAttentionInstrumentation: true,
    maxAttentionCaptureMb: mb(P - 1),
  });
  const alone = await json(await tooSmall(post(capture)));
  assert.match(
    (alone as { error: { message: string } }).error.message,
    new RegExp(
      `^Cannot capture attention: for the prompt alone, ${model.numLayers} layers of ${P} x ${model.numHeads} x ${P} float16 scores need .* MiB, over the server's limit of .* MiB; capture fewer layers \\(attn_capture_layers\\) or shorten the prompt, or restart the server with a larger --max-attention-capture-mb$`,
    ),
  );

  // Room for the prompt and 2 more rows: 3 generated tokens at most.
  const tight = createHandler(model, {
    enableAttentionInstrumentation: true,
    maxAttentionCaptureMb: mb(P + 2),
  });
  const refused = await tight(post({ ...capture, max_tokens: 6 }));
  assert.equal(refused.status, 400);
  const { error } = await json(refused) as {
    error: { message: string; param: string };
  };
  assert.match(
    error.message,
    /with max_tokens 6, .*; lower max_tokens to at most 3, capture fewer layers .*--max-attention-capture-mb/,
  );
  assert.equal(error.param, "max_tokens");
  const shortened = await json(await tight(post(capture))) as {
    usage: { completion_tokens: number };
    attn_capture_data: { shape: number[] }[];
  };
  assert.ok(shortened.usage.completion_tokens <= 3);
  assert.ok(shortened.attn_capture_data[0].shape[0] <= P + 2);
});

Deno.test("createHandler() names the instrumentation flag when the server's own layer list is out of range", async () => {
  const handler = createHandler(model, {
    enableAttentionInstrumentation: true,
    attentionInstrumentationLayers: [2, 18, 27],
  });
  const res = await handler(post({ ...good, attn_capture: 1 }));
  assert.equal(res.status, 400);
  const { error } = await json(res) as { error: { message: string } };
  assert.match(
    error.message,
    new RegExp(
      `valid layers are 0\\.\\.${
        model.numLayers - 1
      }; fix --attention-instrumentation-layers`,
    ),
  );
});

Deno.test("createHandler() turns a model failure into a 500 without a stack and keeps serving", async () => {
  const failing = new FailingModel();
  const handler = createHandler(failing);
  failing.failWith = new Error("weights went missing");
  const request = { ...good, model: "failing" };
  const res = await handler(post(request));
  assert.equal(res.status, 500);
  const { error } = await json(res) as {
    error: { message: string; type: string };
  };
  assert.match(
    error.message,
    /^Cannot answer the request: the server failed \(weights went missing\); this is a bug/,
  );
  assert.equal(error.type, "server_error");
  failing.failWith = null;
  const next = await handler(post(request));
  assert.equal(next.status, 200);
  assert.equal(
    ((await json(next)) as { choices: { message: { content: string } }[] })
      .choices[0].message.content,
    "ok",
  );
});

Deno.test("createHandler() turns a model's refusal of its input (RangeError) into a 400", async () => {
  const failing = new FailingModel();
  failing.renderChat = () => {
    throw new RangeError(
      "Cannot render the chat: an image in a system message; put images in user messages",
    );
  };
  const res = await createHandler(failing)(post({ ...good, model: "failing" }));
  assert.equal(res.status, 400);
  const { error } = await json(res) as { error: { message: string } };
  assert.match(error.message, /image in a system message/);
});

Deno.test("createHandler() answers /health without a key, /v1/models with one", async () => {
  const handler = createHandler(model, {
    apiKey: "k",
    servedModelName: "served",
  });
  const health = await handler(new Request("http://demo/health"));
  assert.equal(health.status, 200);
  await health.body?.cancel();
  const denied = await handler(new Request("http://demo/v1/models"));
  assert.equal(denied.status, 401);
  await denied.body?.cancel();
  const models = await handler(
    new Request("http://demo/v1/models", {
      headers: { authorization: "Bearer k" },
    }),
  );
  const list = await json(models) as {
    object: string;
    data: { id: string; max_model_len: number }[];
  };
  assert.equal(list.object, "list");
  assert.deepEqual(list.data.map((m) => [m.id, m.max_model_len]), [[
    "served",
    model.maxPositions,
  ]]);
});

Deno.test("createHandler() applies stop strings and returns logprobs and prompt_logprobs", async () => {
  const handler = createHandler(model);
  const res = await handler(post({
    ...good,
    messages: [{ role: "user", content: "alpha: 1729\nbeta: 2048\nalpha:" }],
    stop: ["2"],
    logprobs: true,
    top_logprobs: 2,
    prompt_logprobs: 0,
  }));
  assert.equal(res.status, 200);
  const body = await json(res) as {
    choices: {
      message: { content: string };
      finish_reason: string;
      stop_reason: string;
      logprobs: {
        content: { token: string; logprob: number; top_logprobs: unknown[] }[];
      };
    }[];
    usage: {
      prompt_tokens: number;
      completion_tokens: number;
      total_tokens: number;
    };
    prompt_logprobs:
      (Record<string, { decoded_token: string; logprob: number }> | null)[];
  };
  const choice = body.choices[0];
  assert.equal(choice.message.content.trim(), "17");
  assert.equal(choice.finish_reason, "stop");
  assert.equal(choice.stop_reason, "2");
  const tokens = choice.logprobs.content.map((c) => c.token);
  assert.equal(
    tokens.join("").trim(),
    "172",
    "the stop string's token is generated, then cut from the text",
  );
  assert.equal(tokens.length, body.usage.completion_tokens);
  assert.ok(
    choice.logprobs.content.every((c) =>
      c.logprob <= 0 && c.top_logprobs.length === 2
    ),
  );
  assert.equal(
    body.usage.total_tokens,
    body.usage.prompt_tokens + body.usage.completion_tokens,
  );
  assert.equal(body.prompt_logprobs.length, body.usage.prompt_tokens);
  assert.equal(body.prompt_logprobs[0], null);
  const prompt = body.prompt_logprobs.slice(1).map((e) =>
    Object.values(e!)[0].decoded_token
  ).join("");
  assert.ok(prompt.includes("alpha: 1729\nbeta: 2048\nalpha:"), prompt);
});

Deno.test("createHandler() answers prompt_logprobs: k as vLLM does: the prompt token with its rank, then the top k ranked 1..k", async () => {
  const handler = createHandler(model);
  const text = "alpha: 1729\nbeta: 2048\nalpha:";
  const ask = async (k: number) => {
    const res = await handler(post({
      ...good,
      messages: [{ role: "user", content: text }],
      prompt_logprobs: k,
    }));
    assert.equal(res.status, 200);
    return ((await json(res)) as {
      prompt_logprobs: (
        | Record<
          string,
          { logprob: number; rank: number; decoded_token: string }
        >
        | null
      )[];
    }).prompt_logprobs;
  };
  const zero = await ask(0);
  const three = await ask(3);
  assert.equal(three.length, zero.length);
  assert.equal(three[0], null);
  for (let p = 1; p < zero.length; p++) {
    const [[id, own]] = Object.entries(zero[p]!);
    const entry = three[p]!;
    // The prompt token keeps its logprob and rank; the others are the
    // likeliest three, ranked 1..3 (the prompt token once if among them).
    assert.deepEqual(entry[id], own);
    assert.ok(own.rank >= 1 && own.logprob <= 0);
    const ranks = Object.values(entry).map((e) => e.rank).sort((a, b) => a - b);
    assert.deepEqual(
      ranks,
      own.rank <= 3 ? [1, 2, 3] : [1, 2, 3, own.rank],
      `position ${p}`,
    );
    const byRank = Object.values(entry).sort((a, b) => a.rank - b.rank);
    for (let i = 1; i < byRank.length; i++) {
      assert.ok(byRank[i - 1].logprob >= byRank[i].logprob, `position ${p}`);
    }
  }
  const sum = (e: Record<string, { logprob: number }>) =>
    Object.values(e).reduce((a, v) => a + Math.exp(v.logprob), 0);
  assert.ok(three.slice(1).every((e) => sum(e!) <= 1 + 1e-9));
});

Deno.test("createHandler() captures attention of a prompt with an image in the wire format", async () => {
  const handler = createHandler(model, {
    enableAttentionInstrumentation: true,
  });
  const messages = [{
    role: "user",
    content: [
      {
        type: "image_url",
        image_url: { url: `data:image/png;base64,${IMAGE_PNG.toBase64()}` },
      },
      { type: "text", text: "What is this?" },
    ],
  }];
  const res = await handler(
    post({
      ...good,
      messages,
      attn_capture: 1,
      attn_capture_layers: "0",
      max_tokens: 4,
    }),
  );
  assert.equal(res.status, 200);
  const body = await json(res) as {
    usage: { prompt_tokens: number; completion_tokens: number };
    attn_capture_data: {
      layer_idx: number;
      data: string;
      shape: number[];
      dtype: string;
      token_meta: {
        prompt_len: number;
        total_len: number;
        token_idx: number[];
        vision_ranges: { start: number; end: number }[];
        lang_ranges: { start: number; end: number }[];
      };
    }[];
  };
  const [layer] = body.attn_capture_data;
  const t = body.usage.prompt_tokens + body.usage.completion_tokens - 1;
  assert.equal(body.attn_capture_data.length, 1);
  assert.equal(layer.layer_idx, 0);
  assert.deepEqual(layer.shape, [t, model.numHeads, t]);
  assert.equal(layer.dtype, "torch.float16");
  const meta = layer.token_meta;
  assert.equal(meta.prompt_len, body.usage.prompt_tokens);
  assert.equal(meta.total_len, t);
  assert.deepEqual(meta.token_idx, Array.from({ length: t }, (_, i) => i));
  const rendered = model.renderChat([{
    role: "user",
    parts: [{ type: "image", png: IMAGE_PNG }, {
      type: "text",
      text: "What is this?",
    }],
  }]);
  assert.deepEqual(meta.vision_ranges, rendered.visionRanges);
  assert.ok(
    meta.vision_ranges.length === 1 &&
      meta.vision_ranges[0].end > meta.vision_ranges[0].start,
  );
  // Language ranges are the rest of the prompt.
  const covered = [...meta.vision_ranges, ...meta.lang_ranges]
    .reduce((n, r) => n + r.end - r.start, 0);
  assert.equal(covered, meta.prompt_len);
  const halves = halvesOf(gunzipSync(Uint8Array.fromBase64(layer.data)));
  assert.equal(halves.length, t * model.numHeads * t);
  for (let q = 0; q < t; q++) {
    for (let h = 0; h < model.numHeads; h++) {
      let sum = 0;
      for (let k = 0; k < t; k++) {
        const w = halves[(q * model.numHeads + h) * t + k];
        if (k > q) assert.equal(w, 0, "causal: no attention to later keys");
        sum += w;
      }
      assert.ok(Math.abs(sum - 1) < 0.01);
    }
  }
});

Deno.test("createHandler() streams server-sent events that add up to the JSON reply, without attention", async () => {
  const handler = createHandler(model, {
    enableAttentionInstrumentation: true,
  });
  const plain = await json(await handler(post(good))) as {
    choices: { message: { content: string } }[];
    usage: Record<string, number>;
  };
  const res = await handler(post({
    ...good,
    stream: true,
    stream_options: { include_usage: true },
    attn_capture: 1,
  }));
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type")!, /^text\/event-stream/);
  const events = (await res.text()).split("\n\n").filter(Boolean);
  assert.equal(events.at(-1), "data: [DONE]");
  const chunks = events.slice(0, -1).map((e) =>
    JSON.parse(e.replace(/^data: /, ""))
  );
  assert.ok(
    chunks.every((c) =>
      c.object === "chat.completion.chunk" && !("attn_capture_data" in c)
    ),
  );
  const text = chunks.flatMap((c) => c.choices).map((c) =>
    c.delta.content ?? ""
  ).join("");
  assert.equal(text, plain.choices[0].message.content);
  assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
  assert.deepEqual(chunks.at(-1).usage, plain.usage);
});

Deno.test("createHandler() rejects stream_options without stream", async () => {
  const res = await createHandler(model)(
    post({ ...good, stream_options: { include_usage: true } }),
  );
  assert.equal(res.status, 400);
  assert.match(
    (await json(res) as { error: { message: string } }).error.message,
    /set stream: true/,
  );
});

function halvesOf(bytes: Uint8Array): Float16Array {
  return new Float16Array(new Uint8Array(bytes).buffer);
}

/** The handler's /metrics gauges by name. */
async function gauges(handler: Handler): Promise<Record<string, number>> {
  const res = await handler(new Request("http://demo/metrics"));
  assert.equal(res.status, 200);
  const out: Record<string, number> = {};
  for (const line of (await res.text()).split("\n")) {
    const match = /^([\w:]+)(?:\{[^}]*\})? (\d+)$/.exec(line);
    if (match) out[match[1]] = Number(match[2]);
  }
  return out;
}

Deno.test("createHandler() answers /metrics with vLLM's queue gauges and the model thread's memory", async () => {
  const g = await gauges(createHandler(model));
  assert.equal(g["vllm:num_requests_running"], 0);
  assert.equal(g["vllm:num_requests_waiting"], 0);
  assert.equal(g["attnscope:queued_tokens"], 0);
  assert.ok(g["attnscope:engine_heap_used_bytes"] > 0);
  assert.ok(g["process_resident_memory_bytes"] > 0);
});

Deno.test("createHandler() stops the generation of an aborted request and releases its work", async () => {
  const handler = createHandler(model);
  const controller = new AbortController();
  // A prompt the model never ends, without max_tokens: a minute of work.
  const pending = handler(
    new Request("http://demo/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        ...good,
        messages: [{ role: "user", content: "xxxxxxxxxxxxxx" }],
      }),
      signal: controller.signal,
    }),
  );
  let g = await gauges(handler);
  while (g["vllm:num_requests_running"] !== 1) g = await gauges(handler);
  assert.equal(g["attnscope:queued_tokens"], model.maxPositions);
  controller.abort();
  await (await pending).body?.cancel();
  g = await gauges(handler);
  assert.equal(g["vllm:num_requests_running"], 0);
  assert.equal(g["attnscope:queued_tokens"], 0);
  await assertAnswersGood(handler);
});

Deno.test("createHandler() streams pieces as they are generated, never the stop string", async () => {
  const handler = createHandler(model);
  const res = await handler(post({
    ...good,
    messages: [{ role: "user", content: "alpha: 1729\nbeta: 2048\nalpha:" }],
    stream: true,
    stop: ["29"],
  }));
  const chunks = (await res.text()).split("\n\n").filter((e) =>
    e && e !== "data: [DONE]"
  ).map((e) => JSON.parse(e.slice(6)));
  const pieces = chunks.map((c) => c.choices[0]?.delta?.content ?? "");
  assert.equal(pieces.join(""), "17");
  assert.ok(pieces.every((p) => !p.includes("29") && !p.endsWith("2")));
  const last = chunks.at(-1).choices[0];
  assert.deepEqual([last.finish_reason, last.stop_reason], ["stop", "29"]);
});
