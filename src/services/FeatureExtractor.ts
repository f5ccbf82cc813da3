/**
 * FeatureExtractor: the network image metrics are measured in (spec §7: Inception-v3 pool3 features for FID and
 * precision/recall, its softmax for the Inception Score; issue 4 §4: a small LeNet for "MNIST-FID"). The metric code
 * only sees this service, so a user can plug in another network (e.g. Inception-v3 converted to TF.js) without
 * changing it. Implementations live in `src/layers/FeatureExtractor.ts`.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, type Effect, Schema } from "effect"

/** A feature extractor failed: missing or corrupt weights, a bad model file, or inputs it cannot take. */
export class FeatureExtractorError extends Schema.TaggedError<FeatureExtractorError>()("FeatureExtractorError", {
  /** Which extractor, e.g. `lenet-mnist` or the path of a user model. */
  extractor: Schema.String,
  reason: Schema.String,
  /** What to do about it (empty when nothing specific helps). */
  fix: Schema.String
}) {
  override get message(): string {
    return `feature extractor ${this.extractor}: ${this.reason}${this.fix === "" ? "" : `. ${this.fix}`}`
  }
}

/** Features and, when the network has a classifier head, its logits, for the same images. */
export interface Extracted {
  /** [N, featureDim]. */
  readonly features: tf.Tensor2D
  /** [N, classes], unnormalised; absent when the extractor has no classifier head. */
  readonly logits?: tf.Tensor2D
}

/** What a feature extractor offers. */
export interface FeatureExtractorShape {
  /** A description, e.g. `lenet-mnist (sha256 1f90…)`. */
  readonly name: string
  /** The [H, W, C] the network itself takes; other image sizes and channel counts are adapted to it. */
  readonly inputShape: readonly [number, number, number]
  /** Width F of the feature vectors. */
  readonly featureDim: number
  /** Number of classes K of the classifier head, when it has one (needed for the Inception Score). */
  readonly classes?: number
  /**
   * Features and logits of images [N, H, W, C] in [-1, 1] (NHWC, any H, W, C the extractor accepts), computed in
   * batches. The input is read, not disposed; the caller owns the results.
   */
  readonly extract: (images: tf.Tensor4D) => Effect.Effect<Extracted, FeatureExtractorError>
  /** [N, F] features only (see `extract`). */
  readonly features: (images: tf.Tensor4D) => Effect.Effect<tf.Tensor2D, FeatureExtractorError>
  /** [N, K] logits (see `extract`); absent when the extractor has no classifier head. */
  readonly logits?: (images: tf.Tensor4D) => Effect.Effect<tf.Tensor2D, FeatureExtractorError>
}

/** The feature extractor service. */
export class FeatureExtractor extends Context.Tag("sid-ts/FeatureExtractor")<FeatureExtractor, FeatureExtractorShape>() {}
