// The demo model solves the needle and codename tasks for random prompts, and
// its attention shows how: a previous-token head, an induction head that lands
// on the record holding the answer, and heads resting on <bos>.
import assert from "node:assert/strict";
import { loadDemoModel } from "../server/model/mod.ts";
import { CODENAME_STUDY, NEEDLE_STUDY } from "../lib/client/studies.ts";
import { Tokenizer } from "../server/model/tokenizer.ts";
import { computePositions, SEGMENT } from "../server/model/segments.ts";
import { loadWeights } from "../server/model/weights.ts";
import {
  codenamePrompt,
  needlePrompt,
  type RecallPrompt,
} from "./model_prompts.ts";
import { seededRandom } from "../lib/random.ts";

const model = loadDemoModel();
const tokenizer = new Tokenizer(loadWeights().vocab);
const H = model.numHeads;
const LAST = model.numLayers - 1;
/** `<bos><start_of_turn>user\n` comes before the user's text. */
const CONTENT_START = 4;

/** Token range [start, end) of each line of the prompt (lines tokenize independently). */
function lineRanges(prompt: RecallPrompt): { start: number; end: number }[] {
  let at = CONTENT_START;
  return prompt.lines.map((line, i) => {
    const start = at;
    at += tokenizer.encode(line).length + (i < prompt.lines.length - 1 ? 1 : 0);
    return { start, end: at };
  });
}

function run(prompt: RecallPrompt) {
  const input = model.renderChat([{
    role: "user",
    parts: [{ type: "text", text: prompt.text }],
  }]);
  const result = model.generate(input, {
    maxTokens: 48,
    temperature: 0,
    captureLayers: [0, LAST],
  });
  return { input, result, reply: model.decode(result.tokens) };
}

/** The largest share, over the last layer's heads, that the last prompt row puts on the answer's line. */
function bestRecordShare(
  prompt: RecallPrompt,
  run_: ReturnType<typeof run>,
): number {
  const { input, result } = run_;
  const T = input.ids.length + result.tokens.length - 1;
  const scores = result.attention.get(LAST)!;
  const { start, end } = lineRanges(prompt)[prompt.answerLine];
  const q = input.ids.length - 1;
  let best = 0;
  for (let h = 0; h < H; h++) {
    let share = 0;
    for (let j = start; j < end; j++) share += scores[(q * H + h) * T + j];
    best = Math.max(best, share);
  }
  return best;
}

Deno.test("lineRanges() finds the record's tokens (the helper the next tests rely on)", () => {
  const prompt = needlePrompt(seededRandom(3), 5);
  const { input } = run(prompt);
  const ranges = lineRanges(prompt);
  const { start, end } = ranges[prompt.answerLine];
  assert.equal(
    tokenizer.decode([...input.ids.slice(start, end)]),
    prompt.lines[prompt.answerLine] + "\n",
  );
});

for (
  const [form, make] of [["needle", needlePrompt], [
    "codename",
    codenamePrompt,
  ]] as const
) {
  Deno.test(`generate() answers random ${form} prompts of 2..40 records, its last layer attending to the answer's record`, () => {
    const random = seededRandom(form === "needle" ? 11 : 12);
    for (let i = 0; i < 30; i++) {
      const records = i === 0 ? 40 : 2 + Math.floor(random() * 39);
      const prompt = make(random, records);
      const outcome = run(prompt);
      const expected = form === "needle"
        ? prompt.expected
        : `'${prompt.expected}'`;
      assert.equal(
        outcome.reply,
        expected,
        `${form} #${i} with ${records} records:\n${prompt.text}`,
      );
      assert.equal(outcome.result.finishReason, "stop");
      const share = bestRecordShare(prompt, outcome);
      assert.ok(
        share >= 0.5,
        `${form} #${i}: best last-layer head puts ${share} on the answer's record`,
      );
    }
  });
}

Deno.test("generate() answers the guide's two study prompts", () => {
  const needle = run({
    text: NEEDLE_STUDY.prompt,
    expected: "1729",
    lines: NEEDLE_STUDY.prompt.split("\n"),
    answerLine: 0,
  });
  assert.equal(needle.reply, "1729");
  assert.ok(
    bestRecordShare({
      text: NEEDLE_STUDY.prompt,
      expected: "",
      lines: NEEDLE_STUDY.prompt.split("\n"),
      answerLine: 0,
    }, needle) >= 0.5,
  );
  const lines = CODENAME_STUDY.prompt.split("\n");
  const codename = run({
    text: CODENAME_STUDY.prompt,
    expected: "Phantom",
    lines,
    answerLine: 5,
  });
  assert.ok(codename.reply.toLowerCase().includes("phantom"), codename.reply);
  assert.equal(codename.reply, "'Phantom'");
  assert.ok(
    bestRecordShare({
      text: CODENAME_STUDY.prompt,
      expected: "",
      lines,
      answerLine: 5,
    }, codename) >= 0.5,
  );
});

Deno.test("Layer 0 head 1 is a previous-token head and the last layer has a first-token sink", () => {
  const prompt = needlePrompt(seededRandom(5), 12);
  const { input, result } = run(prompt);
  const ids = [...input.ids, ...result.tokens.slice(0, -1)];
  const T = ids.length;
  const { segment } = computePositions(ids);
  const l0 = result.attention.get(0)!, last = result.attention.get(LAST)!;
  let checked = 0;
  for (let t = CONTENT_START + 1; t < T; t++) {
    if (segment[t] !== SEGMENT.text || segment[t - 1] !== SEGMENT.text) {
      continue;
    }
    assert.ok(
      l0[(t * H + 1) * T + t - 1] > 0.99,
      `row ${t}: previous-token weight ${l0[(t * H + 1) * T + t - 1]}`,
    );
    checked++;
  }
  assert.ok(checked > 50);
  for (let t = 0; t < T; t++) {
    assert.ok(
      last[(t * H + H - 1) * T] > 0.99,
      `row ${t} of the resting head is off <bos>`,
    );
  }
  // The induction head rests on <bos> where the current token never came before.
  const fresh = CONTENT_START; // the first content token has nothing to match
  assert.ok(last[(fresh * H + 0) * T] > 0.99);
});
