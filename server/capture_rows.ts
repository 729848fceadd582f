/**
 * `attn_capture_prefix`: which query rows of a capture to return, as vLLM's
 * attention-capture fork reads it (`vllm_xargs: {"attn_capture_prefix":
 * "start:end"}`, a Python slice of the captured rows). attnscope's server
 * also takes it as a top-level request field. Rows are absolute positions,
 * half-open; `"start:"` runs to the last row, `":end"` starts at 0. Unlike a
 * Python slice, negative and reversed bounds are refused (400) rather than
 * read from the end or turned into an empty capture.
 *
 * @module
 */

import { HttpError } from "./http_error.ts";

/** The rows asked for: `start <= row < end`, `end` null for "to the last row". */
export interface CapturePrefix {
  /** First row (absolute position). */
  start: number;
  /** One past the last row, or `null` for every row from `start` on. */
  end: number | null;
}

const BOUND = /^\s*(\d*)\s*$/;

/**
 * Parses `"start:end"`, `"start:"` or `":end"`.
 *
 * @param value The field's value as the request gave it.
 * @param field The field's name in error messages.
 * @returns The range.
 * @throws {HttpError} 400 naming the field, the value and the fix.
 *
 * @example
 * ```ts
 * import { parseCapturePrefix } from "./capture_rows.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseCapturePrefix("8:72"), { start: 8, end: 72 });
 * assert.deepEqual(parseCapturePrefix("30:"), { start: 30, end: null });
 * assert.deepEqual(parseCapturePrefix(":4"), { start: 0, end: 4 });
 * assert.throws(() => parseCapturePrefix("9:3"), /end 3 is not after start 9/);
 * assert.throws(() => parseCapturePrefix("-4:"), /Cannot read attn_capture_prefix/);
 * ```
 */
export function parseCapturePrefix(
  value: unknown,
  field = "attn_capture_prefix",
): CapturePrefix {
  const fail = (why: string) =>
    new HttpError(
      400,
      `Cannot read ${field}: ${why}; pass "start:end" (absolute positions, half-open, e.g. "0:64") or "start:" for every row from start on`,
      { param: field, code: "invalid_capture_prefix" },
    );
  if (typeof value !== "string") {
    throw fail(`it is ${describeValue(value)}, not a string`);
  }
  const parts = value.split(":");
  if (parts.length !== 2) {
    throw fail(`${JSON.stringify(value.slice(0, 40))} is not start:end`);
  }
  const [a, b] = parts.map((p) => BOUND.exec(p)?.[1]);
  if (a === undefined || b === undefined) {
    throw fail(
      `${
        JSON.stringify(value.slice(0, 40))
      } has a bound that is not a non-negative integer`,
    );
  }
  const start = a === "" ? 0 : Number(a);
  const end = b === "" ? null : Number(b);
  if (
    !Number.isSafeInteger(start) || (end !== null && !Number.isSafeInteger(end))
  ) {
    throw fail(`${JSON.stringify(value.slice(0, 40))} has a bound too large`);
  }
  if (end !== null && end <= start) {
    throw fail(`end ${end} is not after start ${start}, so no row is in it`);
  }
  return { start, end };
}

/**
 * Reads the prefix from a request body: the top-level field or
 * `vllm_xargs.attn_capture_prefix` (where vLLM's fork reads it); both may
 * be given only when they agree.
 *
 * @param body The request body.
 * @returns The range, or `undefined` when neither is given.
 * @throws {HttpError} 400 for a malformed value, a `vllm_xargs` that is not
 *   an object, or two values that disagree.
 *
 * @example
 * ```ts
 * import { readCapturePrefix } from "./capture_rows.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(readCapturePrefix({ vllm_xargs: { attn_capture_prefix: "2:6" } }), { start: 2, end: 6 });
 * assert.equal(readCapturePrefix({}), undefined);
 * assert.throws(
 *   () => readCapturePrefix({ attn_capture_prefix: "1:", vllm_xargs: { attn_capture_prefix: "2:" } }),
 *   /disagree/,
 * );
 * ```
 */
export function readCapturePrefix(
  body: Record<string, unknown>,
): CapturePrefix | undefined {
  const xargs = body.vllm_xargs;
  if (
    xargs !== undefined && xargs !== null &&
    (typeof xargs !== "object" || Array.isArray(xargs))
  ) {
    throw new HttpError(
      400,
      `Cannot read vllm_xargs: it is ${
        describeValue(xargs)
      }, not an object; pass an object like {"attn_capture_prefix": "0:64"}`,
      { param: "vllm_xargs" },
    );
  }
  const top = body.attn_capture_prefix;
  const inX = (xargs as Record<string, unknown> | null | undefined)
    ?.attn_capture_prefix;
  const a = top === undefined || top === null
    ? undefined
    : parseCapturePrefix(top);
  const b = inX === undefined || inX === null
    ? undefined
    : parseCapturePrefix(inX, "vllm_xargs.attn_capture_prefix");
  if (a && b && (a.start !== b.start || a.end !== b.end)) {
    throw new HttpError(
      400,
      `Cannot read attn_capture_prefix: the top-level ${
        JSON.stringify(top)
      } and vllm_xargs.attn_capture_prefix ${
        JSON.stringify(inX)
      } disagree; give one of them`,
      { param: "attn_capture_prefix", code: "invalid_capture_prefix" },
    );
  }
  return a ?? b;
}

/**
 * The rows a capture of `total` rows holds for a prefix: `[first, end)`
 * clamped to the rows that exist (empty when the range starts past them).
 *
 * @param prefix The range asked for, or `undefined` for all rows.
 * @param total The rows the generation produced (prompt plus generated, less one).
 * @returns `first` and the row count `rows`.
 *
 * @example
 * ```ts
 * import { rowsHeld } from "./capture_rows.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(rowsHeld({ start: 3, end: null }, 10), { first: 3, rows: 7 });
 * assert.deepEqual(rowsHeld({ start: 3, end: 99 }, 10), { first: 3, rows: 7 });
 * assert.deepEqual(rowsHeld({ start: 12, end: null }, 10), { first: 10, rows: 0 });
 * assert.deepEqual(rowsHeld(undefined, 10), { first: 0, rows: 10 });
 * ```
 */
export function rowsHeld(
  prefix: { start: number; end: number | null } | undefined,
  total: number,
): { first: number; rows: number } {
  if (!prefix) return { first: 0, rows: total };
  const first = Math.min(prefix.start, total);
  const end = Math.min(prefix.end ?? total, total);
  return { first, rows: Math.max(0, end - first) };
}

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") {
    return `the string ${JSON.stringify(value.slice(0, 40))}`;
  }
  if (typeof value === "object") return "an object";
  return `the ${typeof value} ${String(value)}`;
}
