// The HuggingFace hub cannot be reached from the machines these tests run on
// (no route to huggingface.co), so the download code is tested against a real
// HTTP server on loopback (hub_server.ts) that speaks the hub's URL layout
// (/ORG/NAME/resolve/REV/FILE), its headers (X-Repo-Commit, ETag,
// X-Linked-Etag, X-Linked-Size), its 302 to a CDN path for LFS files, Range,
// and 401 for a gated repository without a token.
import assert from "node:assert/strict";
import { join } from "node:path";
import { hubCacheDir, repoFolder } from "../../../lib/models/hub/cache.ts";
import { resolveCheckpoint } from "../../../lib/models/hub/resolve.ts";
import { type HubFile, sha256, startFakeHub } from "./hub_server.ts";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const text = (s: string): HubFile => ({ bytes: new TextEncoder().encode(s) });
function weights(n: number, seed: number): HubFile {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return { bytes, lfs: true };
}

function repoFiles(): Record<string, HubFile> {
  return {
    "config.json": text('{"model_type":"gemma3_text"}'),
    "tokenizer.json": text('{"model":{}}'),
    "tokenizer_config.json": text("{}"),
    "model.safetensors": weights(300_000, 1),
  };
}

async function withCache(fn: (cacheDir: string) => Promise<void>) {
  const cacheDir = await Deno.makeTempDir({ prefix: "hf_hub_" });
  try {
    await fn(cacheDir);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
}

Deno.test("resolveCheckpoint downloads a hub id into huggingface_hub's cache layout and reuses it offline", async () => {
  const files = repoFiles();
  const hub = startFakeHub({
    repos: { "org/tiny": { commit: COMMIT, files } },
  });
  try {
    await withCache(async (cacheDir) => {
      const seen: string[] = [];
      const r = await resolveCheckpoint("org/tiny", {
        cacheDir,
        endpoint: hub.endpoint,
        onProgress: (file, b, t) => {
          if (b === t) seen.push(file);
        },
      });
      const repo = repoFolder(cacheDir, "org/tiny");
      assert.equal(r.dir, join(repo, "snapshots", COMMIT));
      assert.equal(r.commit, COMMIT);
      assert.equal(await Deno.readTextFile(join(repo, "refs", "main")), COMMIT);
      // Snapshot entries are relative symlinks into blobs/, the LFS blob named by its sha256.
      const link = await Deno.readLink(join(r.dir, "model.safetensors"));
      assert.equal(
        link,
        join("..", "..", "blobs", sha256(files["model.safetensors"].bytes)),
      );
      for (const [name, f] of Object.entries(files)) {
        assert.deepEqual(await Deno.readFile(join(r.dir, name)), f.bytes, name);
      }
      assert.ok(seen.includes("model.safetensors"));
      // The CDN got the LFS file through the hub's redirect.
      assert.ok(
        hub.log.requests.some((q) =>
          q.path === "/cdn/org/tiny/model.safetensors"
        ),
      );

      const before = hub.log.requests.length;
      const again = await resolveCheckpoint("org/tiny", {
        cacheDir,
        endpoint: hub.endpoint,
        offline: true,
      });
      assert.equal(again.dir, r.dir);
      assert.equal(
        hub.log.requests.length,
        before,
        "a cached checkpoint makes no request",
      );
    });
  } finally {
    await hub.close();
  }
});

Deno.test("resolveCheckpoint reuses a cache written as Python's huggingface_hub writes it", async () => {
  await withCache(async (cacheDir) => {
    const repo = repoFolder(cacheDir, "google/gemma-3-270m-it");
    const snap = join(repo, "snapshots", COMMIT);
    await Deno.mkdir(join(repo, "blobs"), { recursive: true });
    await Deno.mkdir(join(repo, "refs"), { recursive: true });
    await Deno.mkdir(snap, { recursive: true });
    await Deno.writeTextFile(join(repo, "refs", "main"), COMMIT);
    for (const [name, f] of Object.entries(repoFiles())) {
      const etag = sha256(f.bytes);
      await Deno.writeFile(join(repo, "blobs", etag), f.bytes);
      await Deno.symlink(join("..", "..", "blobs", etag), join(snap, name));
    }
    const r = await resolveCheckpoint("google/gemma-3-270m-it", {
      cacheDir,
      endpoint: "http://127.0.0.1:9", // nothing listens: a request would fail
    });
    assert.deepEqual(r, {
      dir: snap,
      repoId: "google/gemma-3-270m-it",
      commit: COMMIT,
    });
  });
});

Deno.test("resolveCheckpoint resumes an interrupted download with Range", async () => {
  const files = repoFiles();
  const hub = startFakeHub({
    repos: { "org/tiny": { commit: COMMIT, files } },
    breakAfter: { "org/tiny/model.safetensors": 100_000 },
  });
  try {
    await withCache(async (cacheDir) => {
      await assert.rejects(
        resolveCheckpoint("org/tiny", { cacheDir, endpoint: hub.endpoint }),
        /Cannot download org\/tiny\/model.safetensors .*broke off at 100000 bytes.*run again to resume/,
      );
      const blob = join(
        repoFolder(cacheDir, "org/tiny"),
        "blobs",
        sha256(files["model.safetensors"].bytes),
      );
      assert.equal((await Deno.stat(`${blob}.incomplete`)).size, 100_000);
      const r = await resolveCheckpoint("org/tiny", {
        cacheDir,
        endpoint: hub.endpoint,
      });
      assert.ok(
        hub.log.requests.some((q) =>
          q.path.startsWith("/cdn/") && q.range === "bytes=100000-"
        ),
      );
      assert.deepEqual(
        await Deno.readFile(join(r.dir, "model.safetensors")),
        files["model.safetensors"].bytes,
      );
      await assert.rejects(
        Deno.stat(`${blob}.incomplete`),
        Deno.errors.NotFound,
      );
    });
  } finally {
    await hub.close();
  }
});

Deno.test("resolveCheckpoint rejects a file whose sha256 differs and lands nothing", async () => {
  const hub = startFakeHub({
    repos: { "org/tiny": { commit: COMMIT, files: repoFiles() } },
    corrupt: new Set(["org/tiny/model.safetensors"]),
  });
  try {
    await withCache(async (cacheDir) => {
      await assert.rejects(
        resolveCheckpoint("org/tiny", { cacheDir, endpoint: hub.endpoint }),
        /Cannot download org\/tiny\/model.safetensors .*its sha256 is [0-9a-f]{64}, the hub announced [0-9a-f]{64}/,
      );
      const repo = repoFolder(cacheDir, "org/tiny");
      const blobs = [...Deno.readDirSync(join(repo, "blobs"))].map((e) =>
        e.name
      );
      assert.equal(blobs.length, 3, `only the three good files: ${blobs}`);
      await assert.rejects(
        Deno.lstat(join(repo, "snapshots", COMMIT, "model.safetensors")),
        Deno.errors.NotFound,
      );
    });
  } finally {
    await hub.close();
  }
});

Deno.test("resolveCheckpoint needs a token for a gated repository and sends it", async () => {
  const hub = startFakeHub({
    repos: {
      "google/gated": { commit: COMMIT, files: repoFiles(), gated: true },
    },
    token: "hf_test",
  });
  try {
    await withCache(async (cacheDir) => {
      await assert.rejects(
        resolveCheckpoint("google/gated", {
          cacheDir,
          endpoint: hub.endpoint,
          token: "",
        }),
        /Cannot download google\/gated\/config.json .*401 .*set HF_TOKEN/,
      );
      assert.equal(hub.log.requests[0].auth, null);
      const before = hub.log.requests.length;
      const r = await resolveCheckpoint("google/gated", {
        cacheDir,
        endpoint: hub.endpoint,
        token: "hf_test",
      });
      const hubRequests = hub.log.requests.slice(before).filter((q) =>
        q.path.includes("/resolve/")
      );
      assert.ok(hubRequests.length >= 4);
      assert.ok(hubRequests.every((q) => q.auth === "Bearer hf_test"));
      assert.ok((await Deno.stat(join(r.dir, "model.safetensors"))).isFile);
    });
  } finally {
    await hub.close();
  }
});

Deno.test("resolveCheckpoint fetches the shards a safetensors index names", async () => {
  const files: Record<string, HubFile> = {
    "config.json": text("{}"),
    "tokenizer.json": text("{}"),
    "model.safetensors.index.json": text(JSON.stringify({
      weight_map: {
        a: "model-00001-of-00002.safetensors",
        b: "model-00002-of-00002.safetensors",
      },
    })),
    "model-00001-of-00002.safetensors": weights(5000, 2),
    "model-00002-of-00002.safetensors": weights(7000, 3),
  };
  const hub = startFakeHub({
    repos: { "org/sharded": { commit: COMMIT, files } },
  });
  try {
    await withCache(async (cacheDir) => {
      const r = await resolveCheckpoint("org/sharded", {
        cacheDir,
        endpoint: hub.endpoint,
      });
      for (const name of Object.keys(files)) {
        assert.deepEqual(
          await Deno.readFile(join(r.dir, name)),
          files[name].bytes,
          name,
        );
      }
      await assert.rejects(
        resolveCheckpoint("org/none", { cacheDir, endpoint: hub.endpoint }),
        /Cannot download org\/none\/config.json .*404/,
      );
    });
  } finally {
    await hub.close();
  }
});

Deno.test("hubCacheDir follows HF_HUB_CACHE, then HF_HOME", () => {
  const saved = {
    hub: Deno.env.get("HF_HUB_CACHE"),
    home: Deno.env.get("HF_HOME"),
  };
  try {
    Deno.env.delete("HF_HUB_CACHE");
    Deno.env.set("HF_HOME", "/tmp/hfhome");
    assert.equal(hubCacheDir(), "/tmp/hfhome/hub");
    Deno.env.set("HF_HUB_CACHE", "/tmp/hubcache");
    assert.equal(hubCacheDir(), "/tmp/hubcache");
  } finally {
    for (
      const [k, v] of [["HF_HUB_CACHE", saved.hub], [
        "HF_HOME",
        saved.home,
      ]] as const
    ) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
  }
});
