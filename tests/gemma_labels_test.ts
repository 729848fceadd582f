import assert from "node:assert/strict";
import {
  gemmaChatText,
  labelGemmaPrompt,
  withGemmaLabels,
} from "../lib/client/gemma_labels.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { collectWarningsAsync } from "../lib/warn.ts";

Deno.test("gemmaChatText() applies Gemma 3's turn format to a conversation", () => {
  assert.equal(
    gemmaChatText([
      { role: "system", content: "Answer in one word." },
      { role: "user", content: "Capital of France?\n" },
      { role: "assistant", content: "Paris" },
      { role: "user", content: [{ type: "text", text: " And Italy? " }] },
    ]),
    "<bos><start_of_turn>user\nAnswer in one word.\n\nCapital of France?<end_of_turn>\n" +
      "<start_of_turn>model\nParis<end_of_turn>\n" +
      "<start_of_turn>user\nAnd Italy?<end_of_turn>\n<start_of_turn>model\n",
  );
  assert.equal(
    gemmaChatText("x", { addGenerationPrompt: false }),
    "<bos><start_of_turn>user\nx<end_of_turn>\n",
  );
  assert.equal(
    gemmaChatText([{
      role: "user",
      content: [{ type: "image_url", image_url: { url: "data:" } }],
    }], {
      imageTokens: 2,
    }),
    "<bos><start_of_turn>user\n\n\n<start_of_image><image_soft_token><image_soft_token><end_of_image>\n\n<end_of_turn>\n<start_of_turn>model\n",
  );
  assert.throws(
    () => gemmaChatText([{ role: "assistant", content: "hi" }]),
    /Cannot render the Gemma prompt: message 0 is "assistant" but Gemma's template needs roles alternating/,
  );
});

Deno.test("labelGemmaPrompt() tokenizes with Gemma 3's vocabulary, one label per position", async () => {
  const { ids, labels } = await labelGemmaPrompt("The cat sat.\nThe cat sat.");
  assert.equal(ids.length, labels.length);
  assert.equal(ids[0], 2); // <bos>
  assert.deepEqual(labels.slice(0, 4), [
    "<bos>",
    "<start_of_turn>",
    "user",
    "↵",
  ]);
  assert.deepEqual(labels.slice(-3), ["<start_of_turn>", "model", "↵"]);
  // The repeated sentence tokenizes identically both times.
  const text = labels.slice(4, -5);
  const nl = text.indexOf("↵");
  assert.deepEqual(text.slice(0, nl), text.slice(nl + 1));
  assert.deepEqual(text.slice(0, nl), ["The", " cat", " sat", "."]);
  const image = await labelGemmaPrompt([
    {
      role: "user",
      content: [{ type: "image_url" }, { type: "text", text: "What is this?" }],
    },
  ]);
  assert.equal(
    image.labels.filter((l) => l === "<image_soft_token>").length,
    256,
  );
});

Deno.test("labelGemmaPrompt() warns when the count differs from the server's prompt_len", async () => {
  const { result, warnings } = await collectWarningsAsync(() =>
    labelGemmaPrompt("Hello world", { promptLen: 12 })
  );
  assert.equal(result.ids.length, 11);
  assert.deepEqual(warnings, [
    "labelGemmaPrompt: the local Gemma 3 tokenizer made 11 prompt tokens but the server reported prompt_len 12; the labels may be misaligned (check the messages match the request, and the server's chat template)",
  ]);
  const quiet = await collectWarningsAsync(() =>
    labelGemmaPrompt("Hello world", { promptLen: 11 })
  );
  assert.deepEqual(quiet.warnings, []);
});

Deno.test("withGemmaLabels() relabels prompt positions and keeps generated ones", async () => {
  const t = 13; // 11 prompt + 3 generated - 1
  const layer = new AttentionLayer({
    layer: 5,
    model: "google/gemma-3-4b-it",
    scores: new AttentionScores(new Float32Array(t * t), [t, 1, t]),
    tokenMeta: TokenMeta.from({ prompt_len: 11, total_len: t }),
  });
  const labels = Array.from({ length: 14 }, (_, i) => String(i));
  labels.splice(11, 3, "Hi", " there", "<end_of_turn>");
  const { result, warnings } = await collectWarningsAsync(() =>
    withGemmaLabels(
      { attention: { 5: layer }, labels, text: "Hi there" },
      "Hello world",
    )
  );
  assert.deepEqual(warnings, []);
  assert.equal(result.text, "Hi there");
  assert.deepEqual(result.labels.slice(4, 6), ["Hello", " world"]);
  assert.deepEqual(result.labels.slice(11), ["Hi", " there", "<end_of_turn>"]);
  assert.equal(result.promptIds.length, 11);
  const wrong = await collectWarningsAsync(() =>
    withGemmaLabels({ attention: { 5: layer }, labels }, "Hello there world")
  );
  assert.match(
    wrong.warnings[0],
    /made 12 prompt tokens but the server reported prompt_len 11/,
  );
});

Deno.test("the Gemma 3 tokenizer loads offline once Deno's npm cache is warm", async () => {
  await labelGemmaPrompt("warm"); // ensures the cache holds the package
  const script = `
import { labelGemmaPrompt } from ${
    JSON.stringify(
      new URL("../lib/client/gemma_labels.ts", import.meta.url).href,
    )
  };
const { labels } = await labelGemmaPrompt("offline check");
console.log(JSON.stringify(labels.slice(4, -5)));
`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      "--cached-only",
      "--config",
      new URL("../deno.json", import.meta.url).pathname,
      script,
    ],
    stdout: "piped",
    stderr: "piped",
    env: {
      HTTPS_PROXY: "http://127.0.0.1:9",
      HTTP_PROXY: "http://127.0.0.1:9",
      NO_COLOR: "1",
    },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), [
    "offline",
    " check",
  ]);
});
