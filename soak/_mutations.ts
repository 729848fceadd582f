/**
 * The fuzz soak's mutation classes: each takes a real capture response and
 * a seeded random source and returns one corrupted variant, as a parsed
 * object (for value-level faults) or as body text or bytes (for faults that
 * only exist in the serialized form: truncations, escapes, flipped bits).
 *
 * @module
 */

import { gunzipSync, gzipSync } from "node:zlib";

/** One mutated input, in the form the mutation produced. */
export type Mutated =
  | { kind: "object"; value: Record<string, unknown> }
  | { kind: "text"; text: string }
  | { kind: "bytes"; bytes: Uint8Array };

/** Seeded helpers a mutation draws from. */
export class Dice {
  #random: () => number;
  constructor(random: () => number) {
    this.#random = random;
  }
  /** Uniform in [0, 1). */
  next(): number {
    return this.#random();
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.#random() * n);
  }
  /** One of the items. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  /** True with probability p. */
  chance(p: number): boolean {
    return this.#random() < p;
  }
}

/** A copy deep enough that no mutation reaches the base (data strings are shared). */
export function cloneResponse(
  base: Record<string, unknown>,
): Record<string, unknown> {
  const list = base.attn_capture_data;
  return {
    ...structuredClone({ ...base, attn_capture_data: null }),
    attn_capture_data: Array.isArray(list)
      ? list.map((e) => {
        const { data, ...rest } = e as Record<string, unknown>;
        return { ...structuredClone(rest), data };
      })
      : list,
  };
}

type Entry = Record<string, unknown>;

function entries(value: Record<string, unknown>): Entry[] {
  return value.attn_capture_data as Entry[];
}

function pickEntry(value: Record<string, unknown>, dice: Dice): Entry {
  return dice.pick(entries(value));
}

function shapeOf(entry: Entry): number[] {
  return entry.shape as number[];
}

const HUGE = [
  2 ** 31,
  2 ** 32 + 1,
  1e9,
  2 ** 53,
  2 ** 53 + 2,
  1e15,
  1e300,
  Number.MAX_SAFE_INTEGER,
];

/** Payloads inflated once per distinct data string. */
const inflated = new Map<string, Uint8Array>();
function payloadOf(entry: Entry): Uint8Array {
  const data = entry.data as string;
  let raw = inflated.get(data);
  if (!raw) {
    raw = new Uint8Array(gunzipSync(Uint8Array.fromBase64(data)));
    inflated.set(data, raw);
  }
  return raw;
}

let bombData: string | undefined;
/** 64 MiB of zeros in one gzip member: 64 KiB, far past any fixture's shape. */
function bomb(): string {
  bombData ??= gzipSync(new Uint8Array(64 << 20), { level: 1 }).toBase64();
  return bombData;
}

function gz(bytes: Uint8Array, dice: Dice): string {
  return gzipSync(bytes, { level: dice.pick([1, 6, 9]) }).toBase64();
}

function object(value: Record<string, unknown>): Mutated {
  return { kind: "object", value };
}

function text(value: Record<string, unknown>): string {
  return JSON.stringify(value);
}

/** Each class: name -> mutation of a fresh clone of the base. */
export const MUTATIONS: Record<
  string,
  (value: Record<string, unknown>, dice: Dice) => Mutated
> = {
  "shape values": (value, dice) => {
    const e = pickEntry(value, dice);
    const shape = [...shapeOf(e)];
    const i = dice.int(3);
    const choice = dice.int(6);
    if (choice === 0) {
      e.shape = dice.pick([[1e9, 1e9, 1e9], [65536, 64, 65536], [
        2 ** 20,
        2 ** 20,
        2 ** 20,
      ], [1e6, 8, 1e6]]);
    } else if (choice === 1) shape[i] = dice.pick(HUGE);
    else if (choice === 2) {
      shape[i] = dice.pick([0, -1, -shape[i], 0.5, 3.5, 1e-300]);
    } else if (choice === 3) {
      shape[i] = Math.max(1, shape[i] + dice.pick([-2, -1, 1, 2]));
    } else if (choice === 4) shape[i] = shape[i] * dice.pick([2, 3, 1000]);
    else shape.reverse().splice(0, 3, shape[1], shape[2], shape[0]);
    if (choice !== 0) e.shape = shape;
    return object(value);
  },
  "shape types": (value, dice) => {
    const e = pickEntry(value, dice);
    const [a, b, c] = shapeOf(e);
    e.shape = dice.pick<unknown>([
      `${a},${b},${c}`,
      a,
      null,
      {},
      { 0: a, 1: b, 2: c },
      [[a], [b], [c]],
      [String(a), String(b), String(c)],
      [true, b, c],
      [a, null, c],
      [a, b, { n: c }],
      undefined,
      [],
    ]);
    if (e.shape === undefined) delete e.shape;
    return object(value);
  },
  "shape arity": (value, dice) => {
    const e = pickEntry(value, dice);
    const shape = shapeOf(e);
    const n = dice.pick([1, 2, 4, 5, 6]);
    e.shape = Array.from({ length: n }, (_, i) => shape[i % 3]);
    return object(value);
  },
  "token_meta types": (value, dice) => {
    const e = pickEntry(value, dice);
    if (dice.chance(0.25)) {
      e.token_meta = dice.pick<unknown>([null, 5, "meta", [], true]);
      return object(value);
    }
    const meta = e.token_meta as Record<string, unknown>;
    const key = dice.pick([
      "prompt_len",
      "total_len",
      "token_idx",
      "vision_ranges",
      "lang_ranges",
      "language_ranges",
      "token_idx_basis",
    ]);
    meta[key] = dice.pick<unknown>([
      "12",
      null,
      {},
      [1, "2"],
      [[0, 1]],
      [{ start: "0", end: 4 }],
      [5],
      7,
      true,
      1.5,
      "window_local",
    ]);
    return object(value);
  },
  "token_meta ranges": (value, dice) => {
    const e = pickEntry(value, dice);
    const meta = e.token_meta as Record<string, unknown>;
    const n = shapeOf(e)[2];
    const big = dice.pick([1e12, 2 ** 31, 2 ** 53, 1e300]);
    const choice = dice.int(7);
    if (choice === 0) meta.prompt_len = dice.pick([-1, n + 5, big, 0]);
    else if (choice === 1) {
      meta.total_len = dice.pick([-1, 0, n - 1, n * 2, big]);
    } else if (choice === 2) {
      meta[dice.pick(["lang_ranges", "vision_ranges"])] = [
        dice.pick([
          { start: 5, end: 2 },
          { start: -3, end: 2 },
          { start: 0, end: big },
          { start: big, end: big + 1 },
          { start: 0, end: n + 100 },
        ]),
      ];
    } else if (choice === 3) {
      const idx = meta.token_idx as number[] | undefined;
      if (Array.isArray(idx) && idx.length) {
        idx[dice.int(idx.length)] = dice.pick([-1, big, 1.5, n + 3]);
      } else meta.token_idx = [big];
    } else if (choice === 4) {
      const idx = meta.token_idx as number[] | undefined;
      meta.token_idx = Array.isArray(idx)
        ? idx.slice(0, dice.int(idx.length))
        : [];
    } else if (choice === 5) {
      meta.vision_ranges = [{ start: 0, end: 4 }, { start: 2, end: 6 }];
    } else {
      const idx = meta.token_idx as number[] | undefined;
      if (Array.isArray(idx)) idx.reverse();
      meta.prompt_len = meta.total_len;
    }
    return object(value);
  },
  "data types": (value, dice) => {
    const e = pickEntry(value, dice);
    if (dice.chance(0.3)) {
      e.dtype = dice.pick<unknown>([
        "float32",
        "torch.bfloat16",
        "torch.float32",
        16,
        null,
        "",
        ["float16"],
      ]);
      return object(value);
    }
    const junk = new Uint8Array(dice.pick([0, 3, 17, 18, 100, 5000]));
    for (let i = 0; i < junk.length; i++) junk[i] = dice.int(256);
    e.data = dice.pick<unknown>([
      12345,
      null,
      true,
      [],
      {},
      "",
      "not base64!!",
      "H4sI",
      junk.toBase64(),
      (e.data as string).slice(0, 40),
      ["H4sI"],
    ]);
    return object(value);
  },
  "truncations": (value, dice) => {
    if (dice.chance(0.4)) {
      const e = pickEntry(value, dice);
      const data = e.data as string;
      e.data = data.slice(0, dice.int(data.length));
      return object(value);
    }
    const body = text(value);
    // Cuts near the end hit the closing brackets, in the middle the data.
    const at = dice.chance(0.3)
      ? body.length - 1 - dice.int(Math.min(200, body.length))
      : dice.int(body.length);
    return { kind: "text", text: body.slice(0, at) };
  },
  "JSON structure": (value, dice) => {
    const choice = dice.int(8);
    if (choice === 0) {
      value.attn_capture_data = dice.pick<unknown>([
        {},
        "layers",
        5,
        [[]],
        [null],
        [[...entries(value)]],
        { 0: entries(value)[0] },
      ]);
      return object(value);
    }
    if (choice === 1) {
      return { kind: "text", text: `[${text(value)}]` };
    }
    const body = text(value);
    if (choice === 2) {
      // A duplicate key: JSON.parse keeps the last one.
      return {
        kind: "text",
        text: body.replace(
          '"attn_capture_data":',
          dice.pick([
            '"attn_capture_data": null, "attn_capture_data":',
            '"attn_capture_data":',
          ]),
        ).replace(
          /"shape":(\[[^\]]*\])/,
          dice.chance(0.5)
            ? '"shape":[1,1,1],"shape":$1'
            : '"shape":$1,"shape":[1e9,1e9,1e9]',
        ),
      };
    }
    // Structural characters removed, doubled or swapped.
    const structural = [];
    for (let i = 0; i < body.length && structural.length < 4000; i++) {
      if ("{}[],:".includes(body[i])) structural.push(i);
    }
    const at = dice.pick(structural);
    const replacement = choice === 3
      ? ""
      : choice === 4
      ? body[at] + body[at]
      : choice === 5
      ? dice.pick(["{", "}", "[", "]", ",", ":", '"'])
      : choice === 6
      ? `${body[at]} "extra": {"data": "QUJD", "shape": [1,1,1]}, `
      : ' "data": ';
    return {
      kind: "text",
      text: body.slice(0, at) + replacement + body.slice(at + 1),
    };
  },
  "JSON escapes": (value, dice) => {
    const body = text(value);
    const start = body.indexOf('"data":"') + 8;
    const end = body.indexOf('"', start);
    const choice = dice.int(6);
    if (choice === 0) {
      // Every slash escaped, as some servers write JSON: must still decode.
      const data = body.slice(start, end).replaceAll("/", "\\/");
      return {
        kind: "text",
        text: body.slice(0, start) + data + body.slice(end),
      };
    }
    const at = start + dice.int(Math.max(1, end - start));
    const insert = choice === 1
      ? `\\u00${body.charCodeAt(at).toString(16).padStart(2, "0")}`
      : choice === 2
      ? dice.pick(["\\x", "\\", "\\u12", "\\uZZZZ", "\\q"])
      : choice === 3
      ? '\\"'
      : choice === 4
      ? dice.pick(["\\n", "\\t", "\\r", " "])
      : dice.pick(["é", "\u2028", "\ud83d", "\u0000"]);
    const skip = choice === 1 ? 1 : 0;
    return {
      kind: "text",
      text: body.slice(0, at) + insert + body.slice(at + skip),
    };
  },
  "gzip of wrong lengths": (value, dice) => {
    const e = pickEntry(value, dice);
    const raw = payloadOf(e);
    const choice = dice.int(7);
    if (choice === 0) {
      const cut = dice.pick([1, 2, 3, 64, raw.length >> 1]);
      e.data = gz(raw.subarray(0, raw.length - cut), dice);
    } else if (choice === 1) {
      const extra = new Uint8Array(raw.length + dice.pick([1, 2, 4096]));
      extra.set(raw);
      e.data = gz(extra, dice);
    } else if (choice === 2) {
      // Two members, as Python accepts: the whole is then too long.
      const one = gzipSync(raw);
      const two = new Uint8Array(one.length * 2);
      two.set(one);
      two.set(one, one.length);
      e.data = two.toBase64();
    } else if (choice === 3) {
      const one = Uint8Array.fromBase64(e.data as string);
      const tail = new Uint8Array(one.length + dice.pick([1, 8, 100]));
      tail.set(one);
      e.data = tail.toBase64();
    } else if (choice === 4) {
      e.data = bomb();
    } else if (choice === 5) {
      // The gzip stream itself cut short (its trailer or deflate data).
      const one = Uint8Array.fromBase64(e.data as string);
      e.data = one.subarray(0, one.length - 1 - dice.int(one.length - 18))
        .toBase64();
    } else {
      // Whole, right-sized data under a shape that claims another size.
      const [a, b, c] = shapeOf(e);
      e.shape = dice.pick([[a, b, c * 2], [a * 2, b, c], [a, b * 2, c], [
        a,
        Math.max(1, b >> 1),
        c,
      ]]);
    }
    return object(value);
  },
  "random bits": (value, dice) => {
    const bytes = new TextEncoder().encode(text(value));
    const flips = 1 + dice.int(8);
    for (let i = 0; i < flips; i++) {
      bytes[dice.int(bytes.length)] ^= 1 << dice.int(8);
    }
    return { kind: "bytes", bytes };
  },
  "duplicate layers": (value, dice) => {
    const list = entries(value);
    const e = dice.pick(list);
    const choice = dice.int(4);
    if (choice === 0) list.splice(dice.int(list.length + 1), 0, { ...e });
    else if (choice === 1) {
      list.push({ ...e, shape: [...shapeOf(e)].reverse() });
    } else if (choice === 2) {
      const other = dice.pick(list);
      other.layer_idx = e.layer_idx;
      if (list.length === 1) list.push({ ...e });
    } else {
      e.layer_idx = dice.pick<unknown>([
        -1,
        1.5,
        "3",
        null,
        1e300,
        2 ** 53,
        undefined,
      ]);
      if (e.layer_idx === undefined) delete e.layer_idx;
    }
    return object(value);
  },
};
