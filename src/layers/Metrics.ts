/**
 * Metrics against an exact Gaussian mixture: Fréchet distance, MMD, mode coverage, recovered weights and off-mode
 * mass (spec §10.3, §10.5).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { frechetDistance } from "../domain/FrechetDistance.js"
import * as GaussianMixture from "../domain/GaussianMixture.js"
import { mmd2 } from "../domain/Mmd.js"
import { type Engine, withEngine } from "../services/Engine.js"
import { Metrics, MetricsError, SampleMetrics } from "../services/Metrics.js"

/** Settings of the mixture metrics. */
export interface MixtureMetricsOptions {
  /** Exact reference samples (default 20,000, spec §10.5). */
  readonly referenceSize?: number
  /** Samples per side used for MMD (default 5,000). */
  readonly mmdSize?: number
  /** RBF bandwidth of the MMD (default 0.1, spec §10.5). */
  readonly bandwidth?: number
  /** Seed of the reference draw. */
  readonly seed?: number
  /** A description for reports. */
  readonly name?: string
}

/** Mode statistics in plain JS: in-mode = Mahalanobis distance ≤ 3 from some mean (spec §10.5). */
export const modeStatistics = (
  mixture: GaussianMixture.GaussianMixture,
  samples: Float32Array,
  n: number
): { readonly modeWeights: ReadonlyArray<number>; readonly modesCovered: number; readonly offModeFraction: number } => {
  const k = mixture.weights.length
  const d = GaussianMixture.dimension(mixture)
  const counts = new Array<number>(k).fill(0)
  let inMode = 0
  for (let i = 0; i < n; i++) {
    let best = -1
    let bestDist = Infinity
    for (let c = 0; c < k; c++) {
      let dist = 0
      for (let j = 0; j < d; j++) dist += (samples[i * d + j]! - mixture.means[c]![j]!) ** 2 / mixture.variances[c]![j]!
      if (dist < bestDist) {
        bestDist = dist
        best = c
      }
    }
    if (bestDist <= 9) {
      counts[best]! += 1
      inMode++
    }
  }
  const modeWeights = counts.map((c) => (inMode === 0 ? 0 : c / inMode))
  const modesCovered = modeWeights.filter((w, c) => w >= 0.5 * mixture.weights[c]!).length
  return { modeWeights, modesCovered, offModeFraction: n === 0 ? 0 : 1 - inMode / n }
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
                const mmd = tf.tidy(() =>
                  mmd2(samples.slice([0, 0], [m, d]), reference.slice([0, 0], [m, d]), { bandwidth: options.bandwidth ?? 0.1 })
                )
                return new SampleMetrics({ samples: n, frechetDistance: fd, mmd, ...modeStatistics(mixture, values, n) })
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
