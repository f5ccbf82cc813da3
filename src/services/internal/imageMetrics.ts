/**
 * Image metrics (docs/algorithm.md §11) in the space of a pluggable {@link FeatureExtractor}: FID (the Fréchet
 * distance of features, reported as both `fid` and `frechetDistance`), KID (unbiased polynomial-kernel MMD² of
 * features, reported as `mmd`), the Inception Score of the samples' class probabilities, improved precision/recall
 * (k = 3) and the extractor's accuracy on the labelled reference images. With the LeNet extractor and the MNIST
 * held-out split as reference, `fid` is "MNIST-FID".
 *
 * {@link layer} computes the reference features and k-NN radii once, when it is acquired, and disposes them on
 * release; {@link imageSetMetrics} computes the same figures for any two image sets.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { frechetDistance } from "../../domain/metrics/FrechetDistance.js"
import { inceptionScoreFromLogitsReads } from "../../domain/metrics/InceptionScore.js"
import { kernelInceptionDistanceReads } from "../../domain/metrics/KernelInceptionDistance.js"
import { accuracyReads } from "../../domain/nn/LeNet.js"
import { DEFAULT_K, manifoldCoverageReads, nearestNeighbourRadiiReads } from "../../domain/metrics/PrecisionRecall.js"
import { cacheOnHost, read, type Reads, runSync } from "../../domain/data/HostReads.js"
import { runReadsEffect } from "../../engine/HostReadsEffect.js"
import { Dataset } from "../Dataset.js"
import { type Engine, withEngine } from "../../engine/Engine.js"
import {
  FeatureExtractor,
  type FeatureExtractorError,
  type FeatureExtractorShape
} from "../FeatureExtractor.js"
import { Metrics, MetricsError, SampleMetrics } from "../Metrics.js"

/**
 * Options of the image metrics.
 *
 * @since 0.1.0
 * @category models
 */
export interface ImageMetricsOptions {
  /** Reference images used (the first ones of the held-out split; default all 2,000). */
  readonly referenceSize?: number
  /** Neighbour of the precision/recall radii (default 3, docs/algorithm.md §11). */
  readonly k?: number
  /** Consecutive splits of the Inception Score (default 1; docs/algorithm.md §11 uses 10 splits of 5k at 50k samples). */
  readonly splits?: number
}

/**
 * Reference features with their k-NN radii and the extractor's accuracy on the reference labels.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reference {
  readonly features: tf.Tensor2D
  readonly radii: tf.Tensor1D
  readonly classifierAccuracy?: number
}

const metricsError = (e: unknown): MetricsError =>
  new MetricsError({ reason: e instanceof Error ? e.message : String(e) })

const fromExtractor = (e: FeatureExtractorError): MetricsError => new MetricsError({ reason: e.message })

/**
 * Rejects samples that are not [N, ...imageShape] with N > k, or hold NaN/Inf.
 *
 * @since 0.1.0
 * @category utils
 */
export const validateImages = (
  samples: tf.Tensor,
  imageShape: ReadonlyArray<number>,
  k: number
): Effect.Effect<tf.Tensor4D, MetricsError> =>
  Effect.suspend(() => {
    const n = samples.shape[0] ?? 0
    if (samples.rank !== 4 || samples.shape.slice(1).some((s, i) => s !== imageShape[i]) || n < k + 1) {
      return Effect.fail(
        new MetricsError({
          reason: `samples must have shape [N ≥ ${k + 1}, ${imageShape.join(", ")}], got [${samples.shape.join(", ")}]`
        })
      )
    }
    return Effect.flatMap(
      runReadsEffect(function*() {
        const flag = tf.tidy(() => tf.all(tf.isFinite(samples)))
        try {
          return (yield* read([flag]))[0]![0]!
        } finally {
          flag.dispose()
        }
      }, metricsError),
      (finite) =>
        finite === 0
          ? Effect.fail(new MetricsError({ reason: "samples contain NaN or Inf (the generator diverged?)" }))
          : Effect.succeed(samples as tf.Tensor4D)
    )
  })

/**
 * The reference features of `images` (and, with `labels` and a classifier head, the extractor's accuracy on them), with
 * their k-NN radii: tensors the caller owns.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeReference = (
  extractor: FeatureExtractorShape,
  images: tf.Tensor4D,
  labels?: tf.Tensor1D,
  k: number = DEFAULT_K
): Effect.Effect<Reference, MetricsError> =>
  Effect.flatMap(Effect.mapError(extractor.extract(images), fromExtractor), (extracted) =>
    runReadsEffect(function*(): Reads<Reference> {
      try {
        const radii = yield* nearestNeighbourRadiiReads(extracted.features, { k })
        try {
          return labels !== undefined && extracted.logits !== undefined
            ? { features: extracted.features, radii, classifierAccuracy: yield* accuracyReads(extracted.logits, labels) }
            : { features: extracted.features, radii }
        } catch (e) {
          radii.dispose()
          throw e
        }
      } catch (e) {
        extracted.features.dispose()
        throw e
      } finally {
        extracted.logits?.dispose()
      }
    }, metricsError))

/**
 * The figures of samples' features/logits against a reference (docs/algorithm.md §11). Pure; nothing is disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const featureMetrics = (
  reference: Reference,
  features: tf.Tensor2D,
  logits: tf.Tensor2D | undefined,
  options: ImageMetricsOptions = {}
): SampleMetrics => runSync(featureMetricsReads(reference, features, logits, options))

/**
 * {@link featureMetrics} as a {@link Reads} computation, for engines that read only asynchronously (`webgpu`). The
 * same figures.
 *
 * @since 0.2.0
 * @category utils
 */
export function* featureMetricsReads(
  reference: Reference,
  features: tf.Tensor2D,
  logits: tf.Tensor2D | undefined,
  options: ImageMetricsOptions = {}
): Reads<SampleMetrics> {
  const k = options.k ?? DEFAULT_K
  // frechetDistance reads both sets synchronously: from host copies on an engine that reads asynchronously.
  yield* cacheOnHost([features, reference.features])
  const fid = frechetDistance(features, reference.features)
  const kid = yield* kernelInceptionDistanceReads(features, reference.features)
  const precision = yield* manifoldCoverageReads(features, reference.features, reference.radii)
  const ownRadii = yield* nearestNeighbourRadiiReads(features, { k })
  let recall: number
  try {
    recall = yield* manifoldCoverageReads(reference.features, features, ownRadii)
  } finally {
    ownRadii.dispose()
  }
  const inceptionScore = logits === undefined
    ? undefined
    : (yield* inceptionScoreFromLogitsReads(logits, { splits: options.splits ?? 1 })).mean
  return new SampleMetrics({
    samples: features.shape[0],
    frechetDistance: fid,
    mmd: kid,
    fid,
    precision,
    recall,
    ...(inceptionScore === undefined ? {} : { inceptionScore }),
    ...(reference.classifierAccuracy === undefined ? {} : { classifierAccuracy: reference.classifierAccuracy })
  })
}

/**
 * Figures of `samples` against a prepared reference: validation, features, metrics; all intermediates disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const evaluateAgainst = (
  extractor: FeatureExtractorShape,
  reference: Reference,
  imageShape: ReadonlyArray<number>,
  samples: tf.Tensor,
  options: ImageMetricsOptions = {}
): Effect.Effect<SampleMetrics, MetricsError> =>
  Effect.gen(function*() {
    const images = yield* validateImages(samples, imageShape, options.k ?? DEFAULT_K)
    const extracted = yield* Effect.mapError(extractor.extract(images), fromExtractor)
    return yield* runReadsEffect(() => featureMetricsReads(reference, extracted.features, extracted.logits, options), metricsError).pipe(
      Effect.ensuring(Effect.sync(() => {
        extracted.features.dispose()
        extracted.logits?.dispose()
      }))
    )
  })

/**
 * FID, KID, IS, precision/recall of `samples` against `reference` images (both [N, H, W, C] in [-1, 1], the same
 * shape per image) in the extractor's feature space, plus its accuracy on the reference when `referenceLabels` are
 * given (docs/algorithm.md §11). Inputs are read, not disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const imageSetMetrics = (
  extractor: FeatureExtractorShape,
  reference: tf.Tensor4D,
  samples: tf.Tensor4D,
  options: ImageMetricsOptions & { readonly referenceLabels?: tf.Tensor1D } = {}
): Effect.Effect<SampleMetrics, MetricsError> =>
  Effect.scoped(
    Effect.gen(function*() {
      const k = options.k ?? DEFAULT_K
      const images = yield* validateImages(reference, reference.shape.slice(1), k)
      const ref = yield* Effect.acquireRelease(
        makeReference(extractor, images, options.referenceLabels, k),
        (r) => Effect.sync(() => tf.dispose([r.features, r.radii]))
      )
      return yield* evaluateAgainst(extractor, ref, reference.shape.slice(1), samples, options)
    })
  )

/**
 * The image {@link Metrics} layer: the dataset's held-out split (or its first `referenceSize` images) is the
 * reference; its features, k-NN radii and the extractor's held-out accuracy (when its classes are the dataset's) are
 * computed once on acquisition and the tensors disposed on release. `evaluate` takes samples [N, ...imageShape] in
 * [-1, 1] and fails with a {@link MetricsError} on a wrong shape, N ≤ k, or NaN/Inf.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: ImageMetricsOptions = {}
): Layer.Layer<Metrics, MetricsError, FeatureExtractor | Dataset | Engine> =>
  withEngine(Layer.scoped(
    Metrics,
    Effect.gen(function*() {
      const extractor = yield* FeatureExtractor
      const dataset = yield* Dataset
      const k = options.k ?? DEFAULT_K
      const total = dataset.heldOut.images.shape[0]
      const size = Math.min(options.referenceSize ?? total, total)
      if (!Number.isInteger(size) || size < k + 1) {
        return yield* new MetricsError({ reason: `referenceSize ${size} must be an integer > k = ${k}` })
      }
      const reference = yield* Effect.acquireRelease(
        Effect.acquireUseRelease(
          Effect.sync(() =>
            size === total
              ? { images: dataset.heldOut.images, labels: dataset.heldOut.labels, owned: false }
              : {
                images: dataset.heldOut.images.slice([0, 0, 0, 0], [size, -1, -1, -1]),
                labels: dataset.heldOut.labels.slice([0], [size]),
                owned: true
              }
          ),
          (held) => makeReference(extractor, held.images, extractor.classes === dataset.classes ? held.labels : undefined, k),
          (held) => Effect.sync(() => held.owned && tf.dispose([held.images, held.labels]))
        ),
        (r) => Effect.sync(() => tf.dispose([r.features, r.radii]))
      )
      const accuracyText = reference.classifierAccuracy === undefined
        ? ""
        : `, held-out accuracy ${(100 * reference.classifierAccuracy).toFixed(2)}%`
      return Metrics.of({
        reference: `${dataset.name} held-out (${size} images) in ${extractor.name} features${accuracyText}`,
        dataShape: dataset.imageShape,
        evaluate: (samples) => evaluateAgainst(extractor, reference, dataset.imageShape, samples, options)
      })
    })
  ))
