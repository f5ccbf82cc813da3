/**
 * EDM preconditioning (EDMPrecond) and the EDM loss weight λ(σ).
 *
 * Maths: `docs/algorithm.md` §2.3 (c_skip, c_out, c_in, c_noise, D = c_skip·x + c_out·F(c_in·x, c_noise)) and §2.4
 * (λ(σ) = (σ² + σ_d²)/(σ·σ_d)², λ·c_out² = 1). Tensor functions are elementwise in σ; σ_d defaults to SIGMA_DATA.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SIGMA_DATA } from "./Edm.js"
import { broadcastPerSample, type SigmaLike } from "../nn/Tensors.js"

/**
 * The EDM preconditioning coefficients and the loss weight at one σ (docs/algorithm.md §2.3, §2.4).
 *
 * @since 0.1.0
 * @category models
 */
export type EdmCoefficients<A> = {
  readonly cSkip: A
  readonly cOut: A
  readonly cIn: A
  readonly cNoise: A
  readonly lossWeight: A
}

/**
 * c_skip(σ) = σ_d² / (σ² + σ_d²), elementwise (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category utils
 */
export const cSkip = (sigma: tf.Tensor, sigmaData: number = SIGMA_DATA): tf.Tensor =>
  tf.tidy(() => tf.div(sigmaData * sigmaData, tf.square(sigma).add(sigmaData * sigmaData)))

/**
 * c_out(σ) = σ·σ_d / sqrt(σ² + σ_d²), elementwise (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category utils
 */
export const cOut = (sigma: tf.Tensor, sigmaData: number = SIGMA_DATA): tf.Tensor =>
  tf.tidy(() => tf.mul(sigma, sigmaData).div(tf.sqrt(tf.square(sigma).add(sigmaData * sigmaData))))

/**
 * c_in(σ) = 1 / sqrt(σ_d² + σ²), elementwise (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category utils
 */
export const cIn = (sigma: tf.Tensor, sigmaData: number = SIGMA_DATA): tf.Tensor =>
  tf.tidy(() => tf.rsqrt(tf.square(sigma).add(sigmaData * sigmaData)))

/**
 * c_noise(σ) = ln(σ) / 4, elementwise (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category utils
 */
export const cNoise = (sigma: tf.Tensor): tf.Tensor => tf.tidy(() => tf.log(sigma).div(4))

/**
 * EDM loss weight λ(σ) = (σ² + σ_d²) / (σ·σ_d)², elementwise (docs/algorithm.md §2.4, §7).
 *
 * @since 0.1.0
 * @category utils
 */
export const lossWeight = (sigma: tf.Tensor, sigmaData: number = SIGMA_DATA): tf.Tensor =>
  tf.tidy(() => tf.square(sigma).add(sigmaData * sigmaData).div(tf.square(tf.mul(sigma, sigmaData))))

/**
 * All coefficients over a σ tensor, each with σ's shape (docs/algorithm.md §2.3, §2.4).
 *
 * @since 0.1.0
 * @category utils
 */
export const edmCoefficients = (sigma: tf.Tensor, sigmaData: number = SIGMA_DATA): EdmCoefficients<tf.Tensor> =>
  tf.tidy(() => ({
    cSkip: cSkip(sigma, sigmaData),
    cOut: cOut(sigma, sigmaData),
    cIn: cIn(sigma, sigmaData),
    cNoise: cNoise(sigma),
    lossWeight: lossWeight(sigma, sigmaData)
  }))

/**
 * All coefficients for one number, in float64 (docs/algorithm.md §2.3, §2.4). At σ = 2.5: c_skip = 0.0384615,
 * c_out = 0.4902903, c_in = 0.3922323, c_noise = 0.2290727.
 *
 * @since 0.1.0
 * @category utils
 */
export const edmCoefficientsNumber = (sigma: number, sigmaData: number = SIGMA_DATA): EdmCoefficients<number> => {
  const s2 = sigma * sigma + sigmaData * sigmaData
  return {
    cSkip: (sigmaData * sigmaData) / s2,
    cOut: (sigma * sigmaData) / Math.sqrt(s2),
    cIn: 1 / Math.sqrt(s2),
    cNoise: Math.log(sigma) / 4,
    lossWeight: s2 / ((sigma * sigmaData) ** 2)
  }
}

/**
 * A raw network F(c_in·x, c_noise): `xIn` has x's shape, `cNoise` is per sample, shape [N] (docs/algorithm.md §2.3). It may create
 * tensors freely; {@link edmDenoise} runs it inside a tidy.
 *
 * @since 0.1.0
 * @category models
 */
export type RawNetwork = (xIn: tf.Tensor, cNoise: tf.Tensor1D) => tf.Tensor

/**
 * The preconditioned denoiser D(x;σ) = c_skip·x + c_out·F(c_in·x, c_noise) (docs/algorithm.md §2.3). `x` is [N, ...]; σ is a number
 * or a per-sample [N] tensor; F receives c_noise as a [N] vector.
 *
 * @since 0.1.0
 * @category utils
 */
export const edmDenoise = (
  x: tf.Tensor,
  sigma: SigmaLike,
  network: RawNetwork,
  sigmaData: number = SIGMA_DATA
): tf.Tensor => edmDenoiseWith(x, sigma, (xIn, noise) => ({ output: network(xIn, noise), extra: undefined }), sigmaData).denoised

/**
 * {@link edmDenoise} for a network that also returns something beside F (SiDA's discriminator logits, docs/algorithm.md §13):
 * D(x;σ) as `denoised` (the same operations, so the same values as `edmDenoise`) and the network's `extra` as it is.
 *
 * @since 0.2.0
 * @category utils
 */
export const edmDenoiseWith = <E extends tf.Tensor | undefined>(
  x: tf.Tensor,
  sigma: SigmaLike,
  network: (xIn: tf.Tensor, cNoise: tf.Tensor1D) => { readonly output: tf.Tensor; readonly extra: E },
  sigmaData: number = SIGMA_DATA
): { readonly denoised: tf.Tensor; readonly extra: E } =>
  tf.tidy(() => {
    const s = broadcastPerSample(sigma, x)
    const out = network(tf.mul(x, cIn(s, sigmaData)), edmNoiseInput(x, sigma))
    const denoised = tf.mul(x, cSkip(s, sigmaData)).add(tf.mul(out.output, cOut(s, sigmaData)))
    return (out.extra === undefined ? { denoised } : { denoised, extra: out.extra }) as { denoised: tf.Tensor; extra: E }
  })

/**
 * The network inputs c_in·x and c_noise [N] of a preconditioned evaluation at σ (docs/algorithm.md §2.3).
 *
 * @since 0.2.0
 * @category utils
 */
export const edmNetworkInputs = (
  x: tf.Tensor,
  sigma: SigmaLike,
  sigmaData: number = SIGMA_DATA
): { readonly xIn: tf.Tensor; readonly cNoise: tf.Tensor1D } =>
  tf.tidy(() => ({ xIn: tf.mul(x, cIn(broadcastPerSample(sigma, x), sigmaData)), cNoise: edmNoiseInput(x, sigma) }))

const edmNoiseInput = (x: tf.Tensor, sigma: SigmaLike): tf.Tensor1D => {
  const n = x.shape[0] ?? 1
  return (typeof sigma === "number" ? tf.fill([n], Math.log(sigma) / 4) : cNoise(tf.broadcastTo(sigma.reshape([-1]), [n]))) as tf.Tensor1D
}

/**
 * The network-space target of a denoiser value: F = (D − c_skip·x)/c_out (docs/algorithm.md §2.4, §4). With D = y (the clean data)
 * this is the F-target of the EDM loss, ‖F − (y − c_skip·(y+n))/c_out‖²; with D the exact denoiser it is F*.
 *
 * @since 0.1.0
 * @category utils
 */
export const networkTarget = (
  denoised: tf.Tensor,
  x: tf.Tensor,
  sigma: SigmaLike,
  sigmaData: number = SIGMA_DATA
): tf.Tensor =>
  tf.tidy(() => {
    const s = broadcastPerSample(sigma, x)
    return tf.sub(denoised, tf.mul(x, cSkip(s, sigmaData))).div(cOut(s, sigmaData))
  })
