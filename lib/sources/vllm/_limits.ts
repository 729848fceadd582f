/**
 * Evidence before allocation: the checks every layer-decoding path runs
 * before it asks for memory (the response decoder, its workers, the capture
 * file reader, `toNpy`, and any streaming decoder), so that a corrupt or
 * hostile shape fails with a `Cannot ...` error instead of an internal
 * `RangeError` or an out-of-memory kill.
 *
 * Three checks, cheapest first:
 * 1. the shape's element count is an exact integer (`prod(shape)` of
 *    `[1e9, 1e9, 1e9]` is 1e27, which no array can have);
 * 2. the compressed payload can hold that much: deflate expands at most
 *    {@linkcode DEFLATE_MAX_RATIO}:1, so a layer that declares more than that
 *    times its compressed size is corrupt, whatever the bytes say;
 * 3. the capture's total decoded size stays under a budget
 *    ({@linkcode DecodeBudget}, `maxBytes`, default
 *    {@linkcode DEFAULT_MAX_BYTES}).
 *
 * An allocation that fails anyway ({@linkcode allocateScores},
 * {@linkcode allocateBytes}) is reported with the number of bytes asked for.
 * Private: not exported from `mod.ts` (the default is).
 *
 * @module
 */

import type { ScoresDType } from "../../data/scores.ts";

/**
 * Deflate's largest expansion: a 258-byte match coded in about two bits,
 * which is 1032:1 (zlib's FAQ: "the limit is 1032:1"). gzip and zlib
 * headers only lower the real ratio, so a declared size above this times the
 * compressed size cannot be what the payload holds.
 */
export const DEFLATE_MAX_RATIO = 1032;

/**
 * The default `maxBytes`: 8 GiB of decoded scores per capture.
 *
 * Why 8 GiB: decoding holds the scores plus the response body and a
 * compressed payload per worker, so a capture at the limit peaks near 10 GiB,
 * under half of a 24 GiB machine, which leaves room for the OS, the
 * notebook's browser and kernel, and the analyses that copy a layer (head
 * means, rollout). It still admits the largest captures the guide describes
 * (T=4096, H=8, 9 layers: 2.25 GiB as float16, 4.5 GiB as float32); an
 * all-layer capture of a large model at long context (Gemma 3 27B, 62 layers
 * x 32 heads at T=4096: 133 GiB) is refused with a message saying how to ask
 * for less or raise the limit.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_BYTES } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_MAX_BYTES, 8 * 2 ** 30);
 * ```
 */
export const DEFAULT_MAX_BYTES = 8 * 2 ** 30;

/** Bytes per element of each score type. */
export const DTYPE_BYTES: Readonly<Record<ScoresDType, number>> = {
  float16: 2,
  float32: 4,
};

/**
 * Who is doing what, for messages: `Cannot <action>: <state>; <fix>`.
 */
export interface LimitContext {
  /** E.g. `"decode layer 18"` or `"load layer 18 from a.attn"`. */
  action: string;
  /**
   * What to do about corrupt input.
   * @default {"check the server's response"}
   */
  fix?: string;
}

/**
 * The element count of a `[Tq, H, Tk]` shape, refused unless the shape is
 * three positive integers whose product, in bytes of float32, is an exact
 * integer.
 *
 * @param shape The declared shape.
 * @param context The action and the fix, for messages.
 * @returns `Tq * H * Tk`.
 * @throws {TypeError} When the shape is not three positive integers.
 * @throws {RangeError} When the product is past exact integers.
 *
 * @example
 * ```ts
 * import { scoreCount } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(scoreCount([2, 3, 4], { action: "decode layer 0" }), 24);
 * assert.throws(
 *   () => scoreCount([1e9, 1e9, 1e9], { action: "decode layer 0" }),
 *   /^RangeError: Cannot decode layer 0: shape \[1000000000, 1000000000, 1000000000\] holds 1e\+27 values/,
 * );
 * ```
 */
export function scoreCount(shape: unknown, context: LimitContext): number {
  const fix = context.fix ?? "check the server's response";
  if (
    !Array.isArray(shape) || shape.length !== 3 ||
    !shape.every((n) => Number.isInteger(n) && n > 0)
  ) {
    throw new TypeError(
      `Cannot ${context.action}: shape ${
        JSON.stringify(shape)
      } is not three positive integers [Tq, H, Tk]; ${fix}`,
    );
  }
  const count = shape[0] * shape[1] * shape[2];
  // float32 bytes are the largest size derived from the count: keep it exact.
  if (!Number.isSafeInteger(count * 4)) {
    throw new RangeError(
      `Cannot ${context.action}: shape [${
        shape.join(", ")
      }] holds ${count} values, past what any array can hold (sizes must stay below 2^53 bytes); ${fix}`,
    );
  }
  return count;
}

/**
 * Refuses a layer whose declared size is more than deflate could expand its
 * compressed bytes to ({@linkcode DEFLATE_MAX_RATIO}:1).
 *
 * @param shape The declared shape (already counted).
 * @param rawBytes The bytes the shape needs before conversion (float16: 2 per value).
 * @param compressedBytes The compressed payload's size, or an upper bound of it.
 * @param context The action and the fix, for messages.
 * @throws {RangeError} When `rawBytes > DEFLATE_MAX_RATIO * compressedBytes`.
 *
 * @example
 * ```ts
 * import { checkExpansion } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * checkExpansion([64, 8, 64], 65536, 100, { action: "decode layer 2" });
 * assert.throws(
 *   () => checkExpansion([4096, 8, 4096], 268435456, 1000, { action: "decode layer 2" }),
 *   /^RangeError: Cannot decode layer 2: shape \[4096, 8, 4096\] needs 268435456 bytes but its data is 1000 compressed bytes/,
 * );
 * ```
 */
export function checkExpansion(
  shape: readonly number[],
  rawBytes: number,
  compressedBytes: number,
  context: LimitContext,
): void {
  const most = DEFLATE_MAX_RATIO * compressedBytes;
  if (rawBytes > most) {
    throw new RangeError(
      `Cannot ${context.action}: shape [${
        shape.join(", ")
      }] needs ${rawBytes} bytes but its data is ${compressedBytes} compressed bytes, which inflate to at most ${most} (deflate expands at most ${DEFLATE_MAX_RATIO}:1); the data is truncated or the shape is wrong, ${
        context.fix ?? "check the server's response"
      }`,
    );
  }
}

/**
 * Both per-layer checks of a wire layer (float16 on the wire), in order: an
 * exact count ({@linkcode scoreCount}) and a payload that could inflate to it
 * ({@linkcode checkExpansion}). Every path that decodes a wire layer calls
 * this before it allocates; a capture-wide budget is
 * {@linkcode DecodeBudget}'s job.
 *
 * @param shape The declared shape.
 * @param compressedBytes The gzip payload's size, or an upper bound of it
 *   (see {@linkcode base64DecodedBound} for base64 text not yet decoded).
 * @param context The action and the fix, for messages.
 * @returns `prod(shape)`.
 * @throws {TypeError | RangeError} As the two checks.
 *
 * @example
 * ```ts
 * import { checkWireLayer } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(checkWireLayer([2, 1, 2], 30, { action: "decode layer 0" }), 4);
 * assert.throws(() => checkWireLayer([512, 8, 512], 30, { action: "decode layer 0" }), /deflate expands at most 1032:1/);
 * ```
 */
export function checkWireLayer(
  shape: unknown,
  compressedBytes: number,
  context: LimitContext,
): number {
  const count = scoreCount(shape, context);
  checkExpansion(shape as number[], count * 2, compressedBytes, context);
  return count;
}

/**
 * The most bytes base64 text of `length` characters decodes to: an upper
 * bound of the compressed size, known before decoding (whitespace and JSON
 * escapes only make the text longer than its bytes need).
 *
 * @param length Characters (or bytes) of base64 text.
 * @returns `ceil(length / 4) * 3`.
 *
 * @example
 * ```ts
 * import { base64DecodedBound } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(base64DecodedBound(8), 6);
 * assert.equal(base64DecodedBound(6), 6);
 * ```
 */
export function base64DecodedBound(length: number): number {
  return Math.ceil(length / 4) * 3;
}

/**
 * Checks a `maxBytes` option: a positive number (`Infinity` turns the limit
 * off).
 *
 * @param maxBytes The option's value.
 * @param action What is limited, e.g. `"decode the capture"`.
 * @returns The limit, or {@linkcode DEFAULT_MAX_BYTES} when undefined.
 * @throws {RangeError} When it is not a positive number.
 *
 * @example
 * ```ts
 * import { DEFAULT_MAX_BYTES, readMaxBytes } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(readMaxBytes(undefined, "decode"), DEFAULT_MAX_BYTES);
 * assert.throws(() => readMaxBytes(-1, "decode"), /Cannot decode: maxBytes -1 is not a positive number/);
 * ```
 */
export function readMaxBytes(maxBytes: unknown, action: string): number {
  if (maxBytes === undefined) return DEFAULT_MAX_BYTES;
  if (typeof maxBytes !== "number" || !(maxBytes > 0)) {
    throw new RangeError(
      `Cannot ${action}: maxBytes ${
        typeof maxBytes === "string" ? JSON.stringify(maxBytes) : maxBytes
      } is not a positive number; pass a byte count such as 16 * 2 ** 30, or Infinity for no limit`,
    );
  }
  return maxBytes;
}

/**
 * The running total of a capture's decoded bytes against `maxBytes`. Each
 * layer is added before anything is allocated for it; the layer that would
 * take the total past the limit is refused.
 *
 * @example
 * ```ts
 * import { DecodeBudget } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * const budget = new DecodeBudget(1000, "pass a larger { maxBytes }");
 * budget.take(100, "float32", "decode layer 0");
 * assert.equal(budget.used, 400);
 * assert.throws(
 *   () => budget.take(200, "float32", "decode layer 1"),
 *   /^RangeError: Cannot decode layer 1: the capture's scores would take at least 1200 bytes \(1\.17 KiB\) as float32, over maxBytes 1000 bytes;/,
 * );
 * ```
 */
export class DecodeBudget {
  /** The limit in bytes. */
  readonly maxBytes: number;
  #raise: string;
  #used = 0;

  /**
   * @param maxBytes The limit in bytes.
   * @param raise How to raise it, e.g. `"pass a larger { maxBytes }"`.
   */
  constructor(maxBytes: number, raise: string) {
    this.maxBytes = maxBytes;
    this.#raise = raise;
  }

  /** Bytes taken so far. */
  get used(): number {
    return this.#used;
  }

  /**
   * Adds a layer of `count` values of `dtype`.
   *
   * @param count The layer's values.
   * @param dtype The type it decodes to.
   * @param action E.g. `"decode layer 18"`, for the message.
   * @throws {RangeError} When the total would pass `maxBytes`.
   */
  take(count: number, dtype: ScoresDType, action: string): void {
    const total = this.#used + count * DTYPE_BYTES[dtype];
    if (total > this.maxBytes) {
      const halve = dtype === "float32"
        ? `, ask for { dtype: "float16" } to halve it`
        : "";
      throw new RangeError(
        `Cannot ${action}: the capture's scores would take at least ${
          sizeText(total)
        } as ${dtype}, over maxBytes ${
          sizeText(this.maxBytes)
        }; ${this.#raise} (e.g. ${
          suggestLimit(total)
        }) if this machine has the memory${halve}, or ask for fewer layers`,
      );
    }
    this.#used = total;
  }
}

/**
 * Allocates a layer's score array, turning a failed allocation into a
 * `Cannot ...` error that says how much was asked for.
 *
 * @param count Values.
 * @param dtype Element type.
 * @param action E.g. `"decode layer 18"`.
 * @returns A zeroed array of `count` values.
 * @throws {RangeError} When the memory cannot be had.
 *
 * @example
 * ```ts
 * import { allocateScores } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(allocateScores(4, "float16", "decode layer 0").length, 4);
 * assert.throws(() => allocateScores(2 ** 40, "float32", "decode layer 0"), /^RangeError: Cannot decode layer 0: could not allocate 4398046511104 bytes \(4 TiB\)/);
 * ```
 */
export function allocateScores(
  count: number,
  dtype: "float32",
  action: string,
): Float32Array;
export function allocateScores(
  count: number,
  dtype: "float16",
  action: string,
): Float16Array;
export function allocateScores(
  count: number,
  dtype: ScoresDType,
  action: string,
): Float16Array | Float32Array;
export function allocateScores(
  count: number,
  dtype: ScoresDType,
  action: string,
): Float16Array | Float32Array {
  try {
    return dtype === "float16"
      ? new Float16Array(count)
      : new Float32Array(count);
  } catch (error) {
    throw allocationError(
      count * DTYPE_BYTES[dtype],
      `${dtype} scores`,
      action,
      error,
    );
  }
}

/**
 * Allocates a byte buffer for a layer, as {@linkcode allocateScores}.
 *
 * @param bytes Size.
 * @param what What the buffer holds, for the message.
 * @param action E.g. `"decode layer 18"`.
 * @returns A zeroed buffer.
 * @throws {RangeError} When the memory cannot be had.
 *
 * @example
 * ```ts
 * import { allocateBytes } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(allocateBytes(8, "its float16 bytes", "decode layer 0").length, 8);
 * ```
 */
export function allocateBytes(
  bytes: number,
  what: string,
  action: string,
): Uint8Array {
  try {
    return new Uint8Array(bytes);
  } catch (error) {
    throw allocationError(bytes, what, action, error);
  }
}

/**
 * Whether an error is the engine's failure to allocate memory (as opposed
 * to a bug): V8's `Array buffer allocation failed`, `Invalid typed array
 * length`, or `node:zlib`/`Buffer`'s size errors.
 *
 * @param error Anything thrown.
 * @returns `true` for an allocation failure.
 *
 * @example
 * ```ts
 * import { isAllocationFailure } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * let error: unknown;
 * try { new ArrayBuffer(2 ** 50); } catch (e) { error = e; }
 * assert.ok(isAllocationFailure(error));
 * assert.ok(!isAllocationFailure(new TypeError("x")));
 * ```
 */
export function isAllocationFailure(error: unknown): boolean {
  if (!(error instanceof RangeError)) return false;
  const code = (error as { code?: string }).code;
  return code === "ERR_BUFFER_TOO_LARGE" ||
    code === "ERR_MEMORY_ALLOCATION_FAILED" ||
    /allocation failed|Invalid (typed )?array( buffer)? length|Array buffer allocation/i
      .test(error.message);
}

/**
 * The error for a failed allocation of `bytes`.
 *
 * @param bytes What was asked for.
 * @param what What the memory was for.
 * @param action E.g. `"decode layer 18"`.
 * @param cause The engine's error.
 * @returns A `RangeError` with the std grammar.
 *
 * @example
 * ```ts
 * import { allocationError } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * const e = allocationError(2 ** 33, "float32 scores", "decode layer 1", new RangeError("Array buffer allocation failed"));
 * assert.match(e.message, /^Cannot decode layer 1: could not allocate 8589934592 bytes \(8 GiB\) for its float32 scores/);
 * ```
 */
export function allocationError(
  bytes: number,
  what: string,
  action: string,
  cause: unknown,
): RangeError {
  const said = cause instanceof Error ? cause.message : String(cause);
  return new RangeError(
    `Cannot ${action}: could not allocate ${sizeText(bytes)} for its ${
      what.replace(/^its /, "")
    } (${said}); free memory, ask for fewer layers or { dtype: "float16" }, or lower maxBytes so such captures are refused up front`,
    { cause },
  );
}

/**
 * Bytes in binary units with three significant digits.
 *
 * @param bytes A byte count.
 * @returns E.g. `"1.5 GiB"`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(formatBytes(1536 * 2 ** 20), "1.5 GiB");
 * assert.equal(formatBytes(100), "100 bytes");
 * ```
 */
export function formatBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${bytes} bytes`
    : `${Number(value.toPrecision(3))} ${units[unit]}`;
}

/**
 * A byte count for messages: exact, and in binary units when that helps.
 *
 * @param bytes A byte count.
 * @returns E.g. `"100 bytes"` or `"1610612736 bytes (1.5 GiB)"`.
 *
 * @example
 * ```ts
 * import { sizeText } from "./_limits.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sizeText(100), "100 bytes");
 * assert.equal(sizeText(1536 * 2 ** 20), "1610612736 bytes (1.5 GiB)");
 * ```
 */
export function sizeText(bytes: number): string {
  return bytes < 1024 || !Number.isFinite(bytes)
    ? `${bytes} bytes`
    : `${bytes} bytes (${formatBytes(bytes)})`;
}

/** `{ maxBytes: N * 2 ** 30 }` with N the GiB above `total`, for hints. */
function suggestLimit(total: number): string {
  const gib = Math.ceil(total / 2 ** 30);
  return gib <= 2 ** 20
    ? `{ maxBytes: ${gib} * 2 ** 30 }`
    : `{ maxBytes: ${total} }`;
}
