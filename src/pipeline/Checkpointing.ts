/**
 * Capturing the full distillation state into a checkpoint, and restoring it (docs/algorithm.md §9.3).
 *
 * Tensor names: `generator.params.*`, `generator.ema.*`, `generator.optimizer.<slot>.*` (Adam: slots `m`, `v`),
 * `fake_score.params.*`, `fake_score.optimizer.<slot>.*`, each followed by the network's own parameter name, so the
 * generator's weights can be read by anything that knows the architecture.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { compareShapes, type ParameterShapes, shapesMatch } from "../domain/nn/Parameters.js"
import type { NamedArray } from "../domain/data/Safetensors.js"
import { type Checkpoint, CHECKPOINT_FORMAT, CheckpointError, CheckpointManifest } from "../services/CheckpointStore.js"
import type { TrainableWeights } from "../services/TrainableWeights.js"
import { fromNamedArrays, shapesWithPrefix, toNamedArrays } from "../domain/data/NamedTensors.js"
import type { IterationServices } from "./Iteration.js"

/**
 * Progress counters stored in a checkpoint.
 *
 * @since 0.1.0
 * @category models
 */
export interface Progress {
  readonly step: number
  readonly imagesSeen: number
}

const trainableArrays = (prefix: string, w: TrainableWeights): Array<readonly [string, NamedArray]> => [
  ...toNamedArrays(w.variables, `${prefix}.params.`),
  ...Object.entries(w.optimizerState().slots).flatMap(([slot, values]) => toNamedArrays(values, `${prefix}.optimizer.${slot}.`))
]

/** Tensor-name prefixes of one trainable network in a checkpoint: its parameters and each optimiser slot. */
const trainablePrefixes = (prefix: string, w: TrainableWeights): ReadonlyArray<string> => [
  `${prefix}.params.`,
  ...w.optimizer.slotNames.map((slot) => `${prefix}.optimizer.${slot}.`)
]

/**
 * Reads the whole state into a checkpoint (a synchronous snapshot between iterations).
 *
 * @since 0.1.0
 * @category utils
 */
export const captureCheckpoint = (
  s: IterationServices,
  progress: Progress,
  config: unknown,
  run?: unknown
): Checkpoint => {
  const tensors = new Map<string, NamedArray>([
    ...trainableArrays("generator", s.generator.weights),
    ...toNamedArrays(s.generator.ema, "generator.ema."),
    ...trainableArrays("fake_score", s.fakeScore.weights)
  ])
  const manifest = new CheckpointManifest({
    format: CHECKPOINT_FORMAT,
    step: progress.step,
    imagesSeen: progress.imagesSeen,
    config,
    teacher: s.teacher.name,
    ...(run === undefined ? {} : { run }),
    network: { kind: s.generator.network.description.kind, spec: s.generator.network.description.spec },
    sigmaInit: s.generator.sigmaInit,
    sigmaData: s.generator.sigmaData,
    optimizerSteps: {
      generator: s.generator.weights.optimizerState().step,
      fakeScore: s.fakeScore.weights.optimizerState().step
    },
    sampler: s.sampler.state(),
    weightsFile: "",
    weightsSha256: "",
    tensors: {},
    createdAt: new Date().toISOString()
  })
  return { manifest, tensors }
}

/**
 * Checks that the tensors of a checkpoint named `prefix`… are exactly a network's parameters (names and shapes);
 * fails with a {@link CheckpointError} listing every missing, unexpected and mis-shaped one. Shared by distillation
 * and teacher-training checkpoints.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkTensorGroup = (
  location: string,
  tensors: ReadonlyMap<string, NamedArray>,
  prefix: string,
  expected: ParameterShapes
): Effect.Effect<void, CheckpointError> => {
  const m = compareShapes(expected, shapesWithPrefix(tensors, prefix))
  return shapesMatch(m)
    ? Effect.void
    : Effect.fail(
      new CheckpointError({
        path: location,
        reason: `its ${prefix.slice(0, -1)} tensors do not fit the network being trained`,
        missing: m.missing.map((n) => prefix + n),
        unexpected: m.unexpected.map((n) => prefix + n),
        misShaped: m.misShaped.map((x) => `${prefix}${x.name} ${JSON.stringify(x.actual)} ≠ ${JSON.stringify(x.expected)}`)
      })
    )
}

/**
 * Validates a checkpoint against the running services (architecture, σ_init, every tensor's name and shape) and only
 * then restores generator, EMA, fake score, both optimisers and the sampler's streams. Returns the progress counters.
 *
 * @since 0.1.0
 * @category utils
 */
export const restoreCheckpoint = (
  s: IterationServices,
  checkpoint: Checkpoint,
  location: string
): Effect.Effect<Progress, CheckpointError> =>
  Effect.gen(function*() {
    const { manifest } = checkpoint
    const ours = JSON.stringify(s.generator.network.description)
    const theirs = JSON.stringify(manifest.network)
    if (ours !== theirs) {
      return yield* new CheckpointError({
        path: location,
        reason: `it was written for network ${theirs}, but this run trains ${ours}; resume with the same teacher`
      })
    }
    if (manifest.sigmaInit !== s.generator.sigmaInit) {
      return yield* new CheckpointError({
        path: location,
        reason: `it used σ_init = ${manifest.sigmaInit} but this run uses ${s.generator.sigmaInit} (docs/algorithm.md §15, item 9: σ_init must match)`
      })
    }
    for (const prefix of [...trainablePrefixes("generator", s.generator.weights), "generator.ema."]) {
      yield* checkTensorGroup(location, checkpoint.tensors, prefix, s.generator.network.shapes)
    }
    for (const prefix of trainablePrefixes("fake_score", s.fakeScore.weights)) {
      yield* checkTensorGroup(location, checkpoint.tensors, prefix, s.fakeScore.network.shapes)
    }
    yield* Effect.try({
      try: () => {
        const loaded: Array<Record<string, tf.Tensor>> = []
        const load = (prefix: string) => {
          const t = fromNamedArrays(checkpoint.tensors, prefix)
          loaded.push(t)
          return t
        }
        const state = (prefix: string, w: TrainableWeights, step: number) => ({
          params: load(`${prefix}.params.`),
          optimizer: {
            step,
            slots: Object.fromEntries(w.optimizer.slotNames.map((slot) => [slot, load(`${prefix}.optimizer.${slot}.`)]))
          }
        })
        try {
          s.generator.weights.restore(state("generator", s.generator.weights, manifest.optimizerSteps.generator))
          s.generator.restoreEma(load("generator.ema."))
          s.fakeScore.weights.restore(state("fake_score", s.fakeScore.weights, manifest.optimizerSteps.fakeScore))
          s.sampler.restore(manifest.sampler)
        } finally {
          for (const g of loaded) tf.dispose(Object.values(g))
        }
      },
      catch: (e) => new CheckpointError({ path: location, reason: e instanceof Error ? e.message : String(e) })
    })
    return { step: manifest.step, imagesSeen: manifest.imagesSeen }
  })
