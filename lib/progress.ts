/**
 * Progress of long work (a capture downloading and decoding, a file loading,
 * a metric over many layers), as events, and two ways to show them: a bar in
 * Deno's Jupyter kernel that updates in place, and one line on a terminal's
 * stderr.
 *
 * Work reports through an {@linkcode OnProgress} callback; it knows nothing
 * of displays. {@linkcode progressDisplay} turns the events into a bar that
 * appears only once the work has run for about a second, so quick work shows
 * nothing.
 *
 * @module
 */

/**
 * Where long work is: waiting for a server, receiving its body, decoding
 * (or computing) what is left after the body is in, or done.
 */
export type ProgressPhase = "waiting" | "receiving" | "decoding" | "done";

/** One report of {@linkcode OnProgress}. */
export interface ProgressEvent {
  /** The phase. */
  phase: ProgressPhase;
  /** Bytes received or read so far. */
  bytes: number;
  /** All the bytes to come, when known (a `Content-Length`, a file size). */
  totalBytes: number | null;
  /** Layers (or other units of work) finished. */
  layers: number;
  /** Layers announced so far (seen in the body, or known in advance). */
  layersTotal: number;
  /**
   * Milliseconds since the work started; for a capture, since the request
   * while `waiting`, then since the answer began (so bytes per elapsed
   * time is the download speed).
   */
  elapsedMs: number;
}

/** Receives progress; called often, so it should return quickly. */
export type OnProgress = (event: ProgressEvent) => void;

/**
 * Keeps the counts of one piece of work and reports them, with the phase
 * never going back and the counts never going down.
 *
 * @example
 * ```ts
 * import { ProgressTracker, type ProgressEvent } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const seen: ProgressEvent[] = [];
 * const tracker = new ProgressTracker((e) => seen.push(e), { totalBytes: 10 });
 * tracker.received(4);
 * tracker.announced();
 * tracker.finished();
 * tracker.done();
 * assert.deepEqual(seen.map((e) => e.phase), ["waiting", "receiving", "receiving", "receiving", "done"]);
 * assert.equal(seen.at(-1)!.layers, 1);
 * ```
 */
export class ProgressTracker {
  #on: OnProgress | undefined;
  #start = performance.now();
  #event: ProgressEvent;

  /**
   * Starts tracking and reports the first event (`waiting`).
   *
   * @param onProgress Where events go (nothing when `undefined`).
   * @param options The byte total and the layer count, when known; the
   *   phase to start in (`"receiving"` for a file read, `"decoding"` for a
   *   computation; by default `"waiting"`); `since`, the `performance.now()`
   *   at which the work began when it began before this tracker (a request
   *   that waited for its headers), so that `elapsedMs` goes on counting
   *   from there instead of restarting (by default now).
   * @default options {}
   */
  constructor(
    onProgress: OnProgress | undefined,
    options: {
      totalBytes?: number | null;
      layersTotal?: number;
      phase?: ProgressPhase;
      since?: number;
    } = {},
  ) {
    this.#on = onProgress;
    if (options.since !== undefined) {
      if (!Number.isFinite(options.since)) {
        throw new RangeError(
          `Cannot track progress: since ${options.since} is not a finite performance.now() time; pass the performance.now() at which the work began, or leave it out`,
        );
      }
      this.#start = Math.min(options.since, this.#start);
    }
    this.#event = {
      phase: options.phase ?? "waiting",
      bytes: 0,
      totalBytes: options.totalBytes ?? null,
      layers: 0,
      layersTotal: options.layersTotal ?? 0,
      elapsedMs: 0,
    };
    this.#emit();
  }

  /** The latest event. */
  get current(): ProgressEvent {
    return { ...this.#event };
  }

  /**
   * Sets the byte total once it is known.
   *
   * @param total The total, or `null` when unknown.
   */
  expect(total: number | null): void {
    this.#event.totalBytes = total;
  }

  /**
   * Counts bytes that arrived; the phase becomes `receiving`.
   *
   * @param bytes How many.
   */
  received(bytes: number): void {
    this.#event.bytes += bytes;
    this.#to("receiving");
  }

  /** Counts one more layer announced. */
  announced(): void {
    this.#event.layersTotal++;
    this.#emit();
  }

  /** Counts one more layer finished. */
  finished(): void {
    this.#event.layers++;
    this.#emit();
  }

  /**
   * An {@linkcode OnProgress} for work nested in this one (a metric inside
   * a comparison, say): its layers finished are counted here too, and its
   * layers announced unless `announced` is `false` (when this tracker was
   * given them in advance); its phases, bytes and end are not.
   *
   * @param announced Count the nested work's announced layers.
   * @default announced true
   * @returns The callback to give the nested work.
   */
  relay(announced: boolean = true): OnProgress {
    let seen = 0, finished = 0;
    return (event) => {
      for (; announced && seen < event.layersTotal; seen++) {
        this.#event.layersTotal++;
      }
      for (; finished < event.layers; finished++) this.#event.layers++;
      this.#emit();
    };
  }

  /** All bytes are in: the phase becomes `decoding`. */
  decoding(): void {
    this.#to("decoding");
  }

  /** Reports the end. */
  done(): void {
    this.#to("done");
  }

  #to(phase: ProgressPhase): void {
    const order = ["waiting", "receiving", "decoding", "done"];
    if (order.indexOf(phase) > order.indexOf(this.#event.phase)) {
      this.#event.phase = phase;
    }
    this.#emit();
  }

  #emit(): void {
    if (!this.#on) return;
    // Never backwards within a phase (nor across phases).
    this.#event.elapsedMs = Math.max(
      this.#event.elapsedMs,
      performance.now() - this.#start,
    );
    this.#on({ ...this.#event });
  }
}

/**
 * The progress options of long work ({@linkcode progressReporter} reads
 * them): `captureAttention`, `loadCapture`, `loadAttention`, `headSummary`,
 * `attentionRollout`, `compareCaptures`.
 */
export interface ProgressOptions {
  /**
   * Receives progress events: phase, bytes of the total, layers done of
   * layers known.
   */
  onProgress?: OnProgress;
  /**
   * A progress bar: `"auto"` (`true`) shows one in Deno's Jupyter kernel
   * once the work has run over a second, `"tty"` on a terminal's stderr,
   * `"off"` (`false`) none.
   * @default {"auto"}
   */
  progress?: boolean | ProgressTarget;
}

/** Events in, and the display's end: what {@linkcode progressReporter} returns. */
export interface ProgressReporter {
  /** Feed this to the work (a {@linkcode ProgressTracker}, say). */
  onProgress: OnProgress;
  /**
   * Ends the display: with `what`, a bar that was shown becomes the summary
   * `what <n> layers[, bytes] in <s> s`; with `null` (after an error) it is
   * removed.
   */
  finish(what: string | null): void;
}

/**
 * Wires a function's {@linkcode ProgressOptions} once: every event goes to
 * the bar {@linkcode progressDisplay} draws (per `progress`) and then to the
 * caller's `onProgress`; `finish` replaces the bar with
 * {@linkcode progressSummary} of the last event.
 *
 * @param options The caller's `onProgress` and `progress`.
 * @param label What the work is, shown before the bar.
 * @returns The reporter.
 *
 * @example Events reach the caller; outside Jupyter no bar is drawn
 * ```ts
 * import { progressReporter, ProgressTracker, type ProgressEvent } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const seen: ProgressEvent[] = [];
 * const reporter = progressReporter({ onProgress: (e) => seen.push(e) }, "sum");
 * const tracker = new ProgressTracker(reporter.onProgress, { phase: "decoding", layersTotal: 2 });
 * tracker.finished();
 * tracker.finished();
 * tracker.done();
 * reporter.finish("summed");
 * assert.deepEqual(seen.map((e) => e.phase), ["decoding", "decoding", "decoding", "done"]);
 * assert.equal(seen.at(-1)!.layers, 2);
 * ```
 */
export function progressReporter(
  options: ProgressOptions,
  label: string,
): ProgressReporter {
  const display = progressDisplay({
    target: options.progress === true
      ? "auto"
      : options.progress === false
      ? "off"
      : options.progress,
    label,
  });
  const caller = options.onProgress;
  let last: ProgressEvent | null = null;
  return {
    onProgress(event) {
      last = event;
      display.onProgress(event);
      caller?.(event);
    },
    finish(what) {
      display.finish(
        what !== null && last ? progressSummary(last, what) : null,
      );
    },
  };
}

/** Where {@linkcode progressDisplay} draws. */
export type ProgressTarget = "auto" | "jupyter" | "tty" | "off";

/** Options for {@linkcode progressDisplay}. */
export interface ProgressDisplayOptions {
  /**
   * `"jupyter"` draws a bar in the kernel's output, `"tty"` a line on stderr
   * (only when stderr is a terminal), `"auto"` the bar when running in
   * Deno's Jupyter kernel and nothing elsewhere, `"off"` nothing.
   * @default {"auto"}
   */
  target?: ProgressTarget;
  /**
   * The bar appears once the work has run this long, so quick work shows
   * nothing; `0` shows it at once.
   * @default {1000}
   */
  delayMs?: number;
  /**
   * Fewest milliseconds between two redraws.
   * @default {100}
   */
  intervalMs?: number;
  /**
   * What the work is, shown before the bar.
   * @default {"capture"}
   */
  label?: string;
}

/** A progress display: feed it events, then end it with a summary. */
export interface ProgressDisplay {
  /** Feed this to the work. */
  onProgress: OnProgress;
  /**
   * Ends the display: a bar that was shown is replaced by `summary` (or
   * removed when it is `null`, e.g. after an error).
   */
  finish(summary: string | null): void;
  /** Whether anything was drawn. */
  readonly shown: boolean;
}

/** The kernel's messaging, as far as a progress bar needs it. */
interface JupyterBroadcast {
  broadcast(
    type: string,
    content: Record<string, unknown>,
  ): Promise<void> | void;
}

/** `Deno.jupyter` inside the kernel, else `null` (reading it elsewhere throws). */
function kernel(): JupyterBroadcast | null {
  try {
    const deno = Deno as unknown as { jupyter?: JupyterBroadcast };
    return "jupyter" in Deno && deno.jupyter ? deno.jupyter : null;
  } catch {
    return null;
  }
}

let displays = 0;

/**
 * A progress bar for one piece of work, drawn where `target` says; in
 * Deno's Jupyter kernel one `display_data` with a `display_id`, then
 * `update_display_data` with the same id, the last of them the summary.
 *
 * @param options Target, delay, label.
 * @returns The display.
 *
 * @example Off, or outside the kernel with "auto": nothing is drawn
 * ```ts
 * import { progressDisplay } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const display = progressDisplay({ delayMs: 0 });
 * display.onProgress({ phase: "receiving", bytes: 1, totalBytes: 2, layers: 0, layersTotal: 1, elapsedMs: 5 });
 * display.finish("done");
 * assert.equal(display.shown, false);
 * ```
 */
export function progressDisplay(
  options: ProgressDisplayOptions = {},
): ProgressDisplay {
  const target = options.target ?? "auto";
  const delay = options.delayMs ?? 1000;
  const interval = options.intervalMs ?? 100;
  const label = options.label ?? "capture";
  const jupyter = target === "jupyter" || target === "auto" ? kernel() : null;
  const tty = target === "tty" && Deno.stderr.isTerminal();
  const id = `attnscope-progress-${Deno.pid}-${++displays}`;
  let shown = false;
  let last = -Infinity;
  // The delay counts from here, not from the events' own clock (a capture's
  // download clock starts only once the server answers).
  const created = performance.now();
  const send = (type: string, text: string, html: string) =>
    jupyter!.broadcast(type, {
      data: { "text/plain": text, "text/html": html },
      metadata: {},
      transient: { display_id: id },
    });
  const draw = (event: ProgressEvent) => {
    const text = `${label} ${progressLine(event)}`;
    if (jupyter) {
      send(
        shown ? "update_display_data" : "display_data",
        text,
        progressHtml(label, event),
      );
    } else if (tty) writeErr(`\r\x1b[2K${text}`);
    shown = true;
  };
  return {
    onProgress(event) {
      if (!jupyter && !tty) return;
      const now = performance.now();
      if (event.phase === "done" || now - created < delay) return;
      if (now - last < interval) return;
      last = now;
      draw(event);
    },
    finish(summary) {
      if (!shown) return;
      if (jupyter) {
        const text = summary ?? "";
        send(
          "update_display_data",
          text,
          summary
            ? `<div style="font-family:monospace">${escapeHtml(summary)}</div>`
            : "",
        );
      } else if (tty) {
        writeErr(`\r\x1b[2K${summary ? `${summary}\n` : ""}`);
      }
    },
    get shown() {
      return shown;
    },
  };
}

function writeErr(text: string): void {
  try {
    Deno.stderr.writeSync(new TextEncoder().encode(text));
  } catch {
    // A closed stderr loses the bar, nothing else.
  }
}

/**
 * One line for an event: phase, bytes (of the total), speed and layers.
 *
 * @param event The event.
 * @returns The line, e.g. `receiving 12.0/40.0 MB · 8.0 MB/s · 2/9 layers`.
 *
 * @example
 * ```ts
 * import { progressLine } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const line = progressLine({ phase: "receiving", bytes: 12e6, totalBytes: 40e6, layers: 2, layersTotal: 9, elapsedMs: 1500 });
 * assert.equal(line, "receiving 12.0/40.0 MB · 8.0 MB/s · 2/9 layers");
 * ```
 */
export function progressLine(event: ProgressEvent): string {
  const parts: string[] = [event.phase];
  if (event.phase === "waiting") {
    return `waiting for the server · ${(event.elapsedMs / 1000).toFixed(1)} s`;
  }
  if (event.bytes > 0 || event.totalBytes) {
    const scale = Math.max(event.bytes, event.totalBytes ?? 0);
    parts[0] += ` ${formatBytes(event.bytes, scale, false)}${
      event.totalBytes ? `/${formatBytes(event.totalBytes, scale, false)}` : ""
    } ${unit(scale)}`;
    if (event.elapsedMs > 0) {
      const rate = event.bytes / (event.elapsedMs / 1000);
      parts.push(`${formatBytes(rate, rate, true)}/s`);
    }
  }
  if (event.layersTotal > 0) {
    parts.push(`${event.layers}/${event.layersTotal} layers`);
  }
  return parts.join(" · ");
}

/**
 * The one-line summary that replaces a finished bar.
 *
 * @param event The last event of the work.
 * @param what What was finished, e.g. `"captured"`.
 * @returns The line, e.g. `captured 9 layers, 561.0 MB in 4.2 s (133.6 MB/s)`.
 *
 * @example
 * ```ts
 * import { progressSummary } from "./progress.ts";
 * import assert from "node:assert/strict";
 *
 * const line = progressSummary({ phase: "done", bytes: 28e3, totalBytes: 28e3, layers: 2, layersTotal: 2, elapsedMs: 2000 }, "captured");
 * assert.equal(line, "captured 2 layers, 28.0 kB in 2.0 s (14.0 kB/s)");
 * ```
 */
export function progressSummary(event: ProgressEvent, what: string): string {
  const seconds = event.elapsedMs / 1000;
  const layers = `${event.layers} layer${event.layers === 1 ? "" : "s"}`;
  if (event.bytes === 0) return `${what} ${layers} in ${seconds.toFixed(1)} s`;
  const rate = seconds > 0 ? event.bytes / seconds : 0;
  return `${what} ${layers}, ${
    formatBytes(event.bytes, event.bytes, true)
  } in ${seconds.toFixed(1)} s (${formatBytes(rate, rate, true)}/s)`;
}

function unit(scale: number): string {
  return scale >= 1e9 ? "GB" : scale >= 1e6 ? "MB" : "kB";
}

/** `n` in the unit `scale` calls for, one decimal; with the unit if asked. */
function formatBytes(n: number, scale: number, withUnit: boolean): string {
  const div = scale >= 1e9 ? 1e9 : scale >= 1e6 ? 1e6 : 1e3;
  return `${(n / div).toFixed(1)}${withUnit ? ` ${unit(scale)}` : ""}`;
}

/** The bar as HTML: a `<progress>` element and the line. */
function progressHtml(label: string, event: ProgressEvent): string {
  // While receiving, only bytes of a known total say how far along it is
  // (layers are still being announced); after that, layers do, so work
  // with no bytes (a metric) has a bar that fills too.
  const fraction = event.phase === "receiving"
    ? (event.totalBytes ? event.bytes / event.totalBytes : null)
    : event.layersTotal
    ? event.layers / event.layersTotal
    : event.totalBytes
    ? 1
    : null;
  const bar = fraction === null
    ? `<progress style="width:16em"></progress>`
    : `<progress style="width:16em" max="1" value="${
      fraction.toFixed(3)
    }"></progress>`;
  return `<div style="font-family:monospace">${escapeHtml(label)} ${bar} ${
    escapeHtml(progressLine(event))
  }</div>`;
}

function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}
