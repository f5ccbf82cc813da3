/**
 * Distillation as an Effect `Stream` of step reports (docs/algorithm.md §9).
 *
 * Each element is one SiD iteration (fake-score update, generator update, EMA). The stream yields to the runtime
 * between iterations and checks the stop signal before each, so Ctrl-C is seen within one iteration; an iteration
 * itself is one synchronous block that is never cut in half. Evaluation and checkpointing are stages after it that
 * act on their intervals and add their results to the report; when the stream ends for any reason — done, failed or interrupted — a final checkpoint of the last
 * completed iteration is written (bounded in time) before the services are released.
 *
 * @module
 */
import { Effect, Either, Option, Ref, Schema, Stream } from "effect"
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import { encodeDistillConfig } from "../domain/config/DistillConfig.js"
import { type Network, trainDropoutRate } from "../domain/nn/Network.js"
import {
  configDifferences,
  decodeRecordedConfig,
  decodeRunRecord,
  encodeRunSpec,
  type RecordedRun,
  RUN_SPEC_FORMAT,
  RunRecordError,
  RunSpec,
  runSpecDifferences,
  RunSpecMismatch,
  type TeacherIdentity
} from "../domain/config/RunSpec.js"
import type { CheckpointError, CheckpointManifest, ScoreOffer } from "../services/CheckpointStore.js"
import { CheckpointStore } from "../services/CheckpointStore.js"
import { DataFreeSampler } from "../services/DataFreeSampler.js"
import { DistillationLoss } from "../services/DistillationLoss.js"
import { FakeScore } from "../services/FakeScore.js"
import { Generator } from "../services/Generator.js"
import { type MetricsError, SampleMetrics } from "../services/Metrics.js"
import { checkSidaSetup, RealData, type SidaSetupError } from "../services/RealData.js"
import { Teacher } from "../services/Teacher.js"
import type { DistillServices } from "../layers/Distillation.js"
import { captureCheckpoint, type Progress, restoreCheckpoint } from "./Checkpointing.js"
import { yieldToEventLoop } from "../engine/EventLoop.js"
import { evaluateGenerator } from "./Evaluation.js"
import { addFinalCheckpoint } from "./FinalCheckpoint.js"
import { needsAsyncReads, prefetch } from "./HostReads.js"
import { iterate, iterateAsync, type IterationServices, type IterationSettings, SigmaSummary } from "./Iteration.js"
import { adversarialSettingsOf } from "./Sida.js"
import { augmentSettingsOf } from "../domain/sid/Augment.js"
import { WebGpuDeviceError, WebGpuDeviceLost } from "../engine/WebGpuErrors.js"

/**
 * On an engine that reads only asynchronously (`webgpu`), reads the state a checkpoint captures (G, its optimiser
 * slots, G_ema, ψ and its slots) ahead, so the synchronous capture is served from the host copies.
 */
const prefetchState = (s: IterationServices): Effect.Effect<void> =>
  needsAsyncReads()
    ? Effect.promise(() =>
      prefetch([s.generator.weights, s.fakeScore.weights].flatMap((w) => [
        ...Object.values(w.variables),
        ...Object.values(w.optimizerState().slots).flatMap((slot) => Object.values(slot))
      ]).concat(Object.values(s.generator.ema)))
    )
    : Effect.void

/**
 * One element of the distillation stream: what an iteration measured, plus evaluation/checkpoint results.
 *
 * @since 0.1.0
 * @category models
 */
export class StepReport extends Schema.Class<StepReport>("StepReport")({
  /** Completed iterations, this one included. */
  step: Schema.Int,
  /** Generator samples used for its updates so far (cur_nimg, docs/algorithm.md §9.1). */
  imagesSeen: Schema.Int,
  fakeLoss: Schema.Number,
  generatorLoss: Schema.Number,
  fakeGradNorm: Schema.Number,
  generatorGradNorm: Schema.Number,
  /** Non-finite gradient entries sanitised in this iteration (docs/algorithm.md §9.1). */
  nonFiniteGradients: Schema.Int,
  /**
   * Rows removed from the generator step: a NaN or ±Inf in x_g, y_r, y_f or the row's loss. The step is recomputed
   * without them (divisor still the batch size), so they cost only their own contribution to ∂L/∂θ (beyond docs/algorithm.md
   * §8.1, which drops NaN rows from the loss value only). Equal to the batch size when every row was dropped: the
   * generator then took no optimiser step (θ and its optimiser state unchanged; the EMA still updates).
   */
  droppedRows: Schema.Int,
  fakeSigma: SigmaSummary,
  generatorSigma: SigmaSummary,
  emaBeta: Schema.Number,
  /** Generator samples per second over this iteration. */
  samplesPerSecond: Schema.Number,
  iterationMs: Schema.Number,
  /** Metrics of the EMA generator, on evaluation steps. */
  evaluation: Schema.optional(SampleMetrics),
  /** Where a checkpoint was written at this step. */
  checkpoint: Schema.optional(Schema.String),
  /** This step's evaluation is the best so far: its state is the store's best checkpoint. */
  best: Schema.optional(Schema.Boolean),
  /** SiDA (docs/algorithm.md §13): the discriminator part of the fake loss (lsd included). */
  discriminatorLoss: Schema.optional(Schema.Number),
  /** SiDA: the weighted adversarial part of the generator loss (0 before its phase). */
  adversarialLoss: Schema.optional(Schema.Number),
  /** SiDA: G was frozen in this iteration (its warm-up); the generator loss and gradient are then 0. */
  generatorFrozen: Schema.optional(Schema.Boolean)
}) {}

/**
 * The figure that ranks evaluations for the best checkpoint: FID for images, else the Fréchet distance (lower is
 * better); undefined when it is not finite.
 *
 * @since 0.1.0
 * @category utils
 */
export const bestScoreOf = (m: SampleMetrics): ScoreOffer | undefined => {
  const [metric, value] = m.fid !== undefined ? ["fid", m.fid] as const : ["frechetDistance", m.frechetDistance] as const
  return Number.isFinite(value) ? { metric, value, lowerIsBetter: true } : undefined
}

/**
 * Failures of a distillation run.
 *
 * @since 0.1.0
 * @category errors
 */
export type DistillError =
  | CheckpointError
  | MetricsError
  | RunSpecMismatch
  | RunRecordError
  | SidaSetupError
  | WebGpuDeviceLost
  | WebGpuDeviceError

/** The services a distillation run needs (`layers/Distillation.ts` builds them all). */
export type { DistillServices } from "../layers/Distillation.js"

/**
 * Options of a run beyond the config.
 *
 * @since 0.1.0
 * @category models
 */
export interface DistillOptions {
  /** Continue from the store's latest checkpoint if there is one (default false). */
  readonly resume?: boolean
  /** Continue from the stored checkpoint of this step instead of the latest (implies `resume`). */
  readonly resumeFrom?: number
  /**
   * Offer each evaluated state to the store's best checkpoint (`saveBest`, kept apart from the rotated ones): scored
   * by FID for images, the Fréchet distance otherwise, lower is better (default true).
   */
  readonly keepBest?: boolean
  /** Polled before each iteration; true ends the stream cleanly (with a final checkpoint). */
  readonly shouldStop?: Effect.Effect<boolean>
  /** Evaluate the EMA generator on `config.evalEvery` (default true; false when there is no reference set). */
  readonly evaluate?: boolean
  /** Samples per evaluation (default 10,000). */
  readonly evalSamples?: number
  /** Evaluate before the first iteration too (default true). */
  readonly evaluateAtStart?: boolean
  /** Timeout of the final checkpoint write (default 60 s). */
  readonly finalCheckpointTimeoutMs?: number
  /**
   * What the run records about its teacher and reference beside the config (a {@link RunSpec} is written into every
   * checkpoint); on resume, a checkpoint whose record differs in anything that changes the trajectory is refused.
   */
  readonly record?: { readonly teacher: TeacherIdentity; readonly reference: string }
}

/**
 * Checks that a checkpoint was written by the run being resumed: the config (and, when both sides record them, the
 * teacher and reference) may differ only in `RUN_ONLY_SETTINGS`. Fails with a {@link RunSpecMismatch} listing
 * every other difference.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkResumedRun = (
  location: string,
  manifest: CheckpointManifest,
  config: DistillConfig,
  record?: DistillOptions["record"]
): Effect.Effect<void, RunSpecMismatch | RunRecordError> =>
  Effect.gen(function*() {
    const recorded = manifest.run === undefined
      ? Either.map(decodeRecordedConfig(manifest.config), (c) => ({ _tag: "ConfigOnly", config: c }) as RecordedRun)
        .pipe(Either.mapLeft((e) => new RunRecordError({ path: location, reason: e.message })))
      : decodeRunRecord(location, manifest.run)
    const run = yield* recorded
    const differences = run._tag === "RunSpec" && record !== undefined
      ? runSpecDifferences(run.spec, new RunSpec({ format: RUN_SPEC_FORMAT, config, ...record }))
      : configDifferences(run._tag === "RunSpec" ? run.spec.config : run.config, config)
    if (differences.length > 0) return yield* new RunSpecMismatch({ location, differences })
  })

/**
 * The iteration settings of a config (`lowMemory` runs the two-stage generator update) for a network: the train-mode
 * dropout rate is `config.dropout`, or when that is null the network's own (docs/algorithm.md §9.1–9.2; 0 without a network).
 *
 * @since 0.1.0
 * @category utils
 */
export const iterationSettings = (config: DistillConfig, network?: Network): IterationSettings => {
  const augment = augmentSettingsOf(config)
  const adversarial = adversarialSettingsOf(config)
  return {
    batchSize: config.batchSize,
    fakeLossScale: config.fakeLossScale,
    emaHalfLifeKimg: config.emaHalfLifeKimg,
    emaRampupRatio: config.emaRampupRatio,
    twoStageGenerator: config.lowMemory,
    dropout: network === undefined ? config.dropout ?? 0 : trainDropoutRate(network, config.dropout),
    ...(augment === undefined ? {} : { augment }),
    ...(adversarial === undefined ? {} : { adversarial })
  }
}

/**
 * The services an iteration works on, from the context (the real-data service when there is one, for SiDA).
 *
 * @since 0.1.0
 * @category constants
 */
export const iterationServices: Effect.Effect<
  IterationServices,
  never,
  Teacher | Generator | FakeScore | DataFreeSampler | DistillationLoss
> = Effect.all({
  teacher: Teacher,
  generator: Generator,
  fakeScore: FakeScore,
  sampler: DataFreeSampler,
  loss: DistillationLoss,
  realData: Effect.serviceOption(RealData)
}).pipe(
  Effect.map(({ realData, ...rest }): IterationServices =>
    Option.isSome(realData) ? { ...rest, realData: realData.value } : rest
  )
)

/**
 * Evaluation of the EMA generator at the start of a run, as an element of its own (step = the starting step).
 *
 * @since 0.1.0
 * @category models
 */
export class StartReport extends Schema.Class<StartReport>("StartReport")({
  step: Schema.Int,
  resumedFrom: Schema.optional(Schema.String),
  evaluation: Schema.optional(SampleMetrics)
}) {}

/**
 * The distillation stream. The first element is a {@link StartReport} (resume point, initial evaluation); then one
 * {@link StepReport} per iteration until `config.steps` iterations are complete or `shouldStop` says so.
 *
 * @since 0.1.0
 * @category utils
 */
export const distill = (
  config: DistillConfig,
  options: DistillOptions = {}
): Stream.Stream<StartReport | StepReport, DistillError, DistillServices> =>
  Stream.unwrapScoped(
    Effect.gen(function*() {
      const services = yield* iterationServices
      yield* checkSidaSetup(config, services.generator.network, services.realData)
      const store = yield* CheckpointStore
      const settings = iterationSettings(config, services.generator.network)
      const encodedConfig = encodeDistillConfig(config)
      const run = options.record === undefined
        ? undefined
        : encodeRunSpec(new RunSpec({ format: RUN_SPEC_FORMAT, config, ...options.record }))
      const evalSamples = options.evalSamples ?? 10_000
      let start: Progress = { step: 0, imagesSeen: 0 }
      let resumedFrom: string | undefined
      if (options.resumeFrom !== undefined) {
        const chosen = yield* store.load(options.resumeFrom)
        yield* checkResumedRun(store.location, chosen.manifest, config, options.record)
        start = yield* restoreCheckpoint(services, chosen, store.location)
        resumedFrom = `${store.location} @ step ${start.step}`
      } else if (options.resume === true) {
        const latest = yield* store.latest
        if (Option.isSome(latest)) {
          yield* checkResumedRun(store.location, latest.value.manifest, config, options.record)
          start = yield* restoreCheckpoint(services, latest.value, store.location)
          resumedFrom = `${store.location} @ step ${start.step}`
        }
      }
      const progress = yield* Ref.make(start)
      const savedStep = yield* Ref.make(resumedFrom === undefined ? -1 : start.step)
      const save = Effect.gen(function*() {
        const p = yield* Ref.get(progress)
        yield* prefetchState(services)
        const checkpoint = yield* Effect.sync(() => captureCheckpoint(services, p, encodedConfig, run))
        yield* store.save(checkpoint)
        yield* Ref.set(savedStep, p.step)
        return `${store.location} @ step ${p.step}`
      })
      const offerBest = (evaluation: SampleMetrics) =>
        Effect.gen(function*() {
          const score = bestScoreOf(evaluation)
          if (score === undefined || options.keepBest === false) return undefined
          const p = yield* Ref.get(progress)
          yield* prefetchState(services)
          const checkpoint = yield* Effect.sync(() => captureCheckpoint(services, p, encodedConfig, run))
          const outcome = yield* store.saveBest(checkpoint, score)
          return outcome.replaced ? p.step : undefined
        })
      yield* addFinalCheckpoint({ progress, savedStep, save, timeoutMs: options.finalCheckpointTimeoutMs ?? 60_000 })
      const evaluating = options.evaluate ?? true
      const evaluate = evaluateGenerator(evalSamples, config.seed + 7919)
      const startReport = Effect.gen(function*() {
        const evaluation = evaluating && (options.evaluateAtStart ?? true) ? yield* evaluate : undefined
        return new StartReport({
          step: start.step,
          ...(resumedFrom === undefined ? {} : { resumedFrom }),
          ...(evaluation === undefined ? {} : { evaluation })
        })
      })
      const shouldStop = options.shouldStop ?? Effect.succeed(false)
      const step = (p: Progress) =>
        Effect.gen(function*() {
          const began = performance.now()
          const r = yield* (needsAsyncReads()
            ? Effect.uninterruptible(Effect.tryPromise({
              try: () => iterateAsync(services, settings, p.imagesSeen),
              catch: (error) => error
            })).pipe(Effect.catchAll((error) =>
              error instanceof WebGpuDeviceLost || error instanceof WebGpuDeviceError ? Effect.fail(error) : Effect.die(error)
            ))
            : Effect.sync(() => iterate(services, settings, p.imagesSeen)))
          const ms = performance.now() - began
          const next: Progress = { step: p.step + 1, imagesSeen: p.imagesSeen + config.batchSize }
          yield* Ref.set(progress, next)
          yield* yieldToEventLoop
          const report = new StepReport({
            step: next.step,
            imagesSeen: next.imagesSeen,
            fakeLoss: r.fakeLoss,
            generatorLoss: r.generatorLoss,
            fakeGradNorm: r.fakeGrad.gradNorm,
            generatorGradNorm: r.generatorGrad.gradNorm,
            nonFiniteGradients: r.fakeGrad.nonFinite + r.generatorGrad.nonFinite,
            droppedRows: r.droppedRows,
            fakeSigma: r.fakeSigma,
            generatorSigma: r.generatorSigma,
            emaBeta: r.emaBeta,
            samplesPerSecond: (config.batchSize * 1000) / Math.max(ms, 1e-3),
            iterationMs: ms,
            ...(r.discriminatorLoss === undefined ? {} : { discriminatorLoss: r.discriminatorLoss }),
            ...(r.adversarialLoss === undefined ? {} : { adversarialLoss: r.adversarialLoss }),
            ...(r.generatorFrozen === true ? { generatorFrozen: true } : {})
          })
          return Option.some([report, next] as const)
        })
      const due = (r: StepReport, every: number) => r.step % every === 0 || r.step === config.steps
      // Pull-based: an element is fully processed before the next iteration runs, so the services hold its state.
      const steps = Stream.unfoldEffect(start, (p) =>
        Effect.flatMap(shouldStop, (stop) => (stop || p.step >= config.steps ? Effect.succeedNone : step(p)))).pipe(
          Stream.mapEffect((r) =>
            evaluating && due(r, config.evalEvery)
              ? Effect.gen(function*() {
                const evaluation = yield* evaluate
                const best = yield* offerBest(evaluation)
                return new StepReport({ ...r, evaluation, ...(best === undefined ? {} : { best: true }) })
              })
              : Effect.succeed(r)
          ),
          Stream.mapEffect((r) =>
            due(r, config.checkpointEvery)
              ? Effect.map(save, (checkpoint) => new StepReport({ ...r, checkpoint }))
              : Effect.succeed(r)
          )
        )
      return Stream.concat(Stream.fromEffect(startReport), steps)
    })
  )
