/**
 * Real images for SiDA's discriminator (spec §9.1; docs/sida.md §4). SiD itself is data-free; SiDA adds a GAN term
 * whose discriminator (the fake score's encoder) sees real images next to the generator's. Real images reach only
 * that discriminator: never the generator's inputs, never the teacher.
 *
 * The service holds a dataset; which rows a step sees is drawn by the data-free sampler's `real` stream, so the
 * position in the data is checkpointed with the run's other streams and a resumed run sees the same images.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, Schema } from "effect"

/** Some rows of a real dataset: images [n, ...dataShape] in [-1, 1], and one-hot labels when asked for. */
export interface RealBatch {
  readonly images: tf.Tensor
  /** One-hot [n, classes], present when the rows were taken with labels. */
  readonly labels?: tf.Tensor2D
}

/** What a real-data source provides. Its tensors are owned by its layer; `rows` returns new ones the caller owns. */
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

/** The real-data service (SiDA only). */
export class RealData extends Context.Tag("sid-ts/RealData")<RealData, RealDataShape>() {}

/**
 * A SiDA setting cannot be honoured: the adversarial term without a real-data source, a dataset whose images or
 * classes do not fit the teacher's, or a network that cannot serve as the discriminator. Raised before anything is
 * written.
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
