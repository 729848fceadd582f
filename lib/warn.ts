/**
 * One place for non-fatal oddities: a requested layer missing from a
 * response, rows that do not sum to one, a skipped malformed layer.
 *
 * Each distinct message is reported once per process (a notebook re-running a
 * cell should not repeat the same warning forever), through a handler that
 * defaults to `console.warn` and that tests or applications can replace.
 *
 * @module
 */

/** Receives each warning message once. */
export type WarningHandler = (message: string) => void;

const defaultHandler: WarningHandler = (message) =>
  console.warn(`attnscope: ${message}`);

let currentHandler: WarningHandler = defaultHandler;
const alreadySaid = new Set<string>();

/**
 * Reports a non-fatal problem once; later calls with the same message are
 * silent.
 *
 * @param message What is odd and what to do about it.
 *
 * @example Warnings can be collected instead of printed
 * ```ts
 * import { collectWarnings, warn } from "./warn.ts";
 * import assert from "node:assert/strict";
 *
 * const { warnings } = collectWarnings(() => {
 *   warn("Layer 5 was requested but is missing");
 *   warn("Layer 5 was requested but is missing");
 * });
 * assert.deepEqual(warnings, ["Layer 5 was requested but is missing"]);
 * ```
 */
export function warn(message: string): void {
  if (alreadySaid.has(message)) return;
  alreadySaid.add(message);
  currentHandler(message);
}

/**
 * Replaces the warning handler, for example to route warnings to a logger.
 *
 * @param handler The new handler, or `undefined` to restore `console.warn`.
 * @returns The handler that was in place before.
 *
 * @example Silencing warnings
 * ```ts
 * import { setWarningHandler, warn } from "./warn.ts";
 * import assert from "node:assert/strict";
 *
 * const seen: string[] = [];
 * const previous = setWarningHandler((m) => seen.push(m));
 * warn("example of a routed warning");
 * setWarningHandler(previous);
 * assert.deepEqual(seen, ["example of a routed warning"]);
 * ```
 */
export function setWarningHandler(
  handler: WarningHandler | undefined,
): WarningHandler {
  const previous = currentHandler;
  currentHandler = handler ?? defaultHandler;
  return previous;
}

/** What {@linkcode collectWarnings} returns. */
export interface CollectedWarnings<T> {
  /** The callback's return value. */
  result: T;
  /** Every distinct warning raised while the callback ran, in order. */
  warnings: string[];
}

/**
 * Runs `fn` and returns the warnings it raised instead of printing them.
 * The once-only memory is cleared for the duration, so a warning already
 * seen elsewhere is still collected here. Works with synchronous callbacks;
 * for async work use {@linkcode collectWarningsAsync}.
 *
 * @param fn The code to run.
 * @returns The callback's result and the warnings it raised.
 *
 * @example
 * ```ts
 * import { collectWarnings, warn } from "./warn.ts";
 * import assert from "node:assert/strict";
 *
 * const { result, warnings } = collectWarnings(() => {
 *   warn("something odd");
 *   return 42;
 * });
 * assert.equal(result, 42);
 * assert.deepEqual(warnings, ["something odd"]);
 * ```
 */
export function collectWarnings<T>(fn: () => T): CollectedWarnings<T> {
  const session = beginCollecting();
  try {
    return { result: fn(), warnings: session.warnings };
  } finally {
    session.end();
  }
}

/**
 * The async twin of {@linkcode collectWarnings}.
 *
 * @param fn The async code to run.
 * @returns The awaited result and the warnings raised meanwhile.
 *
 * @example
 * ```ts
 * import { collectWarningsAsync, warn } from "./warn.ts";
 * import assert from "node:assert/strict";
 *
 * const { warnings } = await collectWarningsAsync(async () => {
 *   await Promise.resolve();
 *   warn("late oddity");
 * });
 * assert.deepEqual(warnings, ["late oddity"]);
 * ```
 */
export async function collectWarningsAsync<T>(
  fn: () => Promise<T>,
): Promise<CollectedWarnings<T>> {
  const session = beginCollecting();
  try {
    return { result: await fn(), warnings: session.warnings };
  } finally {
    session.end();
  }
}

/** Swaps in a collecting handler and a fresh once-only memory until `end()`. */
function beginCollecting(): { warnings: string[]; end(): void } {
  const warnings: string[] = [];
  const saved = new Set(alreadySaid);
  alreadySaid.clear();
  const previous = setWarningHandler((m) => warnings.push(m));
  return {
    warnings,
    end() {
      setWarningHandler(previous);
      alreadySaid.clear();
      for (const m of saved) alreadySaid.add(m);
    },
  };
}
