/**
 * Real images for SiDA's discriminator (docs/algorithm.md §13; docs/sida.md §4). SiD itself is data-free; SiDA adds a GAN term
 * whose discriminator (the fake score's encoder) sees real images next to the generator's. Real images reach only
 * that discriminator: never the generator's inputs, never the teacher.
 *
 * The service holds a dataset; which rows a step sees is drawn by the data-free sampler's `real` stream, so the
 * position in the data is checkpointed with the run's other streams and a resumed run sees the same images.
 *
 * Portable: a real-data source from any `Dataset`. The source a config names (`data: "mnist"`) is built by
 * `node/RealData.ts`, which re-exports this module.
 *
 * @module
 */
import { Context, Schema, Effect, Layer } from "effect"
import * as tf from "@tensorflow/tfjs"
import { hasDiscriminator, type Network } from "../domain/nn/Network.js"
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import { Dataset } from "./Dataset.js"

/**
 * Some rows of a real dataset: images [n, ...dataShape] in [-1, 1], and one-hot labels when asked for.
 *
 * @since 0.2.0
 * @category models
 */
export interface RealBatch {
  readonly images: tf.Tensor
  /** One-hot [n, classes], present when the rows were taken with labels. */
  readonly labels?: tf.Tensor2D
}

/**
 * What a real-data source provides. Its tensors are owned by its layer; `rows` returns new ones the caller owns.
 *
 * @since 0.2.0
 * @category models
 */
export interface RealDataShape {
  /** A description recorded in logs, e.g. `mnist:28 (seed 0)`. */
  readonly name: string
  /** Shape of one image, without the batch axis (NHWC: [H, W, C]). */
  readonly dataShape: ReadonlyArray<number>
  /** Number of images. */
  readonly size: number
  /** Number of classes of its labels. */
  readonly classes: number
  /** The images (and, with `labels`, one-hot labels) of these rows, 0 ≤ index < size. */
  readonly rows: (indices: Int32Array, options?: { readonly labels?: boolean }) => RealBatch
}

/**
 * The real-data service (SiDA only).
 *
 * @since 0.2.0
 * @category tags
 */
export class RealData extends Context.Tag("sid-ts/RealData")<RealData, RealDataShape>() {}

/**
 * A SiDA setting cannot be honoured: the adversarial term without a real-data source, a dataset whose images or
 * classes do not fit the teacher's, or a network that cannot serve as the discriminator. Raised before anything is
 * written.
 *
 * @since 0.2.0
 * @category errors
 */
export class SidaSetupError extends Schema.TaggedError<SidaSetupError>()("SidaSetupError", {
  /** The setting at fault (e.g. `adversarial`, `data`, `augment`). */
  setting: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `${this.setting}: ${this.reason}. ${this.fix}`
  }
}

/*
 * Layers.
 *
 * Real-data layers for SiDA (docs/algorithm.md §13; docs/sida.md §4): a `RealData` from any `Dataset` service (its training
 * split), and the one a config names (`data: "mnist"`), built at the teacher's image size and checked against the
 * teacher's data shape and classes before anything else happens.
 */

/**
 * The names of the real-data sources a config can choose (`DistillConfig.data`).
 *
 * @since 0.2.0
 * @category constants
 */
export const REAL_DATA_SOURCES = ["mnist"] as const
/**
 * @see {@link REAL_DATA_SOURCES}
 *
 * @since 0.2.0
 * @category models
 */
export type RealDataSource = (typeof REAL_DATA_SOURCES)[number]

/**
 * A `RealData` over the training split of a dataset.
 *
 * @since 0.2.0
 * @category constructors
 */
export const fromDataset = (dataset: {
  readonly name: string
  readonly imageShape: ReadonlyArray<number>
  readonly classes: number
  readonly train: { readonly images: tf.Tensor; readonly labels: tf.Tensor1D }
}): RealDataShape => {
  const size = dataset.train.images.shape[0] ?? 0
  return RealData.of({
    name: dataset.name,
    dataShape: dataset.imageShape,
    size,
    classes: dataset.classes,
    rows: (indices, options = {}) =>
      tf.tidy(() => {
        for (const i of indices) {
          if (!(i >= 0 && i < size)) throw new Error(`real-data row ${i} is outside 0..${size - 1}`)
        }
        const index = tf.tensor1d(indices, "int32")
        const images = tf.gather(dataset.train.images, index)
        return options.labels === true
          ? { images, labels: tf.oneHot(tf.gather(dataset.train.labels, index), dataset.classes).toFloat() as tf.Tensor2D }
          : { images }
      })
  })
}

/**
 * The `RealData` of the `Dataset` in context (its training split).
 *
 * @since 0.2.0
 * @category layers
 */
export const layerFromDataset: Layer.Layer<RealData, never, Dataset> = Layer.effect(RealData, Effect.map(Dataset, fromDataset))

/**
 * Checks that a real-data source fits a network (docs/algorithm.md §13): the same image shape, and for a class-conditional network
 * as many classes as its labels. Fails with a {@link SidaSetupError} naming the mismatch.
 *
 * @since 0.2.0
 * @category utils
 */
export const checkRealData = (real: RealDataShape, network: Network): Effect.Effect<void, SidaSetupError> => {
  const same = real.dataShape.length === network.dataShape.length && real.dataShape.every((d, i) => d === network.dataShape[i])
  if (!same) {
    return Effect.fail(
      new SidaSetupError({
        setting: "data",
        reason: `the dataset ${real.name} has images of shape [${real.dataShape}], but the teacher's samples are ` +
          `[${network.dataShape}]`,
        fix: "Choose a dataset whose images have the teacher's shape (MNIST serves one-channel 16, 28 or 32-pixel teachers)"
      })
    )
  }
  if (network.labelDim > 0 && network.labelDim !== real.classes) {
    return Effect.fail(
      new SidaSetupError({
        setting: "data",
        reason: `the dataset ${real.name} has ${real.classes} classes, but the teacher is conditioned on ${network.labelDim}`,
        fix: "Choose a dataset with the teacher's classes"
      })
    )
  }
  return Effect.void
}

/**
 * The config-level SiDA check: the adversarial term needs a real-data source (`data`, or a RealData layer given in its
 * place: `realDataGiven`). Fails with a {@link SidaSetupError} naming the setting.
 *
 * @since 0.2.0
 * @category utils
 */
export const checkSidaConfig = (config: DistillConfig, realDataGiven = false): Effect.Effect<void, SidaSetupError> =>
  config.adversarial && config.data === null && !realDataGiven
    ? Effect.fail(
      new SidaSetupError({
        setting: "adversarial",
        reason: "SiDA's discriminator needs real images, but no real-data source is set",
        fix: "Name one with --data mnist (config `data`), or provide a RealData layer"
      })
    )
    : Effect.void

/**
 * Checks that the services of a run can honour its augmentation and SiDA settings, before anything is written:
 * augmentation needs image data [H, W, C]; SiDA needs a real-data source that fits the teacher's data shape and
 * classes, and a network with discriminator logits. Fails with a {@link SidaSetupError} naming the mismatch.
 *
 * @since 0.2.0
 * @category utils
 */
export const checkSidaSetup = (
  config: DistillConfig,
  network: Network,
  realData: RealDataShape | undefined
): Effect.Effect<void, SidaSetupError> =>
  Effect.gen(function*() {
    if (config.augment > 0 && network.dataShape.length !== 3) {
      return yield* new SidaSetupError({
        setting: "augment",
        reason: `augmentation transforms images [H, W, C], but the teacher's samples have shape [${network.dataShape}]`,
        fix: "Set --augment 0 for non-image data"
      })
    }
    if (!config.adversarial) return
    yield* checkSidaConfig(config, realData !== undefined)
    if (!hasDiscriminator(network)) {
      return yield* new SidaSetupError({
        setting: "adversarial",
        reason: `the network kind "${network.description.kind}" has no discriminator logits for SiDA`,
        fix: "Use a network with applyWithLogits and applyLogits (the small UNet, SongUNet, DhariwalUNet or the MLP)"
      })
    }
    if (realData === undefined) {
      return yield* new SidaSetupError({
        setting: "data",
        reason: `the config names ${config.data} but no RealData service was provided`,
        fix: "Build the run with Distillation.layer, or provide a RealData layer"
      })
    }
    yield* checkRealData(realData, network)
  })
