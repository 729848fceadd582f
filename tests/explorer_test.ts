/**
 * The explorer's Deno side: the committed bundle is fresh, bad input is
 * refused clearly, odd shapes adapt, outputs are self-contained, and the
 * embedded values are the capture's own.
 */

import assert from "node:assert/strict";
import { inflateRawSync } from "node:zlib";
import { explore, Explorer } from "../mod.ts";
import { buildBundle, bundleModule } from "../lib/explorer/build.ts";
import { EXPLORER_BUNDLE } from "../lib/explorer/_bundle.ts";
import type { ExplorerMeta } from "../lib/explorer/_protocol.ts";
import { QUANT } from "../lib/explorer/_protocol.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { JUPYTER_DISPLAY } from "../lib/jupyter.ts";
import { explorerCapture } from "./_explorer_fixtures.ts";
import { main } from "../scripts/explore.ts";
import { saveCapture } from "../lib/sources/files/capture_file.ts";
import { toNpy } from "../lib/sources/files/npy.ts";

/** The header and blob a page embeds. */
function embedded(html: string): { meta: ExplorerMeta; blob: Uint8Array } {
  const meta = JSON.parse(
    html.match(
      /<script type="application\/json" class="ax-meta">(.*?)<\/script>/s,
    )![1],
  );
  const blob = Uint8Array.fromBase64(
    html.match(/class="ax-blob">(.*?)<\/script>/s)![1],
  );
  return { meta, blob };
}

Deno.test("buildBundle() reproduces the committed lib/explorer/_bundle.ts", async () => {
  const fresh = await buildBundle();
  assert.equal(
    fresh,
    EXPLORER_BUNDLE,
    "the bundle is stale: run `deno task build-explorer` and commit lib/explorer/_bundle.ts",
  );
  const committed = await Deno.readTextFile(
    new URL("../lib/explorer/_bundle.ts", import.meta.url),
  );
  assert.equal(committed, bundleModule(fresh));
});

Deno.test("explore() refuses an empty capture and mismatched layers with a clear error", () => {
  assert.throws(
    () => explore({}),
    /^TypeError: Cannot explore attention: the capture holds no layers/,
  );
  assert.throws(
    () => explore({ attention: null }),
    /Cannot explore attention: the capture holds no layers/,
  );
  const layer = (i: number, t: number) =>
    new AttentionLayer({
      layer: i,
      model: null,
      scores: new AttentionScores(new Float32Array(t * t), [t, 1, t]),
      tokenMeta: TokenMeta.from({}),
    });
  assert.throws(
    () => explore({ 0: layer(0, 2), 1: layer(1, 3) }),
    /Cannot explore attention: layer 1 has shape \[3,1,3\] but layer 0 has \[2, 1, 2\]; explore the layers one at a time/,
  );
  assert.throws(
    () => explore({ 0: layer(0, 2) }, { layer: 5 }),
    /^RangeError: Cannot explore layer 5: the capture holds layers 0; pass one of them as layer/,
  );
});

Deno.test("explore() embeds every head at full resolution within 0.001 of the capture", async () => {
  const capture = explorerCapture(30, 3, 2);
  const html = await explore(capture).toHTML();
  const { meta, blob } = embedded(html);
  assert.equal(meta.reduced, "");
  const layers = Object.values(capture.attention!) as AttentionLayer[];
  for (const [li, layer] of layers.entries()) {
    for (const block of meta.layers[li].heads) {
      const seg = block.full!;
      const planes = inflateRawSync(blob.subarray(seg.at, seg.at + seg.len));
      const n = planes.length / 2;
      const q = Uint16Array.from(
        { length: n },
        (_, i) => (planes[i] << 8) | planes[n + i],
      );
      for (let r = 0; r < 30; r++) {
        for (let k = 0; k < 30; k++) {
          const v = layer.scores.get(r, block.head, k);
          assert.ok(Math.abs(q[r * 30 + k] / QUANT - v) < 0.001);
        }
      }
    }
  }
  assert.deepEqual(meta.labels.slice(0, 4), ["The", " cat", " sat", "\n"]);
  assert.equal(meta.initial.query, 25, "the last prompt token");
});

Deno.test("explore() output is self-contained: no external URL, no global name", async () => {
  const html = await explore(explorerCapture(20, 2, 1)).toHTML();
  assert.doesNotMatch(html, /\b(src|href)="(?!data:)/);
  assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  assert.doesNotMatch(html, /\bimport\s*\(|<script[^>]*\bsrc=/);
  // The bundle is one IIFE: it declares nothing at the top level.
  assert.match(EXPLORER_BUNDLE, /^\(\(\)=>\{[\s\S]*\}\)\(\);?$/);
  assert.doesNotMatch(
    html,
    /<\/script>[\s\S]*<\/script>[\s\S]*<\/script>[\s\S]*<\/script>/,
  );
});

Deno.test("explore() shows positions without labels, adapts to one head and to a non-square capture", async () => {
  const bare = explorerCapture(12, 1, 1, { labels: false });
  const { meta } = embedded(await explore(bare).toHTML());
  assert.equal(meta.hasLabels, false);
  assert.deepEqual(meta.labels.slice(0, 3), ["0", "1", "2"]);
  assert.equal(meta.layers[0].heads.length, 1);
  // 3 query rows over 8 keys: the last three positions.
  const scores = new AttentionScores(new Float32Array(3 * 2 * 8).fill(0.125), [
    3,
    2,
    8,
  ]);
  const layer = new AttentionLayer({
    layer: 4,
    model: null,
    scores,
    tokenMeta: TokenMeta.from({ prompt_len: 8, total_len: 8 }),
  });
  const view = explore(layer);
  const wide = embedded(await view.toHTML()).meta;
  assert.deepEqual(wide.queryPositions, [5, 6, 7]);
  assert.equal(wide.tk, 8);
  assert.equal(String(view), "Explorer: 1 layer x 2 heads, Tq=3 Tk=8");
});

Deno.test("Explorer displays itself in Jupyter and saves .html, .svg and .png", async () => {
  const view = explore(explorerCapture(16, 2, 1));
  assert.ok(view instanceof Explorer);
  const bundle = await view[JUPYTER_DISPLAY]();
  assert.match(
    String(bundle["text/html"]),
    /^<div class="attnscope-explorer" data-layer="0" data-heads="0,1" data-mode="query" data-theme="auto" data-window="" data-causal="1">/,
  );
  assert.equal(bundle["text/plain"], "Explorer: 1 layer x 2 heads, T=16");
  const dir = await Deno.makeTempDir();
  try {
    await view.save(`${dir}/x.html`);
    await view.save(`${dir}/x.svg`);
    await view.save(`${dir}/x.png`);
    assert.match(
      await Deno.readTextFile(`${dir}/x.html`),
      /^<!DOCTYPE html>[\s\S]*attnscope-explorer/,
    );
    assert.match(await Deno.readTextFile(`${dir}/x.svg`), /^<svg xmlns=/);
    const png = await Deno.readFile(`${dir}/x.png`);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]);
    await assert.rejects(
      view.save(`${dir}/x.gif`),
      /Cannot save the explorer to .*x\.gif: unknown extension/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts/explore.ts main() turns a capture file into a page and refuses bad arguments", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/c.attn`;
    await saveCapture(file, explorerCapture(16, 2, 2));
    assert.equal(await main([file, "-o", `${dir}/page.html`]), 0);
    const page = await Deno.readTextFile(`${dir}/page.html`);
    assert.match(page, /class="attnscope-explorer" data-layer="3"/);
    assert.equal(await main([file]), 0);
    assert.ok((await Deno.stat(`${dir}/c.html`)).isFile);
    assert.equal(await main([]), 2);
    assert.equal(await main([`${dir}/missing.attn`]), 1);
    assert.equal(await main([file, "--top-k", "0"]), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts/explore.ts main() opens attention saved as .npy in another layout", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const capture = explorerCapture(12, 2, 1);
    const layer = Object.values(capture.attention!)[0];
    // [Tq, H, Tk] as vLLM's wire has it: "query head key".
    await Deno.writeFile(`${dir}/a.npy`, toNpy(layer.scores));
    assert.equal(
      await main([`${dir}/a.npy`, "--layout", "query head key"]),
      0,
    );
    const page = await Deno.readTextFile(`${dir}/a.html`);
    // Two heads of twelve tokens, read with the layout given.
    assert.match(page, /class="attnscope-explorer"[^>]*data-heads="0,1"/);
    assert.match(page, /"tq":12,"tk":12,/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
