/**
 * Monte Carlo summaries for checking identities in expectation: sample mean, standard error and paired differences.
 *
 * Maths: `docs/algorithm.md` §5 (identities I2, I3 hold in expectation), §10.1 and §10.2 (gradients matched to MC error).
 * All accumulation is in float64.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"

/**
 * A Monte Carlo estimate: sample mean, its standard error s/√n (s with the n − 1 divisor) and the sample count (docs/algorithm.md §5, §10.2).
 *
 * @since 0.1.0
 * @category models
 */
export type Estimate = {
  readonly mean: number
  readonly stderr: number
  readonly n: number
}

/**
 * Mean and standard error of the values (docs/algorithm.md §10.2 "matched to MC error"). Needs at least 2 values for a finite stderr.
 *
 * @since 0.1.0
 * @category utils
 */
export const estimate = (values: ArrayLike<number>): Estimate => {
  const n = values.length
  let sum = 0
  for (let i = 0; i < n; i++) sum += values[i] ?? 0
  const mean = n > 0 ? sum / n : Number.NaN
  let ss = 0
  for (let i = 0; i < n; i++) ss += ((values[i] ?? 0) - mean) ** 2
  const stderr = n > 1 ? Math.sqrt(ss / (n - 1) / n) : Number.NaN
  return { mean, stderr, n }
}

/**
 * {@link estimate} of a tensor's values (read with `dataSync`, flattened) (docs/algorithm.md §5).
 *
 * @since 0.1.0
 * @category utils
 */
export const estimateTensor = (values: tf.Tensor): Estimate => estimate(values.dataSync() as Float32Array)

/**
 * Paired-difference estimate of E[a − b] from per-sample pairs (common random numbers): the mean and standard error of
 * a_i − b_i (docs/algorithm.md §5, checking lhs and rhs of I2 / I3 on the same samples). Throws on unequal lengths.
 *
 * @since 0.1.0
 * @category utils
 */
export const pairedDifference = (a: ArrayLike<number>, b: ArrayLike<number>): Estimate => {
  if (a.length !== b.length) throw new Error(`paired samples differ in length: ${a.length} vs ${b.length}`)
  const d = new Float64Array(a.length)
  for (let i = 0; i < a.length; i++) d[i] = (a[i] ?? 0) - (b[i] ?? 0)
  return estimate(d)
}

/**
 * (mean − target)/stderr; 0 when both the deviation and the stderr are 0, ±∞ when only the stderr is 0 (docs/algorithm.md §5).
 *
 * @since 0.1.0
 * @category utils
 */
export const zScore = (e: Estimate, target: number = 0): number => {
  const dev = e.mean - target
  if (e.stderr === 0) return dev === 0 ? 0 : dev > 0 ? Number.POSITIVE_INFINITY : Number.NEGATIVE_INFINITY
  return dev / e.stderr
}

/**
 * Whether |mean − target| ≤ k·stderr (default k = 5) (docs/algorithm.md §5, §10.1: "match to MC error").
 *
 * @since 0.1.0
 * @category utils
 */
export const withinStandardErrors = (e: Estimate, target: number = 0, k: number = 5): boolean =>
  Math.abs(zScore(e, target)) <= k
