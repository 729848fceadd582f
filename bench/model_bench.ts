// The demo model's speed: the needle study's request with every layer
// captured (the demo's main job), next to the same request without capture,
// the codename study, and a prompt of about 4000 tokens.
// Run: deno bench -A bench/model_bench.ts
import { loadDemoModel } from "../server/model/mod.ts";
import { CODENAME_STUDY, NEEDLE_STUDY } from "../lib/client/studies.ts";
import { needlePrompt } from "../tests/model_prompts.ts";
import { seededRandom } from "../lib/random.ts";

const model = loadDemoModel();
const allLayers = Array.from({ length: model.numLayers }, (_, l) => l);

const needle = NEEDLE_STUDY.prompt;
const codename = CODENAME_STUDY.prompt;

function chat(text: string) {
  return model.renderChat([{ role: "user", parts: [{ type: "text", text }] }]);
}

const needleInput = chat(needle);
const codenameInput = chat(codename);
const long = needlePrompt(seededRandom(99), 390);
const longInput = chat(long.text);

function check(reply: string, expected: string) {
  if (!reply.includes(expected)) {
    throw new Error(
      `Cannot benchmark: the model answered ${reply}, not ${expected}`,
    );
  }
}

Deno.bench({
  name: `needle study (${needleInput.ids.length} tokens), all layers captured`,
  group: "needle",
  baseline: true,
  fn() {
    const r = model.generate(needleInput, {
      maxTokens: 16,
      temperature: 0,
      captureLayers: allLayers,
    });
    check(model.decode(r.tokens), "1729");
  },
});

Deno.bench({
  name: "needle study, no capture",
  group: "needle",
  fn() {
    model.generate(needleInput, { maxTokens: 16, temperature: 0 });
  },
});

Deno.bench({
  name:
    `codename study (${codenameInput.ids.length} tokens), all layers captured`,
  group: "needle",
  fn() {
    const r = model.generate(codenameInput, {
      maxTokens: 16,
      temperature: 0,
      captureLayers: allLayers,
    });
    check(model.decode(r.tokens), "Phantom");
  },
});

Deno.bench({
  name: `long needle prompt (${longInput.ids.length} tokens), no capture`,
  group: "long",
  n: 2,
  warmup: 0,
  fn() {
    const r = model.generate(longInput, { maxTokens: 24, temperature: 0 });
    check(model.decode(r.tokens), long.expected);
  },
});
