/**
 * Progress of the long non-capture work: `loadCapture`, `decodeCapture`,
 * `loadAttention` (attnscope, safetensors, .npy, .npz), `headSummary`,
 * `attentionRollout` and `compareCaptures` report events in phase order
 * with counts that never go down, ending in one `done` with every layer
 * finished, on a real capture from the demo server written out in each
 * format. Outside Jupyter the default shows nothing, even for work that
 * runs past the bar's one-second delay.
 */

import assert from "node:assert/strict";
import { startDemoServer } from "../server/mod.ts";
import { captureAttention } from "../lib/client/client.ts";
import { NEEDLE_STUDY } from "../lib/client/studies.ts";
import {
  decodeCapture,
  encodeCapture,
  loadCapture,
  saveCapture,
} from "../lib/sources/files/capture_file.ts";
import { loadAttention } from "../lib/sources/files/load_attention.ts";
import { toNpy } from "../lib/sources/files/npy.ts";
import { headSummary } from "../lib/analysis/metrics/head_summary.ts";
import { attentionRollout } from "../lib/analysis/rollout.ts";
import { compareCaptures } from "../lib/analysis/compare.ts";
import type { AttentionCapture } from "../lib/data/layer.ts";
import type { ProgressEvent, ProgressPhase } from "../lib/progress.ts";
import { safetensors, zip } from "./_attention_files.ts";

const ORDER: ProgressPhase[] = ["waiting", "receiving", "decoding", "done"];

/**
 * Asserts the events of one piece of work: phases in order (and exactly
 * the ones given, each at least once), counts monotone, one `done` at the
 * end with `layers == layersTotal == layersTotal`; bytes, when a file was
 * read, end at its size.
 */
function assertProgress(
  events: ProgressEvent[],
  want: { phases: ProgressPhase[]; layersTotal: number; bytes?: number },
): void {
  assert.ok(events.length >= 2, JSON.stringify(events));
  const phases = [...new Set(events.map((e) => e.phase))];
  assert.deepEqual(phases, want.phases, JSON.stringify(events));
  for (let n = 1; n < events.length; n++) {
    const [a, b] = [events[n - 1], events[n]];
    assert.ok(ORDER.indexOf(b.phase) >= ORDER.indexOf(a.phase));
    assert.ok(b.bytes >= a.bytes, "bytes go down");
    assert.ok(b.layers >= a.layers, "layers go down");
    assert.ok(b.layersTotal >= a.layersTotal, "layersTotal goes down");
    assert.ok(b.elapsedMs >= a.elapsedMs, "time goes back");
    assert.ok(b.layers <= b.layersTotal, "more layers done than known");
  }
  const last = events.at(-1)!;
  assert.equal(events.filter((e) => e.phase === "done").length, 1);
  assert.equal(last.phase, "done");
  assert.equal(last.layersTotal, want.layersTotal);
  assert.equal(last.layers, want.layersTotal);
  if (want.bytes !== undefined) {
    assert.equal(last.totalBytes, want.bytes);
    assert.equal(last.bytes, want.bytes);
  } else assert.equal(last.bytes, 0);
}

/** `[Tq, H, Tk]` to `[H, Tq, Tk]` (the `batch head query key` order, batch 1). */
function headFirst(data: ArrayLike<number>, shape: readonly number[]) {
  const [tq, h, tk] = shape;
  const out = new Float32Array(tq * h * tk);
  for (let q = 0; q < tq; q++) {
    for (let i = 0; i < h; i++) {
      for (let k = 0; k < tk; k++) {
        out[(i * tq + q) * tk + k] = data[(q * h + i) * tk + k];
      }
    }
  }
  return out;
}

/** One real capture, and the same capture in every file format. */
interface Files {
  attention: AttentionCapture;
  labels: string[];
  dir: string;
  attn: string;
  safetensors: string;
  npz: string;
  npy: string;
}

async function captureFiles(): Promise<Files> {
  await using server = await startDemoServer();
  const captured = await captureAttention({
    baseUrl: server.baseUrl,
    prompt: NEEDLE_STUDY.prompt,
    layers: "all",
    maxTokens: 2,
    progress: false,
  });
  assert.ok(captured.attention, "the demo server captures attention");
  const attention = captured.attention;
  const dir = await Deno.makeTempDir();
  const files: Files = {
    attention,
    labels: captured.labels,
    dir,
    attn: `${dir}/capture.attn`,
    safetensors: `${dir}/capture.safetensors`,
    npz: `${dir}/capture.npz`,
    npy: `${dir}/layer0.npy`,
  };
  await saveCapture(files.attn, captured);
  const layers = Object.values(attention);
  const bhqk = layers.map((l) => {
    const [tq, h, tk] = l.scores.shape;
    return {
      layer: l.layer,
      data: headFirst(l.scores.data, l.scores.shape),
      shape: [1, h, tq, tk],
    };
  });
  await Deno.writeFile(
    files.safetensors,
    safetensors(bhqk.map((t) => ({
      name: `model.layers.${t.layer}.self_attn`,
      dtype: "F32",
      shape: t.shape,
      data: new Uint8Array(t.data.buffer),
    }))),
  );
  await Deno.writeFile(
    files.npz,
    zip(
      Object.fromEntries(
        bhqk.map((t) => [`layers.${t.layer}.npy`, toNpy(t)]),
      ),
      6,
    ),
  );
  await Deno.writeFile(files.npy, toNpy(bhqk[0]));
  return files;
}

const files = await captureFiles();
const layerCount = Object.keys(files.attention).length;
const sizeOf = async (path: string) => (await Deno.stat(path)).size;

globalThis.addEventListener("unload", () => {
  Deno.removeSync(files.dir, { recursive: true });
});

Deno.test("loadCapture() reports bytes read of the file's size, then layers decoded, in phase order", async () => {
  assert.ok(layerCount >= 2, "the demo model has several layers");
  for (const workers of [0, 2]) {
    const events: ProgressEvent[] = [];
    const loaded = await loadCapture(files.attn, {
      workers,
      onProgress: (e) => events.push(e),
    });
    assert.equal(Object.keys(loaded.attention).length, layerCount);
    assertProgress(events, {
      phases: ["receiving", "decoding", "done"],
      layersTotal: layerCount,
      bytes: await sizeOf(files.attn),
    });
    // Layers are restored only after the whole file is read.
    const decoding = events.filter((e) => e.phase === "decoding");
    assert.equal(decoding[0].layers, 0);
    assert.ok(decoding.some((e) => e.layers === 1), `workers ${workers}`);
  }
});

Deno.test("loadCapture() reports no done when the file is not a capture", async () => {
  const path = `${files.dir}/foreign.attn`;
  await Deno.writeTextFile(path, '{"choices": []}');
  const events: ProgressEvent[] = [];
  await assert.rejects(
    loadCapture(path, { onProgress: (e) => events.push(e) }),
    /not an attnscope capture file/,
  );
  assert.ok(events.length > 0);
  assert.ok(events.every((e) => e.phase === "receiving"));
});

Deno.test("decodeCapture() reports each layer decoded, then done", () => {
  const events: ProgressEvent[] = [];
  decodeCapture(encodeCapture(files.attention), "capture", {
    onProgress: (e) => events.push(e),
  });
  assertProgress(events, {
    phases: ["decoding", "done"],
    layersTotal: layerCount,
  });
});

for (
  const [format, key, tensors] of [
    ["attnscope", "attn", layerCount],
    ["safetensors", "safetensors", layerCount],
    ["npz", "npz", layerCount],
    ["npy", "npy", 1],
  ] as const
) {
  Deno.test(`loadAttention() reports bytes read and tensors done of a ${format} file, in phase order`, async () => {
    const events: ProgressEvent[] = [];
    const path = files[key];
    const loaded = await loadAttention(path, {
      onProgress: (e) => events.push(e),
    });
    assert.equal(loaded.format, format);
    assert.equal(Object.keys(loaded.attention).length, tensors);
    assertProgress(events, {
      phases: ["receiving", "decoding", "done"],
      layersTotal: tensors,
      bytes: await sizeOf(path),
    });
    if (format !== "attnscope") {
      // Tensors are streamed into layers while the file is read.
      assert.ok(
        events.some((e) => e.phase === "receiving" && e.layers === 1),
        JSON.stringify(events),
      );
    }
  });
}

Deno.test("headSummary() reports layers done of layers, per capture", () => {
  const events: ProgressEvent[] = [];
  const capture = { attention: files.attention, labels: files.labels };
  headSummary(capture, { onProgress: (e) => events.push(e) });
  assertProgress(events, {
    phases: ["decoding", "done"],
    layersTotal: layerCount,
  });
  // Each layer is reported as it is finished, one event per layer.
  assert.deepEqual(
    events.map((e) => e.layers),
    [...Array(layerCount + 1).keys(), layerCount],
  );
  const twice: ProgressEvent[] = [];
  headSummary([capture, capture], { onProgress: (e) => twice.push(e) });
  assertProgress(twice, {
    phases: ["decoding", "done"],
    layersTotal: 2 * layerCount,
  });
});

Deno.test("attentionRollout() reports each layer multiplied in, then done", () => {
  const events: ProgressEvent[] = [];
  const first = Math.min(...Object.keys(files.attention).map(Number));
  attentionRollout(files.attention, { onProgress: (e) => events.push(e) });
  assertProgress(events, {
    phases: ["decoding", "done"],
    layersTotal: layerCount,
  });
  const one: ProgressEvent[] = [];
  attentionRollout(files.attention, {
    lastLayer: first,
    onProgress: (e) => one.push(e),
  });
  assertProgress(one, { phases: ["decoding", "done"], layersTotal: 1 });
});

Deno.test("compareCaptures() reports both captures' layers in one count, then done", () => {
  const events: ProgressEvent[] = [];
  const capture = { attention: files.attention, labels: files.labels };
  compareCaptures(capture, capture, { onProgress: (e) => events.push(e) });
  assertProgress(events, {
    phases: ["decoding", "done"],
    layersTotal: 2 * layerCount,
  });
  // The total is known from the start, not discovered half way.
  assert.ok(events.every((e) => e.layersTotal === 2 * layerCount));
});

Deno.test("loadCapture(), loadAttention(), headSummary(), attentionRollout() and compareCaptures() draw nothing outside Jupyter by default, even past the bar's delay", async () => {
  // Each function's first event stalls 1.1 s, so the rest arrive after the
  // bar's one-second delay: with a display on, they would be drawn.
  const script = `
    import { loadCapture, loadAttention, headSummary, attentionRollout, compareCaptures } from ${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  };
    let stalls = 0;
    const stall = () => {
      let first = true;
      return () => {
        if (!first) return;
        first = false;
        stalls++;
        const until = performance.now() + 1100;
        while (performance.now() < until) { /* stall */ }
      };
    };
    const path = ${JSON.stringify(files.attn)};
    const loaded = await loadCapture(path, { onProgress: stall() });
    await loadAttention(${
    JSON.stringify(files.npz)
  }, { onProgress: stall(), check: false });
    headSummary(loaded, { onProgress: stall() });
    attentionRollout(loaded.attention, { onProgress: stall() });
    compareCaptures(loaded, loaded, { onProgress: stall() });
    // A terminal bar is asked for, but stderr is a pipe: nothing either.
    headSummary(loaded, { onProgress: stall(), progress: "tty" });
    if (stalls !== 6) throw new Error("stalled " + stalls + " times");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", script],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  assert.equal(new TextDecoder().decode(out.stdout), "");
  assert.equal(stderr, "");
});
