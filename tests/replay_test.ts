/**
 * The replay server, fed by `captureAttention(..., { saveBody })` and by
 * `saveCapture`, on real loopback ports; and `deno task serve --replay` as
 * a subprocess.
 */

import assert from "node:assert/strict";
import { captureAttention } from "../lib/client/client.ts";
import { saveCapture } from "../lib/sources/files/capture_file.ts";
import { startDemoServer } from "../server/serve.ts";
import { startReplayServer } from "../server/replay.ts";
import { bodyBytes, layerEntry, response } from "./_captures.ts";

const PROMPT = "red: 4821\nblue: 9034\ngreen: 1175\nblue:";

async function rawBody(baseUrl: string): Promise<Uint8Array> {
  const res = await fetch(`${baseUrl}/chat/completions`, {
    method: "POST",
    body: JSON.stringify({ model: "any", messages: [] }),
  });
  return new Uint8Array(await res.arrayBuffer());
}

Deno.test("startReplayServer() serves a body recorded with saveBody byte for byte, and captureAttention() reads it as it read the original", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/needle.json`;
  let original;
  {
    await using demo = await startDemoServer();
    original = await captureAttention({
      baseUrl: demo.baseUrl,
      prompt: PROMPT,
      layers: "all",
      keepBody: true,
      saveBody: path,
    });
  }
  const saved = await Deno.readFile(path);
  assert.deepEqual(saved, original.body, "saveBody wrote what was received");
  await using replay = await startReplayServer({ files: [path] });
  assert.deepEqual(replay.models, [original.model]);
  assert.deepEqual(await rawBody(replay.baseUrl), saved);
  const again = await captureAttention({
    baseUrl: replay.baseUrl,
    prompt: "anything: the replay ignores the request",
  });
  assert.equal(again.text, original.text);
  assert.deepEqual(again.labels, original.labels);
  for (const [key, layer] of Object.entries(original.attention!)) {
    assert.deepEqual(
      again.attention![Number(key)].scores.data,
      layer.scores.data,
    );
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startReplayServer() serves an attnscope capture file in the wire format, and the files in turn", async () => {
  const dir = await Deno.makeTempDir();
  let original;
  {
    await using demo = await startDemoServer();
    original = await captureAttention({
      baseUrl: demo.baseUrl,
      prompt: PROMPT,
      layers: "all",
    });
  }
  await saveCapture(`${dir}/needle.attn`, original);
  const other = `${dir}/other.json`;
  await Deno.writeFile(
    other,
    bodyBytes(response([layerEntry(0, [2, 1, 4])], "other-model")),
  );
  await using replay = await startReplayServer({
    files: [`${dir}/needle.attn`, other],
  });
  assert.deepEqual(replay.models, [original.model, "other-model"]);
  const again = await captureAttention({
    baseUrl: replay.baseUrl,
    prompt: "x",
  });
  assert.equal(again.text, original.text);
  assert.deepEqual(
    Object.keys(again.attention!),
    Object.keys(original.attention!),
  );
  for (const [key, layer] of Object.entries(original.attention!)) {
    assert.deepEqual(
      again.attention![Number(key)].scores.data,
      layer.scores.data,
    );
  }
  const second = await captureAttention({
    baseUrl: replay.baseUrl,
    prompt: "x",
  });
  assert.equal(second.model, "other-model");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startReplayServer() with rate paces the body to about that many MB/s", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeFile(
    path,
    bodyBytes(response([0, 1].map((i) => layerEntry(i, [64, 4, 128])))),
  );
  const size = (await Deno.stat(path)).size;
  // A rate that makes the body take about 0.6 s.
  const rate = size / 0.6 / 1e6;
  await using replay = await startReplayServer({ files: [path], rate });
  const t0 = performance.now();
  const body = await rawBody(replay.baseUrl);
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(body.length, size);
  assert.ok(seconds >= 0.5, `took ${seconds.toFixed(2)} s at ${rate} MB/s`);
  await Deno.remove(path);
});

Deno.test("startReplayServer() refuses no files, a bad rate and a file that is no response", async () => {
  await assert.rejects(
    startReplayServer({ files: [] }),
    /Cannot start the replay server: no files given/,
  );
  const path = await Deno.makeTempFile();
  await Deno.writeTextFile(path, "hello");
  await assert.rejects(
    startReplayServer({ files: [path], rate: -1 }),
    /--rate -1 is not a number of MB\/s/,
  );
  await assert.rejects(
    startReplayServer({ files: [path] }),
    /Cannot replay .*: it is neither a JSON response body nor an attnscope capture file/,
  );
  await assert.rejects(
    startReplayServer({ files: ["/nonexistent/body.json"] }),
    /Cannot replay \/nonexistent\/body.json/,
  );
  await Deno.remove(path);
});

Deno.test("`serve --replay FILE --port 0` serves the file from the command line", async () => {
  const path = await Deno.makeTempFile({ suffix: ".json" });
  const body = bodyBytes(response([layerEntry(0, [2, 1, 4])], "cli-model"));
  await Deno.writeFile(path, body);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      new URL("../server/serve.ts", import.meta.url).pathname,
      "--replay",
      path,
      "--port",
      "0",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/\/v1\n/.test(out)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const baseUrl = /(http:\/\/\S+\/v1)/.exec(out)![1];
  assert.match(out, /replay server: cli-model at/);
  assert.deepEqual(await rawBody(baseUrl), body);
  child.kill("SIGTERM");
  await reader.cancel();
  await child.status;
  await Deno.remove(path);
});
