/**
 * The demo server's handler, called without a port: routing, auth, the
 * table of bad requests (status, error shape, a message that names the
 * problem), and that a good request is answered after each bad one.
 */

import assert from "node:assert/strict";
import { gunzipSync } from "node:zlib";
import { createHandler, type Handler } from "../server/handler.ts";
import type {
  ChatMessage,
  DemoModel,
  GenerateOptions,
  GenerateResult,
  ModelInput,
} from "../server/model/types.ts";

/**
 * A tiny deterministic model honoring the contract, for the paths the real
 * model cannot reach on demand: a model that throws (500 without a stack)
 * and a model that refuses input (400). Characters are tokens; it replies
 * with the first word of the last user message, attending uniformly.
 */
class TinyModel implements DemoModel {
  readonly name = "tiny";
  readonly numLayers = 2;
  readonly numHeads = 2;
  readonly maxPositions = 64;
  failWith: Error | null = null;

  renderChat(messages: ChatMessage[]): ModelInput {
    const ids = [1];
    const patches = new Map<number, Float32Array>();
    const visionRanges: { start: number; end: number }[] = [];
    for (const m of messages) {
      for (const p of m.parts) {
        if (p.type === "text") {
          for (const ch of p.text) ids.push(10 + ch.charCodeAt(0));
        } else {
          visionRanges.push({ start: ids.length, end: ids.length + 2 });
          for (let i = 0; i < 2; i++) {
            patches.set(ids.length, new Float32Array([p.png.length]));
            ids.push(4);
          }
        }
      }
    }
    return { ids: Int32Array.from(ids), patches, visionRanges };
  }
  tokenText(id: number): string {
    return id === 3
      ? "<eot>"
      : id < 10
      ? `<${id}>`
      : String.fromCharCode(id - 10);
  }
  decode(ids: readonly number[]): string {
    return ids.filter((id) => id >= 10).map((id) => this.tokenText(id)).join(
      "",
    );
  }
  generate(input: ModelInput, options: GenerateOptions): GenerateResult {
    if (this.failWith) throw this.failWith;
    const text = [...input.ids].filter((id) => id >= 10).map((id) => id - 10);
    const word = String.fromCharCode(...text).split(/\s+/)[0] || "x";
    const plan = [...word].map((c) => 10 + c.charCodeAt(0)).concat(3);
    const tokens: number[] = [];
    for (const id of plan) {
      if (tokens.length >= options.maxTokens) break;
      tokens.push(id);
      if (options.shouldStop?.(tokens)) break;
    }
    const t = input.ids.length + tokens.length - 1;
    const attention = new Map<number, Float32Array>();
    for (const l of options.captureLayers ?? []) {
      const a = new Float32Array(t * this.numHeads * t);
      for (let q = 0; q < t; q++) {
        for (let h = 0; h < this.numHeads; h++) {
          for (let k = 0; k <= q; k++) {
            a[(q * this.numHeads + h) * t + k] = 1 / (q + 1);
          }
        }
      }
      attention.set(l, a);
    }
    const done = tokens.at(-1) === 3 || tokens.length < plan.length;
    return {
      tokens,
      finishReason: done ? "stop" : "length",
      logprobs: tokens.map((id) => ({
        token: { id, logprob: -0.1 },
        top: [{ id, logprob: -0.1 }, { id: 11, logprob: -3 }],
      })),
      promptLogprobs: [...input.ids].map((id, i) =>
        i === 0 ? null : { id, logprob: -1 }
      ),
      attention,
    };
  }
}

const PNG = Uint8Array.from([
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
const PNG_URL = `data:image/png;base64,${PNG.toBase64()}`;

function post(body: unknown, headers: Record<string, string> = {}): Request {
  return new Request("http://demo/v1/chat/completions", {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const good = {
  model: "tiny",
  messages: [{ role: "user", content: "hello world" }],
  temperature: 0,
};

async function json(res: Response): Promise<Record<string, unknown>> {
  return await res.json() as Record<string, unknown>;
}

async function assertAnswersGood(handler: Handler): Promise<void> {
  const res = await handler(post(good));
  assert.equal(res.status, 200);
  const body = await json(res) as {
    choices: { message: { content: string } }[];
  };
  assert.equal(body.choices[0].message.content, "hello");
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
    message: /Cannot find model "gpt-4": this server serves "tiny"/,
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
    name: "prompt_logprobs above 0",
    request: () => post({ ...good, prompt_logprobs: 5 }),
    status: 400,
    message: /prompt_logprobs: it is the number 5; pass 0/,
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
    message:
      /Cannot capture layers 18, 27: tiny has 2 layers, so valid layers are 0\.\.1/,
    param: "attn_capture_layers",
  },
  {
    name: "prompt over the context",
    request: () =>
      post({ ...good, messages: [{ role: "user", content: "x".repeat(80) }] }),
    status: 400,
    message: /prompt has 81 tokens but the model's context holds 64/,
  },
  {
    name: "prompt plus max_tokens over the context",
    request: () => post({ ...good, max_tokens: 60 }),
    status: 400,
    message:
      /maximum context length is 64 tokens, but 72 were requested \(12 in the messages, 60 in the completion\)/,
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
  const handler = createHandler(new TinyModel(), {
    enableAttentionInstrumentation: true,
    apiKey: "secret",
  });
  const auth = { authorization: "Bearer secret" };
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
      const next = await handler(post(good, auth));
      assert.equal(next.status, 200, "the next good request is answered");
      await next.body?.cancel();
    });
  }
});

Deno.test("createHandler() names the flag to add when capture is asked of a server without instrumentation", async () => {
  const handler = createHandler(new TinyModel());
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
  // attn_capture: 0 is fine there.
  await assertAnswersGood(handler);
});

Deno.test("createHandler() refuses a capture over --max-attention-capture-mb and names the flag", async () => {
  const handler = createHandler(new TinyModel(), {
    enableAttentionInstrumentation: true,
    maxAttentionCaptureMb: 0.0001,
  });
  const res = await handler(post({ ...good, attn_capture: 1, max_tokens: 6 }));
  assert.equal(res.status, 400);
  const { error } = await json(res) as { error: { message: string } };
  assert.match(
    error.message,
    /2 layers of up to 17 x 2 x 17 float16 scores need 0\.0 MiB, over the server's limit of 0\.0001 MiB; capture fewer layers .*--max-attention-capture-mb/,
  );
});

Deno.test("createHandler() names the instrumentation flag when the server's own layer list is out of range", async () => {
  const handler = createHandler(new TinyModel(), {
    enableAttentionInstrumentation: true,
    attentionInstrumentationLayers: [2, 18, 27],
  });
  const res = await handler(post({ ...good, attn_capture: 1 }));
  assert.equal(res.status, 400);
  const { error } = await json(res) as { error: { message: string } };
  assert.match(
    error.message,
    /valid layers are 0\.\.1; fix --attention-instrumentation-layers/,
  );
});

Deno.test("createHandler() turns a model failure into a 500 without a stack and keeps serving", async () => {
  const model = new TinyModel();
  const handler = createHandler(model);
  model.failWith = new Error("weights went missing");
  const res = await handler(post(good));
  assert.equal(res.status, 500);
  const { error } = await json(res) as {
    error: { message: string; type: string };
  };
  assert.match(
    error.message,
    /^Cannot answer the request: the server failed \(weights went missing\); this is a bug/,
  );
  assert.equal(error.type, "server_error");
  model.failWith = null;
  await assertAnswersGood(handler);
});

Deno.test("createHandler() turns a model's refusal of its input (RangeError) into a 400", async () => {
  const model = new TinyModel();
  model.renderChat = () => {
    throw new RangeError(
      "Cannot render the chat: an image in a system message; put images in user messages",
    );
  };
  const res = await createHandler(model)(post(good));
  assert.equal(res.status, 400);
  const { error } = await json(res) as { error: { message: string } };
  assert.match(error.message, /image in a system message/);
});

Deno.test("createHandler() answers /health, /v1/models and checks the key only on /v1", async () => {
  const handler = createHandler(new TinyModel(), {
    apiKey: "k",
    servedModelName: "served",
  });
  const health = await handler(new Request("http://demo/health"));
  assert.equal(health.status, 200);
  await health.body?.cancel();
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
    64,
  ]]);
});

Deno.test("createHandler() applies stop strings, logprobs, prompt_logprobs and attention in the wire format", async () => {
  const handler = createHandler(new TinyModel(), {
    enableAttentionInstrumentation: true,
  });
  const res = await handler(post({
    ...good,
    messages: [{
      role: "user",
      content: [{ type: "text", text: "abcd e" }, {
        type: "image_url",
        image_url: { url: PNG_URL },
      }],
    }],
    stop: ["c"],
    logprobs: true,
    top_logprobs: 1,
    prompt_logprobs: 0,
    attn_capture: 1,
    attn_capture_layers: "1",
  }));
  assert.equal(res.status, 200);
  const body = await json(res) as {
    choices: {
      message: { content: string };
      finish_reason: string;
      stop_reason: string;
      logprobs: { content: { token: string; top_logprobs: unknown[] }[] };
    }[];
    usage: { prompt_tokens: number; completion_tokens: number };
    prompt_logprobs: (Record<string, { decoded_token: string }> | null)[];
    attn_capture_data: {
      layer_idx: number;
      data: string;
      shape: number[];
      dtype: string;
      token_meta: Record<string, unknown>;
    }[];
  };
  const choice = body.choices[0];
  assert.equal(choice.message.content, "ab");
  assert.equal(choice.finish_reason, "stop");
  assert.equal(choice.stop_reason, "c");
  assert.deepEqual(choice.logprobs.content.map((c) => c.token), [
    "a",
    "b",
    "c",
  ]);
  assert.equal(choice.logprobs.content[0].top_logprobs.length, 1);
  assert.deepEqual(body.usage, {
    prompt_tokens: 9,
    completion_tokens: 3,
    total_tokens: 12,
  });
  assert.equal(body.prompt_logprobs[0], null);
  assert.equal(Object.values(body.prompt_logprobs[1]!)[0].decoded_token, "a");
  const [layer] = body.attn_capture_data;
  assert.equal(layer.layer_idx, 1);
  assert.deepEqual(layer.shape, [11, 2, 11]);
  assert.equal(layer.dtype, "torch.float16");
  assert.deepEqual(layer.token_meta.vision_ranges, [{ start: 7, end: 9 }]);
  assert.deepEqual(layer.token_meta.lang_ranges, [{ start: 0, end: 7 }]);
  assert.equal(layer.token_meta.prompt_len, 9);
  assert.equal(layer.token_meta.total_len, 11);
  const halves = halvesOf(gunzipSync(Uint8Array.fromBase64(layer.data)));
  assert.equal(halves.length, 11 * 2 * 11);
  assert.equal(halves[(10 * 2 + 1) * 11 + 0], Math.f16round(1 / 11));
});

Deno.test("createHandler() streams server-sent events without attention", async () => {
  const handler = createHandler(new TinyModel(), {
    enableAttentionInstrumentation: true,
  });
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
  assert.equal(text, "hello");
  assert.equal(chunks.at(-2).choices[0].finish_reason, "stop");
  assert.deepEqual(chunks.at(-1).usage, {
    prompt_tokens: 12,
    completion_tokens: 6,
    total_tokens: 18,
  });
});

Deno.test("createHandler() rejects stream_options without stream", async () => {
  const res = await createHandler(new TinyModel())(
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
