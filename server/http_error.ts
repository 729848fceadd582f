/**
 * OpenAI-style error responses: `{"error": {"message", "type", "param",
 * "code"}}` with the HTTP status that goes with them.
 *
 * @module
 */

/** The body of an OpenAI-style error. */
export interface ErrorBody {
  /** The error. */
  error: {
    /** What is wrong and what to do about it. */
    message: string;
    /** `invalid_request_error`, `authentication_error`, `server_error`, ... */
    type: string;
    /** The request field at fault, or `null`. */
    param: string | null;
    /** A short machine-readable reason, or `null`. */
    code: string | null;
  };
}

/**
 * A request the server refuses; the handler turns it into a JSON response.
 *
 * @example
 * ```ts
 * import { HttpError } from "./http_error.ts";
 * import assert from "node:assert/strict";
 *
 * const e = new HttpError(400, "Cannot read max_tokens: it is -1", { param: "max_tokens" });
 * const res = e.toResponse();
 * assert.equal(res.status, 400);
 * assert.equal((await res.json()).error.param, "max_tokens");
 * ```
 */
export class HttpError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** OpenAI error type. */
  readonly type: string;
  /** The request field at fault. */
  readonly param: string | null;
  /** Machine-readable reason. */
  readonly code: string | null;
  /** Extra response headers (e.g. `Allow`). */
  readonly headers: Record<string, string>;

  /**
   * Describes a refusal.
   *
   * @param status HTTP status.
   * @param message What is wrong and what to do.
   * @param options Error type, field, code and extra headers.
   *
   * @example
   * ```ts
   * import { HttpError } from "./http_error.ts";
   * import assert from "node:assert/strict";
   *
   * assert.equal(new HttpError(404, "Cannot find /x").type, "invalid_request_error");
   * ```
   */
  constructor(
    status: number,
    message: string,
    options: {
      /** @default {"invalid_request_error"} below 500, else `"server_error"` */
      type?: string;
      /** @default {null} */
      param?: string | null;
      /** @default {null} */
      code?: string | null;
      /** @default {{}} */
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.type = options.type ??
      (status >= 500 ? "server_error" : "invalid_request_error");
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  /**
   * The JSON body.
   *
   * @returns `{"error": {...}}`.
   *
   * @example
   * ```ts
   * import { HttpError } from "./http_error.ts";
   * import assert from "node:assert/strict";
   *
   * assert.deepEqual(new HttpError(401, "no", { code: "invalid_api_key" }).toBody().error.code, "invalid_api_key");
   * ```
   */
  toBody(): ErrorBody {
    return {
      error: {
        message: this.message,
        type: this.type,
        param: this.param,
        code: this.code,
      },
    };
  }

  /**
   * The HTTP response.
   *
   * @returns A JSON response with this error's status and headers.
   *
   * @example
   * ```ts
   * import { HttpError } from "./http_error.ts";
   * import assert from "node:assert/strict";
   *
   * const res = new HttpError(405, "no", { headers: { Allow: "GET" } }).toResponse();
   * assert.equal(res.headers.get("allow"), "GET");
   * await res.body?.cancel();
   * ```
   */
  toResponse(): Response {
    return Response.json(this.toBody(), {
      status: this.status,
      headers: this.headers,
    });
  }
}
