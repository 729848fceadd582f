/**
 * Inflaters side by side on the layers of a bench capture (T=4096, H=8):
 * `node:zlib`'s `gunzipSync` (what the decoder uses), native libdeflate
 * through Deno FFI (Debian's `libdeflate0`, when installed), and fflate
 * (pure JS, already a dependency). One thread, the same gzip bytes, runs
 * alternating; medians and the speedup over `node:zlib`. Each result is
 * checked byte for byte against `node:zlib`'s.
 *
 *   deno run -A bench/inflaters.ts [--layers=3,9] [--runs=5]
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import { gunzipSync } from "node:zlib";
import { gunzipSync as fflateGunzip } from "fflate";
import { benchCapture } from "./_data.ts";
import { dataSpans } from "./_floor.ts";

const { values } = parseArgs({
  options: {
    layers: { type: "string", default: "3,9" },
    runs: { type: "string", default: "5" },
  },
});
const runs = Number(values.runs);

/** libdeflate's gzip decompressor through FFI, or null when absent. */
function libdeflate(): ((gz: Uint8Array, size: number) => Uint8Array) | null {
  let lib;
  try {
    lib = Deno.dlopen("libdeflate.so.0", {
      libdeflate_alloc_decompressor: { parameters: [], result: "pointer" },
      libdeflate_gzip_decompress: {
        parameters: ["pointer", "buffer", "usize", "buffer", "usize", "buffer"],
        result: "i32",
      },
    });
  } catch {
    return null;
  }
  const d = lib.symbols.libdeflate_alloc_decompressor();
  const actual = new BigUint64Array(1);
  return (gz, size) => {
    const out = new Uint8Array(size);
    const rc = lib.symbols.libdeflate_gzip_decompress(
      d,
      gz,
      BigInt(gz.length),
      out,
      BigInt(size),
      actual,
    );
    if (rc !== 0 || Number(actual[0]) !== size) {
      throw new Error(`libdeflate: result ${rc}, ${actual[0]} bytes`);
    }
    return out;
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const native = libdeflate();
const candidates: [string, (gz: Uint8Array, size: number) => Uint8Array][] = [
  ["node:zlib gunzipSync", (gz) => gunzipSync(gz)],
  ...(native
    ? [["libdeflate (FFI, Debian libdeflate0)", native] as [
      string,
      typeof native,
    ]]
    : []),
  ["fflate gunzipSync (JS)", (gz) => fflateGunzip(gz)],
];
const latin1 = new TextDecoder("latin1");
const rows: string[] = [];
for (const layers of values.layers.split(",").map(Number)) {
  const body = await Deno.readFile(await benchCapture(4096, 8, layers));
  const gzs = dataSpans(body).map(([a, b]) =>
    Uint8Array.fromBase64(latin1.decode(body.subarray(a, b)))
  );
  const sizes = gzs.map((gz) => gunzipSync(gz).length);
  const times = candidates.map(() => [] as number[]);
  for (let run = -1; run < runs; run++) {
    for (const [c, [name, inflate]] of candidates.entries()) {
      const t0 = performance.now();
      for (const [i, gz] of gzs.entries()) {
        const out = inflate(gz, sizes[i]);
        if (run < 0) {
          // Byte for byte as node:zlib, checked once outside the timing.
          const want = gunzipSync(gz);
          if (out.length !== want.length || Buffer.compare(out, want) !== 0) {
            throw new Error(`${name} differs from node:zlib on layer ${i}`);
          }
        }
      }
      if (run >= 0) times[c].push(performance.now() - t0);
    }
  }
  const base = median(times[0]);
  for (const [c, [name]] of candidates.entries()) {
    const m = median(times[c]);
    rows.push(
      `| T=4096 x ${layers} (${
        (gzs.reduce((n, g) => n + g.length, 0) / 2 ** 20).toFixed(0)
      } MiB gzip) | ${name} | ${m.toFixed(0)} | ${(base / m).toFixed(2)}x |`,
    );
  }
}
console.log(
  `\nInflaters, one thread, median of ${runs} alternating runs, ms (speedup over node:zlib):\n`,
);
console.log("| layers | inflater | ms | speedup |");
console.log("|---|---|---|---|");
for (const row of rows) console.log(row);
