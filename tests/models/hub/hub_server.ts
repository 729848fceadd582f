// A loopback HTTP server speaking the HuggingFace hub's URL layout and
// headers, for the download tests: the real hub cannot be reached from the
// machines these tests run on, so this stands in for it.
import { createHash } from "node:crypto";

/** One file of a fake repository. */
export interface HubFile {
  bytes: Uint8Array;
  /** Served as an LFS file: 302 to a CDN path, X-Linked-Etag = sha256. */
  lfs?: boolean;
}

/** What the fake hub saw, for the assertions. */
export interface HubLog {
  requests: {
    method: string;
    path: string;
    range: string | null;
    auth: string | null;
  }[];
}

export interface FakeHubOptions {
  repos: Record<
    string,
    { commit: string; files: Record<string, HubFile>; gated?: boolean }
  >;
  /** Bytes after which the CDN breaks off a file's first GET (then serves in full). */
  breakAfter?: Record<string, number>;
  /** Serve these files' bytes corrupted (hash mismatch). */
  corrupt?: Set<string>;
  token?: string;
}

export const sha256 = (b: Uint8Array) =>
  createHash("sha256").update(b).digest("hex");
const gitSha = (b: Uint8Array) =>
  createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

export function startFakeHub(options: FakeHubOptions) {
  const log: HubLog = { requests: [] };
  const broken = new Set<string>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const url = new URL(req.url);
      log.requests.push({
        method: req.method,
        path: url.pathname,
        range: req.headers.get("range"),
        auth: req.headers.get("authorization"),
      });
      const cdn = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(url.pathname);
      if (cdn) {
        const [, repoId, file] = cdn;
        const f = options.repos[repoId].files[file];
        return serveBytes(req, f.bytes, `${repoId}/${file}`);
      }
      const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
      const repo = m ? options.repos[m[1]] : undefined;
      if (!m || !repo) {
        return new Response("Repository not found", {
          status: 404,
        });
      }
      const [, repoId, rev, file] = m;
      if (
        repo.gated &&
        req.headers.get("authorization") !== `Bearer ${options.token}`
      ) {
        return new Response("Access to model is restricted", { status: 401 });
      }
      if (rev !== "main" && rev !== repo.commit) {
        return new Response("Revision not found", { status: 404 });
      }
      const f = repo.files[file];
      if (!f) {
        return new Response("Entry not found", {
          status: 404,
          headers: { "x-error-code": "EntryNotFound" },
        });
      }
      const common = { "x-repo-commit": repo.commit };
      if (f.lfs) {
        return new Response(null, {
          status: 302,
          headers: {
            ...common,
            location: `/cdn/${repoId}/${file}`,
            "x-linked-etag": `"${sha256(f.bytes)}"`,
            "x-linked-size": String(f.bytes.length),
            etag: `"${gitSha(f.bytes)}"`,
          },
        });
      }
      return serveBytes(req, f.bytes, `${repoId}/${file}`, {
        ...common,
        etag: `"${gitSha(f.bytes)}"`,
      });
    },
  );

  function serveBytes(
    req: Request,
    bytes: Uint8Array,
    key: string,
    extra: Record<string, string> = {},
  ) {
    let body = bytes;
    if (options.corrupt?.has(key)) {
      body = bytes.slice();
      body[0] ^= 0xff;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const start = range ? Number(range[1]) : 0;
    const headers: Record<string, string> = {
      ...extra,
      "accept-ranges": "bytes",
      "content-length": String(body.length - start),
    };
    if (req.method === "HEAD") {
      return new Response(null, { status: 200, headers });
    }
    const part = body.slice(start);
    const cut = options.breakAfter?.[key];
    if (cut !== undefined && !broken.has(key)) {
      broken.add(key);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(part.slice(0, cut));
          setTimeout(() => controller.error(new Error("connection reset")), 50);
        },
      });
      return new Response(stream, { status: range ? 206 : 200, headers });
    }
    if (range) {
      headers["content-range"] = `bytes ${start}-${
        body.length - 1
      }/${body.length}`;
      return new Response(part, { status: 206, headers });
    }
    return new Response(part, { status: 200, headers });
  }

  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    log,
    close: () => server.shutdown(),
  };
}
