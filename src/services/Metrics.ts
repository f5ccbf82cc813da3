/**
 * Metrics: how close a set of samples is to the reference distribution (spec §7, §10.3, §10.5).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, type Effect, Schema } from "effect"

/** Sample-quality figures. Mixture-only figures are absent for other references. */
export class SampleMetrics extends Schema.Class<SampleMetrics>("SampleMetrics")({
  /** Number of samples evaluated. */
  samples: Schema.Int,
  /** Fréchet distance to the reference set in raw coordinates (spec §7, §10.3). */
  frechetDistance: Schema.Number,
  /** Unbiased RBF-kernel MMD² to the reference set (spec §10.5). */
  mmd: Schema.Number,
  /** Share of the in-mode samples assigned to each mixture component (true weights for a perfect sampler). */
  modeWeights: Schema.optional(Schema.Array(Schema.Number)),
  /** Number of components that received at least half their true share of samples. */
  modesCovered: Schema.optional(Schema.Int),
  /** Share of samples farther than 3 standard deviations from every component mean (spec §10.5). */
  offModeFraction: Schema.optional(Schema.Number)
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
