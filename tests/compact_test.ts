/**
 * The compact text view: Python's number and string formatting, the ◀
 * rules, the codename row-to-position offset, and line-for-line agreement
 * with the reference script's own Python code on the same capture.
 */

import assert from "node:assert/strict";
import { seededRandom } from "../lib/random.ts";
import { gzipSync } from "node:zlib";
import {
  codenameLayerLines,
  fmt,
  formatFixed,
  needleLayerLines,
  pythonRepr,
  row,
} from "../lib/client/compact.ts";
import { extractAttentionFromResponse } from "../lib/sources/vllm/extract.ts";
import { AttentionLayer } from "../lib/data/layer.ts";
import { AttentionScores } from "../lib/data/scores.ts";
import { TokenMeta } from "../lib/data/token_meta.ts";

function layerOf(
  values: number[],
  shape: [number, number, number],
  meta: Record<string, unknown>,
  index = 0,
): AttentionLayer {
  const tokenMeta = TokenMeta.from(meta);
  const [tq, , tk] = shape;
  return new AttentionLayer({
    layer: index,
    model: null,
    scores: new AttentionScores(new Float32Array(values), shape, {
      keyOffset: Math.max(0, tokenMeta.totalLen - tk),
      queryPositions: Array.from(
        { length: tq },
        (_, r) => Math.max(0, tokenMeta.totalLen - tk) + tk - tq + r,
      ),
    }),
    tokenMeta,
  });
}

Deno.test("formatFixed() rounds exact ties to even as Python's .2f, else as toFixed", () => {
  const cases: [number, string][] = [
    [0.125, "0.12"],
    [0.375, "0.38"],
    [0.625, "0.62"],
    [0.875, "0.88"],
    [0.135, "0.14"],
    [0.145, "0.14"],
    [0.005, "0.01"],
    [1, "1.00"],
    [0, "0.00"],
    [0.9999, "1.00"],
  ];
  for (const [x, text] of cases) {
    assert.equal(formatFixed(x, 2), text, String(x));
  }
});

Deno.test("pythonRepr() quotes as Python's repr", () => {
  assert.equal(pythonRepr("Phantom"), "'Phantom'");
  assert.equal(pythonRepr("'Phantom'"), `"'Phantom'"`);
  assert.equal(pythonRepr(`'a"`), `'\\'a"'`);
  assert.equal(pythonRepr("\t\\"), "'\\t\\\\'");
  assert.equal(pythonRepr(""), "''");
});

Deno.test("fmt() and row() label as the reference", () => {
  const labels = ["<bos>", " alpha", "↵", "  "];
  assert.equal(fmt(1, labels), "alpha(1)");
  assert.equal(fmt(3, labels), "'  '(3)");
  assert.equal(fmt(9, labels), "None(9)");
  assert.equal(
    row([0.5, 0.3, 0.2], [0, 2, 1], labels, new Set([1])),
    "<bos>(0)=0.50 ↵(2)=0.20 alpha(1)=0.30◀",
  );
});

Deno.test("needleLayerLines() marks a head only when the needle is in its top-3 above 0.15", () => {
  // T=4, H=3, last query row: head 0 gives the needle (pos 1) 0.5; head 1
  // gives it 0.125 (in top-3, below 0.15); head 2 gives it 0.
  const t = 4;
  const h = 3;
  const v = new Array(t * h * t).fill(0);
  for (let q = 0; q < t - 1; q++) {
    for (let hh = 0; hh < h; hh++) v[(q * h + hh) * t] = 1;
  }
  const last = [[0.25, 0.5, 0.125, 0.125], [0.5, 0.125, 0.25, 0.125], [
    0.5,
    0,
    0.25,
    0.25,
  ]];
  last.forEach((w, hh) =>
    w.forEach((x, k) => v[((t - 1) * h + hh) * t + k] = x)
  );
  const layer = layerOf(v, [t, h, t], { prompt_len: 4, total_len: 4 }, 18);
  const labels = ["<bos>", "alpha", ":", "1"];
  const lines = needleLayerLines(layer, labels, new Set([1]));
  assert.equal(lines[0], "── L18 (T=4 H=3 prompt=4) ──");
  assert.match(lines[1], /^ {2}avg /);
  assert.match(lines[1], /alpha\(1\)=0\.21◀/);
  assert.equal(lines[2], "  h0  alpha(1)=0.50◀ <bos>(0)=0.25 1(3)=0.12");
  assert.equal(lines[3], "  h1  <bos>(0)=0.50 :(2)=0.25 1(3)=0.12");
  assert.equal(lines[4], "  h2  <bos>(0)=0.50 1(3)=0.25 :(2)=0.25");
  assert.equal(lines.length, 1 + 1 + h);
});

Deno.test("codenameLayerLines() shows only generated rows, at position row + (total_len - T)", () => {
  // total_len 6 but only T=4 rows captured: rows 0..3 are positions 2..5;
  // the prompt is 4 tokens, so rows 2 and 3 (positions 4, 5) are generated.
  const t = 4;
  const v = [
    1,
    0,
    0,
    0,
    0.5,
    0.5,
    0,
    0,
    0.25,
    0.25,
    0.5,
    0,
    0.125,
    0.125,
    0.25,
    0.5,
  ];
  const layer = layerOf(v, [t, 1, t], { prompt_len: 4, total_len: 6 }, 3);
  const labels = ["a", "b", "c", "d", "Ph", "antom"];
  assert.deepEqual(codenameLayerLines(layer, labels), [
    "── L3 (T=4 H=1 prompt=4) ──",
    "  'Ph'         [avg] → Ph(4)=0.50 d(3)=0.25 c(2)=0.25 antom(5)=0.00",
    "               [h0 ] → Ph(4)=0.50 d(3)=0.25 c(2)=0.25",
    "  'antom'      [avg] → antom(5)=0.50 Ph(4)=0.25 d(3)=0.12 c(2)=0.12",
    "               [h0 ] → antom(5)=0.50 Ph(4)=0.25 d(3)=0.12",
  ]);
});

/** The reference's fmt/row and both study loops, verbatim in behaviour. */
const REFERENCE = `
import base64, gzip, json, sys
import numpy as np
def fmt(k, m):
    raw = m.get(k)
    t = raw.strip() if raw is not None else None
    return f"{t or repr(raw) or '?'}({k})"
def row(w, indices, m, mark=None):
    return " ".join(f"{fmt(k, m)}={w[k]:.2f}{'◀' if mark and k in mark else ''}" for k in indices)
inp = json.load(sys.stdin)
item, m = inp["layer"], {int(k): v for k, v in inp["labels"].items()}
s = np.frombuffer(gzip.decompress(base64.b64decode(item["data"])), dtype=np.float16).astype(np.float32).reshape(item["shape"])
meta, li, out = item["token_meta"], item["layer_idx"], []
T, H, _ = s.shape
pl = meta["prompt_len"]
out.append(f"── L{li} (T={T} H={H} prompt={pl}) ──")
if inp["study"] == "needle":
    needle = {k for k, t in m.items() if t.strip() == "alpha"}
    q = T - 1
    avg = s[q].mean(0)
    out.append(f"  avg {row(avg, np.argsort(avg, kind='stable')[::-1][:5], m, needle)}")
    for h in range(H):
        w = s[q, h]
        top3 = np.argsort(w, kind='stable')[::-1][:3]
        hit = any(k in needle and w[k] > 0.15 for k in top3)
        out.append(f"  h{h:<2} {row(w, top3, m, needle if hit else None)}")
else:
    offset = meta.get("total_len", T) - T
    for qi in range(T):
        abs_qi = qi + offset
        if abs_qi < pl:
            continue
        tok_label = m.get(abs_qi, "?")
        avg = s[qi].mean(0)
        top5_rel = np.argsort(avg, kind='stable')[::-1][:5]
        top5_abs = top5_rel + offset
        w_g = {int(a): float(avg[r]) for r, a in zip(top5_rel, top5_abs)}
        out.append(f"  {tok_label!r:<12} [avg] → {row(w_g, top5_abs, m)}")
        for h in range(H):
            w_h = s[qi, h]
            top3_rel = np.argsort(w_h, kind='stable')[::-1][:3]
            top3_abs = top3_rel + offset
            w_hg = {int(a): float(w_h[r]) for r, a in zip(top3_rel, top3_abs)}
            out.append(f"  {'':<12} [h{h:<2}] → {row(w_hg, top3_abs, m)}")
print(json.dumps(out, ensure_ascii=False))
`;

async function referenceLines(input: unknown): Promise<string[]> {
  const child = new Deno.Command("python3", {
    args: ["-c", REFERENCE],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(input)));
  await writer.close();
  const out = await child.output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

for (const study of ["needle", "codename"] as const) {
  Deno.test(`${study} view agrees line for line with the reference's Python code`, async () => {
    const next = seededRandom(study === "needle" ? 17 : 29);
    // The reference's needle view indexes keys by row (no offset), which is
    // right only when every row was captured, so it is compared there; the
    // codename view applies the offset, so it is compared with rows missing.
    const [t, h, promptLen] = [14, 4, 12];
    const totalLen = study === "needle" ? t : t + 2;
    const values = new Float32Array(t * h * t);
    for (let q = 0; q < t; q++) {
      for (let hh = 0; hh < h; hh++) {
        const base = (q * h + hh) * t;
        let sum = 0;
        for (let k = 0; k <= q; k++) {
          sum += values[base + k] = Math.exp(5 * next());
        }
        for (let k = 0; k <= q; k++) values[base + k] /= sum;
      }
    }
    const wire = {
      layer_idx: 7,
      data: gzipSync(new Uint8Array(new Float16Array(values).buffer))
        .toBase64(),
      shape: [t, h, t],
      token_meta: { prompt_len: promptLen, total_len: totalLen },
    };
    const labels = Array.from(
      { length: totalLen + 1 },
      (_, i) => i % 5 === 3 ? " alpha" : `t${i}`,
    );
    const capture = await extractAttentionFromResponse({
      attn_capture_data: [wire],
    });
    const layer = capture![7];
    const ours = study === "needle"
      ? needleLayerLines(
        layer,
        labels,
        new Set(labels.flatMap((l, i) => l.trim() === "alpha" ? [i] : [])),
      )
      : codenameLayerLines(layer, labels);
    const theirs = await referenceLines({
      study,
      layer: wire,
      labels: Object.fromEntries(labels.map((l, i) => [i, l])),
    });
    assert.deepEqual(ours, theirs);
    assert.ok(ours.length > 2);
  });
}
