/**
 * Metrics: how close a set of samples is to the reference distribution (docs/algorithm.md §11, §12, §12.3). Portable;
 * the command line's `--reference` spec and MNIST-FID against the committed LeNet are in `node/Metrics.ts`, which
 * re-exports this module.
 *
 * @module
 */
import { Context, Schema, Effect, Layer } from "effect"
import * as tf from "@tensorflow/tfjs"
import { frechetDistance } from "../domain/metrics/FrechetDistance.js"
import * as GaussianMixture from "../domain/data/GaussianMixture.js"
import { type MmdTerms, mmdTermsByBandwidthReads } from "../domain/metrics/Mmd.js"
import { type Engine, withEngine } from "../engine/Engine.js"
import { cacheOnHost, read } from "../domain/data/HostReads.js"
import { runReadsEffect } from "../engine/HostReadsEffect.js"

/**
 * Sample-quality figures. Mixture-only and image-only figures are absent for other references.
 *
 * @since 0.1.0
 * @category models
 */
export class SampleMetrics extends Schema.Class<SampleMetrics>("SampleMetrics")({
  /** Number of samples evaluated. */
  samples: Schema.Int,
  /**
   * Fréchet distance to the reference set (docs/algorithm.md §11): in raw coordinates for vector data (docs/algorithm.md §12), in the feature
   * extractor's space for images (then equal to `fid`).
   */
  frechetDistance: Schema.Number,
  /**
   * MMD² to the reference set: unbiased RBF-kernel MMD² in raw coordinates for vector data (docs/algorithm.md §12.3); for images
   * the KID, an unbiased MMD² with the polynomial kernel (xᵀy/d + 1)³ on the extractor's features (docs/algorithm.md §11).
   */
  mmd: Schema.Number,
  /** Share of the in-mode samples assigned to each mixture component (true weights for a perfect sampler). */
  modeWeights: Schema.optional(Schema.Array(Schema.Number)),
  /** Number of components that received at least half their true share of samples. */
  modesCovered: Schema.optional(Schema.Int),
  /** Share of samples farther than 3 standard deviations from every component mean (docs/algorithm.md §12.3). */
  offModeFraction: Schema.optional(Schema.Number),
  /**
   * Mixtures: the unbiased RBF-MMD² at each of several bandwidths, from well below to above a mode's width (docs/algorithm.md
   * §12): the small ones see the shape of each mode, the large ones the placement of the mass.
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
  /** Images: FID, the Fréchet distance of the extractor's features to the reference features (docs/algorithm.md §11). */
  fid: Schema.optional(Schema.Number),
  /** Images: Inception Score of the samples from the extractor's class probabilities (docs/algorithm.md §11; 1 ≤ IS ≤ classes). */
  inceptionScore: Schema.optional(Schema.Number),
  /** Images: share of samples inside the reference feature manifold (k-NN balls, k = 3; docs/algorithm.md §11). */
  precision: Schema.optional(Schema.Number),
  /** Images: share of reference images inside the samples' feature manifold (k-NN balls, k = 3; docs/algorithm.md §11). */
  recall: Schema.optional(Schema.Number),
  /** Images: the extractor's classification accuracy on the labelled reference set, reported beside its figures. */
  classifierAccuracy: Schema.optional(Schema.Number)
}) {}

/**
 * Samples could not be evaluated (wrong shape, non-finite values).
 *
 * @since 0.1.0
 * @category errors
 */
export class MetricsError extends Schema.TaggedError<MetricsError>()("MetricsError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `metrics: ${this.reason}`
  }
}

/**
 * What a metrics provider offers.
 *
 * @since 0.1.0
 * @category models
 */
export interface MetricsShape {
  /** A description of the reference, e.g. `gmm:ring8 (20000 exact samples)`. */
  readonly reference: string
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** Figures for samples [N, ...dataShape] against the reference. The tensor is read, not disposed. */
  readonly evaluate: (samples: tf.Tensor) => Effect.Effect<SampleMetrics, MetricsError>
}

/**
 * The metrics service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Metrics extends Context.Tag("sid-ts/Metrics")<Metrics, MetricsShape>() {}

/*
 * Layers.
 *
 * Metrics against an exact Gaussian mixture (docs/algorithm.md §12, §12.3): Fréchet distance, MMD (at the headline bandwidth and
 * at several others, from well below to above a mode's width), mode coverage, recovered weights, off-mode and
 * between-mode mass, and each mode's mean, covariance and spread against the truth (`GaussianMixture.modeShape`).
 */

/**
 * Settings of the mixture metrics.
 *
 * @since 0.1.0
 * @category models
 */
export interface MixtureMetricsOptions {
  /** Exact reference samples (default 20,000, docs/algorithm.md §12.3). */
  readonly referenceSize?: number
  /** Samples per side used for MMD (default 5,000). */
  readonly mmdSize?: number
  /** RBF bandwidth of the headline MMD (default 0.1, docs/algorithm.md §12.3). */
  readonly bandwidth?: number
  /** Bandwidths of the MMD by bandwidth (default {@link SHAPE_BANDWIDTHS}); computed in the same pass. */
  readonly bandwidths?: ReadonlyArray<number>
  /** Seed of the reference draw. */
  readonly seed?: number
  /** A description for reports. */
  readonly name?: string
}

/**
 * Bandwidths of the MMD by bandwidth: from well below the modes' width (std 0.05–0.06 on the ring and the grid) to
 * well above it (docs/algorithm.md §12).
 *
 * @since 0.2.0
 * @category constants
 */
export const SHAPE_BANDWIDTHS: ReadonlyArray<number> = [0.02, 0.05, 0.1, 0.3]

/**
 * Mode statistics in plain JS: in-mode = Mahalanobis distance ≤ 3 from some mean (docs/algorithm.md §12.3). The first figures of
 * `GaussianMixture.modeShape`, which has the rest.
 *
 * @since 0.1.0
 * @category utils
 */
export const modeStatistics = (
  mixture: GaussianMixture.GaussianMixture,
  samples: Float32Array,
  n: number
): { readonly modeWeights: ReadonlyArray<number>; readonly modesCovered: number; readonly offModeFraction: number } => {
  const shape = GaussianMixture.modeShape(mixture, samples, n)
  return { modeWeights: shape.modeWeights, modesCovered: shape.modesCovered, offModeFraction: shape.offModeFraction }
}

/**
 * Every mixture figure of `n` samples (row-major `values`) that needs no reference set (docs/algorithm.md §12, §12.3).
 *
 * @since 0.2.0
 * @category utils
 */
export const shapeMetrics = (mixture: GaussianMixture.GaussianMixture, values: ArrayLike<number>, n: number) => {
  const shape = GaussianMixture.modeShape(mixture, values, n)
  return {
    modeWeights: shape.modeWeights,
    modesCovered: shape.modesCovered,
    offModeFraction: shape.offModeFraction,
    betweenModeFraction: shape.betweenModeFraction,
    ...(Number.isFinite(shape.inModeSpread) ? { inModeSpread: shape.inModeSpread } : {}),
    modeMeanErrors: shape.modeMeanErrors,
    modeCovarianceErrors: shape.modeCovarianceErrors,
    modeSpreads: shape.modeSpreads
  }
}

/**
 * Metrics against exact samples of a mixture; the reference tensor is disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerGaussianMixture = (
  mixture: GaussianMixture.GaussianMixture,
  options: MixtureMetricsOptions = {}
): Layer.Layer<Metrics, never, Engine> =>
  withEngine(Layer.scoped(
    Metrics,
    Effect.gen(function*() {
      const size = options.referenceSize ?? 20_000
      const mmdSize = options.mmdSize ?? 5_000
      const d = GaussianMixture.dimension(mixture)
      const headline = options.bandwidth ?? 0.1
      const bandwidths = [...new Set(options.bandwidths ?? SHAPE_BANDWIDTHS)].sort((a, b) => a - b)
      const others = bandwidths.filter((h) => h !== headline)
      const reference = yield* Effect.acquireRelease(
        Effect.sync(() => tf.tidy(() => GaussianMixture.sampleSeeded(mixture, size, options.seed ?? 12345).x)),
        (r) => Effect.sync(() => r.dispose())
      )
      return Metrics.of({
        reference: `${options.name ?? "gmm"} (${size} exact samples)`,
        dataShape: [d],
        evaluate: (samples) =>
          Effect.gen(function*() {
            if (samples.rank !== 2 || samples.shape[1] !== d || (samples.shape[0] ?? 0) < 2) {
              return yield* new MetricsError({
                reason: `samples must have shape [N ≥ 2, ${d}], got [${samples.shape.join(", ")}]`
              })
            }
            const n = samples.shape[0]!
            return yield* runReadsEffect(function*() {
              const values = (yield* read([samples]))[0]!
              if (Array.prototype.some.call(values, (v: number) => !Number.isFinite(v))) {
                throw new MetricsError({ reason: "samples contain NaN or Inf (the generator diverged?)" })
              }
              // frechetDistance reads both sets synchronously: from host copies on an engine that reads asynchronously.
              yield* cacheOnHost([samples, reference])
              const fd = frechetDistance(samples, reference)
              const m = Math.min(mmdSize, n, size)
              const x = samples.slice([0, 0], [m, d])
              const y = reference.slice([0, 0], [m, d])
              let terms: ReadonlyArray<MmdTerms>
              try {
                terms = yield* mmdTermsByBandwidthReads(x, y, { bandwidth: [headline, ...others] })
              } finally {
                tf.dispose([x, y])
              }
              return new SampleMetrics({
                samples: n,
                frechetDistance: fd,
                mmd: terms[0]!.unbiased,
                mmdByBandwidth: bandwidths.map((h) => ({
                  bandwidth: h,
                  mmd: h === headline ? terms[0]!.unbiased : terms[1 + others.indexOf(h)]!.unbiased
                })),
                ...shapeMetrics(mixture, values, n)
              })
            }, (e) => e instanceof MetricsError ? e : new MetricsError({ reason: e instanceof Error ? e.message : String(e) }))
          })
      })
    })
  ))

/**
 * The `reference` of metrics that have no reference set.
 *
 * @since 0.1.0
 * @category constants
 */
export const NO_REFERENCE = "none"

/**
 * Metrics when there is no reference set: every evaluation fails with a MetricsError that says how to add one.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUnavailable = (dataShape: ReadonlyArray<number>): Layer.Layer<Metrics> =>
  Layer.succeed(
    Metrics,
    Metrics.of({
      reference: NO_REFERENCE,
      dataShape,
      evaluate: () =>
        new MetricsError({ reason: "no reference set to evaluate against; pass a reference (e.g. --reference gmm:ring8)" })
    })
  )

export * from "./internal/imageMetrics.js"
