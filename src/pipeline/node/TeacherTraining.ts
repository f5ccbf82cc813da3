/**
 * Teacher training as an Effect `Stream` of step reports (issue 4 §2): the small image UNet trained on the dataset's
 * training split with EDM's loss (docs/algorithm.md §2.4: log-normal σ, λ(σ)‖D − y‖², Adam with a linear learning-rate warm-up,
 * an EMA of the weights with EDM's half-life rule, docs/algorithm.md §9.1 C).
 *
 * Like distillation, the stream checks its stop signal before each step; a step is one synchronous block, and between
 * steps the event loop gets a turn, so an interruption (Ctrl-C) is seen before the next step. Checkpoints (weights,
 * Adam moments and step, EMA, random-stream states, config, architecture; docs/algorithm.md §9.3) are written every
 * `checkpointEvery` steps, at the end, and — bounded in time — when the stream ends early for any reason. Each
 * checkpoint also (re)writes the EMA weights as a teacher file (`sid-ts-teacher-v1`) when a path is given, so
 * `sid distill --teacher <file>` can use the newest one. A resumed run draws exactly the numbers the uninterrupted run
 * would have.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Option, Ref, Schema, Stream } from "effect"
import { emaBeta } from "../../domain/optim/Ema.js"
import { unetNetwork } from "../../domain/nn/Network.js"
import { NetworkDescription } from "../../domain/config/Records.js"
import { adam, type Optimizer } from "../../domain/optim/Optimizer.js"
import { cloneParameters, countParameters, type ParameterShapes } from "../../domain/nn/Parameters.js"
import { makeStream, type StreamState, uniforms } from "../../domain/data/RandomStream.js"
import type { NamedArray } from "../../domain/data/Safetensors.js"
import type { ConfigError } from "../../domain/config/ConfigError.js"
import {
  encodeTeacherTrainingConfig,
  learningRateAt,
  teacherConfigError,
  type TeacherTrainingConfig,
  teacherUNetSpec
} from "../../domain/config/TeacherTrainingConfig.js"
import { writeFileAtomic } from "../../platform/AtomicFile.js"
import { denoiserStepReads } from "../../services/Teacher.js"
import { cacheOnHost, runReads } from "../HostReads.js"
import { yieldToEventLoop } from "../../engine/EventLoop.js"
import { fromNamedArrays, toNamedArrays } from "../../domain/data/NamedTensors.js"
import { encodeTeacherFile } from "../../services/Teacher.js"
import { makeTrainableWeights } from "../../services/TrainableWeights.js"
import { CheckpointError } from "../../services/CheckpointStore.js"
import { Dataset } from "../../services/Dataset.js"
import type { Engine } from "../../engine/Engine.js"
import {
  TEACHER_CHECKPOINT_FORMAT,
  type TeacherCheckpoint,
  TeacherCheckpointManifest,
  TeacherCheckpointStore,
  type TeacherStreams
} from "../../services/TeacherCheckpointStore.js"
import { checkTensorGroup } from "../Checkpointing.js"
import { addFinalCheckpoint } from "../FinalCheckpoint.js"
import type { TrainableWeights } from "../../services/TrainableWeights.js"

/**
 * The first element of the stream: where the run starts and what it trains.
 *
 * @since 0.1.0
 * @category models
 */
export class TeacherStartReport extends Schema.Class<TeacherStartReport>("TeacherStartReport")({
  step: Schema.Int,
  resumedFrom: Schema.optional(Schema.String),
  dataset: Schema.String,
  trainImages: Schema.Int,
  network: NetworkDescription,
  parameters: Schema.Int
}) {}

/**
 * One element per training step: what it measured, plus where a checkpoint was written.
 *
 * @since 0.1.0
 * @category models
 */
export class TeacherStepReport extends Schema.Class<TeacherStepReport>("TeacherStepReport")({
  /** Completed steps, this one included. */
  step: Schema.Int,
  /** Training images seen so far. */
  imagesSeen: Schema.Int,
  /** The EDM loss of this step's batch, before the update (docs/algorithm.md §2.4). */
  loss: Schema.Number,
  /** Global gradient norm before sanitisation. */
  gradNorm: Schema.Number,
  nonFiniteGradients: Schema.Int,
  learningRate: Schema.Number,
  emaBeta: Schema.Number,
  imagesPerSecond: Schema.Number,
  stepMs: Schema.Number,
  /** Where a checkpoint was written at this step. */
  checkpoint: Schema.optional(Schema.String)
}) {}

/**
 * Failures of a teacher-training run.
 *
 * @since 0.1.0
 * @category models
 */
export type TeacherTrainingError = CheckpointError | ConfigError

/**
 * Options of a run beyond the config.
 *
 * @since 0.1.0
 * @category models
 */
export interface TeacherTrainingOptions {
  /** Continue from the store's newest checkpoint. Without it, a store that already holds one is an error. */
  readonly resume?: boolean
  /** Polled before each step; true ends the stream cleanly (with a final checkpoint). */
  readonly shouldStop?: Effect.Effect<boolean>
  /** Where the EMA weights are written as a teacher file at every checkpoint. */
  readonly teacherFile?: string
  /** Timeout of the final checkpoint write (default 60 s). */
  readonly finalCheckpointTimeoutMs?: number
}

/**
 * Adam (β1, β2, ε of the config) whose learning rate follows EDM's linear warm-up by its own step count (docs/algorithm.md §2.4).
 *
 * @since 0.1.0
 * @category utils
 */
export const warmupAdam = (config: TeacherTrainingConfig): Optimizer => {
  const at = (step: number) =>
    adam({ learningRate: learningRateAt(config, step * config.batchSize), beta1: config.beta1, beta2: config.beta2, epsilon: config.epsilon })
  return {
    name: `adam(lr ${config.learningRate}, warm-up ${config.learningRateRampupKimg} kimg, β ${config.beta1}/${config.beta2}, ε ${config.epsilon})`,
    slotNames: ["m", "v"],
    update: (params, grads, state) => at(state.step).update(params, grads, state)
  }
}

/**
 * The stream states of a fresh run with this seed.
 *
 * @since 0.1.0
 * @category utils
 */
export const initialStreams = (seed: number): TeacherStreams => ({
  data: makeStream(seed, "teacher.data"),
  sigma: makeStream(seed, "teacher.sigma"),
  noise: makeStream(seed, "teacher.noise")
})

/**
 * Batch indices into a split of `n` images, uniform with replacement, and the next stream state.
 *
 * @since 0.1.0
 * @category utils
 */
export const drawIndices = (state: StreamState, batch: number, n: number): { readonly indices: Int32Array; readonly state: StreamState } => {
  const u = uniforms(state, batch)
  const indices = new Int32Array(batch)
  for (let i = 0; i < batch; i++) indices[i] = Math.min(n - 1, Math.floor(u.values[i]! * n))
  return { indices, state: u.state }
}

/** Settings that may change when a run is resumed; every other config field must match the checkpoint's. */
const RESUMABLE_CHANGES: ReadonlySet<string> = new Set(["steps", "checkpointEvery"])

/** Checks that a checkpoint was written by a run with this config, dataset and architecture (before anything is restored). */
const checkCompatible = (
  location: string,
  checkpoint: TeacherCheckpoint,
  config: TeacherTrainingConfig,
  datasetName: string,
  network: { readonly description: unknown; readonly shapes: ParameterShapes },
  weights: TrainableWeights
): Effect.Effect<void, CheckpointError> =>
  Effect.gen(function*() {
    const { manifest } = checkpoint
    const ours = encodeTeacherTrainingConfig(config) as Record<string, unknown>
    const theirs = encodeTeacherTrainingConfig(manifest.config) as Record<string, unknown>
    const differing = Object.keys(ours).filter((k) => !RESUMABLE_CHANGES.has(k) && JSON.stringify(ours[k]) !== JSON.stringify(theirs[k]))
    if (differing.length > 0) {
      return yield* new CheckpointError({
        path: location,
        reason: `it was written with a different config (${
          differing.map((k) => `${k}: ${JSON.stringify(theirs[k])} there, ${JSON.stringify(ours[k])} here`).join("; ")
        }); resume with the same settings (only steps and checkpointEvery may change)`
      })
    }
    if (manifest.dataset !== datasetName) {
      return yield* new CheckpointError({ path: location, reason: `it was trained on ${manifest.dataset}, this run uses ${datasetName}` })
    }
    if (JSON.stringify(manifest.network) !== JSON.stringify(network.description)) {
      return yield* new CheckpointError({
        path: location,
        reason: `it was written for network ${JSON.stringify(manifest.network)}, this run trains ${JSON.stringify(network.description)}`
      })
    }
    for (const prefix of ["params.", ...weights.optimizer.slotNames.map((s) => `optimizer.${s}.`), "ema."]) {
      yield* checkTensorGroup(location, checkpoint.tensors, prefix, network.shapes)
    }
  })

/**
 * The teacher-training stream. The first element is a {@link TeacherStartReport}; then one {@link TeacherStepReport}
 * per step until `config.steps` steps are complete or `shouldStop` says so. Needs the dataset (its training split,
 * at the config's resolution), a teacher-checkpoint store and the engine (the weights are tensors).
 *
 * @since 0.1.0
 * @category utils
 */
export const trainTeacher = (
  config: TeacherTrainingConfig,
  options: TeacherTrainingOptions = {}
): Stream.Stream<TeacherStartReport | TeacherStepReport, TeacherTrainingError, Dataset | TeacherCheckpointStore | Engine> =>
  Stream.unwrapScoped(
    Effect.gen(function*() {
      const dataset = yield* Dataset
      const store = yield* TeacherCheckpointStore
      if (dataset.imageShape[0] !== config.resolution || dataset.imageShape[1] !== config.resolution) {
        return yield* teacherConfigError([{
          field: "resolution",
          value: config.resolution,
          rule: `does not match the dataset ${dataset.name} (${dataset.imageShape.join("×")} images)`
        }])
      }
      if (config.conditional && dataset.classes !== 10) {
        return yield* teacherConfigError([
          { field: "conditional", value: true, rule: `needs a 10-class dataset; ${dataset.name} has ${dataset.classes}` }
        ])
      }
      const network = unetNetwork(teacherUNetSpec(config))
      const init = network.init(config.seed)
      const weights = yield* makeTrainableWeights(init, warmupAdam(config))
      tf.dispose(Object.values(init))
      const ema = yield* Effect.acquireRelease(
        Effect.sync(() => cloneParameters(weights.variables)),
        (e) => Effect.sync(() => tf.dispose(Object.values(e)))
      )
      const train = dataset.train
      const trainSize = train.images.shape[0]
      let streams = initialStreams(config.seed)
      let start = { step: 0, imagesSeen: 0 }
      let resumedFrom: string | undefined
      const latest = yield* store.latest
      if (Option.isSome(latest)) {
        const checkpoint = latest.value
        if (options.resume !== true) {
          return yield* new CheckpointError({
            path: store.location,
            reason: `it already holds a checkpoint at step ${checkpoint.manifest.step}; resume it (--resume) or choose another run directory`
          })
        }
        yield* checkCompatible(store.location, checkpoint, config, dataset.name, network, weights)
        yield* Effect.try({
          try: () => restore(checkpoint, weights, ema),
          catch: (e) => new CheckpointError({ path: store.location, reason: e instanceof Error ? e.message : String(e) })
        })
        streams = checkpoint.manifest.streams
        start = { step: checkpoint.manifest.step, imagesSeen: checkpoint.manifest.imagesSeen }
        resumedFrom = `${store.location} @ step ${start.step}`
      }
      const progress = yield* Ref.make(start)
      const savedStep = yield* Ref.make(resumedFrom === undefined ? -1 : start.step)
      const description = { kind: network.description.kind, spec: network.description.spec }
      const capture = (p: { readonly step: number; readonly imagesSeen: number }) => {
        const tensors = new Map<string, NamedArray>([
          ...toNamedArrays(weights.variables, "params."),
          ...Object.entries(weights.optimizerState().slots).flatMap(([slot, values]) => toNamedArrays(values, `optimizer.${slot}.`)),
          ...toNamedArrays(ema, "ema.")
        ])
        const manifest = new TeacherCheckpointManifest({
          format: TEACHER_CHECKPOINT_FORMAT,
          step: p.step,
          imagesSeen: p.imagesSeen,
          optimizerStep: weights.optimizerState().step,
          streams,
          config,
          dataset: dataset.name,
          network: description,
          weightsFile: "",
          weightsSha256: "",
          tensors: {},
          createdAt: new Date().toISOString()
        })
        const teacherBytes = options.teacherFile === undefined ? undefined : encodeTeacherFile(network, ema, config.sigmaData)
        return { checkpoint: { manifest, tensors }, teacherBytes }
      }
      const save = Effect.gen(function*() {
        const p = yield* Ref.get(progress)
        // On an engine that reads only asynchronously, the capture's synchronous reads are served from host copies.
        yield* Effect.promise(() =>
          runReads(cacheOnHost([
            ...weights.list,
            ...Object.values(weights.optimizerState().slots).flatMap((slot) => Object.values(slot)),
            ...Object.values(ema)
          ]))
        )
        const { checkpoint, teacherBytes } = yield* Effect.sync(() => capture(p))
        yield* store.save(checkpoint)
        if (options.teacherFile !== undefined && teacherBytes !== undefined) {
          const path = options.teacherFile
          yield* writeFileAtomic(path, teacherBytes).pipe(
            Effect.mapError((e) => new CheckpointError({ path, reason: `could not write the teacher file (${e.message})` }))
          )
        }
        yield* Ref.set(savedStep, p.step)
        return `${store.location} @ step ${p.step}`
      })
      yield* addFinalCheckpoint({ progress, savedStep, save, timeoutMs: options.finalCheckpointTimeoutMs ?? 60_000 })
      const emaConfig = { halfLifeKimg: config.emaHalfLifeKimg, rampupRatio: config.emaRampupRatio }
      const runStep = (p: { readonly step: number; readonly imagesSeen: number }) =>
        Effect.gen(function*() {
          const began = performance.now()
          const beta = emaBeta(emaConfig, config.batchSize, p.imagesSeen)
          const learningRate = learningRateAt(config, p.imagesSeen)
          const r = yield* Effect.uninterruptible(Effect.promise(async () => {
            const drawn = drawIndices(streams.data, config.batchSize, trainSize)
            const { labels, x0 } = tf.tidy(() => {
              const idx = tf.tensor1d(drawn.indices, "int32")
              return {
                x0: tf.gather(train.images, idx),
                labels: config.conditional ? tf.oneHot(tf.gather(train.labels, idx), 10).toFloat() as tf.Tensor2D : undefined
              }
            })
            try {
              const step = await runReads(denoiserStepReads({
                network,
                weights,
                ema,
                emaBeta: beta,
                x0,
                ...(labels === undefined ? {} : { labels }),
                streams: { sigma: streams.sigma, noise: streams.noise },
                sigmaData: config.sigmaData,
                pMean: config.pMean,
                pStd: config.pStd
              }))
              streams = { data: drawn.state, sigma: step.streams.sigma, noise: step.streams.noise }
              return step
            } finally {
              tf.dispose(labels === undefined ? [x0] : [x0, labels])
            }
          }))
          const ms = performance.now() - began
          const next = { step: p.step + 1, imagesSeen: p.imagesSeen + config.batchSize }
          yield* Ref.set(progress, next)
          yield* yieldToEventLoop
          const report = new TeacherStepReport({
            step: next.step,
            imagesSeen: next.imagesSeen,
            loss: r.loss,
            gradNorm: r.gradNorm,
            nonFiniteGradients: r.nonFinite,
            learningRate,
            emaBeta: beta,
            imagesPerSecond: (config.batchSize * 1000) / Math.max(ms, 1e-3),
            stepMs: ms
          })
          return Option.some([report, next] as const)
        })
      const shouldStop = options.shouldStop ?? Effect.succeed(false)
      const due = (r: TeacherStepReport) => r.step % config.checkpointEvery === 0 || r.step === config.steps
      const steps = Stream.unfoldEffect(start, (p) =>
        Effect.flatMap(shouldStop, (stop) => (stop || p.step >= config.steps ? Effect.succeedNone : runStep(p)))).pipe(
          Stream.mapEffect((r) =>
            due(r) ? Effect.map(save, (checkpoint) => new TeacherStepReport({ ...r, checkpoint })) : Effect.succeed(r)
          )
        )
      const startReport = new TeacherStartReport({
        step: start.step,
        ...(resumedFrom === undefined ? {} : { resumedFrom }),
        dataset: dataset.name,
        trainImages: trainSize,
        network: description,
        parameters: countParameters(weights.variables)
      })
      return Stream.concat(Stream.succeed(startReport), steps)
    })
  )

/** Restores weights, Adam state and EMA from a checked checkpoint (throws on a mismatch, changing nothing first). */
const restore = (checkpoint: TeacherCheckpoint, weights: TrainableWeights, ema: Record<string, tf.Tensor>): void => {
  const loaded: Array<Record<string, tf.Tensor>> = []
  const load = (prefix: string) => {
    const t = fromNamedArrays(checkpoint.tensors, prefix)
    loaded.push(t)
    return t
  }
  try {
    weights.restore({
      params: load("params."),
      optimizer: {
        step: checkpoint.manifest.optimizerStep,
        slots: Object.fromEntries(weights.optimizer.slotNames.map((slot) => [slot, load(`optimizer.${slot}.`)]))
      }
    })
    const saved = load("ema.")
    for (const name of Object.keys(ema)) {
      ema[name]!.dispose()
      ema[name] = tf.clone(saved[name]!)
    }
  } finally {
    for (const g of loaded) tf.dispose(Object.values(g))
  }
}
