// The committed weights are exactly what scripts/build_weights.ts builds, and
// the derivation's guarantees hold in the file.
import assert from "node:assert/strict";
import { buildWeightsText } from "../scripts/build_weights.ts";
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
  assert.ok(
    committed.length < 400_000,
    `weights file is ${committed.length} bytes`,
  );
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
