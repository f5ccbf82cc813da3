/**
 * Metrics: how close a set of samples is to the reference distribution (spec §7, §10.3, §10.5).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, type Effect, Schema } from "effect"

/** Sample-quality figures. Mixture-only and image-only figures are absent for other references. */
export class SampleMetrics extends Schema.Class<SampleMetrics>("SampleMetrics")({
  /** Number of samples evaluated. */
  samples: Schema.Int,
  /**
   * Fréchet distance to the reference set (spec §7): in raw coordinates for vector data (§10.3), in the feature
   * extractor's space for images (then equal to `fid`).
   */
  frechetDistance: Schema.Number,
  /**
   * MMD² to the reference set: unbiased RBF-kernel MMD² in raw coordinates for vector data (spec §10.5); for images
   * the KID, an unbiased MMD² with the polynomial kernel (xᵀy/d + 1)³ on the extractor's features (spec §7).
   */
  mmd: Schema.Number,
  /** Share of the in-mode samples assigned to each mixture component (true weights for a perfect sampler). */
  modeWeights: Schema.optional(Schema.Array(Schema.Number)),
  /** Number of components that received at least half their true share of samples. */
  modesCovered: Schema.optional(Schema.Int),
  /** Share of samples farther than 3 standard deviations from every component mean (spec §10.5). */
  offModeFraction: Schema.optional(Schema.Number),
  /**
   * Mixtures: the unbiased RBF-MMD² at each of several bandwidths, from well below to above a mode's width (spec
   * §10.3): the small ones see the shape of each mode, the large ones the placement of the mass.
   */
  mmdByBandwidth: Schema.optional(Schema.Array(Schema.Struct({ bandwidth: Schema.Number, mmd: Schema.Number }))),
  /** Mixtures: share of samples on bridges between two neighbouring modes (`GaussianMixture.modeShape`). */
  betweenModeFraction: Schema.optional(Schema.Number),
  /** Mixtures: the in-mode spread as a multiple of the truth's, averaged over the modes with the true weights (1 = exact). */
  inModeSpread: Schema.optional(Schema.Number),
  /** Mixtures, per component: error of the in-mode mean in the mode's standard deviations (null: too few samples). */
  modeMeanErrors: Schema.optional(Schema.Array(Schema.NullOr(Schema.Number))),
  /** Mixtures, per component: ‖whitened in-mode covariance − I‖_F against the truth (0 = exact; null: too few samples). */
  modeCovarianceErrors: Schema.optional(Schema.Array(Schema.NullOr(Schema.Number))),
  /** Mixtures, per component: in-mode spread as a multiple of the truth's (null: too few samples). */
  modeSpreads: Schema.optional(Schema.Array(Schema.NullOr(Schema.Number))),
  /** Images: FID, the Fréchet distance of the extractor's features to the reference features (spec §7). */
  fid: Schema.optional(Schema.Number),
  /** Images: Inception Score of the samples from the extractor's class probabilities (spec §7; 1 ≤ IS ≤ classes). */
  inceptionScore: Schema.optional(Schema.Number),
  /** Images: share of samples inside the reference feature manifold (k-NN balls, k = 3; spec §7). */
  precision: Schema.optional(Schema.Number),
  /** Images: share of reference images inside the samples' feature manifold (k-NN balls, k = 3; spec §7). */
  recall: Schema.optional(Schema.Number),
  /** Images: the extractor's classification accuracy on the labelled reference set, reported beside its figures. */
  classifierAccuracy: Schema.optional(Schema.Number)
}) {}

/** Samples could not be evaluated (wrong shape, non-finite values). */
export class MetricsError extends Schema.TaggedError<MetricsError>()("MetricsError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `metrics: ${this.reason}`
  }
}

/** What a metrics provider offers. */
export interface MetricsShape {
  /** A description of the reference, e.g. `gmm:ring8 (20000 exact samples)`. */
  readonly reference: string
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** Figures for samples [N, ...dataShape] against the reference. The tensor is read, not disposed. */
  readonly evaluate: (samples: tf.Tensor) => Effect.Effect<SampleMetrics, MetricsError>
}

/** The metrics service. */
export class Metrics extends Context.Tag("sid-ts/Metrics")<Metrics, MetricsShape>() {}
