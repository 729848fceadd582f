// The demo model's images: PNG decoding into patches, vision tokens and
// ranges, attention across modalities, and the dominant-colour answer.
import assert from "node:assert/strict";
import { encode } from "fast-png";
import { loadDemoModel } from "../server/model/mod.ts";
import { imagePatches, PATCH_GRID } from "../server/model/image.ts";
import { SPECIAL } from "../server/model/vocab.ts";
import type { ChatMessage } from "../server/model/types.ts";

const model = loadDemoModel();
const H = model.numHeads;

function solid(
  width: number,
  height: number,
  rgb: [number, number, number],
): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) data.set(rgb, 3 * i);
  return encode({ width, height, data, channels: 3 });
}

function ask(
  png: Uint8Array,
  text = "Which colour dominates this image?",
): ChatMessage[] {
  return [{
    role: "user",
    parts: [{ type: "text", text }, { type: "image", png }],
  }];
}

Deno.test("imagePatches() averages an image into at most 8x8 patches", () => {
  // Left half red, right half blue, 16x4.
  const data = new Uint8Array(16 * 4 * 3);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 16; x++) {
      data.set(x < 8 ? [255, 0, 0] : [0, 0, 255], 3 * (y * 16 + x));
    }
  }
  const { rows, cols, features } = imagePatches(
    encode({ width: 16, height: 4, data, channels: 3 }),
  );
  assert.deepEqual([rows, cols], [4, PATCH_GRID]);
  assert.deepEqual([...features[0]], [1, 0, 0]);
  assert.deepEqual([...features[PATCH_GRID - 1]], [0, 0, 1]);
});

Deno.test("imagePatches() reads grey, alpha, palette and 16-bit PNGs", () => {
  const grey = encode({
    width: 2,
    height: 2,
    data: new Uint8Array([0, 255, 255, 0]),
    channels: 1,
  });
  assert.deepEqual([...imagePatches(grey).features[1]], [1, 1, 1]);
  // Fully transparent pixels are seen over white.
  const clear = encode({
    width: 1,
    height: 1,
    data: new Uint8Array([0, 0, 0, 0]),
    channels: 4,
  });
  assert.deepEqual([...imagePatches(clear).features[0]], [1, 1, 1]);
  const deep = encode({
    width: 1,
    height: 1,
    data: new Uint16Array([65535, 0, 0]),
    channels: 3,
    depth: 16,
  });
  assert.deepEqual([...imagePatches(deep).features[0]], [1, 0, 0]);
  const palette = encode({
    width: 2,
    height: 1,
    data: new Uint8Array([1, 0]),
    channels: 1,
    palette: [[0, 0, 255], [0, 255, 0]],
  });
  assert.deepEqual([...imagePatches(palette).features[0]], [0, 1, 0]);
});

Deno.test("imagePatches() explains non-PNG and damaged input", () => {
  assert.throws(
    () => imagePatches(new TextEncoder().encode("GIF89a....")),
    /Cannot read the image: it is not a PNG \(it starts with 47 49 46 38/,
  );
  const png = solid(4, 4, [1, 2, 3]);
  assert.throws(
    () => imagePatches(png.subarray(0, 40)),
    /Cannot decode the PNG: .*; re-save the image as a standard PNG/,
  );
});

Deno.test("renderChat() turns an image into one vision token per patch with its range", () => {
  const input = model.renderChat(ask(solid(32, 16, [200, 10, 10])));
  assert.equal(input.visionRanges.length, 1);
  const { start, end } = input.visionRanges[0];
  assert.equal(end - start, 8 * 8);
  assert.equal(input.ids[start - 1], SPECIAL.startOfImage);
  assert.equal(input.ids[end], SPECIAL.endOfImage);
  for (let i = start; i < end; i++) {
    assert.equal(input.ids[i], SPECIAL.imagePatch);
    assert.ok(input.patches.get(i)![0] > 0.75);
  }
  assert.equal(input.patches.size, 64);
});

Deno.test("generate() reads the image: text queries attend to patches, patches attend to text, and it names the colour", () => {
  for (
    const [rgb, colour] of [[[220, 30, 30], "red"], [[30, 200, 40], "green"], [[
      20,
      20,
      230,
    ], "blue"]] as const
  ) {
    const input = model.renderChat(ask(solid(16, 16, [...rgb])));
    const result = model.generate(input, {
      maxTokens: 5,
      temperature: 0,
      captureLayers: [0, 1],
    });
    assert.equal(model.decode(result.tokens), colour);
    const T = input.ids.length + result.tokens.length - 1;
    const { start, end } = input.visionRanges[0];
    // Vision -> language share over all heads of each layer.
    for (const layer of [0, 1]) {
      const scores = result.attention.get(layer)!;
      let total = 0, toText = 0;
      for (let q = start; q < end; q++) {
        for (let h = 0; h < H; h++) {
          for (let j = 0; j <= q; j++) {
            const w = scores[(q * H + h) * T + j];
            total += w;
            if (j < start) toText += w;
          }
        }
      }
      assert.ok(
        toText / total > 0.05 && toText / total < 1,
        `layer ${layer}: vision->text share ${toText / total}`,
      );
    }
    // The image head (layer 1, head 1): the last prompt row spreads over the patches.
    const q = input.ids.length - 1;
    let onPatches = 0;
    for (let j = start; j < end; j++) {
      onPatches += result.attention.get(1)![(q * H + 1) * T + j];
    }
    assert.ok(onPatches > 0.99, `image head puts ${onPatches} on the patches`);
  }
});

Deno.test("generate() still answers a record lookup with an image in the prompt", () => {
  const input = model.renderChat([{
    role: "user",
    parts: [{ type: "image", png: solid(8, 8, [255, 0, 0]) }, {
      type: "text",
      text: "ab: 12\ncd: 34\nab:",
    }],
  }]);
  assert.equal(
    model.decode(
      model.generate(input, { maxTokens: 6, temperature: 0 }).tokens,
    ),
    "12",
  );
});
