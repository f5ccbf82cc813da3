/**
 * SiD²A (docs/algorithm.md §13; docs/sida.md §1): a generator layer whose θ and θ_ema start from a distilled generator, a run
 * directory's newest checkpoint (its EMA weights, as the official `--sid_model` loads `data['ema']`) or an exported
 * generator file, instead of the teacher's weights. The fake score still starts from the teacher.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { readFile, stat } from "node:fs/promises"
import { join } from "node:path"
import { Effect, Layer, Option } from "effect"
import { decodeGeneratorFile } from "../../../domain/data/GeneratorFile.js"
import type { Network } from "../../../domain/nn/Network.js"
import type { OneStepWeights } from "../../../domain/sid/OneStep.js"
import { compareShapes, shapesMatch } from "../../../domain/nn/Parameters.js"
import { CheckpointStore, layerDirectory } from "../CheckpointStore.js"
import { type Generator, type GeneratorOptions, layer as generatorLayer } from "../Generator.js"
import { SidaSetupError } from "../RealData.js"
import { Teacher } from "../Teacher.js"
import { checkpointGenerator } from "./generatorExport.js"
import type { Engine } from "../../../engine/Engine.js"

const failure = (path: string, reason: string, fix: string) =>
  new SidaSetupError({ setting: "initGenerator", reason: `${path}: ${reason}`, fix })

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * The weights of a distilled generator: the EMA generator of the newest checkpoint of a run directory, or an exported
 * generator file (either format). The caller owns the tensors. Fails with a {@link SidaSetupError} naming the path.
 *
 * @since 0.2.0
 * @category utils
 */
export const readGeneratorWeights = (path: string): Effect.Effect<OneStepWeights, SidaSetupError, Engine> =>
  Effect.gen(function*() {
    const info = yield* Effect.tryPromise({
      try: () => stat(path),
      catch: (e) => failure(path, `cannot read it (${message(e)})`, "Give a run directory or a file written by `sid export`")
    })
    if (info.isDirectory()) {
      const latest = yield* Effect.flatMap(CheckpointStore, (store) => store.latest).pipe(
        Effect.provide(layerDirectory(join(path, "checkpoints"))),
        Effect.mapError((e) => failure(path, `its checkpoints cannot be read (${e.message})`, "Give an intact run directory"))
      )
      if (Option.isNone(latest)) {
        return yield* failure(path, "the run directory holds no checkpoint", "Give a run that has written a checkpoint")
      }
      return yield* checkpointGenerator(latest.value, { runDir: path }).pipe(
        Effect.mapError((e) => failure(path, e.message, "Give an intact run directory"))
      )
    }
    const bytes = yield* Effect.tryPromise({
      try: () => readFile(path),
      catch: (e) => failure(path, `cannot read it (${message(e)})`, "Give a run directory or a file written by `sid export`")
    })
    return yield* Effect.try({
      try: () => decodeGeneratorFile(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
      catch: (e) => failure(path, message(e), "Give a generator file written by `sid export`, or a run directory")
    })
  })

/**
 * Checks that a distilled generator can start this run: the teacher's architecture (the same description), its
 * parameter shapes, and the run's σ_init (docs/algorithm.md §15, item 9). Fails with a {@link SidaSetupError} naming the mismatch.
 *
 * @since 0.2.0
 * @category utils
 */
export const checkGeneratorWeights = (
  path: string,
  weights: OneStepWeights,
  network: Network,
  sigmaInit: number
): Effect.Effect<void, SidaSetupError> => {
  const ours = JSON.stringify(network.description)
  const theirs = JSON.stringify(weights.network.description)
  if (ours !== theirs) {
    return Effect.fail(failure(path, `its network is ${theirs}, but the teacher's is ${ours}`, "Start from a generator distilled from this teacher"))
  }
  if (!shapesMatch(compareShapes(network.shapes, Object.fromEntries(Object.entries(weights.params).map(([n, t]) => [n, t.shape]))))) {
    return Effect.fail(failure(path, "its weights do not fit the teacher's network", "Start from a generator distilled from this teacher"))
  }
  if (weights.sigmaInit !== sigmaInit) {
    return Effect.fail(
      failure(path, `it was distilled with σ_init = ${weights.sigmaInit}, but this run uses ${sigmaInit} (docs/algorithm.md §15, item 9)`, `Run with --sigma-init ${weights.sigmaInit}`)
    )
  }
  return Effect.void
}

/**
 * The generator layer of a SiD²A run: θ and θ_ema from the distilled generator at `path` (checked against the
 * teacher and σ_init before anything else is built), ψ untouched. The loaded weights are released with the layer.
 *
 * @since 0.2.0
 * @category layers
 */
export const layerFromExport = (
  path: string,
  options: Omit<GeneratorOptions, "initial">
): Layer.Layer<Generator, SidaSetupError, Teacher | Engine> =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      const teacher = yield* Teacher
      const weights = yield* Effect.acquireRelease(
        readGeneratorWeights(path),
        (w) => Effect.sync(() => tf.dispose(Object.values(w.params)))
      )
      yield* checkGeneratorWeights(path, weights, teacher.weights.network, options.sigmaInit ?? weights.sigmaInit)
      return generatorLayer({ ...options, initial: weights.params })
    })
  )
