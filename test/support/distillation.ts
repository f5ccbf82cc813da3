import * as tf from "@tensorflow/tfjs"
import { Effect, Exit, Layer, Scope } from "effect"
import { type DistillConfig, distillConfig } from "../../src/domain/DistillConfig.js"
import { ring } from "../../src/domain/GaussianMixture.js"
import * as CheckpointStore from "../../src/layers/CheckpointStore.js"
import * as Distillation from "../../src/layers/Distillation.js"
import * as Engine from "../../src/layers/Engine.js"
import * as Metrics from "../../src/layers/Metrics.js"
import * as Teacher from "../../src/layers/Teacher.js"
import type { CheckpointStore as CheckpointStoreTag } from "../../src/services/CheckpointStore.js"
import type { Teacher as TeacherTag, TeacherError } from "../../src/services/Teacher.js"

/** The engine, built once for a test file; returns its release. */
export const useEngine = async (engine: "wasm" | "cpu" = "wasm"): Promise<() => Promise<void>> => {
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(Engine.layer(engine), scope))
  return () => Effect.runPromise(Scope.close(scope, Exit.void))
}

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
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const ctx = yield* Layer.build(Teacher.layerGaussianMixture(ring(), { steps: 300, hidden, depth: 2, batchSize: 256 }))
        const t = ctx.unsafeMap.get("sid-ts/Teacher") as TeacherTag["Type"]
        yield* Teacher.writeTeacherFile(path, t.weights.network, t.weights.params, t.sigmaData)
      })
    )
  )

/** Every layer of a run, given the teacher layer and the checkpoint store (metrics against the exact ring). */
export const runLayers = (
  config: DistillConfig,
  teacher: Layer.Layer<TeacherTag, TeacherError>,
  store: Layer.Layer<CheckpointStoreTag>
) =>
  Distillation.layer(config, {
    teacher,
    metrics: Metrics.layerGaussianMixture(ring(), { referenceSize: 4000, mmdSize: 1000 }),
    checkpoints: store
  })

export { CheckpointStore, Teacher, tf }
