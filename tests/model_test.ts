// The demo model: tokenizer, chat template, forward-pass properties, and the
// returned attention checked against an independent naive implementation.
import assert from "node:assert/strict";
import { loadDemoModel } from "../server/model/mod.ts";
import { Tokenizer } from "../server/model/tokenizer.ts";
import { computePositions, SEGMENT } from "../server/model/segments.ts";
import { loadWeights, type SparseMatrix } from "../server/model/weights.ts";
import { SPECIAL } from "../server/model/vocab.ts";
import type { ChatMessage, ModelInput } from "../server/model/types.ts";
import { seededRandom } from "../lib/random.ts";

const model = loadDemoModel();
const tokenizer = new Tokenizer(loadWeights().vocab);
const H = model.numHeads;

function user(text: string): ChatMessage {
  return { role: "user", parts: [{ type: "text", text }] };
}

Deno.test("Tokenizer round-trips any text, including non-ASCII and control characters", () => {
  const random = seededRandom(1);
  const alphabet = "abcXYZ019 :,.'\"\n\t-_[]{}éß✓😀日本";
  const samples = [
    "",
    " ",
    "alpha: 1729\n",
    "naïve café ✓",
    "tab\tand\r\nCRLF",
    "<bos> is plain text",
  ];
  for (let i = 0; i < 200; i++) {
    let s = "";
    const n = Math.floor(random() * 40);
    for (let j = 0; j < n; j++) {
      s += [...alphabet][Math.floor(random() * [...alphabet].length)];
    }
    samples.push(s);
  }
  for (const s of samples) {
    assert.equal(tokenizer.decode(tokenizer.encode(s)), s, JSON.stringify(s));
  }
});

Deno.test("Tokenizer splits digits, keeps known words whole and falls back to pieces", () => {
  const texts = (s: string) =>
    tokenizer.encode(s).map((id) => tokenizer.tokenText(id));
  assert.deepEqual(texts("key: 1729"), ["key", ":", " ", "1", "7", "2", "9"]);
  // A frequent word is one token in all four spellings BPE vocabularies carry.
  for (const form of ["alpha", " alpha", "Alpha", " Alpha", " James"]) {
    assert.deepEqual(texts(form), [form]);
  }
  assert.deepEqual(texts("Request: the codename"), [
    "Request",
    ":",
    " the",
    " code",
    "name",
  ]);
  // Rare words and invented keys fall back to syllables, letters and bytes.
  assert.deepEqual(texts(" Zorbakquin"), [" Z", "or", "ba", "k", "qu", "in"]);
  assert.deepEqual(texts("omicron"), ["o", "mi", "c", "ro", "n"]);
  assert.deepEqual(texts(" Codename"), [" Code", "name"]);
  assert.deepEqual(texts("Zyx"), ["Zy", "x"]);
  assert.equal(
    texts("<bos>").includes("<bos>"),
    false,
    "special spellings in text stay text",
  );
  assert.equal(tokenizer.tokenText(tokenizer.encode("é")[0]), "<0xC3>");
  assert.throws(
    () => tokenizer.tokenText(99999),
    /Cannot look up token 99999: ids run from 0 to/,
  );
});

Deno.test("renderChat() frames turns as Gemma does and folds system messages into the first user turn", () => {
  const input = model.renderChat([
    { role: "system", parts: [{ type: "text", text: "Be brief." }] },
    user("Hi"),
    { role: "assistant", parts: [{ type: "text", text: "Hello" }] },
    user("Bye"),
  ]);
  assert.equal(
    tokenizer.decode([...input.ids]),
    "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n" +
      "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n",
  );
  assert.deepEqual(input.visionRanges, []);
  assert.throws(
    () => model.renderChat([{ role: "tool" as "user", parts: [] }]),
    /Cannot render the chat: message 0 has role tool; use system, user or assistant/,
  );
});

Deno.test("computePositions() keeps the turn frame off the content clock", () => {
  const input = model.renderChat([user("hi there")]);
  const { segment, clock } = computePositions(input.ids);
  const texts = [...input.ids].map((id) => tokenizer.tokenText(id));
  const last = input.ids.length - 1;
  assert.equal(segment[0], SEGMENT.bos);
  assert.equal(texts[last], "\n");
  assert.equal(segment[last], SEGMENT.frame);
  // The model-turn header repeats the clock of the user's last token.
  assert.equal(clock[last], clock[texts.lastIndexOf(" there")]);
  assert.equal(clock[last], 2);
});

function generateAll(input: ModelInput, maxTokens = 12) {
  return model.generate(input, {
    maxTokens,
    temperature: 0,
    captureLayers: [0, 1],
  });
}

Deno.test("generate() returns causal attention whose rows sum to one, the same on every run", () => {
  const input = model.renderChat([user("red: 5\nblue: 7\nred:")]);
  const a = generateAll(input), b = generateAll(input);
  const T = input.ids.length + a.tokens.length - 1;
  for (const layer of [0, 1]) {
    const scores = a.attention.get(layer)!;
    assert.equal(scores.length, T * H * T);
    assert.deepEqual(
      scores,
      b.attention.get(layer),
      "identical input, identical attention",
    );
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        let sum = 0;
        for (let j = 0; j < T; j++) {
          const w = scores[(t * H + h) * T + j];
          if (j > t) {
            assert.equal(
              w,
              0,
              `layer ${layer} row ${t} head ${h} sees the future key ${j}`,
            );
          }
          sum += w;
        }
        assert.ok(
          Math.abs(sum - 1) < 1e-5,
          `layer ${layer} row ${t} head ${h} sums to ${sum}`,
        );
      }
    }
  }
  assert.deepEqual(a.tokens, b.tokens);
});

// A deliberately plain implementation: dense vectors, every head dimension,
// no caches, no skipped terms. It shares only the weights and the position
// inputs with the real forward pass.
function naiveAttention(input: ModelInput, ids: number[]): Float64Array[] {
  const w = loadWeights();
  const {
    dModel,
    numHeads,
    headDim,
    positionSlot,
    linePositionSlot,
    positionFrequencies,
  } = w.config;
  const times = (x: Float64Array, m: SparseMatrix) => {
    const out = new Float64Array(m.cols);
    for (let r = 0; r < m.rows; r++) {
      for (let e = m.rowStart[r]; e < m.rowStart[r + 1]; e++) {
        out[m.col[e]] += x[r] * m.value[e];
      }
    }
    return out;
  };
  const { segment, clock, line } = computePositions(ids);
  const T = ids.length;
  let xs = ids.map((id, t) => {
    const x = new Float64Array(dModel);
    const oneHot = (m: SparseMatrix, row: number, scale = 1) => {
      for (let e = m.rowStart[row]; e < m.rowStart[row + 1]; e++) {
        x[m.col[e]] += scale * m.value[e];
      }
    };
    oneHot(w.embed, id);
    oneHot(w.segment, segment[t]);
    positionFrequencies.forEach((f, p) => {
      x[positionSlot + 2 * p] += Math.cos(f * clock[t]);
      x[positionSlot + 2 * p + 1] += Math.sin(f * clock[t]);
      x[linePositionSlot + 2 * p] += Math.cos(f * line[t]);
      x[linePositionSlot + 2 * p + 1] += Math.sin(f * line[t]);
    });
    const patch = input.patches.get(t);
    patch?.forEach((value, c) => oneHot(w.patch, c, value));
    return x;
  });
  const layers: Float64Array[] = [];
  for (const layer of w.layers) {
    const q = xs.map((x) => times(x, layer.wq));
    const k = xs.map((x) => times(x, layer.wk));
    const v = xs.map((x) => times(x, layer.wv));
    const attention = new Float64Array(T * numHeads * T);
    const next = xs.map((x) => Float64Array.from(x));
    for (let t = 0; t < T; t++) {
      const heads = new Float64Array(numHeads * headDim);
      for (let h = 0; h < numHeads; h++) {
        const s = new Float64Array(t + 1);
        for (let j = 0; j <= t; j++) {
          for (let a = 0; a < headDim; a++) {
            s[j] += q[t][h * headDim + a] * k[j][h * headDim + a];
          }
          s[j] /= Math.sqrt(headDim);
        }
        const max = Math.max(...s);
        const e = s.map((z) => Math.exp(z - max));
        const sum = e.reduce((x, y) => x + y, 0);
        for (let j = 0; j <= t; j++) {
          const p = e[j] / sum;
          attention[(t * numHeads + h) * T + j] = p;
          for (let a = 0; a < headDim; a++) {
            heads[h * headDim + a] += p * v[j][h * headDim + a];
          }
        }
      }
      const o = times(heads, layer.wo);
      for (let i = 0; i < dModel; i++) next[t][i] += o[i];
    }
    layers.push(attention);
    xs = next;
  }
  return layers;
}

Deno.test("generate() returns the attention an independent naive forward pass computes", () => {
  const input = model.renderChat([user("ab: 12\ncd: 34\nab:")]);
  const result = generateAll(input);
  assert.equal(model.decode(result.tokens), "12");
  const ids = [...input.ids, ...result.tokens.slice(0, -1)];
  const naive = naiveAttention(input, ids);
  const T = ids.length;
  for (const layer of [0, 1]) {
    const got = result.attention.get(layer)!;
    let worst = 0;
    for (let i = 0; i < got.length; i++) {
      worst = Math.max(worst, Math.abs(got[i] - naive[layer][i]));
    }
    assert.ok(
      worst < 1e-4,
      `layer ${layer}: largest difference ${worst} over ${T}x${H}x${T}`,
    );
  }
});

Deno.test("generate() samples reproducibly with a seed and reports logprobs", () => {
  const input = model.renderChat([user("zeta: 61\neta: 77\neta:")]);
  const options = { maxTokens: 6, temperature: 1.5, seed: 42, topLogprobs: 3 };
  const a = model.generate(input, options), b = model.generate(input, options);
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.logprobs, b.logprobs);
  for (const { token, top } of a.logprobs) {
    assert.equal(top.length, 3);
    assert.ok(
      top[0].logprob >= top[1].logprob && top[1].logprob >= top[2].logprob,
    );
    assert.ok(token.logprob <= 0);
  }
  assert.equal(a.promptLogprobs.length, input.ids.length);
  assert.equal(a.promptLogprobs[0], null);
  assert.ok(
    a.promptLogprobs.slice(1).every((p, i) =>
      p!.id === input.ids[i + 1] && p!.logprob <= 0
    ),
  );
  // Greedy picks the top alternative every time.
  const greedy = model.generate(input, {
    maxTokens: 6,
    temperature: 0,
    topLogprobs: 1,
  });
  for (const { token, top } of greedy.logprobs) {
    assert.equal(token.id, top[0].id);
  }
  assert.equal(model.decode(greedy.tokens), "77");
});

Deno.test("generate() stops on maxTokens, on shouldStop, and returns T = prompt + generated - 1 rows", () => {
  const input = model.renderChat([user("k: 123456\nk:")]);
  const one = model.generate(input, {
    maxTokens: 1,
    temperature: 0,
    captureLayers: [1],
  });
  assert.equal(one.finishReason, "length");
  assert.equal(
    one.attention.get(1)!.length,
    input.ids.length * H * input.ids.length,
  );
  const stopped = model.generate(input, {
    maxTokens: 10,
    temperature: 0,
    shouldStop: (g) => g.length === 3,
  });
  assert.equal(stopped.finishReason, "stop");
  assert.equal(stopped.tokens.length, 3);
  const done = model.generate(input, { maxTokens: 20, temperature: 0 });
  assert.equal(done.finishReason, "stop");
  assert.equal(done.tokens.at(-1), SPECIAL.endOfTurn);
});

Deno.test("generate() rejects bad options with messages that say what to do", () => {
  const input = model.renderChat([user("x")]);
  assert.throws(
    () => model.generate(input, { maxTokens: 0, temperature: 0 }),
    /maxTokens is 0; pass a whole number of at least 1/,
  );
  assert.throws(
    () => model.generate(input, { maxTokens: 1, temperature: -1 }),
    /temperature is -1/,
  );
  assert.throws(
    () =>
      model.generate(input, {
        maxTokens: 1,
        temperature: 0,
        captureLayers: [2],
      }),
    /Cannot capture layer 2: the model has layers 0..1/,
  );
  assert.throws(
    () =>
      model.generate(
        { ...input, ids: new Int32Array(model.maxPositions + 1) },
        { maxTokens: 1, temperature: 0 },
      ),
    /the prompt has 8193 tokens but the model accepts at most 8192; shorten the prompt/,
  );
});
