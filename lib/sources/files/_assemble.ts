/**
 * Turns the attention tensors of a file into layers: maps tensor names to
 * layers (and generate() steps), checks ranks, shapes and causality, and
 * allocates each layer's `[Tq, H, Tk]` output once, which the tensors'
 * bytes are then streamed into.
 *
 * @module
 */

import { type ElementType, TensorSink } from "./_tensor_sink.ts";
import { type AttentionLayout, defaultLayout, parseLayout } from "./layout.ts";
import { warn } from "../../warn.ts";

/** Where a tensor goes. */
export interface TensorPlace {
  /** The layer (from the name, the explicit map, or 0 for a lone tensor). */
  layer: number;
  /** The generate() step, or `null` for a whole forward pass. */
  step: number | null;
}

/** One assembled layer before it becomes an `AttentionLayer`. */
export interface AssembledLayer {
  /** The layer index. */
  layer: number;
  /** `[Tq, H, Tk]` values. */
  data: Float32Array | Float16Array;
  /** `[Tq, H, Tk]`. */
  shape: [number, number, number];
}

/** What the assembler needs from the caller's options. */
export interface AssembleOptions {
  /** einops-style layout, or `undefined` for the default per rank. */
  layout?: string;
  /** Batch index kept. */
  batch: number;
  /** Explicit name-to-layer map. */
  layers?: Readonly<Record<string, number>>;
  /** Output element type. */
  dtype: "float32" | "float16";
}

/** Metadata entry names an `.npz` may carry beside the attention. */
export const METADATA_NAMES: readonly string[] = ["tokens", "prompt_len"];

const LAYER_PATTERN =
  /(?:^|[./_-])(?:layers|layer|blocks|block|attentions|attention|attn|h|pattern)[._-]?(\d+)(?!\d)/i;
const STEP_PATTERN = /(?:^|[./_-])(?:steps|step)[._-]?(\d+)(?!\d)/i;

/**
 * Where a tensor named `name` goes, by the naming conventions seen in the
 * wild (`layers.N`, `h.N`, `blocks.N`, `attentions.N`, `pattern_N`, plain
 * `N`; `steps.S` or `step_S` for generate() steps) or an explicit map.
 *
 * @param name The tensor name (without `.npy`).
 * @param map The explicit `{ name: layer }` map, if given.
 * @param lone Whether this is the file's only attention tensor (it is then layer 0).
 * @returns The place, or `null` when the explicit map leaves it out.
 * @throws {TypeError} When no convention names a layer.
 *
 * @example
 * ```ts
 * import { placeTensor } from "./_assemble.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(placeTensor("blocks.3.attn.hook_pattern", undefined, false), { layer: 3, step: null });
 * assert.deepEqual(placeTensor("steps.2.layers.1", undefined, false), { layer: 1, step: 2 });
 * assert.deepEqual(placeTensor("pattern_7", undefined, false), { layer: 7, step: null });
 * assert.equal(placeTensor("extra", { main: 0 }, false), null);
 * ```
 */
export function placeTensor(
  name: string,
  map: Readonly<Record<string, number>> | undefined,
  lone: boolean,
): TensorPlace | null {
  const stepMatch = STEP_PATTERN.exec(name);
  const step = stepMatch ? Number(stepMatch[1]) : null;
  if (map) {
    if (!Object.hasOwn(map, name)) return null;
    return { layer: map[name], step };
  }
  const rest = stepMatch ? name.replace(stepMatch[0], "") : name;
  const layerMatch = LAYER_PATTERN.exec(rest);
  if (layerMatch) return { layer: Number(layerMatch[1]), step };
  if (/^\d+$/.test(rest)) return { layer: Number(rest), step };
  if (/^[./_-]?\d+$/.test(rest)) return { layer: Number(rest.slice(1)), step };
  if (lone || (step !== null && rest.replace(/[./_-]/g, "") === "")) {
    return { layer: 0, step };
  }
  throw new TypeError(
    `its name names no layer (attnscope reads layers.N, h.N, blocks.N, attentions.N, pattern_N or N, with steps.S for generate() steps)`,
  );
}

/**
 * Collects tensors into layers. Errors are `Cannot load <file>: tensor
 * "<name>" <what>; <what to do>`.
 */
export class LayerAssembler {
  #where: string;
  #options: AssembleOptions;
  #layout: AttentionLayout | null;
  #out = new Map<number, AssembledLayer>();
  #shapeFrom: string | null = null;
  #shape: [number, number, number] | null = null;
  #steps = new Map<number, Set<number>>();
  #stepCount: Map<number, number>;
  #promptLen: number | null = null;
  #generate: boolean;

  /**
   * Prepares the assembly.
   *
   * @param where The file, for messages.
   * @param options Layout, batch, map and output type.
   * @param places Every attention tensor's place, known from the file's directory.
   */
  constructor(
    where: string,
    options: AssembleOptions,
    places: readonly TensorPlace[],
  ) {
    this.#where = where;
    this.#options = options;
    this.#layout = options.layout === undefined
      ? null
      : parseLayout(options.layout);
    this.#stepCount = new Map();
    for (const p of places) {
      if (p.step === null) continue;
      this.#stepCount.set(
        p.layer,
        Math.max(this.#stepCount.get(p.layer) ?? 0, p.step + 1),
      );
    }
    this.#generate = this.#stepCount.size > 0;
    if (this.#generate && places.some((p) => p.step === null)) {
      throw this.#error(
        "",
        "mixes generate() steps with whole-sequence tensors",
        "save either the steps of one generate() call or one tensor per layer",
      );
    }
  }

  /** Whether the tensors are generate() steps. */
  get isGenerate(): boolean {
    return this.#generate;
  }

  /** The prompt length the steps imply, or `null`. */
  get promptLen(): number | null {
    return this.#promptLen;
  }

  /**
   * Opens a tensor: checks its shape and returns the sink its bytes go into.
   *
   * @param name The tensor name.
   * @param place Where it goes.
   * @param element Its element type.
   * @param littleEndian Its byte order.
   * @param shape Its shape.
   * @param fortranOrder Whether it is stored column-major.
   * @returns The sink.
   */
  open(
    name: string,
    place: TensorPlace,
    element: ElementType,
    littleEndian: boolean,
    shape: readonly number[],
    fortranOrder = false,
  ): TensorSink {
    const layout = this.#layout ?? defaultLayout(shape.length);
    if (!layout) {
      throw this.#error(
        name,
        `has rank ${shape.length} [${
          shape.join(", ")
        }], which has no default layout`,
        `pass layout, e.g. "batch head query key"`,
      );
    }
    if (layout.length !== shape.length) {
      throw this.#error(
        name,
        `has rank ${shape.length} [${shape.join(", ")}] but the layout "${
          layout.join(" ")
        }" has ${layout.length} axes`,
        `pass the layout that matches the tensor (e.g. "head query key" for [heads, q, k])`,
      );
    }
    const size = (axis: string) => {
      const i = layout.indexOf(axis as never);
      return i < 0 ? 1 : shape[i];
    };
    const [q, h, k, b, l] = ["query", "head", "key", "batch", "layer"].map(
      size,
    );
    if ([q, h, k, b, l].some((n) => n === 0)) {
      throw this.#error(
        name,
        `has an empty axis [${shape.join(", ")}]`,
        "save the attention of at least one token",
      );
    }
    const batch = this.#options.batch;
    if (batch >= b) {
      throw new RangeError(
        this.#error(
          name,
          `has ${b} sequence${
            b === 1 ? "" : "s"
          } in its batch axis but batch ${batch} was asked for`,
          `pass batch from 0 to ${b - 1}`,
        ).message,
      );
    }
    if (b > 1) {
      warn(
        `${this.#where}: tensor "${name}" holds ${b} sequences; reading batch ${batch} (pass batch to pick another)`,
      );
    }
    const layers = Array.from(
      { length: l },
      (_, i) => l > 1 ? place.layer + i : place.layer,
    );
    const targets = place.step === null
      ? layers.map((layer) => this.#wholeTarget(name, layer, q, h, k))
      : layers.map((layer) =>
        this.#stepTarget(name, layer, place.step!, q, h, k)
      );
    // Fortran order is C order of the reversed shape.
    const memoryShape = fortranOrder ? [...shape].reverse() : shape;
    const memoryLayout = fortranOrder ? [...layout].reverse() : layout;
    return new TensorSink({
      element,
      littleEndian,
      shape: memoryShape,
      layout: memoryLayout,
      batch,
      target: (i) => targets[i],
    });
  }

  #wholeTarget(name: string, layer: number, q: number, h: number, k: number) {
    if (q > k) {
      throw this.#error(
        name,
        `has ${q} query rows but only ${k} keys, which causal self-attention cannot have`,
        `check the layout (is it "batch head key query"?) or pass the one that matches`,
      );
    }
    if (this.#shape) {
      const [q0, h0, k0] = this.#shape;
      if (q0 !== q || h0 !== h || k0 !== k) {
        throw this.#error(
          name,
          `has [query ${q}, head ${h}, key ${k}] but "${this.#shapeFrom}" has [query ${q0}, head ${h0}, key ${k0}]`,
          "save the layers of one forward pass, or load each file on its own",
        );
      }
    } else {
      this.#shape = [q, h, k];
      this.#shapeFrom = name;
      if (q < k) {
        warn(
          `${this.#where}: tensor "${name}" has ${q} query rows for ${k} keys; they are read as the last ${q} positions`,
        );
      }
    }
    if (this.#out.has(layer)) {
      throw this.#error(
        name,
        `is a second tensor for layer ${layer}`,
        "pass layers: { name: layer } to say which tensor is which layer",
      );
    }
    const data = this.#alloc(q * h * k);
    this.#out.set(layer, { layer, data, shape: [q, h, k] });
    return { data, heads: h, keyLength: k, rowOffset: 0 };
  }

  #stepTarget(
    name: string,
    layer: number,
    step: number,
    q: number,
    h: number,
    k: number,
  ) {
    const prompt = step === 0 ? q : k - step;
    if (step === 0 ? q !== k : q !== 1) {
      throw this.#error(
        name,
        step === 0
          ? `is generate() step 0 with ${q} query rows and ${k} keys, not the square prompt block`
          : `is generate() step ${step} with ${q} query rows; later steps have one`,
        "save out.attentions from generate(..., output_attentions=True, return_dict_in_generate=True) as it is",
      );
    }
    if (this.#promptLen === null) this.#promptLen = prompt;
    if (prompt !== this.#promptLen || prompt < 1) {
      throw this.#error(
        name,
        `is generate() step ${step} with ${k} keys, but the prompt has ${this.#promptLen} tokens so it needs ${
          this.#promptLen + step
        }`,
        "save every step of one generate() call",
      );
    }
    const steps = this.#stepCount.get(layer) ?? step + 1;
    const t = this.#promptLen + steps - 1;
    let out = this.#out.get(layer);
    if (!out) {
      if (this.#shape && this.#shape[1] !== h) {
        throw this.#error(
          name,
          `has ${h} heads but another layer has ${this.#shape[1]}`,
          "save the layers of one model",
        );
      }
      this.#shape ??= [t, h, t];
      out = { layer, data: this.#alloc(t * h * t), shape: [t, h, t] };
      this.#out.set(layer, out);
    } else if (out.shape[1] !== h) {
      throw this.#error(
        name,
        `has ${h} heads but step 0 has ${out.shape[1]}`,
        "save every step of one generate() call",
      );
    }
    const seen = this.#steps.get(layer) ?? new Set<number>();
    if (seen.has(step)) {
      throw this.#error(
        name,
        `repeats step ${step} of layer ${layer}`,
        "save each step once",
      );
    }
    seen.add(step);
    this.#steps.set(layer, seen);
    return {
      data: out.data,
      heads: h,
      keyLength: t,
      rowOffset: step === 0 ? 0 : this.#promptLen + step - 1,
    };
  }

  /**
   * The layers, in ascending order, once every tensor has arrived.
   *
   * @returns The layers.
   */
  finish(): AssembledLayer[] {
    if (this.#out.size === 0) {
      throw new TypeError(
        `Cannot load ${this.#where}: it holds no attention tensors; save one float array per layer ([batch, heads, q, k])`,
      );
    }
    for (const [layer, count] of this.#stepCount) {
      const seen = this.#steps.get(layer) ?? new Set();
      for (let s = 0; s < count; s++) {
        if (!seen.has(s)) {
          throw this.#error(
            `layer ${layer}`,
            `is missing generate() step ${s} of ${count}`,
            "save every step of one generate() call",
          );
        }
      }
    }
    return [...this.#out.values()].sort((a, b) => a.layer - b.layer);
  }

  #alloc(n: number): Float32Array | Float16Array {
    return this.#options.dtype === "float16"
      ? new Float16Array(n)
      : new Float32Array(n);
  }

  #error(tensor: string, state: string, todo: string): TypeError {
    const what = tensor ? ` tensor "${tensor}"` : "";
    return new TypeError(
      `Cannot load ${this.#where}:${what} ${state}; ${todo}`,
    );
  }
}
