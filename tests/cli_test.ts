/**
 * main.ts as a user runs it: a subprocess for each study (demo server
 * started in-process), against a separately started `serve.ts` through
 * --api-base, and with bad arguments.
 */

import assert from "node:assert/strict";
import { CODENAME_STUDY, NEEDLE_STUDY } from "../lib/client/studies.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const SERVE = new URL("../server/serve.ts", import.meta.url).pathname;

const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-env"];

/** Runs a script as `deno task` does, with the given flags; text output. */
async function runScript(
  script: string,
  args: string[],
  flags: string[] = PERMISSIONS,
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...flags, script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const cli = (args: string[]) => runScript(MAIN, args);

Deno.test("`study --example needle` prints the prompt, ✓ and each layer's avg and per-head rows with the needle marked", async () => {
  const { code, stdout, stderr } = await cli(["--example", "needle"]);
  assert.equal(code, 0, stderr);
  const lines = stdout.split("\n");
  assert.equal(lines[0], "=".repeat(60));
  assert.match(lines[1], /^Needle-in-a-haystack \| model=\S+ layers=all$/);
  assert.ok(
    stdout.includes(`Prompt:\n${NEEDLE_STUDY.prompt}\nExpected: '1729'\n`),
  );
  assert.ok(lines.includes("Output: '1729' ✓"), stdout);
  const headers = lines.filter((l) =>
    /^── L\d+ \(T=\d+ H=\d+ prompt=\d+\) ──$/.test(l)
  );
  assert.ok(headers.length >= 2, stdout);
  assert.match(headers[0], /^── L0 /);
  const [, t, h, p] = headers[0].match(/T=(\d+) H=(\d+) prompt=(\d+)/)!.map(
    Number,
  );
  // T = prompt + generated - 1: the reply adds rows past the prompt.
  assert.ok(t > p);
  const avg = lines.filter((l) => l.startsWith("  avg "));
  assert.equal(avg.length, headers.length);
  const heads = lines.filter((l) => /^ {2}h\d+ {1,2}\S/.test(l));
  assert.equal(heads.length, headers.length * h);
  // Prompt positions carry the demo tokenizer's text (the reference's local
  // tokenizer labels), position 0 included, never a bare index.
  assert.doesNotMatch(stdout, /(^|\s)0\(0\)=/m);
  // The needle's tokens (those spelling "alpha") are marked where a head
  // gives them more than 0.15 among its top 3, and never elsewhere.
  const marked = lines.filter((l) => l.includes("◀"));
  assert.ok(marked.length > 0, stdout);
  for (const l of marked) {
    for (const [, label] of l.matchAll(/(\S+)\(\d+\)=\d\.\d\d◀/g)) {
      assert.ok("alpha".includes(label), `${label} marked in ${l}`);
    }
  }
  // The demo tokenizer keeps the word whole, as Gemma's does.
  assert.match(stdout, /^ {2}h\d+ +alpha\(\d+\)=1\.00◀/m);
  assert.match(
    stdout,
    /^Readers of "alpha: 1729↵" \(positions \d+-\d+\), query \d+: L1H0=1\.00 /m,
  );
});

Deno.test("`task demo` runs offline once installed: cached modules only, network access limited to loopback", async () => {
  const { code, stdout, stderr } = await runScript(
    MAIN,
    ["--example", "needle"],
    ["--cached-only", "--allow-net=127.0.0.1", "--allow-read", "--allow-env"],
  );
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^Output: '1729' ✓$/m);
});

Deno.test("`study --example codename --layers 0,1` prints ✓ and a block per generated token for the chosen layers", async () => {
  const { code, stdout, stderr } = await cli([
    "--example",
    "codename",
    "--layers",
    "0,1",
  ]);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^Codename retrieval \| model=\S+ layers=0,1$/m);
  assert.ok(
    stdout.includes(`Prompt:\n${CODENAME_STUDY.prompt}\nExpected: 'Phantom'\n`),
  );
  // Output is Python's repr of the reply, which holds quotes: "'Phantom'".
  assert.match(stdout, /^Output: (["']).*Phantom.*\1 ✓$/m);
  const headers = stdout.match(/^── L\d+ .*$/gm)!;
  assert.deepEqual(headers.map((h) => h.match(/L(\d+)/)![1]), ["0", "1"]);
  const blocks = stdout.match(
    /^ {2}(["']).*\1 +\[avg\] → \S+\(\d+\)=\d\.\d\d.*$/gm,
  )!;
  assert.ok(
    blocks.length >= 2 * 2,
    "a block per generated token in each layer",
  );
  assert.match(stdout, /^ {15}\[h0 \] → /m);
});

Deno.test("`study --api-base` talks to a separately started `serve` with its key", async () => {
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-env",
      SERVE,
      "--port",
      "0",
      "--enable-attention-instrumentation",
      "--api-key",
      "k1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    const { value } = await reader.read();
    const baseUrl = value!.match(/at (http:\/\/\S+\/v1),/)![1];
    reader.releaseLock();
    const ok = await cli([
      "--example",
      "needle",
      "--api-base",
      baseUrl,
      "--api-key",
      "k1",
      "--layers",
      "all",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^Output: '1729' ✓$/m);
    const refused = await cli([
      "--example",
      "needle",
      "--api-base",
      baseUrl,
      "--api-key",
      "k1",
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /valid layers are 0\.\.\d+.*pass --layers/);
    const denied = await cli(["--api-base", baseUrl, "--layers", "all"]);
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /answered 401: .*--api-key/);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await server.stderr.cancel();
    await server.stdout.cancel().catch(() => {});
  }
});

Deno.test("the CLI explains bad arguments and an unreachable server", async () => {
  const bad = await cli(["--example", "haystack"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /Cannot run study "haystack": there is no such study; choose needle or codename/,
  );
  const typo = await cli(["--exmaple", "needle"]);
  assert.equal(typo.code, 2);
  assert.match(
    typo.stderr,
    /Cannot read the command line: .*usage: deno task study/,
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const down = await cli(["--api-base", `http://127.0.0.1:${port}/v1`]);
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    new RegExp(
      `Cannot reach the attention server at http://127\\.0\\.0\\.1:${port}/v1`,
    ),
  );
});

Deno.test("`serve --help` prints the vLLM-named flags; a bad flag names them all and exits 2", async () => {
  const run = (args: string[]) => runScript(SERVE, args);
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  const text = help.stdout;
  for (
    const flag of [
      "--host",
      "--port",
      "--enable-attention-instrumentation",
      "--attention-instrumentation-layers",
      "--api-key",
    ]
  ) assert.ok(text.includes(flag), `${flag} missing from:\n${text}`);
  const bad = await run(["--prot", "8000"]);
  assert.equal(bad.code, 2);
  assert.match(
    bad.stderr,
    /Cannot read the command line: .*--prot.*the flags are --host, --port/,
  );
});
