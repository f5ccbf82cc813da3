/**
 * Metrics against an exact Gaussian mixture (spec §10.3, §10.5): Fréchet distance, MMD (at the headline bandwidth and
 * at several others, from well below to above a mode's width), mode coverage, recovered weights, off-mode and
 * between-mode mass, and each mode's mean, covariance and spread against the truth (`GaussianMixture.modeShape`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { frechetDistance } from "../domain/FrechetDistance.js"
import * as GaussianMixture from "../domain/GaussianMixture.js"
import { type MmdTerms, mmdTermsByBandwidth } from "../domain/Mmd.js"
import { type Engine, withEngine } from "../services/Engine.js"
import { Metrics, MetricsError, SampleMetrics } from "../services/Metrics.js"

/** Settings of the mixture metrics. */
export interface MixtureMetricsOptions {
  /** Exact reference samples (default 20,000, spec §10.5). */
  readonly referenceSize?: number
  /** Samples per side used for MMD (default 5,000). */
  readonly mmdSize?: number
  /** RBF bandwidth of the headline MMD (default 0.1, spec §10.5). */
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
 * well above it (spec §10.3).
 */
export const SHAPE_BANDWIDTHS: ReadonlyArray<number> = [0.02, 0.05, 0.1, 0.3]

/**
 * Mode statistics in plain JS: in-mode = Mahalanobis distance ≤ 3 from some mean (spec §10.5). The first figures of
 * `GaussianMixture.modeShape`, which has the rest.
 */
export const modeStatistics = (
  mixture: GaussianMixture.GaussianMixture,
  samples: Float32Array,
  n: number
): { readonly modeWeights: ReadonlyArray<number>; readonly modesCovered: number; readonly offModeFraction: number } => {
  const shape = GaussianMixture.modeShape(mixture, samples, n)
  return { modeWeights: shape.modeWeights, modesCovered: shape.modesCovered, offModeFraction: shape.offModeFraction }
}

/** Every mixture figure of `n` samples (row-major `values`) that needs no reference set (spec §10.3, §10.5). */
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

/** Metrics against exact samples of a mixture; the reference tensor is disposed on release. */
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
            const values = samples.dataSync() as Float32Array
            if (values.some((v) => !Number.isFinite(v))) {
              return yield* new MetricsError({ reason: "samples contain NaN or Inf (the generator diverged?)" })
            }
            const n = samples.shape[0]!
            return yield* Effect.try({
              try: () => {
                const fd = frechetDistance(samples, reference)
                const m = Math.min(mmdSize, n, size)
                const x = samples.slice([0, 0], [m, d])
                const y = reference.slice([0, 0], [m, d])
                let terms: ReadonlyArray<MmdTerms>
                try {
                  terms = mmdTermsByBandwidth(x, y, { bandwidth: [headline, ...others] })
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
              },
              catch: (e) => new MetricsError({ reason: e instanceof Error ? e.message : String(e) })
            })
          })
      })
    })
  ))

/** The `reference` of metrics that have no reference set. */
export const NO_REFERENCE = "none"

/** Metrics when there is no reference set: every evaluation fails with a MetricsError that says how to add one. */
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
