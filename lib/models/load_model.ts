/**
 * `loadModel`: a HuggingFace checkpoint folder (config.json and
 * model.safetensors or its shards) loaded into a {@linkcode RealModel}.
 * Nothing heavy happens at import: the matrix backend (and any workers) is
 * created by the first load.
 *
 * @module
 */

import { basename, resolve } from "node:path";
import type { LayerMeta } from "../data/layer_meta.ts";
import { Checkpoint, readConfigJson, readOptionalJson } from "./checkpoint.ts";
import { parseModelConfig } from "./config.ts";
import { Forward } from "./forward.ts";
import { startRun } from "./generate.ts";
import type { MatmulBackend } from "./kernels/backend.ts";
import type {
  LoadModelOptions,
  ModelGenerateOptions,
  ModelGenerateResult,
  ModelInfo,
  ModelSteps,
  RealModel,
} from "./types.ts";
import { loadWeights } from "./weights.ts";

/** {@linkcode LoadModelOptions} plus what only tests and benches pass. */
export interface LoadModelFolderOptions extends LoadModelOptions {
  /**
   * The backend to load into instead of the fastest available; it is
   * closed with the model.
   */
  backend?: MatmulBackend;
}

/**
 * Loads a checkpoint folder (already resolved on disk).
 *
 * @param dir The folder holding config.json and the safetensors file(s).
 * @param options Progress, threads, a model name.
 * @returns The model; `close()` frees it.
 * @throws {Error} `Cannot load model: ...` saying what is wrong and what to do;
 *   nothing stays allocated after an error.
 *
 * @example A missing folder
 * ```ts
 * import { loadModelFromFolder } from "./load_model.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadModelFromFolder("/nonexistent/ckpt"), /Cannot load model: .*config.json does not exist/);
 * ```
 */
export async function loadModelFromFolder(
  dir: string,
  options: LoadModelFolderOptions = {},
): Promise<RealModel> {
  const raw = await readConfigJson(dir);
  const generation = await readOptionalJson(dir, "generation_config.json");
  const config = parseModelConfig(raw, generation);
  const ckpt = await Checkpoint.open(dir);
  let backend: MatmulBackend | null = options.backend ?? null;
  try {
    if (!backend) {
      const { createMatmulBackend } = await import("./kernels/select.ts");
      backend = await createMatmulBackend({ threads: options.threads });
    }
    const weights = await loadWeights(
      config,
      ckpt,
      backend,
      options.onProgress,
    );
    const layerMeta: LayerMeta[] = config.layerTypes.map((t) => ({
      attention: t,
      slidingWindow: t === "sliding_attention" ? config.slidingWindow : null,
      numKeyValueHeads: config.numKeyValueHeads,
      causal: true,
    }));
    const info: ModelInfo = {
      family: config.family,
      numLayers: config.numLayers,
      numHeads: config.numHeads,
      numKeyValueHeads: config.numKeyValueHeads,
      headDim: config.headDim,
      hiddenSize: config.hiddenSize,
      vocabSize: config.vocabSize,
      maxPositions: config.maxPositions,
      eosTokenIds: config.eosTokenIds,
      dtype: weights.dtype,
      layerMeta,
      checkpointBytes: ckpt.totalBytes,
      name: options.name ?? basename(resolve(dir)),
    };
    return new LoadedModel(
      info,
      new Forward(config, weights, backend),
      weights.handles,
    );
  } catch (error) {
    backend?.close();
    throw error;
  } finally {
    ckpt.close();
  }
}

/**
 * Loads a checkpoint: a folder, or a HuggingFace id (`google/gemma-3-270m-it`)
 * found in the HuggingFace cache and downloaded there when missing (see
 * lib/models/hub/resolve.ts), then {@linkcode loadModelFromFolder}.
 *
 * @param pathOrId The checkpoint folder, or a hub id.
 * @param options Progress, threads, a model name (a hub id by default).
 * @returns The model.
 *
 * @example
 * ```ts
 * import { loadModel } from "./load_model.ts";
 * import assert from "node:assert/strict";
 *
 * await assert.rejects(loadModel("/nonexistent/ckpt"), /Cannot (load model|find checkpoint)/);
 * ```
 */
export async function loadModel(
  pathOrId: string,
  options: LoadModelFolderOptions = {},
): Promise<RealModel> {
  const { resolveCheckpoint } = await import("./hub/resolve.ts");
  const found = await resolveCheckpoint(pathOrId);
  return loadModelFromFolder(found.dir, {
    ...options,
    name: options.name ?? found.repoId ?? undefined,
  });
}

class LoadedModel implements RealModel {
  readonly info: ModelInfo;
  #forward: Forward | null;
  #handles: ReturnType<MatmulBackend["upload"]>[];
  #lock = { busy: false };

  constructor(
    info: ModelInfo,
    forward: Forward,
    handles: ReturnType<MatmulBackend["upload"]>[],
  ) {
    this.info = info;
    this.#forward = forward;
    this.#handles = handles;
  }

  start(options: ModelGenerateOptions): ModelSteps {
    const f = this.#forward;
    if (!f) {
      throw new Error("Cannot generate: the model was closed; load it again");
    }
    return startRun({
      forward: f,
      layerMeta: this.info.layerMeta,
      name: this.info.name ?? null,
      eosTokenIds: this.info.eosTokenIds,
      maxPositions: this.info.maxPositions,
      lock: this.#lock,
    }, options);
  }

  generate(options: ModelGenerateOptions): Promise<ModelGenerateResult> {
    try {
      const steps = this.start(options);
      while (!steps.step()) { /* next step */ }
      return Promise.resolve(steps.result());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): void {
    const f = this.#forward;
    if (!f) return;
    for (const h of this.#handles) f.backend.release(h);
    f.backend.close();
    this.#handles = [];
    this.#forward = null;
  }
}
