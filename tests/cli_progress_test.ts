/**
 * The CLI while a capture is slow: Ctrl-C (SIGINT) stops it with exit code
 * 130, and its progress line appears on a terminal's stderr and nowhere
 * else. The slow server is the replay server at a low `--rate`; the
 * terminal is a pseudo-terminal from util-linux's `script`.
 */

import assert from "node:assert/strict";
import { captureAttention } from "../lib/client/client.ts";
import { NEEDLE_STUDY } from "../lib/client/studies.ts";
import { startDemoServer } from "../server/serve.ts";
import { startReplayServer } from "../server/replay.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const FLAGS = ["run", "--allow-net", "--allow-read", "--allow-env", MAIN];

/** The needle study's answer, recorded from the demo server. */
async function recordNeedle(path: string): Promise<number> {
  await using demo = await startDemoServer();
  await captureAttention({
    baseUrl: demo.baseUrl,
    prompt: NEEDLE_STUDY.prompt,
    layers: "all",
    saveBody: path,
  });
  return (await Deno.stat(path)).size;
}

Deno.test("`study` stops on SIGINT during a capture with exit code 130 and closes the connection", async () => {
  let arrived!: () => void;
  let gone!: () => void;
  const request = new Promise<void>((r) => (arrived = r));
  const closed = new Promise<void>((r) => (gone = r));
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      if (new URL(req.url).pathname === "/v1/models") {
        return Response.json({ data: [{ id: "stall", object: "model" }] });
      }
      arrived();
      // No answer until the client gives up.
      return new Promise((resolve) =>
        req.signal.addEventListener("abort", () => {
          gone();
          resolve(new Response(null));
        })
      );
    },
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...FLAGS,
      "--api-base",
      `http://127.0.0.1:${server.addr.port}/v1`,
      "--layers",
      "all",
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  await request;
  child.kill("SIGINT");
  const out = await child.output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 130, stderr);
  assert.match(stderr, /attnscope: interrupted; the capture was stopped/);
  await closed;
});

Deno.test("`study` draws its progress line on a terminal's stderr only, and keeps piped stderr clean", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/needle.json`;
  const size = await recordNeedle(path);
  // About 1.6 s per capture: past the one-second delay of the bar.
  await using replay = await startReplayServer({
    files: [path],
    rate: size / 1.6 / 1e6,
  });
  const args = [...FLAGS, "--api-base", replay.baseUrl, "--layers", "all"];
  const piped = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(piped.stdout);
  const stderr = new TextDecoder().decode(piped.stderr);
  assert.equal(piped.code, 0, stderr);
  assert.ok(stdout.includes("Output: '1729' ✓"), stdout);
  assert.doesNotMatch(stderr + stdout, /receiving|captured \d|\r/);
  // The same run on a terminal: `script` gives it one.
  const command = [Deno.execPath(), ...args].map((a) => `'${a}'`).join(" ");
  const tty = await new Deno.Command("script", {
    args: ["-qec", command, "/dev/null"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const screen = new TextDecoder().decode(tty.stdout);
  assert.equal(tty.code, 0, screen);
  assert.match(screen, /capture receiving [\d.]+\/[\d.]+ kB · [\d.]+ kB\/s/);
  assert.match(screen, /captured \d+ layers, [\d.]+ kB in [\d.]+ s/);
  assert.ok(screen.includes("Output: '1729' ✓"));
  await Deno.remove(dir, { recursive: true });
});
