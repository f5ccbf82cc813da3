/**
 * Few-step generation (docs/few-step.md): the distilled generator applied k times on a decreasing σ ladder, with
 * fresh noise added between steps, as the official SiDA code's `generate_multistep` does
 * (`mingyuanzhou/SiD@a5510fdf`, branch `sida`, `sida_training_edm2/sida_networks_edm2.py`; SiD-LSG's `num_steps`
 * is the same scheme on a DDPM time grid, `mingyuanzhou/SiD-LSG@709fc22e` `training/sid_sd_util.py`):
 *
 *   x₀ = G(σ₀·z; σ₀),  x_s = G(x_{s−1} + σ_s·ε_s; σ_s) for s = 1 … k−1,  σ_s = σ_init·(k − s)/k,
 *
 * where G(x; σ) = D_θ(x; σ) is the generator network under EDM preconditioning (docs/algorithm.md §2.3, §6), z and every ε_s are
 * standard normal, and the sample is x_{k−1}. With k = 1 this is exactly the one-step generator x = D_θ(σ_init·z;
 * σ_init) (the same operations, so the same bits). Training applies SiD's losses to the final output with the gradient
 * through all k applications (the official code keeps the graph through the loop).
 *
 * Randomness. In training, the re-noise ε_s comes from the run's sampler streams (`fake.renoise`,
 * `generator.renoise`). A finished generator (evaluation, `sid sample`, `loadGenerator`, `sid-ts/browser`) draws
 * ε_s from a stream seeded by a hash of the sample's own latent row ({@link latentRenoise}), so a k-step sample is a
 * function of its latent alone, like a one-step sample: the same latents give the same samples in any batch, chunk
 * or engine.
 *
 * This module depends on `@tensorflow/tfjs` alone (the browser entry imports it).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { type ApplyOptions, denoiseWith, type Network } from "../nn/Network.js"
import type { Parameters } from "../nn/Parameters.js"
import { makeStream, normals } from "../data/RandomStream.js"

/**
 * The most generator steps a run or a generator file may use (the official code evaluates 1, 2 and 4).
 *
 * @since 0.2.0
 * @category constants
 */
export const MAX_GENERATOR_STEPS = 4

/**
 * Label of the stream a finished generator's re-noise is drawn from ({@link latentRenoise}).
 *
 * @since 0.2.0
 * @category constants
 */
export const LATENT_RENOISE_STREAM = "renoise"

/**
 * Throws an Error unless `steps` is an integer in 1 … {@link MAX_GENERATOR_STEPS}.
 *
 * @since 0.2.0
 * @category utils
 */
export const checkGeneratorSteps = (steps: number): void => {
  if (!(Number.isInteger(steps) && steps >= 1 && steps <= MAX_GENERATOR_STEPS)) {
    throw new Error(`the number of generator steps must be an integer in 1..${MAX_GENERATOR_STEPS}, got ${steps}`)
  }
}

/**
 * How reports name a generator of k steps: "one-step generator" for k = 1, "2-step generator" and so on.
 *
 * @since 0.2.0
 * @category utils
 */
export const generatorName = (steps: number): string => `${steps === 1 ? "one-step" : `${steps}-step`} generator`

/**
 * The noise levels of the k generator steps: σ_s = σ_init·(k − s)/k for s = 0 … k−1 (σ₀ = σ_init exactly), strictly
 * decreasing and ending at σ_init/k: [2.5] for k = 1, [2.5, 1.25] for k = 2, [2.5, 1.875, 1.25, 0.625] for k = 4 at
 * σ_init = 2.5. Throws for a bad k or a σ_init that is not a positive finite number.
 *
 * @since 0.2.0
 * @category utils
 */
export const generatorSigmaLadder = (sigmaInit: number, steps: number): ReadonlyArray<number> => {
  checkGeneratorSteps(steps)
  if (!(Number.isFinite(sigmaInit) && sigmaInit > 0)) throw new Error(`σ_init must be a positive finite number, got ${sigmaInit}`)
  return Array.from({ length: steps }, (_, s) => (s === 0 ? sigmaInit : (sigmaInit * (steps - s)) / steps))
}

/**
 * A denoiser at one step: D(x; σ) for the generator's step `step` (0-based).
 *
 * @since 0.2.0
 * @category models
 */
export type StepDenoiser = (x: tf.Tensor, sigma: number, step: number) => tf.Tensor

/**
 * The k-step sample (module docs) for standard-normal latents z and the k − 1 re-noise tensors ε₁ … ε_{k−1} (each
 * shaped like z; none for k = 1). Pure: the denoiser and all randomness are inputs. Differentiable through every
 * step. Call inside `tf.tidy` or a gradient closure (intermediates are not disposed here).
 *
 * @since 0.2.0
 * @category utils
 */
export const fewStepSample = (
  denoise: StepDenoiser,
  z: tf.Tensor,
  sigmaInit: number,
  steps: number,
  renoise: ReadonlyArray<tf.Tensor> = []
): tf.Tensor => {
  const ladder = generatorSigmaLadder(sigmaInit, steps)
  if (renoise.length !== steps - 1) {
    throw new Error(`a ${steps}-step generator needs ${steps - 1} re-noise tensors, got ${renoise.length}`)
  }
  for (const e of renoise) {
    if (!tf.util.arraysEqual(e.shape, z.shape)) {
      throw new Error(`re-noise must be shaped like the latents [${z.shape.join(", ")}], got [${e.shape.join(", ")}]`)
    }
  }
  let x = denoise(tf.mul(z, sigmaInit), sigmaInit, 0)
  for (let s = 1; s < steps; s++) {
    const sigma = ladder[s]!
    x = denoise(tf.add(x, tf.mul(renoise[s - 1]!, sigma)), sigma, s)
  }
  return x
}

/**
 * The network options of step s: the given ones for s = 0; for s ≥ 1, train-mode dropout (when on) with the seed
 * moved by s·0x9e3779b9, so each application draws its own masks (as PyTorch's dropout does on each call) while
 * step 0 keeps the one-step generator's.
 *
 * @since 0.2.0
 * @category utils
 */
export const stepOptions = (options: ApplyOptions | undefined, step: number): ApplyOptions | undefined =>
  step === 0 || options?.dropout === undefined
    ? options
    : { ...options, dropout: { ...options.dropout, seed: (options.dropout.seed + Math.imul(step, 0x9e3779b9)) >>> 0 } }

/**
 * What a generator network needs to generate in k steps.
 *
 * @since 0.2.0
 * @category models
 */
export interface FewStepSettings {
  /** σ_init (docs/algorithm.md §6): the noise level of the first step. */
  readonly sigmaInit: number
  /** σ_data of the EDM preconditioning (docs/algorithm.md §2.3). */
  readonly sigmaData: number
  /** k, the number of generator steps (1: the one-step generator). */
  readonly steps: number
}

/**
 * k-step generation with a network's parameters (module docs): D_θ under EDM preconditioning at each step, one-hot
 * `labels` for a class-conditional network, `options` for step 0 ({@link stepOptions} for the others). `renoise`:
 * the k − 1 re-noise tensors; absent: {@link latentRenoise} of z (for a finished generator; training passes its
 * sampler's draws). For k = 1 this is `denoiseWith(network, params, σ_init·z, σ_init, σ_data, labels, options)`.
 * Call inside `tf.tidy` or a gradient closure.
 *
 * @since 0.2.0
 * @category utils
 */
export const generateWith = (
  network: Network,
  params: Parameters,
  z: tf.Tensor,
  settings: FewStepSettings,
  labels?: tf.Tensor2D,
  options?: ApplyOptions,
  renoise?: ReadonlyArray<tf.Tensor>
): tf.Tensor =>
  fewStepSample(
    (x, sigma, step) => denoiseWith(network, params, x, sigma, settings.sigmaData, labels, stepOptions(options, step)),
    z,
    settings.sigmaInit,
    settings.steps,
    renoise ?? latentRenoise(z, settings.steps)
  )

/** MurmurHash3's 32-bit hash of uint32 words with a seed (mixing per word, then the finaliser). */
const murmur3 = (words: Uint32Array, seed: number): number => {
  let h = seed >>> 0
  for (let i = 0; i < words.length; i++) {
    let k = Math.imul(words[i]!, 0xcc9e2d51)
    k = Math.imul((k << 15) | (k >>> 17), 0x1b873593)
    h ^= k
    h = (Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64) >>> 0
  }
  h ^= words.length * 4
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/**
 * The 53-bit seed of a latent row: two MurmurHash3 hashes (seeds 0 and 0x9747b28c) of its float32 bits, the first
 * as the low 32 bits and 21 bits of the second above them.
 *
 * @since 0.2.0
 * @category utils
 */
export const latentSeed = (row: Float32Array): number => {
  const words = new Uint32Array(row.buffer, row.byteOffset, row.length)
  return murmur3(words, 0) + (murmur3(words, 0x9747b28c) >>> 11) * 0x100000000
}

/**
 * The re-noise of a finished generator (module docs): for each row i of z [n, ...S], the first (k − 1)·∏S standard
 * normals of the stream ({@link latentSeed} of row i, {@link LATENT_RENOISE_STREAM}), ε_s taking the s-th block of
 * ∏S. Returns k − 1 new tensors [n, ...S] (none for k = 1, without reading z). Reads z from the engine once.
 *
 * @since 0.2.0
 * @category utils
 */
export const latentRenoise = (z: tf.Tensor, steps: number): Array<tf.Tensor> => {
  checkGeneratorSteps(steps)
  if (steps === 1) return []
  const n = z.shape[0] ?? 0
  const per = n === 0 ? 0 : z.size / n
  const values = z.dataSync() as Float32Array
  const out = Array.from({ length: steps - 1 }, () => new Float32Array(n * per))
  for (let i = 0; i < n; i++) {
    const row = values.subarray(i * per, (i + 1) * per)
    const draws = normals(makeStream(latentSeed(row), LATENT_RENOISE_STREAM), (steps - 1) * per).values
    for (let s = 0; s < steps - 1; s++) out[s]!.set(draws.subarray(s * per, (s + 1) * per), i * per)
  }
  return out.map((v) => tf.tensor(v, z.shape, "float32"))
}
