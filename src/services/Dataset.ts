/**
 * Dataset: real images with labels, used only to train a teacher and to measure samples. Distillation
 * itself stays data-free (docs/algorithm.md §6): no layer of the SiD loop reads this service. MNIST as a dataset is
 * `node/Dataset.ts`, which re-exports this module.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, Schema } from "effect"

/**
 * One split: images in [-1, 1] (NHWC) with their integer class labels.
 *
 * @since 0.1.0
 * @category models
 */
export interface DatasetSplit {
  /** [N, H, W, 1], float32, values in [-1, 1] (background −1). */
  readonly images: tf.Tensor4D
  /** [N], int32, class of each image in 0..classes−1. */
  readonly labels: tf.Tensor1D
  /** Position of each image in the source's fixed order (digit 0's samples first, then digit 1's, …). */
  readonly indices: ReadonlyArray<number>
  /** Number of images of each class. */
  readonly classCounts: ReadonlyArray<number>
}

/**
 * What a dataset provides. The tensors are owned by the layer and disposed when its scope closes.
 *
 * @since 0.1.0
 * @category models
 */
export interface DatasetShape {
  /** A description, e.g. `mnist:28 (seed 0)`. */
  readonly name: string
  /** Shape of one image, without the batch axis: [H, W, 1]. */
  readonly imageShape: readonly [number, number, 1]
  /** Number of classes (10 for MNIST). */
  readonly classes: number
  /** The training split (teacher fitting). */
  readonly train: DatasetSplit
  /** The held-out split (measurement only). */
  readonly heldOut: DatasetSplit
}

/**
 * The dataset service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Dataset extends Context.Tag("sid-ts/Dataset")<Dataset, DatasetShape>() {}

/**
 * A dataset could not be loaded: its package is missing, or its data are not what was expected.
 *
 * @since 0.1.0
 * @category errors
 */
export class DatasetError extends Schema.TaggedError<DatasetError>()("DatasetError", {
  dataset: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `dataset ${this.dataset}: ${this.reason}. ${this.fix}`
  }
}
