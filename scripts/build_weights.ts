/**
 * Builds the demo model's weights by construction (no training) and writes
 * `server/model/weights.json`. The derivation is explained in
 * `server/model/README.md`; every number below is named there.
 *
 * Usage: `deno run -A scripts/build_weights.ts [--out PATH] [--check]`
 * (`--check` rebuilds in memory and fails if the committed file differs).
 *
 * @module
 */

import {
  CODE_BLOCK,
  CODE_DIMS,
  codeOf,
  LINE_SIZE,
  lineIdOf,
  POSITION_PAIRS,
  SLOT,
  WINDOW,
} from "../server/model/layout.ts";
import {
  buildVocab,
  byteTokenId,
  SPECIAL,
  TERMINAL_WORDS,
} from "../server/model/vocab.ts";
import { seededRandom } from "../lib/random.ts";

/** Attention heads per layer. */
const HEADS = 12;
/** Head width: the induction head compares WINDOW codes, the line ids and one sink dimension. */
const HEAD_DIM = WINDOW * CODE_DIMS + LINE_SIZE + 1;
/** Longest sequence; the position code is checked to stay sharp up to here. */
const MAX_POSITIONS = 8192;
/** Previous-token heads: logits between the right key and the best wrong one. */
const POSITION_MARGIN = 120;
/** Induction head: logits for a full-window match. */
const INDUCTION_GAIN = 1e5;
/** Induction head: weight of the token d steps back is DECAY^d (below 0.4 so a nearer match always wins). */
const DECAY = 0.38;
/** Induction head: `<bos>` scores this share of a perfect nearest-token match. */
const INDUCTION_SINK = 0.973;
/** Line head: weight of <bos> relative to one token of the line. */
const LINE_SINK = 1e5;
/** Induction head: logits per token the query's line shares with the key's line. */
const LINE_GAIN = 25;
/** Logit of the copied token. */
const COPY_GAIN = 30;
/** Keeps masked keys out of a softmax whatever their other terms. */
const MASK = 1e7;
/** Logit of `<end_of_turn>` when nothing is copied. */
const EOT_BIAS = 8;
/** Extra end-of-turn logit after a terminal token (closing quote, colour word). */
const TERMINAL_GAIN = 60;
/** Logit of forbidden ids (pad, bos, image tokens, ...). */
const FORBIDDEN = -50;
/** Image head: patch score and `<bos>` score. */
const PATCH_SCORE = 115, IMAGE_SINK = 110;
/** Colour words: logit while an image is in view, and per unit of colour excess. */
const COLOUR_BASE = 12, COLOUR_GAIN = 12;

type Tensor = { shape: [number, number]; entries: Map<number, number> };

function tensor(rows: number, cols: number): Tensor {
  return { shape: [rows, cols], entries: new Map() };
}

function set(t: Tensor, r: number, c: number, v: number): void {
  if (r < 0 || r >= t.shape[0] || c < 0 || c >= t.shape[1]) {
    throw new RangeError(`Cannot set [${r}, ${c}]: tensor is ${t.shape}`);
  }
  const key = r * t.shape[1] + c;
  const next = (t.entries.get(key) ?? 0) + v;
  if (next === 0) t.entries.delete(key);
  else t.entries.set(key, next);
}

/**
 * Picks POSITION_PAIRS frequencies so that the sum of cosines
 * F(d) = sum cos(w d) peaks at d = 0 (value POSITION_PAIRS) and stays as low
 * as possible for every other distance up to MAX_POSITIONS.
 */
function positionFrequencies(): { freqs: number[]; offPeak: number } {
  let best = { freqs: [] as number[], offPeak: Infinity };
  for (let seed = 1; seed <= 40; seed++) {
    const next = seededRandom(seed);
    const freqs = Array.from(
      { length: POSITION_PAIRS },
      () => Math.fround(0.05 + next() * (Math.PI - 0.1)),
    );
    let offPeak = -Infinity;
    for (let d = 1; d <= MAX_POSITIONS; d++) {
      let f = 0;
      for (const w of freqs) f += Math.cos(w * d);
      if (f > offPeak) offPeak = f;
    }
    if (offPeak < best.offPeak) best = { freqs, offPeak };
  }
  return best;
}

function build() {
  const vocab = buildVocab();
  const V = vocab.length;
  if (V > CODE_BLOCK * CODE_BLOCK) {
    throw new RangeError(`Cannot code ${V} tokens`);
  }
  const D = SLOT.width;
  const W = HEADS * HEAD_DIM;
  const sqrtDh = Math.sqrt(HEAD_DIM);
  const { freqs, offPeak } = positionFrequencies();
  const POSITION_GAIN = POSITION_MARGIN / (POSITION_PAIRS - offPeak);

  const noCode = new Set<number>([
    SPECIAL.bos,
    SPECIAL.imagePatch,
    SPECIAL.pad,
  ]);
  for (const word of TERMINAL_WORDS) {
    if (!vocab.includes(word)) {
      throw new RangeError(
        `Cannot build the colour answers: ${
          JSON.stringify(word)
        } is not a token; keep the colour words in the word list`,
      );
    }
  }
  const terminal = new Set<number>([
    byteTokenId("'".charCodeAt(0)),
    byteTokenId('"'.charCodeAt(0)),
    ...TERMINAL_WORDS.map((w) => vocab.indexOf(w)),
  ]);

  // Token embedding: identity code, the constant, flags.
  const embed = tensor(V, D);
  for (let id = 0; id < V; id++) {
    if (!noCode.has(id)) {
      for (const i of codeOf(id)) set(embed, id, SLOT.tok + i, 1);
      set(embed, id, SLOT.oneHot + lineIdOf(id), 1);
    }
    set(embed, id, SLOT.one, 1);
    if (terminal.has(id)) set(embed, id, SLOT.terminal, 1);
  }
  // <bos> sits at clock 0 and cancels its position code: it has no position.
  for (let p = 0; p < POSITION_PAIRS; p++) {
    set(embed, SPECIAL.bos, SLOT.position + 2 * p, -1);
    set(embed, SPECIAL.bos, SLOT.linePosition + 2 * p, -1);
  }

  // Segment embedding (text, frame, vision, bos).
  const segment = tensor(4, D);
  set(segment, 0, SLOT.text, 1);
  set(segment, 1, SLOT.frame, 1);
  set(segment, 2, SLOT.vision, 1);
  set(segment, 3, SLOT.bos, 1);

  // Patch features (mean R, G, B) into the patch slot.
  const patch = tensor(3, D);
  for (let c = 0; c < 3; c++) set(patch, c, SLOT.patchRgb + c, 1);

  // Layer 0: head k attends to the content token k steps back and writes its
  // identity into prev[k].
  const l0 = {
    wq: tensor(D, W),
    wk: tensor(D, W),
    wv: tensor(D, W),
    wo: tensor(W, D),
  };
  const positionSink = POSITION_GAIN * (offPeak + POSITION_PAIRS) / 2;
  for (let k = 0; k <= WINDOW; k++) {
    const h = k * HEAD_DIM;
    for (let p = 0; p < POSITION_PAIRS; p++) {
      // q = rotate(PE(c), -k w): q . PE(c') = sum cos(w (c - k - c')).
      const cos = Math.cos(freqs[p] * k), sin = Math.sin(freqs[p] * k);
      const c = SLOT.position + 2 * p, s = c + 1;
      const g = POSITION_GAIN * sqrtDh;
      set(l0.wq, c, h + 2 * p, g * cos);
      set(l0.wq, s, h + 2 * p, g * sin);
      set(l0.wq, s, h + 2 * p + 1, g * cos);
      set(l0.wq, c, h + 2 * p + 1, -g * sin);
      set(l0.wk, c, h + 2 * p, 1);
      set(l0.wk, s, h + 2 * p + 1, 1);
    }
    const sinkDim = h + 2 * POSITION_PAIRS;
    set(l0.wq, SLOT.one, sinkDim, sqrtDh);
    set(l0.wk, SLOT.bos, sinkDim, positionSink);
    set(l0.wk, SLOT.frame, sinkDim, -MASK);
    for (let i = 0; i < CODE_DIMS; i++) {
      set(l0.wv, SLOT.tok + i, h + i, 1);
      set(l0.wo, h + i, SLOT.prev[k] + i, 1);
    }
  }

  // Layer 0, the line head (the last head): spreads over the tokens of the
  // current line, but rests mostly on <bos> (LINE_SINK), so what it writes is
  // about the sum of the line's identity codes over a constant: a count, not
  // a mean, so lines of different lengths compare fairly.
  {
    const h = WINDOW * HEAD_DIM + HEAD_DIM;
    const g = POSITION_GAIN * sqrtDh;
    for (let p = 0; p < POSITION_PAIRS; p++) {
      const c = SLOT.linePosition + 2 * p;
      set(l0.wq, c, h + 2 * p, g);
      set(l0.wq, c + 1, h + 2 * p + 1, g);
      set(l0.wk, c, h + 2 * p, 1);
      set(l0.wk, c + 1, h + 2 * p + 1, 1);
    }
    const sinkDim = h + 2 * POSITION_PAIRS;
    set(l0.wq, SLOT.one, sinkDim, sqrtDh);
    set(
      l0.wk,
      SLOT.bos,
      sinkDim,
      POSITION_GAIN * POSITION_PAIRS + Math.log(LINE_SINK),
    );
    set(l0.wk, SLOT.frame, sinkDim, -MASK);
    for (let i = 0; i < LINE_SIZE; i++) {
      set(l0.wv, SLOT.oneHot + i, h + i, 1);
      set(l0.wo, h + i, SLOT.line + i, 1);
    }
  }

  // Layer 1.
  const l1 = {
    wq: tensor(D, W),
    wk: tensor(D, W),
    wv: tensor(D, W),
    wo: tensor(W, D),
  };
  // h0, the induction head: query = tokens 0..WINDOW-1 back, key = tokens
  // 1..WINDOW back, weighted DECAY^d; value = the key token's identity.
  {
    const h = 0;
    const g = sqrtDh * INDUCTION_GAIN / 3; // codes have 3 ones
    for (let d = 0; d < WINDOW; d++) {
      const w = DECAY ** d;
      for (let i = 0; i < CODE_DIMS; i++) {
        set(l1.wq, SLOT.prev[d] + i, h + d * CODE_DIMS + i, g * w);
        set(l1.wk, SLOT.prev[d + 1] + i, h + d * CODE_DIMS + i, 1);
      }
    }
    const lineDims = h + WINDOW * CODE_DIMS;
    for (let i = 0; i < LINE_SIZE; i++) {
      set(
        l1.wq,
        SLOT.line + i,
        lineDims + i,
        sqrtDh * LINE_GAIN * LINE_SINK * LINE_SINK,
      );
      set(l1.wk, SLOT.line + i, lineDims + i, 1);
    }
    const sinkDim = lineDims + LINE_SIZE;
    set(l1.wq, SLOT.one, sinkDim, sqrtDh);
    set(l1.wk, SLOT.bos, sinkDim, INDUCTION_GAIN * INDUCTION_SINK);
    set(l1.wk, SLOT.frame, sinkDim, -MASK);
    set(l1.wk, SLOT.vision, sinkDim, -MASK);
    for (let i = 0; i < CODE_DIMS; i++) {
      set(l1.wv, SLOT.tok + i, h + i, 1);
      set(l1.wo, h + i, SLOT.out + i, 1);
    }
  }
  // h1, the image head: every query reads the image patches evenly (rests on
  // <bos> when there is no image) and writes their mean colour.
  {
    const h = HEAD_DIM;
    set(l1.wq, SLOT.one, h, sqrtDh);
    set(l1.wk, SLOT.vision, h, PATCH_SCORE);
    set(l1.wk, SLOT.bos, h, IMAGE_SINK);
    for (let c = 0; c < 3; c++) {
      set(l1.wv, SLOT.patchRgb + c, h + c, 1);
      set(l1.wo, h + c, SLOT.imageRgb + c, 1);
    }
    set(l1.wv, SLOT.vision, h + 3, 1);
    set(l1.wo, h + 3, SLOT.hasImage, 1);
  }
  // h2, the patch-to-text head: image patches read the conversation's text;
  // text queries rest on <bos>. Its output is not used by this demo.
  {
    const h = 2 * HEAD_DIM;
    set(l1.wq, SLOT.one, h, sqrtDh);
    set(l1.wq, SLOT.vision, h + 1, sqrtDh);
    set(l1.wk, SLOT.bos, h, 110);
    set(l1.wk, SLOT.text, h + 1, 114);
  }
  // h3, the same-token head: attends to every earlier copy of the current
  // token (and itself). Output unused.
  {
    const h = 3 * HEAD_DIM;
    for (let i = 0; i < CODE_DIMS; i++) {
      set(l1.wq, SLOT.tok + i, h + i, sqrtDh * 4);
      set(l1.wk, SLOT.tok + i, h + i, 1);
    }
    set(l1.wq, SLOT.one, h + CODE_DIMS, sqrtDh);
    set(l1.wk, SLOT.bos, h + CODE_DIMS, 6);
  }
  // h4, the delimiter head: spreads over the line breaks so far. Output unused.
  {
    const h = 4 * HEAD_DIM;
    set(l1.wq, SLOT.one, h, sqrtDh);
    for (const i of codeOf(byteTokenId(10))) set(l1.wk, SLOT.tok + i, h, 6);
    set(l1.wk, SLOT.bos, h, 12);
  }
  // h5..: resting heads, always on <bos> (the first-token sink).
  for (let hh = 5; hh < HEADS; hh++) {
    set(l1.wq, SLOT.one, hh * HEAD_DIM, sqrtDh);
    set(l1.wk, SLOT.bos, hh * HEAD_DIM, 120);
  }

  // Unembedding: the copied identity picks the token; end of turn follows the
  // newline direction a little more strongly, plus terminal tokens.
  const unembed = tensor(D, V);
  const newline = byteTokenId(10);
  const forbidden = new Set<number>([
    SPECIAL.pad,
    SPECIAL.eos,
    SPECIAL.bos,
    SPECIAL.unk,
    SPECIAL.startOfTurn,
    SPECIAL.startOfImage,
    SPECIAL.endOfImage,
    SPECIAL.imagePatch,
  ]);
  for (let id = 0; id < V; id++) {
    if (forbidden.has(id)) {
      set(unembed, SLOT.one, id, FORBIDDEN);
      continue;
    }
    if (id === SPECIAL.endOfTurn) continue;
    for (const i of codeOf(id)) set(unembed, SLOT.out + i, id, COPY_GAIN / 3);
  }
  for (const i of codeOf(newline)) {
    set(unembed, SLOT.out + i, SPECIAL.endOfTurn, 1.05 * COPY_GAIN / 3);
  }
  set(unembed, SLOT.one, SPECIAL.endOfTurn, EOT_BIAS);
  set(unembed, SLOT.terminal, SPECIAL.endOfTurn, TERMINAL_GAIN);
  TERMINAL_WORDS.forEach((word, c) => {
    const id = vocab.indexOf(word);
    set(unembed, SLOT.hasImage, id, COLOUR_BASE);
    for (let o = 0; o < 3; o++) {
      set(
        unembed,
        SLOT.imageRgb + o,
        id,
        COLOUR_GAIN * ((o === c ? 1 : 0) - 1 / 3),
      );
    }
  });

  const tensors = {
    embed,
    segment,
    patch,
    "layers.0.wq": l0.wq,
    "layers.0.wk": l0.wk,
    "layers.0.wv": l0.wv,
    "layers.0.wo": l0.wo,
    "layers.1.wq": l1.wq,
    "layers.1.wk": l1.wk,
    "layers.1.wv": l1.wv,
    "layers.1.wo": l1.wo,
    unembed,
  };
  const serialized: Record<
    string,
    { shape: number[]; index: number[]; value: number[] }
  > = {};
  for (const [name, t] of Object.entries(tensors)) {
    const keys = [...t.entries.keys()].sort((a, b) => a - b);
    serialized[name] = {
      shape: t.shape,
      index: keys,
      value: keys.map((k) =>
        Number(Math.fround(t.entries.get(k)!).toPrecision(7))
      ),
    };
  }
  return {
    format: "attnscope-demo-weights/1",
    note: "Constructed by scripts/build_weights.ts; see server/model/README.md",
    config: {
      name: "attnscope-demo",
      dModel: D,
      numLayers: 2,
      numHeads: HEADS,
      headDim: HEAD_DIM,
      vocabSize: V,
      maxPositions: MAX_POSITIONS,
      positionSlot: SLOT.position,
      linePositionSlot: SLOT.linePosition,
      positionFrequencies: freqs.map((f) => Number(f.toPrecision(9))),
      positionOffPeak: Number(offPeak.toFixed(4)),
    },
    vocab,
    tensors: serialized,
  };
}

/** The weights file's text, byte for byte. */
export function buildWeightsText(): string {
  return JSON.stringify(build()) + "\n";
}

if (import.meta.main) {
  const args = Deno.args;
  const outIndex = args.indexOf("--out");
  const out = outIndex >= 0
    ? args[outIndex + 1]
    : new URL("../server/model/weights.json", import.meta.url).pathname;
  const text = buildWeightsText();
  if (args.includes("--check")) {
    const current = await Deno.readTextFile(out);
    if (current !== text) {
      console.error(
        `${out} differs from a fresh build; run deno task build-weights`,
      );
      Deno.exit(1);
    }
    console.log(`${out} matches a fresh build`);
  } else {
    await Deno.writeTextFile(out, text);
    console.log(`wrote ${out} (${text.length} bytes)`);
  }
}
