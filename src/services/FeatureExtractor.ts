/**
 * FeatureExtractor: the network image metrics are measured in (docs/algorithm.md §11: Inception-v3 pool3 features for FID and
 * precision/recall, its softmax for the Inception Score; a small LeNet for "MNIST-FID"). The metric code
 * only sees this service, so a user can plug in another network (e.g. Inception-v3 converted to TF.js) without
 * changing it.
 *
 * This module is portable: the service, its error, extractors from a batch function (`make`, `makeLeNet`) and the
 * image adaptation. The extractors read from files (the committed LeNet, a TF.js model on disk) are in
 * `node/FeatureExtractor.ts`, which re-exports this one.
 *
 * @module
 */
import { Context, Schema, Effect, Exit } from "effect"
import * as tf from "@tensorflow/tfjs"
import { applyLeNet, type LeNetSpec, toLeNetInput } from "../domain/nn/LeNet.js"
import type { Parameters } from "../domain/nn/Parameters.js"
import { yieldToEventLoop } from "../engine/EventLoop.js"

/**
 * A feature extractor failed: missing or corrupt weights, a bad model file, or inputs it cannot take.
 *
 * @since 0.1.0
 * @category errors
 */
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

/**
 * Features and, when the network has a classifier head, its logits, for the same images.
 *
 * @since 0.1.0
 * @category models
 */
export interface Extracted {
  /** [N, featureDim]. */
  readonly features: tf.Tensor2D
  /** [N, classes], unnormalised; absent when the extractor has no classifier head. */
  readonly logits?: tf.Tensor2D
}

/**
 * What a feature extractor offers.
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * The feature extractor service.
 *
 * @since 0.1.0
 * @category tags
 */
export class FeatureExtractor extends Context.Tag("sid-ts/FeatureExtractor")<FeatureExtractor, FeatureExtractorShape>() {}

/*
 * Layers.
 *
 * Feature extractor layers (docs/algorithm.md §11):
 *
 * - {@link layerLeNet}: the committed LeNet of MNIST-FID (`assets/lenet-mnist.safetensors`, trained by
 *   `tools/train-lenet.ts`), its SHA-256 checked against {@link LENET_SHA256} before use; 128-d penultimate features
 *   and 10 logits. Images at 32×32 are centre-cropped and at other sizes resized bilinearly to 28×28
 *   (`toLeNetInput`).
 * - {@link layerTfjsModel}: any TF.js model on disk (a `model.json` in LayersModel or GraphModel format plus its
 *   weight shards, e.g. an Inception-v3 converted with `tensorflowjs_converter`), read through a node:fs IO handler,
 *   with a named feature output and an optional logits/probabilities output — CIFAR-style FID with no change to the
 *   metric code. Images in [-1, 1] are mapped to the model's input range, channels repeated or averaged, and resized
 *   bilinearly to the model's input size.
 *
 * All tensors (weights, models) are disposed when the layer's scope closes.
 */

/**
 * SHA-256 of the committed `assets/lenet-mnist.safetensors` (printed by `tools/train-lenet.ts`).
 *
 * @since 0.1.0
 * @category constants
 */
export const LENET_SHA256 = "e8e76c6b5c0095798f3bd225160f2592f8e6c586a3051ed846a6cc17ad8b7721"

/**
 * How to rebuild the LeNet weights.
 *
 * @since 0.1.0
 * @category constants
 */
export const LENET_FIX = "Regenerate them with `node --import tsx tools/train-lenet.ts` (deterministic: the same bytes, " +
  "5–15 minutes on the wasm engine; after changing its settings set LENET_SHA256 in src/services/FeatureExtractor.ts " +
  "to the sha256 it prints), or restore the committed file with `git checkout -- assets/lenet-mnist.safetensors`"

/**
 * Default images per forward pass.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_BATCH_SIZE = 250

const errorText = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!

/**
 * What {@link make} needs: how to adapt images and run the network on one batch.
 *
 * @since 0.1.0
 * @category models
 */
export interface ExtractorDefinition {
  readonly name: string
  readonly inputShape: readonly [number, number, number]
  readonly featureDim: number
  readonly classes?: number
  readonly batchSize?: number
  /** One batch of images in [-1, 1], any size → features [b, F] and optional logits [b, K]; called inside tf.tidy. */
  readonly run: (images: tf.Tensor4D) => { readonly features: tf.Tensor; readonly logits?: tf.Tensor }
}

/**
 * A {@link FeatureExtractorShape} from a batch function: splits the images into batches, flattens rank > 2 feature
 * outputs (e.g. Inception's [N, 1, 1, 2048] pool) to [N, F], and turns any thrown error into a
 * {@link FeatureExtractorError}. The event loop gets a turn between batches, so an interruption (Ctrl-C) ends an
 * extraction within one batch, with the batches done so far released.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (definition: ExtractorDefinition): FeatureExtractorShape => {
  const batchSize = definition.batchSize ?? DEFAULT_BATCH_SIZE
  const fail = (cause: unknown) => new FeatureExtractorError({ extractor: definition.name, reason: errorText(cause), fix: "" })
  const extract = (images: tf.Tensor4D, withLogits: boolean): Effect.Effect<Extracted, FeatureExtractorError> =>
    Effect.suspend(() => {
      if (images.rank !== 4 || images.shape[0] < 1) {
        return Effect.fail(fail(`images must be [N ≥ 1, H, W, C], got [${images.shape.join(", ")}]`))
      }
      const n = images.shape[0]
      const features: Array<tf.Tensor2D> = []
      const logits: Array<tf.Tensor2D> = []
      const batch = (start: number) =>
        Effect.try({
          try: () => {
            const rows = Math.min(batchSize, n - start)
            const out = tf.tidy(() => {
              const r = definition.run(images.slice([start, 0, 0, 0], [rows, -1, -1, -1]))
              const f = tf.reshape(r.features, [rows, -1]) as tf.Tensor2D
              const l = withLogits && r.logits !== undefined ? (tf.reshape(r.logits, [rows, -1]) as tf.Tensor2D) : undefined
              return l === undefined ? [f] : [f, l]
            })
            features.push(out[0]!)
            if (out[1] !== undefined) logits.push(out[1])
          },
          catch: fail
        })
      const joined = Effect.try({
        try: (): Extracted => {
          const f = features.length === 1 ? features[0]! : (tf.concat(features) as tf.Tensor2D)
          const l = logits.length === 0 ? undefined : logits.length === 1 ? logits[0]! : (tf.concat(logits) as tf.Tensor2D)
          if (features.length > 1) tf.dispose(features)
          if (logits.length > 1) tf.dispose(logits)
          return l === undefined ? { features: f } : { features: f, logits: l }
        },
        catch: fail
      })
      return Effect.gen(function*() {
        for (let start = 0; start < n; start += batchSize) {
          if (start > 0) yield* yieldToEventLoop
          yield* batch(start)
        }
        return yield* joined
      }).pipe(Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => tf.dispose([...features, ...logits]))))
    })
  const hasLogits = definition.classes !== undefined
  return {
    name: definition.name,
    inputShape: definition.inputShape,
    featureDim: definition.featureDim,
    ...(hasLogits ? { classes: definition.classes } : {}),
    extract: (images) => extract(images, hasLogits),
    features: (images) => Effect.map(extract(images, false), (e) => e.features),
    ...(hasLogits
      ? {
        logits: (images: tf.Tensor4D) =>
          Effect.flatMap(extract(images, true), (e) => {
            e.features.dispose()
            return e.logits === undefined
              ? Effect.fail(
                new FeatureExtractorError({ extractor: definition.name, reason: "the network gave no logits", fix: "" })
              )
              : Effect.succeed(e.logits)
          })
      }
      : {})
  }
}

/**
 * Loaded LeNet weights: the architecture (from the file's metadata), the tensors and the file's SHA-256.
 *
 * @since 0.1.0
 * @category models
 */
export interface LoadedLeNet {
  readonly spec: LeNetSpec
  readonly params: Record<string, tf.Tensor>
  readonly sha256: string
}

/**
 * The LeNet extractor over given parameters (not disposed by it): 128-d features, 10 logits.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeLeNet = (
  spec: LeNetSpec,
  params: Parameters,
  options: { readonly name?: string; readonly batchSize?: number } = {}
): FeatureExtractorShape =>
  make({
    name: options.name ?? "lenet-mnist",
    inputShape: [spec.size, spec.size, 1],
    featureDim: spec.hidden,
    classes: spec.classes,
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    run: (images) => applyLeNet(spec, params, toLeNetInput(images, spec.size))
  })

/**
 * The value range a user model expects its pixels in; images in [-1, 1] are mapped linearly to it.
 *
 * @since 0.1.0
 * @category models
 */
export type InputRange = "[-1,1]" | "[0,1]" | "[0,255]"

const mapRange = (x: tf.Tensor, range: InputRange): tf.Tensor =>
  range === "[-1,1]" ? x : range === "[0,1]" ? tf.mul(tf.add(x, 1), 0.5) : tf.mul(tf.add(x, 1), 127.5)

/**
 * Images [N, H, W, C] in [-1, 1] → the model's [N, H', W', C'] and range: channels repeated/averaged, bilinear resize.
 *
 * @since 0.1.0
 * @category utils
 */
export const adaptImages = (
  images: tf.Tensor4D,
  inputShape: readonly [number, number, number],
  range: InputRange
): tf.Tensor4D =>
  tf.tidy(() => {
    const [h, w, c] = inputShape
    let x: tf.Tensor4D = images
    const channels = x.shape[3]
    if (channels !== c) {
      if (channels === 1) x = tf.tile(x, [1, 1, 1, c])
      else if (c === 1) x = tf.mean(x, 3, true)
      else throw new Error(`cannot map ${channels} image channels to the model's ${c}`)
    }
    if (x.shape[1] !== h || x.shape[2] !== w) x = tf.image.resizeBilinear(x, [h, w], false, true)
    return tf.clone(mapRange(x, range)) as tf.Tensor4D
  })
