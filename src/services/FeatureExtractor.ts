/**
 * FeatureExtractor: the network image metrics are measured in (docs/algorithm.md §11: Inception-v3 pool3 features for FID and
 * precision/recall, its softmax for the Inception Score; a small LeNet for "MNIST-FID"). The metric code
 * only sees this service, so a user can plug in another network (e.g. Inception-v3 converted to TF.js) without
 * changing it.
 *
 * @module
 */
import { Context, Schema, Effect, Exit, Layer } from "effect"
import * as tf from "@tensorflow/tfjs"
import { createHash } from "node:crypto"
import { mkdir, readFile, stat, writeFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { applyLeNet, type LeNetSpec, leNetShapes, leNetSpec, toLeNetInput } from "../domain/nn/LeNet.js"
import { compareShapes, disposeParameters, type Parameters, shapesMatch } from "../domain/nn/Parameters.js"
import { decodeSafetensors } from "../domain/data/Safetensors.js"
import { type Engine, withEngine, withEngineEffect } from "../engine/Engine.js"
import { yieldToEventLoop } from "../engine/EventLoop.js"
import { fromNamedArrays } from "../domain/data/NamedTensors.js"

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
 * Where the committed LeNet weights live (the repository's `assets/`).
 *
 * @since 0.1.0
 * @category constants
 */
export const LENET_PATH: string = fileURLToPath(new URL("../../assets/lenet-mnist.safetensors", import.meta.url))

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
 * Options of {@link loadLeNetWeights} and {@link layerLeNet}.
 *
 * @since 0.1.0
 * @category models
 */
export interface LeNetOptions {
  /** The safetensors file (default {@link LENET_PATH}). */
  readonly path?: string
  /** Its expected SHA-256 in hex (default {@link LENET_SHA256}); `null` skips the check. */
  readonly sha256?: string | null
  /** Images per forward pass (default 250). */
  readonly batchSize?: number
}

const leNetError = (reason: string) => new FeatureExtractorError({ extractor: "lenet-mnist", reason, fix: LENET_FIX })

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
 * The LeNet weights, read from `path`, SHA-256 verified, decoded and shape-checked: tensors the caller owns.
 *
 * @since 0.1.0
 * @category utils
 */
export const loadLeNetWeights = (
  options: LeNetOptions = {}
): Effect.Effect<LoadedLeNet, FeatureExtractorError, Engine> =>
  withEngineEffect(Effect.gen(function*() {
    const path = options.path ?? LENET_PATH
    const expected = options.sha256 === undefined ? LENET_SHA256 : options.sha256
    const bytes = yield* Effect.tryPromise({
      try: () => readFile(path),
      catch: (cause) => leNetError(`cannot read the weights ${path} (${errorText(cause)})`)
    })
    const sha256 = createHash("sha256").update(bytes).digest("hex")
    if (expected !== null && sha256 !== expected.toLowerCase()) {
      return yield* leNetError(`checksum mismatch for ${path}: expected sha256 ${expected}, got ${sha256}`)
    }
    const file = yield* Effect.try({
      try: () => decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
      catch: (cause) => leNetError(`${path} is not a valid safetensors file (${errorText(cause)})`)
    })
    const spec = yield* Effect.try({
      try: () => leNetSpec(file.metadata["spec"] === undefined ? {} : (JSON.parse(file.metadata["spec"]) as Partial<LeNetSpec>)),
      catch: (cause) => leNetError(`bad "spec" metadata in ${path} (${errorText(cause)})`)
    })
    const shapes: Record<string, ReadonlyArray<number>> = {}
    for (const [name, a] of file.tensors) shapes[name] = a.shape
    const mismatch = compareShapes(leNetShapes(spec), shapes)
    if (!shapesMatch(mismatch)) {
      return yield* leNetError(
        `${path} does not hold LeNet weights: missing [${mismatch.missing}], unexpected [${mismatch.unexpected}], ` +
          `mis-shaped [${mismatch.misShaped.map((m) => m.name)}]`
      )
    }
    return { spec, params: fromNamedArrays(file.tensors), sha256 }
  }))

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
 * The committed LeNet of MNIST-FID as a scoped layer: weights read and SHA-256 checked on acquisition (a typed
 * {@link FeatureExtractorError} saying how to regenerate them when missing or mismatched), disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerLeNet = (options: LeNetOptions = {}): Layer.Layer<FeatureExtractor, FeatureExtractorError, Engine> =>
  Layer.scoped(
    FeatureExtractor,
    Effect.gen(function*() {
      const loaded = yield* Effect.acquireRelease(
        loadLeNetWeights(options),
        (w) => Effect.sync(() => disposeParameters(w.params))
      )
      return FeatureExtractor.of(
        makeLeNet(loaded.spec, loaded.params, {
          name: `lenet-mnist (sha256 ${loaded.sha256.slice(0, 12)})`,
          ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize })
        })
      )
    })
  )

const toArrayBuffer = (b: Uint8Array): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer

/**
 * A TF.js IO handler that loads a `model.json` (LayersModel or GraphModel format) and its weight shards from the local
 * file system (shard paths relative to the JSON's folder). `path` is the JSON file or a folder holding `model.json`.
 *
 * @since 0.1.0
 * @category utils
 */
export const fileSystemLoader = (path: string): tf.io.IOHandler => ({
  load: async () => {
    const jsonPath = (await stat(path)).isDirectory() ? join(path, "model.json") : path
    const modelJSON = JSON.parse(await readFile(jsonPath, "utf8")) as tf.io.ModelJSON
    if (modelJSON.modelTopology === undefined || !Array.isArray(modelJSON.weightsManifest)) {
      throw new Error(`${jsonPath} is not a TF.js model.json (no modelTopology or weightsManifest)`)
    }
    return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
      const specs: Array<tf.io.WeightsManifestEntry> = []
      const buffers: Array<ArrayBuffer> = []
      for (const group of manifest) {
        for (const p of group.paths) buffers.push(toArrayBuffer(await readFile(resolve(dirname(jsonPath), p))))
        specs.push(...group.weights)
      }
      return [specs, tf.io.concatenateArrayBuffers(buffers)]
    })
  }
})

/**
 * A TF.js IO handler that saves a model as `model.json` + `weights.bin` in `folder` (created if needed), the layout
 * {@link fileSystemLoader} and `tensorflowjs_converter` use.
 *
 * @since 0.1.0
 * @category utils
 */
export const fileSystemSaver = (folder: string): tf.io.IOHandler => ({
  save: async (artifacts) => {
    await mkdir(folder, { recursive: true })
    const data = artifacts.weightData === undefined
      ? new ArrayBuffer(0)
      : Array.isArray(artifacts.weightData)
      ? tf.io.concatenateArrayBuffers(artifacts.weightData)
      : artifacts.weightData
    const modelJSON: Record<string, unknown> = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs ?? [] }]
    }
    if (artifacts.signature !== undefined) modelJSON["signature"] = artifacts.signature
    if (artifacts.userDefinedMetadata !== undefined) modelJSON["userDefinedMetadata"] = artifacts.userDefinedMetadata
    if (artifacts.trainingConfig !== undefined) modelJSON["trainingConfig"] = artifacts.trainingConfig
    await writeFile(join(folder, "weights.bin"), new Uint8Array(data))
    await writeFile(join(folder, "model.json"), JSON.stringify(modelJSON))
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) }
  }
})

/**
 * The value range a user model expects its pixels in; images in [-1, 1] are mapped linearly to it.
 *
 * @since 0.1.0
 * @category models
 */
export type InputRange = "[-1,1]" | "[0,1]" | "[0,255]"

/**
 * Options of {@link layerTfjsModel}.
 *
 * @since 0.1.0
 * @category models
 */
export interface TfjsModelOptions {
  /** A `model.json` file or the folder holding it. */
  readonly path: string
  /**
   * The feature output: a layer name (LayersModel) or a graph node name (GraphModel, e.g.
   * `"pool_3"`-style names of a converted Inception).
   */
  readonly featureOutput: string
  /** The classifier output (logits, or probabilities with `outputsProbabilities`), when the IS is wanted. */
  readonly logitsOutput?: string
  /** The `logitsOutput` is a softmax (probabilities): its log is used as logits. Default false. */
  readonly outputsProbabilities?: boolean
  /** Pixel range the model expects (default `"[-1,1]"`; Inception-v3 converted from Keras also takes [-1, 1]). */
  readonly inputRange?: InputRange
  /** [H, W, C] the model takes; default: its declared input shape. */
  readonly inputShape?: readonly [number, number, number]
  /** Images per forward pass (default 250). */
  readonly batchSize?: number
}

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

const declaredShape = (shape: ReadonlyArray<number | null> | undefined): [number, number, number] | undefined => {
  if (shape === undefined || shape.length !== 4) return undefined
  const [, h, w, c] = shape
  return typeof h === "number" && typeof w === "number" && typeof c === "number" && h > 0 && w > 0 && c > 0
    ? [h, w, c]
    : undefined
}

interface LoadedModel {
  readonly run: (x: tf.Tensor4D) => { readonly features: tf.Tensor; readonly logits?: tf.Tensor }
  readonly declared: [number, number, number] | undefined
  readonly dispose: () => void
}

const loadModel = async (options: TfjsModelOptions): Promise<LoadedModel> => {
  const handler = fileSystemLoader(options.path)
  const artifacts = await handler.load!()
  const outputs = options.logitsOutput === undefined ? [options.featureOutput] : [options.featureOutput, options.logitsOutput]
  const isGraph = artifacts.format === "graph-model" ||
    (artifacts.format === undefined && (artifacts.modelTopology as { node?: unknown } | undefined)?.node !== undefined)
  if (isGraph) {
    const model = await tf.loadGraphModel(tf.io.fromMemory(artifacts))
    return {
      run: (x) => {
        const out = model.execute(x, outputs)
        const list = Array.isArray(out) ? out : [out]
        return list[1] === undefined ? { features: list[0]! } : { features: list[0]!, logits: list[1] }
      },
      declared: declaredShape(model.inputs[0]?.shape),
      dispose: () => model.dispose()
    }
  }
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts))
  try {
    const heads = outputs.map((name) => model.getLayer(name).output as tf.SymbolicTensor)
    const sub = tf.model({ inputs: model.inputs, outputs: heads })
    return {
      run: (x) => {
        const out = sub.predict(x)
        const list = Array.isArray(out) ? out : [out]
        return list[1] === undefined ? { features: list[0]! } : { features: list[0]!, logits: list[1] }
      },
      declared: declaredShape(model.inputs[0]?.shape),
      dispose: () => model.dispose()
    }
  } catch (e) {
    model.dispose()
    throw e
  }
}

/**
 * A user-supplied TF.js model on disk as the feature extractor (docs/algorithm.md §11: e.g. Inception-v3's pool features and
 * softmax for CIFAR-style FID and IS). The model is loaded once on acquisition (a {@link FeatureExtractorError} if the
 * files are missing, malformed or lack the named outputs), probed once to learn the feature and class widths, and
 * disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTfjsModel = (options: TfjsModelOptions): Layer.Layer<FeatureExtractor, FeatureExtractorError, Engine> =>
  withEngine(Layer.scoped(
    FeatureExtractor,
    Effect.gen(function*() {
      const fail = (reason: string, fix: string) => new FeatureExtractorError({ extractor: options.path, reason, fix })
      const model = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: () => loadModel(options),
          catch: (cause) =>
            fail(
              `cannot load the TF.js model (${errorText(cause)})`,
              "Give the path of a model.json (LayersModel or GraphModel format, e.g. from tensorflowjs_converter) " +
                "with its weight files beside it, and the names of existing feature/logits outputs"
            )
        }),
        (m) => Effect.sync(() => m.dispose())
      )
      const inputShape = options.inputShape ?? model.declared
      if (inputShape === undefined) {
        return yield* fail("the model does not declare a fixed [H, W, C] input", "Pass inputShape")
      }
      const range = options.inputRange ?? "[-1,1]"
      const run = (images: tf.Tensor4D) => {
        const out = model.run(adaptImages(images, inputShape, range))
        const logits = out.logits === undefined
          ? undefined
          : options.outputsProbabilities === true
          ? tf.log(tf.maximum(out.logits, 1e-30))
          : out.logits
        return logits === undefined ? { features: out.features } : { features: out.features, logits }
      }
      const probe = yield* Effect.try({
        try: () =>
          tf.tidy(() => {
            const out = run(tf.fill([1, ...inputShape], -1) as tf.Tensor4D)
            return { featureDim: out.features.size, classes: out.logits?.size }
          }),
        catch: (cause) => fail(`the model failed on a ${inputShape.join("×")} probe image (${errorText(cause)})`, "")
      })
      return FeatureExtractor.of(
        make({
          name: `tfjs:${options.path}#${options.featureOutput}`,
          inputShape,
          featureDim: probe.featureDim,
          ...(probe.classes === undefined ? {} : { classes: probe.classes }),
          ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
          run
        })
      )
    })
  ))
