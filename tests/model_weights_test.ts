// The committed weights are exactly what scripts/build_weights.ts builds, and
// the derivation's guarantees hold in the file.
import assert from "node:assert/strict";
import { buildWeightsText } from "../scripts/build_weights.ts";
import { buildWordsText, WORD_COUNT } from "../scripts/build_words.ts";
import { WORDS } from "../server/model/vocab.ts";
import { loadWeights } from "../server/model/weights.ts";
import { CODE_BLOCK, codeOf, POSITION_PAIRS } from "../server/model/layout.ts";

Deno.test("build_weights.ts rebuilds the committed weights file byte for byte", async () => {
  const committed = await Deno.readTextFile(
    new URL("../server/model/weights.json", import.meta.url),
  );
  assert.equal(
    buildWeightsText(),
    committed,
    "run: deno run -A scripts/build_weights.ts",
  );
  // About 6,000 words in four spellings: five nonzero embedding entries and
  // three unembedding entries per token, and the token strings.
  assert.ok(
    committed.length < 4_000_000,
    `weights file is ${committed.length} bytes`,
  );
});

Deno.test("build_words.ts rebuilds the committed word list from the SUBTLEX-US package", async () => {
  const committed = await Deno.readTextFile(
    new URL("../server/model/words.json", import.meta.url),
  );
  assert.equal(buildWordsText(), committed, "run: deno task build-weights");
  assert.equal(WORDS.length, WORD_COUNT);
  assert.deepEqual(WORDS.slice(0, 3), ["you", "i", "the"]);
  assert.ok(WORDS.every((w) => /^[a-z]+$/.test(w)));
});

Deno.test("Token identity codes of different tokens share at most one of three blocks", () => {
  const { vocabSize } = loadWeights().config;
  const seen = new Map<string, number>();
  for (let id = 0; id < vocabSize; id++) {
    const code = codeOf(id);
    code.forEach((c, b) =>
      assert.ok(c >= b * CODE_BLOCK && c < (b + 1) * CODE_BLOCK)
    );
    for (const pair of [[0, 1], [0, 2], [1, 2]]) {
      const key = `${pair}:${code[pair[0]]},${code[pair[1]]}`;
      assert.equal(
        seen.has(key),
        false,
        `tokens ${seen.get(key)} and ${id} share two blocks`,
      );
      seen.set(key, id);
    }
  }
});

Deno.test("The position code is sharp: every other distance scores well below a match", () => {
  const { positionFrequencies, maxPositions } = loadWeights().config;
  let worst = -Infinity;
  for (let d = 1; d <= maxPositions; d++) {
    let f = 0;
    for (const w of positionFrequencies) f += Math.cos(w * d);
    worst = Math.max(worst, f);
  }
  // The weights scale this gap to 120 logits (POSITION_MARGIN in scripts/build_weights.ts).
  assert.ok(
    POSITION_PAIRS - worst > 1.5,
    `off-peak ${worst} of ${POSITION_PAIRS}`,
  );
});
