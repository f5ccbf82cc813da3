import * as tf from "@tensorflow/tfjs"
import { join } from "node:path"
import { Effect, Exit, Layer, Option, Scope, Stream } from "effect"
import { type DistillConfig, distillConfig } from "../../src/domain/config/DistillConfig.js"
import { ring } from "../../src/domain/data/GaussianMixture.js"
import type { Network } from "../../src/domain/nn/Network.js"
import { balancedLabels, fixedLatents } from "../../src/domain/sid/OneStep.js"
import * as CheckpointStore from "../../src/services/node/CheckpointStore.js"
import * as Distillation from "../../src/layers/node/Distillation.js"
import * as Engine from "../../src/engine/node/Engine.js"
import * as Metrics from "../../src/services/node/Metrics.js"
import * as Teacher from "../../src/services/node/Teacher.js"
import { distill } from "../../src/pipeline/Distill.js"
import { type Checkpoint, CheckpointStore as CheckpointStoreTag } from "../../src/services/node/CheckpointStore.js"
import type { Engine as EngineTag } from "../../src/engine/node/Engine.js"
import { Generator } from "../../src/services/node/Generator.js"
import { Teacher as TeacherTag, type TeacherError } from "../../src/services/node/Teacher.js"

/**
 * The engine, built once for a test file; returns its release. The layers a test builds share it through
 * {@link activeEngine} (`Engine.layerActive`), so each test need not start one.
 */
export const useEngine = async (engine: Engine.EngineName = "wasm"): Promise<() => Promise<void>> => {
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(Engine.layer(engine), scope))
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}

/** The engine a test file started with {@link useEngine}, shared (fails with `EngineNotActive` without one). */
export const activeEngine = Layer.orDie(Engine.layerActive)

/** Runs `effect` with the engine that {@link useEngine} started. */
export const runWithEngine = <A, E>(effect: Effect.Effect<A, E, EngineTag>): Promise<A> =>
  Effect.runPromise(Effect.provide(effect, activeEngine))

/** Runs `effect` to its exit with the engine that {@link useEngine} started. */
export const runExitWithEngine = <A, E>(effect: Effect.Effect<A, E, EngineTag>) =>
  Effect.runPromiseExit(Effect.provide(effect, activeEngine))

/** Runs a synchronous `effect` with the engine that {@link useEngine} started. */
export const runSyncWithEngine = <A, E>(effect: Effect.Effect<A, E, EngineTag>): A =>
  Effect.runSync(Effect.provide(effect, activeEngine))

/** A small config for tests: overrides on top of the toy defaults. */
export const smallConfig = (overrides: Partial<typeof DistillConfig.Encoded> = {}): DistillConfig =>
  distillConfig({
    batchSize: 128,
    generatorLr: 1e-3,
    fakeLr: 1e-3,
    emaHalfLifeKimg: 5,
    evalEvery: 1_000_000,
    checkpointEvery: 1_000_000,
    ...overrides
  })

/** The ring mixture and a small MLP regressed onto its exact denoiser, written as a teacher file. */
export const writeSmallTeacher = (path: string, hidden = 32): Promise<void> =>
  runWithEngine(
    Effect.scoped(
      Effect.gen(function*() {
        const ctx = yield* Layer.build(Teacher.layerGaussianMixture(ring(), { steps: 300, hidden, depth: 2, batchSize: 256 }))
        const t = ctx.unsafeMap.get("sid-ts/Teacher") as TeacherTag["Type"]
        yield* Teacher.writeTeacherFile(path, t.weights.network, t.weights.params, t.sigmaData)
      })
    )
  )

/**
 * Every layer of a run, given the teacher layer and the checkpoint store (metrics against the exact ring), on the
 * engine the test file started ({@link useEngine}).
 */
export const runLayers = (
  config: DistillConfig,
  teacher: Layer.Layer<TeacherTag, TeacherError, EngineTag>,
  store: Layer.Layer<CheckpointStoreTag>
) =>
  Distillation.layer(config, {
    teacher,
    metrics: Metrics.layerGaussianMixture(ring(), { referenceSize: 4000, mmdSize: 1000 }),
    checkpoints: store
  }).pipe(Layer.provide(activeEngine))

/** A finished tiny run and the EMA generator's samples from the latents of a seed, computed by the run itself. */
export interface TinyRun {
  readonly checkpoint: Checkpoint
  /** EMA and live samples of `count` latents of `seed` (`fixedLatents`), classes in turn for a conditional network. */
  readonly ema: Float32Array
  readonly live: Float32Array
  readonly sigmaInit: number
}

/**
 * `steps` SiD iterations distilling a teacher made of `network`'s seeded initial weights (checkpoint at the last step
 * in `<runDir>/checkpoints`), with a fast EMA so that EMA and live weights differ.
 */
export const tinyRun = (
  network: Network,
  runDir: string,
  options: { readonly steps?: number; readonly batchSize?: number; readonly seed?: number; readonly count?: number } = {}
): Promise<TinyRun> => {
  const steps = options.steps ?? 2
  const config = distillConfig({
    steps,
    batchSize: options.batchSize ?? 2,
    evalEvery: 1_000_000,
    checkpointEvery: steps,
    generatorLr: 1e-3,
    fakeLr: 1e-4,
    emaHalfLifeKimg: 0.01,
    emaRampupRatio: null
  })
  const teacher = Layer.scoped(
    TeacherTag,
    Effect.acquireRelease(
      Effect.sync(() => Teacher.fromWeights(`tiny ${network.description.kind}`, network, network.init(3), 0.5)),
      (t) => Effect.sync(() => tf.dispose(Object.values(t.weights.params)))
    )
  )
  const services = Distillation.layer(config, {
    teacher,
    metrics: Metrics.layerUnavailable(network.dataShape),
    checkpoints: CheckpointStore.layerDirectory(join(runDir, "checkpoints"))
  })
  const count = options.count ?? 3
  return runWithEngine(
    Effect.gen(function*() {
      const g = yield* Generator
      yield* distill(config, { evaluate: false }).pipe(Stream.runDrain)
      const samples = (w: "ema" | "live") =>
        tf.tidy(() => {
          const labels = network.labelDim > 0 ? balancedLabels(count, network.labelDim) : undefined
          return Float32Array.from(g.generate(fixedLatents(options.seed ?? 0, count, network.dataShape), w, labels).dataSync())
        })
      const checkpoint = Option.getOrThrow(yield* Effect.flatMap(CheckpointStoreTag, (s) => s.latest))
      return { checkpoint, ema: samples("ema"), live: samples("live"), sigmaInit: g.sigmaInit }
    }).pipe(Effect.provide(services))
  )
}

export { CheckpointStore, Teacher, tf }
