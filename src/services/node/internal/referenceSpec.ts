/**
 * Reference arguments as text — `gmm:<preset>`, `mnist`, `none`, or automatic — and the metrics layer each names (the
 * CLI's `--reference`).
 *
 * Automatic: a mixture teacher (`gmm:`/`gmm-dsm:`) is measured against its own mixture; a one-channel image teacher
 * at 16, 28 or 32 pixels against the MNIST held-out split in LeNet features (MNIST-FID); anything else
 * has no reference, and evaluations are skipped.
 *
 * @module
 */
import { Effect, Layer } from "effect"
import type { DatasetError } from "../Dataset.js"
import type { Engine } from "../../../engine/Engine.js"
import type { FeatureExtractorError } from "../FeatureExtractor.js"
import { layerGaussianMixture, layerUnavailable, type Metrics, type MetricsError, NO_REFERENCE } from "../Metrics.js"
import { Teacher, TeacherError } from "../Teacher.js"
import * as FeatureExtractor from "../FeatureExtractor.js"
import * as ImageMetrics from "../../internal/imageMetrics.js"
import * as MnistDataset from "./mnistDataset.js"
import { mixturePreset } from "../Teacher.js"
import type { TeacherSpec } from "./teacherSpec.js"

/**
 * A parsed `--reference` argument.
 *
 * @since 0.1.0
 * @category models
 */
export type ReferenceSpec =
  | { readonly kind: "auto" }
  | { readonly kind: "none" }
  | { readonly kind: "mnist" }
  | { readonly kind: "gmm"; readonly preset: string }

/**
 * Parses a reference argument: `auto`, `none`, `mnist` or `gmm:<preset>`.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseReferenceSpec = (text: string): Effect.Effect<ReferenceSpec, TeacherError> => {
  if (text === "auto" || text === "none" || text === "mnist") return Effect.succeed({ kind: text })
  if (text.startsWith("gmm:")) return Effect.succeed({ kind: "gmm", preset: text.slice(4) })
  return Effect.fail(
    new TeacherError({
      teacher: `--reference ${text}`,
      reason: "not a reference set",
      fix: "Use auto, none, mnist or gmm:<preset> (e.g. gmm:ring8)."
    })
  )
}

/**
 * Settings of the metrics a reference names.
 *
 * @since 0.1.0
 * @category models
 */
export interface ReferenceOptions {
  /** Seed of the MNIST train/held-out split (default 0, as the teacher's). */
  readonly datasetSeed?: number
  /** Held-out images used as the image reference (default all 2,000). */
  readonly referenceSize?: number
  /** Description for mixture reports. */
  readonly name?: string
}

/**
 * Failures of building reference metrics.
 *
 * @since 0.1.0
 * @category errors
 */
export type ReferenceError = TeacherError | MetricsError | DatasetError | FeatureExtractorError

const isMnistShape = (shape: ReadonlyArray<number>): shape is readonly [16 | 28 | 32, number, 1] =>
  shape.length === 3 && shape[0] === shape[1] && shape[2] === 1 && [16, 28, 32].includes(shape[0]!)

/**
 * MNIST-FID metrics at the resolution of the images measured: the MNIST held-out split in LeNet features (committed,
 * checksum-verified weights).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMnist = (
  size: 16 | 28 | 32,
  options: ReferenceOptions = {}
): Layer.Layer<Metrics, MetricsError | DatasetError | FeatureExtractorError, Engine> =>
  ImageMetrics.layer(options.referenceSize === undefined ? {} : { referenceSize: options.referenceSize }).pipe(
    Layer.provide(FeatureExtractor.layerLeNet()),
    Layer.provide(MnistDataset.layer({ size, seed: options.datasetSeed ?? 0 }))
  )

/**
 * The metrics layer of a reference, for a run of the given teacher (built with the teacher at hand).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromReference = (
  reference: ReferenceSpec,
  teacher: TeacherSpec,
  options: ReferenceOptions = {}
): Layer.Layer<Metrics, ReferenceError, Teacher | Engine> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const t = yield* Teacher
      const shape = t.dataShape
      const mixture = (preset: string) =>
        Effect.map(mixturePreset(preset), (m) => layerGaussianMixture(m, { name: options.name ?? `gmm:${preset}` }))
      switch (reference.kind) {
        case "none":
          return layerUnavailable(shape)
        case "gmm":
          return yield* mixture(reference.preset)
        case "mnist":
          if (!isMnistShape(shape)) {
            return yield* new TeacherError({
              teacher: t.name,
              reason: `its samples are [${shape.join(", ")}], but MNIST metrics need one-channel images of 16, 28 or 32 pixels`,
              fix: "Use --reference none, or a teacher trained on MNIST (`sid teacher train`)."
            })
          }
          return layerMnist(shape[0], options)
        case "auto":
          if (teacher.kind === "gmm" || teacher.kind === "gmm-dsm") return yield* mixture(teacher.preset)
          return isMnistShape(shape) ? layerMnist(shape[0], options) : layerUnavailable(shape)
      }
    })
  )

/**
 * Whether a metrics service can evaluate at all (false for {@link layerUnavailable}).
 *
 * @since 0.1.0
 * @category utils
 */
export const hasReference = (metrics: Metrics["Type"]): boolean => metrics.reference !== NO_REFERENCE
