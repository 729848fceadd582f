/**
 * `loadAttention`: attention saved by the tools researchers already use
 * (HuggingFace transformers, TransformerLens, a plain PyTorch module, numpy)
 * as the same capture the vLLM decoder returns, checked on arrival.
 *
 * It reads safetensors (F16, BF16, F32, F64, `__metadata__`), `.npy`
 * (versions 1 to 3, `<f2 <f4 <f8`, big-endian and Fortran order converted),
 * `.npz` (stored or deflated) and attnscope's own capture files. Tensors are
 * streamed from the file and written, converted and transposed, straight
 * into each layer's `[Tq, H, Tk]` output.
 *
 * @module
 */

import { type ByteSource, bytesSource, fileSource } from "./_byte_source.ts";
import {
  type AssembledLayer,
  LayerAssembler,
  METADATA_NAMES,
  placeTensor,
  type TensorPlace,
} from "./_assemble.ts";
import type { ElementType, TensorSink } from "./_tensor_sink.ts";
import { decodeCapture, type SavedCapture } from "./capture_file.ts";
import {
  isNpy,
  npyFloatType,
  npyHeaderLength,
  readNpyHeader,
  readNpyValues,
} from "./npy_read.ts";
import { isZip, readZipEntries, type ZipEntryInfo } from "./npz.ts";
import {
  parseSafetensorsHeader,
  safetensorsElement,
  safetensorsHeaderLength,
} from "./safetensors.ts";
import {
  type CaptureFindings,
  checkCapture,
  warnFindings,
} from "../../data/check_capture.ts";
import { type AttentionCapture, AttentionLayer } from "../../data/layer.ts";
import { AttentionScores } from "../../data/scores.ts";
import { checkLayerMeta, type LayerMeta } from "../../data/layer_meta.ts";
import { TokenMeta, type TokenRange } from "../../data/token_meta.ts";
import {
  type ProgressOptions,
  progressReporter,
  ProgressTracker,
} from "../../progress.ts";

/** The file formats {@linkcode loadAttention} reads. */
export type AttentionFileFormat = "safetensors" | "npy" | "npz" | "attnscope";

/**
 * Options for {@linkcode loadAttention}. Progress: `receiving` while the
 * file is read (bytes of its size) and its tensors written into layers
 * (`layers` counts tensors done of the tensors read), `decoding` while the
 * capture is checked, `done`; the Jupyter bar shows only for loads over
 * about a second.
 */
export interface LoadAttentionOptions extends ProgressOptions {
  /**
   * The tensors' axes, einops style, outermost first: `"batch head query
   * key"` (transformers, TransformerLens), `"head query key"`, `"query head
   * key"` (vLLM's wire), `"layer batch head query key"`.
   * @default {by rank: "query key", "head query key", "batch head query key", "layer batch head query key"}
   */
  layout?: string;
  /**
   * Which sequence of the batch to read; a warning says when there are more.
   * @default {0}
   */
  batch?: number;
  /**
   * Tensor name to layer index. Only the tensors named are read.
   * @default {the names' own layer numbers: layers.N, h.N, blocks.N, attentions.N, pattern_N or N}
   */
  layers?: Readonly<Record<string, number>>;
  /**
   * One label per position (prompt, then generated tokens).
   * @default {__metadata__.tokens (JSON) in safetensors, the tokens array in an npz}
   */
  tokens?: readonly string[];
  /**
   * Prompt tokens; later positions count as generated.
   * @default {the step-0 length for generate() steps, metadata prompt_len, else every position}
   */
  promptLen?: number;
  /**
   * Image-placeholder ranges, half open, within the prompt.
   * @default {[]}
   */
  visionRanges?: readonly TokenRange[];
  /**
   * The model name to record.
   * @default {__metadata__.model, else null}
   */
  model?: string;
  /**
   * Element type of the scores: `"float32"` (exact for F16, BF16 and F32;
   * F64 is rounded) or `"float16"` (half the memory).
   * @default {"float32"}
   */
  dtype?: "float32" | "float16";
  /**
   * The name used in messages when bytes are passed.
   * @default {"bytes"}
   */
  name?: string;
  /**
   * Run {@linkcode checkCapture} and warn once per kind of finding.
   * @default {true}
   */
  check?: boolean;
  /**
   * Each layer's architecture (files do not say it), carried as
   * `layer.layerMeta`: one {@linkcode LayerMeta} for every layer, or one per
   * layer index (layers left out get `null`). Checked as the wire's
   * `layer_meta` is (a sliding layer needs its window, KV heads must divide
   * the query heads).
   * @default {undefined} `layerMeta` is `null` (an attnscope capture file keeps its own)
   */
  layerMeta?: LayerMeta | Readonly<Record<number, LayerMeta>>;
}

/** A loaded capture: what `loadCapture` returns, plus where it came from and its check. */
export interface LoadedAttention extends SavedCapture {
  /** The file format read. */
  format: AttentionFileFormat;
  /** The sanity report per layer (empty lists when clean or when `check: false`). */
  findings: CaptureFindings;
}

/** Metadata gathered from the file. */
interface FileMetadata {
  tokens?: string[];
  promptLen?: number;
  model?: string;
}

/**
 * Loads attention saved by transformers, TransformerLens, PyTorch or numpy
 * (safetensors, `.npy`, `.npz`) or by attnscope (`saveCapture`), as the same
 * capture the vLLM decoder returns, with labels when the file has them.
 *
 * generate()'s per-step attentions (tensors named `steps.S.layers.L`: the
 * prompt block `[b, h, P, P]`, then `[b, h, 1, P+i]`) become one capture
 * with generated rows, as vLLM returns them.
 *
 * @param pathOrBytes A file path or URL, or the file's bytes.
 * @param options Layout, batch, layer map, labels, prompt length, vision ranges.
 * @returns The capture, labels, format and findings.
 * @throws {TypeError} `Cannot load <file>: tensor "<name>" ...; <what to do>` for a
 *   rank that does not match the layout, shapes that cannot be causal or that differ
 *   across layers, an unknown dtype or a zip entry that is not `.npy`.
 * @throws {SyntaxError} For a truncated file or a header that lies about its offsets.
 *
 * @example A safetensors file written with numpy and struct
 * ```ts
 * import { loadAttention } from "./load_attention.ts";
 * import assert from "node:assert/strict";
 *
 * // One layer, [batch 1, head 1, query 2, key 2], F32.
 * const values = new Float32Array([1, 0, 0.25, 0.75]);
 * const header = new TextEncoder().encode(JSON.stringify({
 *   __metadata__: { tokens: JSON.stringify(["<bos>", "hi"]) },
 *   "model.layers.0.self_attn": { dtype: "F32", shape: [1, 1, 2, 2], data_offsets: [0, 16] },
 * }));
 * const bytes = new Uint8Array(8 + header.length + 16);
 * new DataView(bytes.buffer).setBigUint64(0, BigInt(header.length), true);
 * bytes.set(header, 8);
 * bytes.set(new Uint8Array(values.buffer), 8 + header.length);
 *
 * const loaded = await loadAttention(bytes);
 * assert.equal(loaded.format, "safetensors");
 * assert.deepEqual(loaded.labels, ["<bos>", "hi"]);
 * assert.deepEqual([...loaded.attention[0].scores.data], [1, 0, 0.25, 0.75]);
 * assert.deepEqual(loaded.findings, { 0: [] });
 * ```
 */
export async function loadAttention(
  pathOrBytes: string | URL | Uint8Array,
  options: LoadAttentionOptions = {},
): Promise<LoadedAttention> {
  const batch = options.batch ?? 0;
  const name = pathOrBytes instanceof Uint8Array
    ? options.name ?? "bytes"
    : String(pathOrBytes);
  if (!Number.isInteger(batch) || batch < 0) {
    throw new RangeError(
      `Cannot load ${name}: batch ${batch} is not a non-negative integer; pass 0 for the first sequence`,
    );
  }
  const reporter = progressReporter(options, "loadAttention");
  let source: ByteSource;
  try {
    source = pathOrBytes instanceof Uint8Array
      ? bytesSource(pathOrBytes, name)
      : await fileSource(pathOrBytes);
  } catch (error) {
    reporter.finish(null);
    throw error;
  }
  const tracker = new ProgressTracker(reporter.onProgress, {
    totalBytes: source.size,
    phase: "receiving",
  });
  const counted = countedSource(source, tracker);
  try {
    const prefix = await counted.read(0, 16);
    let loaded: LoadedAttention;
    if (prefix[0] === 0x89 && prefix[1] === 0x41 && prefix[2] === 0x54) {
      const bytes = new Uint8Array(source.size);
      let at = 0;
      await counted.forEachChunk(0, source.size, (chunk) => {
        bytes.set(chunk, at);
        at += chunk.length;
      });
      tracker.decoding();
      loaded = {
        ...decodeCapture(bytes.subarray(0, at), name, {
          progress: false,
          onProgress: tracker.relay(),
        }),
        format: "attnscope",
        findings: {},
      };
    } else if (isNpy(prefix)) {
      loaded = await loadNpy(counted, options, batch, tracker);
    } else if (isZip(prefix)) {
      loaded = await loadNpz(source, counted, options, batch, tracker);
    } else {
      loaded = await loadSafetensors(counted, options, batch, prefix, tracker);
    }
    tracker.decoding();
    if (options.layerMeta !== undefined) {
      loaded.attention = withLayerMeta(loaded.attention, options.layerMeta);
    }
    if (options.check !== false) {
      loaded.findings = checkCapture(loaded);
      warnFindings(loaded.findings, name);
    }
    tracker.done();
    reporter.finish("loaded");
    return loaded;
  } catch (error) {
    reporter.finish(null);
    throw asLoadError(error, name);
  } finally {
    source.close();
  }
}

/**
 * `source`, with the bytes it hands out counted as received (up to its
 * size: a header read twice is not counted twice).
 */
function countedSource(
  source: ByteSource,
  tracker: ProgressTracker,
): ByteSource {
  let counted = 0;
  const count = (n: number) => {
    const add = Math.min(n, source.size - counted);
    if (add <= 0) return;
    counted += add;
    tracker.received(add);
  };
  return {
    name: source.name,
    size: source.size,
    async read(offset, length) {
      const bytes = await source.read(offset, length);
      count(bytes.length);
      return bytes;
    },
    forEachChunk(offset, length, fn, buffers) {
      return source.forEachChunk(offset, length, (chunk) => {
        count(chunk.length);
        fn(chunk);
      }, buffers);
    },
    close: () => source.close(),
  };
}

/** Announces the tensors to be read, each as one unit of progress. */
function announce(tracker: ProgressTracker, count: number): void {
  for (let n = 0; n < count; n++) tracker.announced();
}

async function loadSafetensors(
  source: ByteSource,
  options: LoadAttentionOptions,
  batch: number,
  prefix: Uint8Array,
  tracker: ProgressTracker,
): Promise<LoadedAttention> {
  let headerLength: number;
  try {
    headerLength = safetensorsHeaderLength(prefix, source.size);
  } catch (error) {
    throw new SyntaxError(
      `Cannot load ${source.name}: it is not a safetensors, .npy, .npz or attnscope capture file (${
        (error as Error).message
      }); save attention with safetensors, numpy.save/savez or saveCapture`,
    );
  }
  const header = parseSafetensorsHeader(
    await source.read(8, headerLength),
    source.size,
  );
  const metadata: FileMetadata = {};
  const meta = header.metadata;
  if (meta.tokens !== undefined) metadata.tokens = parseTokens(meta.tokens);
  if (meta.prompt_len !== undefined) {
    metadata.promptLen = Number(meta.prompt_len);
  }
  if (meta.model !== undefined) metadata.model = meta.model;
  const attention = header.entries.filter((e) =>
    options.layers ? Object.hasOwn(options.layers, e.name) : true
  );
  const places = placesOf(attention.map((e) => e.name), options);
  const assembler = newAssembler(source.name, options, batch, places);
  announce(tracker, attention.length);
  for (const entry of attention) {
    const element = safetensorsElement(entry.dtype);
    if (!element) {
      throw new TypeError(
        `Cannot load ${source.name}: tensor "${entry.name}" has dtype ${entry.dtype}; attnscope reads F16, BF16, F32 and F64 (cast it, or pass layers: { name: layer } to read only the attention tensors)`,
      );
    }
    const sink = assembler.open(
      entry.name,
      places.get(entry.name)!,
      element,
      true,
      entry.shape,
    );
    await streamInto(source, entry.start, entry.length, sink, entry.name);
    tracker.finished();
  }
  return finish(source.name, assembler, metadata, options, "safetensors");
}

async function loadNpy(
  source: ByteSource,
  options: LoadAttentionOptions,
  batch: number,
  tracker: ProgressTracker,
): Promise<LoadedAttention> {
  const prefix = await source.read(0, 12);
  const header = readNpyHeader(
    await source.read(0, npyHeaderLength(prefix)),
  );
  const type = floatTypeOf(header.descr, source.name, "array");
  const need = header.shape.reduce((a, b) => a * b, 1) * bytesOf(type.element);
  if (header.dataOffset + need > source.size) {
    throw new SyntaxError(
      `Cannot load ${source.name}: tensor "array" declares shape [${
        header.shape.join(", ")
      }] (${need} bytes) but the file holds ${
        source.size - header.dataOffset
      } after its header; the file is truncated, save it again`,
    );
  }
  const place: TensorPlace = options.layers
    ? { layer: Object.values(options.layers)[0] ?? 0, step: null }
    : { layer: 0, step: null };
  const assembler = newAssembler(
    source.name,
    options,
    batch,
    new Map([["array", place]]),
  );
  const sink = assembler.open(
    "array",
    place,
    type.element,
    type.littleEndian,
    header.shape,
    header.fortranOrder,
  );
  announce(tracker, 1);
  await streamInto(source, header.dataOffset, need, sink, "array");
  tracker.finished();
  return finish(source.name, assembler, {}, options, "npy");
}

async function loadNpz(
  source: ByteSource,
  counted: ByteSource,
  options: LoadAttentionOptions,
  batch: number,
  tracker: ProgressTracker,
): Promise<LoadedAttention> {
  // First pass: the entry names (data is skipped, not inflated), so that
  // layers and generate() steps are known before any output is allocated.
  // Its reads are not counted: progress is the second pass, which inflates.
  const names = await readZipEntries(source, () => null);
  for (const entry of names) {
    if (!entry.endsWith(".npy")) {
      throw new TypeError(
        `Cannot load ${source.name}: zip entry "${entry}" is not a .npy array; an .npz holds only numpy arrays (save with numpy.savez), or pass the .npy itself`,
      );
    }
  }
  const arrays = names.map((n) => n.slice(0, -4)).filter((n) =>
    options.layers
      ? Object.hasOwn(options.layers, n)
      : !METADATA_NAMES.includes(n)
  );
  const places = placesOf(arrays, options);
  const assembler = newAssembler(source.name, options, batch, places);
  announce(tracker, places.size);
  const metadata: FileMetadata = {};
  await readZipEntries(counted, (entry, info) => {
    const tensor = entry.slice(0, -4);
    if (METADATA_NAMES.includes(tensor) && !places.has(tensor)) {
      return wholeEntry((bytes) => {
        const values = readNpyValues(bytes);
        if (tensor === "tokens") metadata.tokens = values.map(String);
        else metadata.promptLen = Number(values[0]);
      });
    }
    const place = places.get(tensor);
    if (!place) return null;
    return npyEntry(source.name, tensor, (header) => {
      const type = floatTypeOf(header.descr, source.name, tensor);
      checkEntrySize(source.name, tensor, header, type.element, info);
      return assembler.open(
        tensor,
        place,
        type.element,
        type.littleEndian,
        header.shape,
        header.fortranOrder,
      );
    }, () => tracker.finished());
  });
  return finish(source.name, assembler, metadata, options, "npz");
}

/** deflate's best case is about 1032:1; more than that is a lie or a bomb. */
const MAX_DEFLATE_RATIO = 1032;

/**
 * Refuses an entry whose `.npy` header declares more data than the entry
 * can hold, before its output is allocated.
 */
function checkEntrySize(
  where: string,
  tensor: string,
  header: ReturnType<typeof readNpyHeader>,
  element: ElementType,
  info: ZipEntryInfo,
): void {
  const need = header.dataOffset +
    header.shape.reduce((a, b) => a * b, 1) * bytesOf(element);
  const holds = info.originalSize ??
    (info.compression === 0
      ? info.compressedSize
      : info.compressedSize * MAX_DEFLATE_RATIO + 64);
  const can = info.compression === 0
    ? info.compressedSize
    : info.compressedSize * MAX_DEFLATE_RATIO + 64;
  if (
    need > Math.min(holds, can) ||
    (info.originalSize !== undefined && need !== info.originalSize)
  ) {
    throw new SyntaxError(
      `Cannot load ${where}: tensor "${tensor}" declares shape [${
        header.shape.join(", ")
      }] (${need} bytes) but its zip entry holds ${
        info.originalSize ?? `at most ${Math.min(holds, can)}`
      } bytes (${info.compressedSize} stored); the archive is truncated or corrupt, save it again`,
    );
  }
}

/** A reader that buffers a small entry whole. */
function wholeEntry(done: (bytes: Uint8Array) => void) {
  const parts: Uint8Array[] = [];
  let size = 0;
  return {
    push(chunk: Uint8Array) {
      size += chunk.length;
      if (size > 64 << 20) {
        throw new RangeError("a metadata entry is over 64 MiB");
      }
      parts.push(chunk.slice());
    },
    end() {
      const bytes = new Uint8Array(size);
      let at = 0;
      for (const p of parts) {
        bytes.set(p, at);
        at += p.length;
      }
      done(bytes);
    },
  };
}

/** A reader that parses a `.npy` header, then streams the data into a sink. */
function npyEntry(
  where: string,
  tensor: string,
  open: (header: ReturnType<typeof readNpyHeader>) => TensorSink,
  onEnd: () => void,
) {
  let head: Uint8Array = new Uint8Array(0);
  let sink: TensorSink | null = null;
  return {
    push(chunk: Uint8Array) {
      if (sink) return sink.push(chunk);
      // Usually the whole header is in the first chunk: no copy then.
      if (head.length > 0) {
        const joined = new Uint8Array(head.length + chunk.length);
        joined.set(head);
        joined.set(chunk, head.length);
        head = joined;
      } else head = chunk;
      if (head.length < 12) return void (head = head.slice());
      const length = npyHeaderLength(head);
      if (head.length < length) return void (head = head.slice());
      const header = readNpyHeader(head);
      sink = open(header);
      sink.push(head.subarray(length));
      head = new Uint8Array(0);
    },
    end() {
      if (!sink) {
        throw new SyntaxError(
          `Cannot load ${where}: tensor "${tensor}" ends inside its .npy header; the archive is truncated, save it again`,
        );
      }
      try {
        sink.finish();
      } catch (error) {
        throw tensorError(where, tensor, error);
      }
      onEnd();
    },
  };
}

/** Streams a byte range into a sink, refusing a short range. */
async function streamInto(
  source: ByteSource,
  offset: number,
  length: number,
  sink: TensorSink,
  tensor: string,
): Promise<void> {
  try {
    await source.forEachChunk(offset, length, (chunk) => sink.push(chunk));
    sink.finish();
  } catch (error) {
    throw tensorError(source.name, tensor, error);
  }
}

function tensorError(where: string, tensor: string, error: unknown): Error {
  const message = (error as Error).message;
  if (message.startsWith("Cannot ")) return error as Error;
  return new SyntaxError(
    `Cannot load ${where}: tensor "${tensor}": ${message}; the file is truncated or corrupt, save it again`,
  );
}

function placesOf(
  names: readonly string[],
  options: LoadAttentionOptions,
): Map<string, TensorPlace> {
  const places = new Map<string, TensorPlace>();
  for (const n of names) {
    let place: TensorPlace | null;
    try {
      place = placeTensor(n, options.layers, names.length === 1);
    } catch (error) {
      throw new TypeError(
        `Cannot load: tensor "${n}": ${
          (error as Error).message
        }; pass layers: { "${n}": 0, ... } to name its layer`,
      );
    }
    if (place) places.set(n, place);
  }
  return places;
}

function newAssembler(
  where: string,
  options: LoadAttentionOptions,
  batch: number,
  places: Map<string, TensorPlace>,
): LayerAssembler {
  const dtype = options.dtype ?? "float32";
  if (dtype !== "float32" && dtype !== "float16") {
    throw new TypeError(
      `Cannot load ${where}: dtype ${
        JSON.stringify(dtype)
      } is not "float32" or "float16"`,
    );
  }
  return new LayerAssembler(
    where,
    { layout: options.layout, batch, layers: options.layers, dtype },
    [...places.values()],
  );
}

function finish(
  where: string,
  assembler: LayerAssembler,
  metadata: FileMetadata,
  options: LoadAttentionOptions,
  format: AttentionFileFormat,
): LoadedAttention {
  const layers = assembler.finish();
  const tk = layers[0].shape[2];
  const labels = options.tokens ? [...options.tokens] : metadata.tokens ?? null;
  if (labels && labels.length < tk) {
    throw new TypeError(
      `Cannot load ${where}: ${labels.length} tokens label ${tk} positions; pass one token per position (prompt, then generated)`,
    );
  }
  const promptLen = options.promptLen ?? assembler.promptLen ??
    metadata.promptLen ?? tk;
  if (!Number.isInteger(promptLen) || promptLen < 0 || promptLen > tk) {
    throw new RangeError(
      `Cannot load ${where}: promptLen ${promptLen} is outside 0..${tk}; pass the number of prompt tokens`,
    );
  }
  const vision = options.visionRanges ?? [];
  const meta = TokenMeta.from({
    prompt_len: promptLen,
    total_len: tk,
    vision_ranges: vision.map((r) => ({ start: r.start, end: r.end })),
    lang_ranges: complement(vision, promptLen),
  });
  const model = options.model ?? metadata.model ?? null;
  const attention: AttentionCapture = {};
  for (const l of layers) {
    attention[l.layer] = toLayer(l, model, meta);
  }
  return {
    attention,
    labels,
    response: null,
    text: null,
    model,
    promptLen,
    finishReason: null,
    format,
    findings: {},
  };
}

/** The layers with the `layerMeta` option applied, checked against each layer's heads. */
function withLayerMeta(
  attention: AttentionCapture,
  given: LayerMeta | Readonly<Record<number, LayerMeta>>,
): AttentionCapture {
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    throw new TypeError(
      `Cannot use layerMeta: it is ${
        Array.isArray(given) ? "a list" : String(given)
      }; pass one LayerMeta for every layer, or an object of them by layer index`,
    );
  }
  const single = typeof (given as LayerMeta).attention === "string";
  const byLayer = given as Readonly<Record<number, LayerMeta>>;
  if (!single) {
    const extra = Object.keys(byLayer).filter((k) => !(k in attention));
    if (extra.length) {
      throw new TypeError(
        `Cannot use layerMeta: it names layer${extra.length > 1 ? "s" : ""} ${
          extra.join(", ")
        }, which the file does not have (it has ${
          Object.keys(attention).join(", ")
        }); key layerMeta by the loaded layer indices`,
      );
    }
  }
  const out: AttentionCapture = {};
  for (const [key, layer] of Object.entries(attention)) {
    const meta = single ? given as LayerMeta : byLayer[Number(key)];
    out[Number(key)] = new AttentionLayer({
      layer: layer.layer,
      model: layer.model,
      scores: layer.scores,
      tokenMeta: layer.tokenMeta,
      layerMeta: meta === undefined ? null : checkLayerMeta(
        meta,
        `layer ${key}`,
        layer.scores.numHeads,
      ),
    });
  }
  return out;
}

function toLayer(
  l: AssembledLayer,
  model: string | null,
  tokenMeta: TokenMeta,
): AttentionLayer {
  return new AttentionLayer({
    layer: l.layer,
    model,
    scores: new AttentionScores(l.data, l.shape),
    tokenMeta,
  });
}

/** Text ranges: the prompt less the vision ranges. */
function complement(
  vision: readonly TokenRange[],
  promptLen: number,
): { start: number; end: number }[] {
  const out: { start: number; end: number }[] = [];
  let at = 0;
  for (const r of [...vision].sort((a, b) => a.start - b.start)) {
    if (r.start > at) out.push({ start: at, end: r.start });
    at = Math.max(at, r.end);
  }
  if (at < promptLen) out.push({ start: at, end: promptLen });
  return out;
}

function parseTokens(text: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!Array.isArray(parsed) || !parsed.every((t) => typeof t === "string")) {
    throw new TypeError(
      `__metadata__.tokens is not a JSON list of strings; store json.dumps(tokens)`,
    );
  }
  return parsed;
}

function floatTypeOf(
  descr: string,
  where: string,
  tensor: string,
): { element: ElementType; littleEndian: boolean } {
  const type = npyFloatType(descr);
  if (!type) {
    throw new TypeError(
      `Cannot load ${where}: tensor "${tensor}" has dtype ${descr}; attnscope reads <f2, <f4 and <f8 (upcast bfloat16 with .float() before numpy)`,
    );
  }
  return type;
}

function bytesOf(element: ElementType): number {
  return element === "f64" ? 8 : element === "f32" ? 4 : 2;
}

/** Gives every error the `Cannot load <file>` prefix. */
function asLoadError(error: unknown, where: string): Error {
  const e = error as Error;
  if (typeof e?.message !== "string") return new Error(String(error));
  if (e.message.startsWith(`Cannot load ${where}`)) return e;
  const rest = e.message.replace(/^Cannot load(?: [^:]*)?: /, "");
  const Kind = e instanceof RangeError
    ? RangeError
    : e instanceof SyntaxError
    ? SyntaxError
    : TypeError;
  const message = /; /.test(rest)
    ? rest
    : `${rest}; check that the file is whole and was saved as safetensors, .npy, .npz or a capture file`;
  return new Kind(`Cannot load ${where}: ${message}`);
}
