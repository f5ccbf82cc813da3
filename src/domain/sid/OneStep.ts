/**
 * The distilled one-step generator as a plain object: G_θ(z) = D_θ(σ_init·z; σ_init) (docs/algorithm.md §6, §7), and the one
 * latent convention every sampler of a finished generator shares.
 *
 * Latents of seed s for n samples of shape S are the first n·∏S standard normals of the random stream
 * (s, {@link LATENT_STREAM}) (xoshiro128** through splitmix32, Box–Muller; `RandomStream`), laid out row-major as
 * [n, ...S]. `sid sample --seed s`, the evaluation of a run, `loadGenerator` and `sid-ts/browser` all draw them this
 * way, so the same seed gives the same samples everywhere. Class-conditional generators take class i mod K for sample
 * i unless classes are given.
 *
 * This module depends on `@tensorflow/tfjs` alone (the browser entry imports it).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { type Network, type NetworkDescription } from "../nn/Network.js"
import { makeStream, normals } from "../data/RandomStream.js"
import { generateWith } from "./FewStep.js"

/**
 * Label of the random stream that latents are drawn from (see the module docs).
 *
 * @since 0.1.0
 * @category constants
 */
export const LATENT_STREAM = "evaluation"

/**
 * Standard-normal latents [n, ...shape] of a seed, drawn from the stream (seed, {@link LATENT_STREAM}).
 *
 * @since 0.1.0
 * @category utils
 */
export const fixedLatents = (seed: number, n: number, shape: ReadonlyArray<number>): tf.Tensor =>
  tf.tensor(normals(makeStream(seed, LATENT_STREAM), n * shape.reduce((a, b) => a * b, 1)).values, [n, ...shape])

/**
 * Balanced one-hot labels for evaluating a class-conditional network: row i has class i mod K, so every class gets
 * n/K samples (and the class-balanced reference of a labelled data set is matched). [n, K].
 *
 * @since 0.1.0
 * @category utils
 */
export const balancedLabels = (n: number, classes: number): tf.Tensor2D =>
  tf.tidy(() =>
    tf.oneHot(tf.tensor1d(Int32Array.from({ length: n }, (_, i) => i % classes), "int32"), classes).toFloat() as tf.Tensor2D
  )

/**
 * One-hot labels [n, K] for the given class of each sample (default: {@link balancedLabels}); undefined for an
 * unconditional network (K = 0). Throws an Error saying what is wrong when classes are given to an unconditional
 * network, or are not n integers in 0..K−1.
 *
 * @since 0.1.0
 * @category utils
 */
export const classLabels = (n: number, labelDim: number, classes?: ReadonlyArray<number>): tf.Tensor2D | undefined => {
  if (labelDim === 0) {
    if (classes !== undefined) throw new Error("this generator is unconditional: pass no classes")
    return undefined
  }
  if (classes === undefined) return balancedLabels(n, labelDim)
  if (classes.length !== n || classes.some((c) => !Number.isInteger(c) || c < 0 || c >= labelDim)) {
    throw new Error(`classes must be ${n} integers in 0..${labelDim - 1}, got [${classes.join(", ")}]`)
  }
  return tf.tidy(() => tf.oneHot(tf.tensor1d(Int32Array.from(classes), "int32"), labelDim).toFloat() as tf.Tensor2D)
}

/**
 * Where a generator came from: the run, its checkpoint's step, the teacher, which weights. Any may be unknown.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneratorProvenance {
  readonly runDir?: string
  readonly step?: number
  readonly teacher?: string
  readonly weights?: "ema" | "live"
}

/**
 * What a one-step generator is made of: the network, its parameters (owned by the holder), σ_init and σ_data.
 *
 * @since 0.1.0
 * @category models
 */
export interface OneStepWeights {
  readonly network: Network
  readonly params: Record<string, tf.Tensor>
  /** σ_init the generator was distilled at (docs/algorithm.md §6). */
  readonly sigmaInit: number
  /** σ_data of the EDM preconditioning (docs/algorithm.md §2.3). */
  readonly sigmaData: number
  /** k, the generator's steps (`domain/sid/FewStep`, docs/few-step.md); absent: 1, the one-step generator. */
  readonly generatorSteps?: number
  readonly provenance: GeneratorProvenance
}

/**
 * A ready one-step generator.
 *
 * @since 0.1.0
 * @category models
 */
export interface OneStepGenerator {
  /** The architecture (`{ kind, spec }`, as in checkpoint manifests). */
  readonly architecture: NetworkDescription
  /** Shape of one sample: [H, W, C] (NHWC) for images, [d] for vectors. */
  readonly dataShape: ReadonlyArray<number>
  /** The same as {@link OneStepGenerator.dataShape} (the name of earlier versions, which exported images only). */
  readonly imageShape: ReadonlyArray<number>
  /** σ_init the generator was distilled at (docs/algorithm.md §6). */
  readonly sigmaInit: number
  /** σ_data of the EDM preconditioning (docs/algorithm.md §2.3). */
  readonly sigmaData: number
  /** Classes of a class-conditional generator; 0 when it is unconditional. */
  readonly labelDim: number
  /**
   * k, the network evaluations per sample (`domain/sid/FewStep`, docs/few-step.md): 1 for a one-step generator; for
   * k > 1 the re-noise between steps is drawn from each latent row (`latentRenoise`), so samples still depend on the
   * latents alone.
   */
  readonly generatorSteps: number
  readonly provenance: GeneratorProvenance
  /**
   * `n` samples [n, ...dataShape] (images in about [-1, 1]) from the latents of `seed` ({@link fixedLatents}), or from
   * the given standard-normal latents [n, ...dataShape]. A class-conditional generator takes one class index per
   * sample (default: classes in turn, 0, 1, …). {@link OneStepGenerator.generatorSteps} network evaluations; the caller owns the result. Throws an Error
   * for classes that do not fit.
   */
  readonly generate: (latents: number | tf.Tensor, seed?: number, classes?: ReadonlyArray<number>) => tf.Tensor
  /** Frees the weights. */
  readonly dispose: () => void
}

/**
 * x = D_θ(σ_init·z; σ_init, c): one evaluation of the generator on latents z (docs/algorithm.md §6); with `generatorSteps` k > 1,
 * the k-step sample of `domain/sid/FewStep` (re-noise from the latents). The caller owns the result.
 *
 * @since 0.1.0
 * @category utils
 */
export const oneStepSample = (weights: OneStepWeights, z: tf.Tensor, labels?: tf.Tensor2D): tf.Tensor =>
  tf.tidy(() =>
    generateWith(weights.network, weights.params, z, {
      sigmaInit: weights.sigmaInit,
      sigmaData: weights.sigmaData,
      steps: weights.generatorSteps ?? 1
    }, labels)
  )

/**
 * A {@link OneStepGenerator} over the given weights; it takes ownership of their tensors (`dispose` frees them).
 *
 * @since 0.1.0
 * @category utils
 */
export const oneStepGenerator = (weights: OneStepWeights): OneStepGenerator => {
  const { network } = weights
  return {
    architecture: network.description,
    dataShape: network.dataShape,
    imageShape: network.dataShape,
    sigmaInit: weights.sigmaInit,
    sigmaData: weights.sigmaData,
    labelDim: network.labelDim,
    generatorSteps: weights.generatorSteps ?? 1,
    provenance: weights.provenance,
    generate: (latents, seed = 0, classes) =>
      tf.tidy(() => {
        if (typeof latents === "number" && !(Number.isInteger(latents) && latents >= 1)) {
          throw new Error(`the number of samples must be a positive integer, got ${latents}`)
        }
        const z = typeof latents === "number" ? fixedLatents(seed, latents, network.dataShape) : latents
        return oneStepSample(weights, z, classLabels(z.shape[0] ?? 0, network.labelDim, classes))
      }),
    dispose: () => tf.dispose(Object.values(weights.params))
  }
}
