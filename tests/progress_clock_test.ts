/**
 * The progress clock: `elapsedMs` never goes back, within a phase or across
 * phases. A capture reports `waiting` while the server has not answered;
 * the events after the headers arrive go on from that clock instead of
 * restarting at zero. Checked on a real loopback server that holds its
 * headers back, and on the `ProgressTracker` itself.
 */

import assert from "node:assert/strict";
import { captureAttention } from "../lib/client/client.ts";
import { ProgressTracker } from "../lib/progress.ts";
import type { ProgressEvent } from "../lib/progress.ts";
import { bodyBytes, layerEntry, response } from "./_captures.ts";

/** Asserts that no event's `elapsedMs` is below the one before it. */
function assertClockForward(events: ProgressEvent[]): void {
  for (let n = 1; n < events.length; n++) {
    assert.ok(
      events[n].elapsedMs >= events[n - 1].elapsedMs,
      `elapsedMs went back at event ${n}: ${
        JSON.stringify(events.slice(Math.max(0, n - 2), n + 1))
      }`,
    );
  }
}

Deno.test("captureAttention() elapsedMs: goes on from the waiting clock when the headers arrive", async () => {
  const body = bodyBytes(response([layerEntry(0, [6, 2, 6])]));
  // Longer than the 250 ms waiting ticker, so that waiting events run the
  // clock up before the headers.
  const hold = 700;
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (request) => {
      await request.body?.cancel();
      await new Promise((resolve) => setTimeout(resolve, hold));
      return new Response(body, {
        headers: { "content-type": "application/json" },
      });
    },
  );
  try {
    const events: ProgressEvent[] = [];
    const result = await captureAttention({
      baseUrl: `http://127.0.0.1:${server.addr.port}/v1`,
      model: "test-model",
      prompt: "hi",
      progress: false,
      onProgress: (event) => events.push(event),
    });
    assert.deepEqual(Object.keys(result.attention!), ["0"]);
    const waiting = events.filter((e) => e.phase === "waiting");
    assert.ok(waiting.length >= 2, JSON.stringify(events));
    assert.ok(
      waiting.at(-1)!.elapsedMs >= hold / 2,
      `the waiting clock stopped early: ${JSON.stringify(waiting)}`,
    );
    assert.ok(events.some((e) => e.phase === "receiving"));
    assert.equal(events.at(-1)!.phase, "done");
    assertClockForward(events);
    // The first event after the headers is no earlier than the held time.
    const after = events.find((e) => e.phase !== "waiting")!;
    assert.ok(after.elapsedMs >= waiting.at(-1)!.elapsedMs);
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("ProgressTracker since: elapsedMs counts from the given start, never back", async () => {
  const events: ProgressEvent[] = [];
  const since = performance.now() - 5_000;
  const tracker = new ProgressTracker((e) => events.push(e), { since });
  assert.ok(events[0].elapsedMs >= 5_000, JSON.stringify(events));
  tracker.received(10);
  await new Promise((resolve) => setTimeout(resolve, 5));
  tracker.decoding();
  tracker.done();
  assertClockForward(events);
  assert.ok(events.at(-1)!.elapsedMs >= 5_005 - 1);
});

Deno.test("ProgressTracker since: a start that is not a finite time is refused", () => {
  assert.throws(
    () => new ProgressTracker(undefined, { since: Number.NaN }),
    /Cannot track progress: since NaN is not a finite performance\.now\(\) time/,
  );
});
