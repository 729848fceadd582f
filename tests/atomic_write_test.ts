import assert from "node:assert/strict";
import { writeFileAtomic } from "../lib/atomic_write.ts";
import { loadCapture, saveCapture } from "../lib/sources/files/capture_file.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";
import { Figure } from "../lib/charts/_figure.ts";

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const names = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).sort();

Deno.test("writeFileAtomic() replaces a file whole, from a path or a file URL, leaving nothing beside it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/scores.bin`;
    await writeFileAtomic(path, new Uint8Array(1 << 20).fill(7));
    await writeFileAtomic(new URL(`file://${path}`), new Uint8Array([1, 2]));
    assert.deepEqual([...await Deno.readFile(path)], [1, 2]);
    assert.deepEqual(names(dir), ["scores.bin"]);
  });
});

Deno.test("writeFileAtomic() that cannot replace its target leaves the target and no partial file", async () => {
  await withDir(async (dir) => {
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/taken/keep.txt`, "kept");
    await assert.rejects(
      writeFileAtomic(`${dir}/taken`, "new"),
      /Cannot replace .*taken: .*the path is not a folder/,
    );
    assert.deepEqual(names(dir), ["taken"]);
    assert.equal(await Deno.readTextFile(`${dir}/taken/keep.txt`), "kept");
    await assert.rejects(
      writeFileAtomic(`${dir}/missing/figure.svg`, "<svg/>"),
      (error: Error) =>
        error instanceof Deno.errors.NotFound &&
        /Cannot write .*missing\/figure\.svg: .*check that the folder exists/
          .test(error.message),
    );
    assert.deepEqual(names(dir), ["taken"]);
  });
});

Deno.test("saveCapture() that fails keeps the capture saved before; Figure.save() writes whole files", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/run.attn`;
    const layer = new AttentionLayer({
      layer: 0,
      model: "m",
      scores: new AttentionScores(new Float32Array([1, 0, 0.5, 0.5]), [
        2,
        1,
        2,
      ]),
      tokenMeta: TokenMeta.from({ prompt_len: 2, total_len: 2 }),
    });
    await saveCapture(path, { 0: layer });
    await assert.rejects(saveCapture(path, "not a capture" as never));
    const loaded = await loadCapture(path);
    assert.deepEqual([...loaded.attention[0].scores.data], [1, 0, 0.5, 0.5]);
    assert.deepEqual(names(dir), ["run.attn"]);

    const figure = new Figure({
      kind: "k",
      summary: "s",
      chart: { svg: '<svg width="4" height="2"></svg>', width: 4, height: 2 },
    });
    for (const name of ["f.svg", "f.html", "f.png"]) {
      await figure.save(`${dir}/${name}`, { scale: 1 });
    }
    assert.deepEqual(names(dir), ["f.html", "f.png", "f.svg", "run.attn"]);
    assert.match(await Deno.readTextFile(`${dir}/f.svg`), /^<svg xmlns=/);
  });
});
