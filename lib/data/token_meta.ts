/**
 * `token_meta`, normalized once: what each position of a capture is.
 *
 * Servers have spelled the fields differently over time (`lang_ranges` and
 * `language_ranges`); this accepts both, ignores keys it does not know, and
 * rejects values of the wrong type with a message naming the field.
 *
 * @module
 */

/** A half-open range of absolute positions, `start <= i < end`. */
export interface TokenRange {
  /** First position in the range. */
  readonly start: number;
  /** One past the last position. */
  readonly end: number;
}

/** What a position holds, as the reference client classifies it. */
export type TokenType = "vision" | "language" | "generated" | "unknown";

/** The raw `token_meta` object as a server sends it. */
export interface RawTokenMeta {
  /** Absolute position of each captured query row. */
  token_idx?: number[];
  /** Number of prompt tokens. */
  prompt_len?: number;
  /** Number of positions seen. */
  total_len?: number;
  /** Image-placeholder ranges, half open. */
  vision_ranges?: { start: number; end: number }[];
  /** Text ranges, half open. */
  lang_ranges?: { start: number; end: number }[];
  /** An earlier spelling of `lang_ranges`. */
  language_ranges?: { start: number; end: number }[];
  /** How `token_idx` counts, e.g. `"window_local"`. */
  token_idx_basis?: string;
  /** Keys this version does not know are kept and ignored. */
  [unknownKey: string]: unknown;
}

/**
 * Normalized token metadata of one captured layer.
 *
 * @example Classifying positions
 * ```ts
 * import { TokenMeta } from "./token_meta.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = TokenMeta.from({
 *   prompt_len: 6,
 *   total_len: 8,
 *   vision_ranges: [{ start: 1, end: 3 }],
 *   language_ranges: [{ start: 0, end: 1 }, { start: 3, end: 6 }],
 * });
 * assert.equal(meta.tokenType(2), "vision");
 * assert.equal(meta.tokenType(4), "language");
 * assert.equal(meta.tokenType(7), "generated");
 * assert.deepEqual(meta.visionTokens(), [1, 2]);
 * ```
 */
export class TokenMeta {
  /** Number of prompt tokens; positions at or past it are generated. */
  readonly promptLen: number;
  /** Number of positions the server saw (prompt plus generated, less one). */
  readonly totalLen: number;
  /** Ranges of image-placeholder positions within the prompt. */
  readonly visionRanges: readonly TokenRange[];
  /** Ranges of text positions within the prompt. */
  readonly langRanges: readonly TokenRange[];
  /** Absolute position of each captured query row, when the server says. */
  readonly tokenIdx: readonly number[] | null;
  /** How `tokenIdx` counts (`"window_local"` on vLLM), when the server says. */
  readonly tokenIdxBasis: string | null;

  /**
   * Builds metadata directly; most callers use {@linkcode TokenMeta.from}.
   *
   * @param fields The normalized fields.
   *
   * @example
   * ```ts
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const meta = new TokenMeta({ promptLen: 3, totalLen: 4 });
   * assert.equal(meta.tokenType(0), "unknown");
   * assert.equal(meta.tokenType(3), "generated");
   * ```
   */
  constructor(fields: {
    promptLen: number;
    totalLen: number;
    visionRanges?: readonly TokenRange[];
    langRanges?: readonly TokenRange[];
    tokenIdx?: readonly number[] | null;
    tokenIdxBasis?: string | null;
  }) {
    this.promptLen = fields.promptLen;
    this.totalLen = fields.totalLen;
    this.visionRanges = fields.visionRanges ?? [];
    this.langRanges = fields.langRanges ?? [];
    this.tokenIdx = fields.tokenIdx ?? null;
    this.tokenIdxBasis = fields.tokenIdxBasis ?? null;
  }

  /**
   * Normalizes a raw `token_meta` object. Missing fields default as in the
   * reference client (`prompt_len` and `total_len` 0, no ranges).
   *
   * @param raw The object from the response, or `undefined`/`null`.
   * @param layer The layer index, named in error messages.
   * @returns The normalized metadata.
   * @throws {TypeError} When a known field has the wrong type.
   *
   * @example Both range spellings are accepted
   * ```ts
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const a = TokenMeta.from({ prompt_len: 2, lang_ranges: [{ start: 0, end: 2 }] });
   * const b = TokenMeta.from({ prompt_len: 2, language_ranges: [{ start: 0, end: 2 }] });
   * assert.deepEqual(a.langTokens(), b.langTokens());
   * ```
   */
  static from(raw: unknown, layer?: number): TokenMeta {
    const where = layer === undefined ? "token_meta" : `layer ${layer}`;
    if (raw === undefined || raw === null) {
      return new TokenMeta({ promptLen: 0, totalLen: 0 });
    }
    if (typeof raw !== "object" || Array.isArray(raw)) {
      throw new TypeError(
        `Cannot read token_meta of ${where}: expected an object, got ${
          describe(raw)
        }; pass the layer's token_meta as the server sent it`,
      );
    }
    const r = raw as RawTokenMeta;
    const promptLen = readCount(r.prompt_len, "prompt_len", where);
    const totalLen = readCount(r.total_len, "total_len", where);
    const langRaw = r.lang_ranges ?? r.language_ranges;
    const tokenIdx = r.token_idx === undefined || r.token_idx === null
      ? null
      : readIndexList(r.token_idx, where);
    const basis = typeof r.token_idx_basis === "string"
      ? r.token_idx_basis
      : null;
    return new TokenMeta({
      promptLen,
      totalLen,
      visionRanges: readRanges(r.vision_ranges, "vision_ranges", where),
      langRanges: readRanges(langRaw, "lang_ranges", where),
      tokenIdx,
      tokenIdxBasis: basis,
    });
  }

  /**
   * Classifies an absolute position as the reference client does:
   * generated past the prompt, else vision or language by range, else unknown.
   *
   * @param position Absolute token position.
   * @returns The position's type.
   *
   * @example
   * ```ts
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const meta = TokenMeta.from({ prompt_len: 2, total_len: 3, lang_ranges: [{ start: 0, end: 2 }] });
   * assert.deepEqual([0, 1, 2].map((i) => meta.tokenType(i)), ["language", "language", "generated"]);
   * ```
   */
  tokenType(position: number): TokenType {
    if (position >= this.promptLen) return "generated";
    if (inAny(this.visionRanges, position)) return "vision";
    if (inAny(this.langRanges, position)) return "language";
    return "unknown";
  }

  /**
   * Every vision position, in range order.
   *
   * @returns The positions.
   *
   * @example
   * ```ts
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const meta = TokenMeta.from({ prompt_len: 4, vision_ranges: [{ start: 1, end: 3 }] });
   * assert.deepEqual(meta.visionTokens(), [1, 2]);
   * ```
   */
  visionTokens(): number[] {
    return expand(this.visionRanges);
  }

  /**
   * Every language position, in range order.
   *
   * @returns The positions.
   *
   * @example
   * ```ts
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const meta = TokenMeta.from({ prompt_len: 3, lang_ranges: [{ start: 0, end: 3 }] });
   * assert.deepEqual(meta.langTokens(), [0, 1, 2]);
   * ```
   */
  langTokens(): number[] {
    return expand(this.langRanges);
  }

  /**
   * The metadata in the server's own spelling, for saving and re-sending.
   *
   * @returns A plain object with snake_case keys.
   *
   * @example
   * ```ts
   * import { TokenMeta } from "./token_meta.ts";
   * import assert from "node:assert/strict";
   *
   * const raw = { prompt_len: 2, total_len: 3, vision_ranges: [], lang_ranges: [{ start: 0, end: 2 }] };
   * assert.deepEqual(TokenMeta.from(TokenMeta.from(raw).toJSON()), TokenMeta.from(raw));
   * ```
   */
  toJSON(): RawTokenMeta {
    const out: RawTokenMeta = {
      prompt_len: this.promptLen,
      total_len: this.totalLen,
      vision_ranges: this.visionRanges.map(({ start, end }) => ({
        start,
        end,
      })),
      lang_ranges: this.langRanges.map(({ start, end }) => ({ start, end })),
    };
    if (this.tokenIdx) out.token_idx = [...this.tokenIdx];
    if (this.tokenIdxBasis) out.token_idx_basis = this.tokenIdxBasis;
    return out;
  }
}

function inAny(ranges: readonly TokenRange[], i: number): boolean {
  return ranges.some((r) => r.start <= i && i < r.end);
}

function expand(ranges: readonly TokenRange[]): number[] {
  const out: number[] = [];
  for (const r of ranges) for (let i = r.start; i < r.end; i++) out.push(i);
  return out;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string"
    ? `the string ${JSON.stringify(value).slice(0, 40)}`
    : `${typeof value} ${String(value).slice(0, 40)}`;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

function readCount(value: unknown, field: string, where: string): number {
  if (value === undefined || value === null) return 0;
  if (!isCount(value)) {
    throw new TypeError(
      `Cannot read token_meta.${field} of ${where}: expected a non-negative integer, got ${
        describe(value)
      }; check the server's response`,
    );
  }
  return value;
}

function readIndexList(value: unknown, where: string): number[] {
  if (!Array.isArray(value) || !value.every(isCount)) {
    throw new TypeError(
      `Cannot read token_meta.token_idx of ${where}: expected a list of non-negative integers, got ${
        describe(value)
      }; check the server's response`,
    );
  }
  return value;
}

function readRanges(
  value: unknown,
  field: string,
  where: string,
): TokenRange[] {
  if (value === undefined || value === null) return [];
  const bad = () =>
    new TypeError(
      `Cannot read token_meta.${field} of ${where}: expected a list of {start, end} with 0 <= start <= end, got ${
        JSON.stringify(value)?.slice(0, 80)
      }; check the server's response`,
    );
  if (!Array.isArray(value)) throw bad();
  return value.map((r) => {
    if (
      typeof r !== "object" || r === null || !isCount(r.start) ||
      !isCount(r.end) || r.end < r.start
    ) throw bad();
    return { start: r.start, end: r.end };
  });
}
