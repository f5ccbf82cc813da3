/**
 * EDM's deterministic/stochastic Heun sampler (docs/algorithm.md §3), for any denoiser.
 *
 * x₀ = latents·t₀; for each step i: optional churn γ (S_churn, S_min, S_max, S_noise), an Euler step with
 * d = (x̂ − D(x̂; t̂))/t̂, and a Heun correction except on the last step (where t_{i+1} = 0). N steps cost 2N − 1
 * denoiser evaluations (35 for N = 18). Runs in float32 (docs/algorithm.md §14).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { heunSteps, type RhoScheduleOptions } from "./Schedule.js"

/**
 * A denoiser D(x; σ) evaluated at one noise level for the whole batch.
 *
 * @since 0.1.0
 * @category models
 */
export type Denoiser = (x: tf.Tensor, sigma: number) => tf.Tensor

/**
 * Sampler settings (docs/algorithm.md §3 defaults: N = 18, S_churn = 0, S_min = 0, S_max = ∞, S_noise = 1).
 *
 * @since 0.1.0
 * @category models
 */
export interface HeunOptions extends RhoScheduleOptions {
  readonly numSteps?: number
  readonly sChurn?: number
  readonly sMin?: number
  readonly sMax?: number
  readonly sNoise?: number
  /** Standard-normal churn noise for step i, shaped like x; required only when S_churn > 0. */
  readonly churnNoise?: (step: number) => tf.Tensor
}

/**
 * Denoiser evaluations the sampler makes for N steps: 2N − 1.
 *
 * @since 0.1.0
 * @category utils
 */
export const heunEvaluations = (numSteps: number): number => 2 * numSteps - 1

/**
 * Step i of the sampler (docs/algorithm.md §3): from x at t_i (of the schedule `t` = `heunSteps(N, options)`) to t_{i+1}, with
 * churn when the options ask for it. Returns a new tensor; `x` is left to the caller.
 *
 * @since 0.1.0
 * @category utils
 */
export const heunStep = (
  denoise: Denoiser,
  x: tf.Tensor,
  i: number,
  t: ReadonlyArray<number>,
  options: HeunOptions = {}
): tf.Tensor =>
  tf.tidy(() => {
    const n = t.length - 1
    const sChurn = options.sChurn ?? 0
    const sMin = options.sMin ?? 0
    const sMax = options.sMax ?? Infinity
    const sNoise = options.sNoise ?? 1
    const ti = t[i]!
    const tNext = t[i + 1]!
    const gamma = sChurn > 0 && ti >= sMin && ti <= sMax ? Math.min(sChurn / n, Math.SQRT2 - 1) : 0
    const tHat = ti * (1 + gamma)
    let xHat: tf.Tensor = x
    if (gamma > 0) {
      if (options.churnNoise === undefined) throw new Error("S_churn > 0 needs churnNoise")
      xHat = tf.add(x, tf.mul(options.churnNoise(i), Math.sqrt(tHat * tHat - ti * ti) * sNoise))
    }
    const d = tf.div(tf.sub(xHat, denoise(xHat, tHat)), tHat)
    const euler = tf.add(xHat, tf.mul(d, tNext - tHat))
    if (i === n - 1) return euler
    const d2 = tf.div(tf.sub(euler, denoise(euler, tNext)), tNext)
    return tf.add(xHat, tf.mul(tf.add(d, d2), 0.5 * (tNext - tHat)))
  })

/**
 * Samples from a denoiser starting at standard-normal `latents` [N, ...] (docs/algorithm.md §3): {@link heunStep} N times.
 *
 * @since 0.1.0
 * @category utils
 */
export const heunSample = (denoise: Denoiser, latents: tf.Tensor, options: HeunOptions = {}): tf.Tensor => {
  const t = heunSteps(options.numSteps ?? 18, options)
  let x = tf.mul(latents, t[0]!)
  for (let i = 0; i < t.length - 1; i++) {
    const next = heunStep(denoise, x, i, t, options)
    x.dispose()
    x = next
  }
  return x
}
