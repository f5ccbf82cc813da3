/**
 * EDM noise-level schedules: the ρ-map t ↦ σ of the SiD generator loss, the log-normal σ of the EDM / fake-score loss
 * and the discrete Heun step grid of `edm_sampler`.
 *
 * Maths: `docs/algorithm.md` §2.1, §2.2, §2.4, §3, §7, §8.1. Pure functions take their randomness as input tensors; the
 * `*Seeded` helpers draw with an explicit integer seed.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { P_MEAN, P_STD, RHO, SIGMA_MAX, SIGMA_MIN, TMAX } from "./Edm.js"
import { normalTensor, uniformTensor } from "../data/RandomStream.js"

/**
 * Limits and curvature of the ρ-schedule (docs/algorithm.md §2.1); every field defaults to the EDM constant.
 *
 * @since 0.1.0
 * @category models
 */
export interface RhoScheduleOptions {
  readonly sigmaMin?: number
  readonly sigmaMax?: number
  readonly rho?: number
}

/**
 * Log-normal parameters of ln σ (docs/algorithm.md §2.1, §2.4); default P_mean = −1.2, P_std = 1.2.
 *
 * @since 0.1.0
 * @category models
 */
export interface LogNormalOptions {
  readonly pMean?: number
  readonly pStd?: number
}

const rhoParams = (options: RhoScheduleOptions) => {
  const rho = options.rho ?? RHO
  return {
    rho,
    maxInvRho: Math.pow(options.sigmaMax ?? SIGMA_MAX, 1 / rho),
    minInvRho: Math.pow(options.sigmaMin ?? SIGMA_MIN, 1 / rho)
  }
}

/**
 * SiD's continuous ρ-map for one number (docs/algorithm.md §2.2, §8.1):
 * σ(t) = (σ_max^{1/ρ} + (1 − t)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, so σ(0) = σ_min and σ(1) = σ_max. Float64.
 *
 * @since 0.1.0
 * @category utils
 */
export const sigmaFromTimeNumber = (t: number, options: RhoScheduleOptions = {}): number => {
  const { maxInvRho, minInvRho, rho } = rhoParams(options)
  return Math.pow(maxInvRho + (1 - t) * (minInvRho - maxInvRho), rho)
}

/**
 * SiD's continuous ρ-map over a tensor of t ∈ [0, 1] (docs/algorithm.md §2.2, §8.1); elementwise, same shape as `t`.
 *
 * @since 0.1.0
 * @category utils
 */
export const sigmaFromTime = (t: tf.Tensor, options: RhoScheduleOptions = {}): tf.Tensor => {
  const { maxInvRho, minInvRho, rho } = rhoParams(options)
  return tf.tidy(() => tf.pow(tf.scalar(1).sub(t).mul(minInvRho - maxInvRho).add(maxInvRho), rho))
}

/**
 * The generator-loss time from uniform draws u ∈ [0, 1): t = u · tmax/1000, i.e. t ~ U(0, tmax/1000)
 * (docs/algorithm.md §8.1, `rnd_t = rand·tmax/1000`; tmax defaults to 800).
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorTimeFromUniform = (u: tf.Tensor, tmax: number = TMAX): tf.Tensor =>
  tf.tidy(() => tf.mul(u, tmax / 1000))

/**
 * Per-sample σ of the generator loss from uniform draws u ∈ [0, 1): σ(u · tmax/1000) (docs/algorithm.md §2.2, §8.1).
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorSigmaFromUniform = (
  u: tf.Tensor,
  tmax: number = TMAX,
  options: RhoScheduleOptions = {}
): tf.Tensor => tf.tidy(() => sigmaFromTime(generatorTimeFromUniform(u, tmax), options))

/**
 * Draws n generator-loss noise levels σ(t), t ~ U(0, tmax/1000), with an explicit seed (docs/algorithm.md §8.1). Shape [n].
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorSigmaSeeded = (
  n: number,
  seed: number,
  tmax: number = TMAX,
  options: RhoScheduleOptions = {}
): tf.Tensor1D =>
  tf.tidy(() => generatorSigmaFromUniform(uniformTensor([n], seed, "schedule.generator"), tmax, options) as tf.Tensor1D)

/**
 * Log-normal σ of the EDM / fake-score loss from standard-normal draws: σ = exp(n·P_std + P_mean) (docs/algorithm.md §2.4, §7).
 *
 * @since 0.1.0
 * @category utils
 */
export const logNormalSigma = (normal: tf.Tensor, options: LogNormalOptions = {}): tf.Tensor =>
  tf.tidy(() => tf.exp(tf.mul(normal, options.pStd ?? P_STD).add(options.pMean ?? P_MEAN)))

/**
 * The same map for one number: exp(n·P_std + P_mean) (docs/algorithm.md §2.4).
 *
 * @since 0.1.0
 * @category utils
 */
export const logNormalSigmaNumber = (normal: number, options: LogNormalOptions = {}): number =>
  Math.exp(normal * (options.pStd ?? P_STD) + (options.pMean ?? P_MEAN))

/**
 * Draws n log-normal noise levels with an explicit seed (docs/algorithm.md §2.4, §7). Shape [n].
 *
 * @since 0.1.0
 * @category utils
 */
export const logNormalSigmaSeeded = (n: number, seed: number, options: LogNormalOptions = {}): tf.Tensor1D =>
  tf.tidy(() => logNormalSigma(normalTensor([n], seed, "schedule.lognormal"), options) as tf.Tensor1D)

/**
 * The Heun sampler's step grid in float64 (docs/algorithm.md §2.2, §3): t_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ
 * for i = 0..N−1, with t_N = 0 appended, so N + 1 values. Requires N ≥ 2.
 *
 * @since 0.1.0
 * @category utils
 */
export const heunSteps = (numSteps: number = 18, options: RhoScheduleOptions = {}): ReadonlyArray<number> => {
  if (!Number.isInteger(numSteps) || numSteps < 2) throw new Error(`numSteps must be an integer ≥ 2, got ${numSteps}`)
  const { maxInvRho, minInvRho, rho } = rhoParams(options)
  const steps = Array.from({ length: numSteps }, (_, i) =>
    Math.pow(maxInvRho + (i / (numSteps - 1)) * (minInvRho - maxInvRho), rho))
  return [...steps, 0]
}

/**
 * The Heun step grid of {@link heunSteps} as a float32 tensor of shape [N + 1] (docs/algorithm.md §3, §14: no float64 on WebGL).
 *
 * @since 0.1.0
 * @category utils
 */
export const heunStepsTensor = (numSteps: number = 18, options: RhoScheduleOptions = {}): tf.Tensor1D =>
  tf.tensor1d([...heunSteps(numSteps, options)], "float32")
