/**
 * Feature extractors read from files on Node: the committed LeNet of MNIST-FID (`layerLeNet`, SHA-256 checked) and a
 * user's TF.js model on disk (`layerTfjsModel`). Re-exports the portable `services/FeatureExtractor.ts`.
 *
 * @module
 */
import { Effect, Layer } from "effect"
import * as tf from "@tensorflow/tfjs"
import { createHash } from "node:crypto"
import { mkdir, readFile, stat, writeFile } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { type LeNetSpec, leNetShapes, leNetSpec } from "../../domain/nn/LeNet.js"
import { compareShapes, disposeParameters, shapesMatch } from "../../domain/nn/Parameters.js"
import { decodeSafetensors } from "../../domain/data/Safetensors.js"
import { fromNamedArrays } from "../../domain/data/NamedTensors.js"
import { type Engine, withEngine, withEngineEffect } from "../../engine/Engine.js"
import {
  adaptImages,
  FeatureExtractor,
  FeatureExtractorError,
  type InputRange,
  LENET_FIX,
  LENET_SHA256,
  type LoadedLeNet,
  make,
  makeLeNet
} from "../FeatureExtractor.js"

export * from "../FeatureExtractor.js"

const errorText = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!

/**
 * Where the committed LeNet weights live (the repository's `assets/`).
 *
 * @since 0.1.0
 * @category constants
 */
export const LENET_PATH: string = fileURLToPath(new URL("../../../assets/lenet-mnist.safetensors", import.meta.url))

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
