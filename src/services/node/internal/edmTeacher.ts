/**
 * Teachers from EDM checkpoints: a safetensors file holding an `EDMPrecond` state dict (names `model.*`, PyTorch
 * layouts) and its constructor arguments as JSON in the metadata key `config` (docs/algorithm.md §2.3, §2.5). The generator and
 * fake score of a run start from these weights (docs/algorithm.md §6).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { edmNetwork, parseEdmConfig } from "../../../domain/edm/NetworkConfig.js"
import { fromEdmStateDict } from "../../../domain/edm/StateDict.js"
import type { LoadedDenoiser } from "../../../domain/nn/Network.js"
import { type Engine, withEngineEffect } from "../../../engine/Engine.js"
import { Teacher, TeacherError } from "../Teacher.js"
import { fromWeights, readSafetensorsFile } from "../Teacher.js"

const CONVERT =
  "Convert an EDM .pkl with `python tools/edm_to_safetensors.py <in.pkl> <out.safetensors>` (it stores the state dict " +
  "and the EDMPrecond arguments)."

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * Reads an EDM teacher file: the architecture from its `config` metadata and the weights converted to sid-ts layouts
 * (tensors, so it needs the engine).
 *
 * @since 0.1.0
 * @category utils
 */
export const readEdmTeacherFile = (
  path: string
): Effect.Effect<
  LoadedDenoiser,
  TeacherError,
  Engine
> =>
  withEngineEffect(Effect.gen(function*() {
    const fail = (reason: string, fix: string = CONVERT) => new TeacherError({ teacher: `edm:${path}`, reason, fix })
    const file = yield* readSafetensorsFile(path, fail, CONVERT)
    const configText = file.metadata["config"]
    if (configText === undefined) return yield* fail("its metadata has no `config` (the EDMPrecond arguments as JSON)")
    const config = yield* Effect.try({ try: () => parseEdmConfig(configText), catch: (e) => fail(`bad config: ${message(e)}`) })
    const network = edmNetwork(config.architecture)
    const params = yield* Effect.try({
      try: () => fromEdmStateDict(network.shapes, file.tensors),
      catch: (e) => fail(message(e))
    })
    return { network, params, sigmaData: config.sigmaData }
  }))

/**
 * A teacher loaded from an EDM safetensors file; its tensors are disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerEdmFile = (path: string): Layer.Layer<Teacher, TeacherError, Engine> =>
  Layer.scoped(
    Teacher,
    Effect.map(
      Effect.acquireRelease(readEdmTeacherFile(path), (t) => Effect.sync(() => tf.dispose(Object.values(t.params)))),
      (t) => fromWeights(`edm:${path}`, t.network, t.params, t.sigmaData)
    )
  )
