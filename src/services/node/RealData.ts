/**
 * The real-data source a config names, on Node (`data: "mnist"`: the `mnist` package). Re-exports the portable
 * `services/RealData.ts`.
 *
 * @module
 */
import { Effect, Layer } from "effect"
import type { Engine } from "../../engine/Engine.js"
import { Dataset, type DatasetError } from "../Dataset.js"
import * as MnistDataset from "./Dataset.js"
import { checkRealData, fromDataset, RealData, type RealDataSource, SidaSetupError } from "../RealData.js"
import { Teacher } from "../Teacher.js"

export * from "../RealData.js"

const mnistSize = (shape: ReadonlyArray<number>): 16 | 28 | 32 | undefined => {
  const [h, w, c] = shape
  return shape.length === 3 && h === w && c === 1 && (h === 16 || h === 28 || h === 32) ? h : undefined
}

/**
 * The real-data source a config names, for the teacher in context: `"mnist"` is the MNIST training split (seed 0, the
 * split the project's MNIST teachers are trained on) at the teacher's image size. Fails with a {@link SidaSetupError}
 * when the teacher's samples are not one-channel 16, 28 or 32-pixel square images or its classes differ, and with the
 * dataset's `DatasetError` when the package is missing.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerForTeacher = (
  source: RealDataSource
): Layer.Layer<RealData, SidaSetupError | DatasetError, Teacher | Engine> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const teacher = yield* Teacher
      const size = mnistSize(teacher.dataShape)
      if (size === undefined) {
        return yield* new SidaSetupError({
          setting: "data",
          reason: `the dataset ${source} has one-channel 16, 28 or 32-pixel images, but the teacher's samples are ` +
            `[${teacher.dataShape}]`,
          fix: "Use real data with the teacher's shape: build a RealData layer from your own Dataset (RealData.fromDataset)"
        })
      }
      const network = teacher.weights.network
      return Layer.effect(
        RealData,
        Effect.gen(function*() {
          const real = fromDataset(yield* Dataset)
          yield* checkRealData(real, network)
          return real
        })
      ).pipe(Layer.provide(MnistDataset.layer({ size })))
    })
  )

