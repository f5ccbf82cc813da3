/**
 * Monte Carlo checks of identities that hold in expectation, for property tests: compare paired per-sample values
 * (common random numbers) with a standard-error bound.
 *
 * Maths: `docs/algorithm.md` §5 (I2 and I3 hold in expectation), §10.1 and §10.2 (gradients matched "to MC error").
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { pairedDifference, zScore } from "../domain/metrics/MonteCarlo.js"

/**
 * Per-sample values: a plain array (any `ArrayLike<number>`) or a tensor, read with `dataSync` and flattened.
 *
 * @since 0.1.0
 * @category models
 */
export type Samples = ArrayLike<number> | tf.Tensor

/**
 * The outcome of a standard-error check of E[lhs − rhs] = 0 (docs/algorithm.md §5, §10.2).
 *
 * @since 0.1.0
 * @category models
 */
export interface StandardErrorCheck {
  /** Sample mean of lhs_i − rhs_i. */
  readonly mean: number
  /** Its standard error s/√n (n − 1 divisor). */
  readonly stderr: number
  /** mean / stderr (0 when both are 0, ±∞ when only the stderr is 0). */
  readonly z: number
  /** The number of pairs. */
  readonly n: number
  /** The bound in standard errors. */
  readonly k: number
  /** The absolute slack added to the bound. */
  readonly absTolerance: number
  /** |mean| ≤ k·stderr + absTolerance, with every value finite. */
  readonly passed: boolean
}

const values = (s: Samples): ArrayLike<number> => (s instanceof tf.Tensor ? (s.dataSync() as Float32Array) : s)

/**
 * Checks E[lhs − rhs] = 0 from paired per-sample values (docs/algorithm.md §5, §10.2): the mean and standard error of
 * lhs_i − rhs_i, and whether |mean| ≤ k·stderr + absTolerance (default k = 5, i.e. a false alarm about once in
 * 1.7 million checks under a normal approximation). `rhs` may be one number (a closed form) instead of samples.
 * Returns the result without throwing, except on fewer than 2 pairs or unequal lengths; see {@link checkIdentity}.
 *
 * @since 0.1.0
 * @category utils
 */
export const expectWithinStandardErrors = (
  lhs: Samples,
  rhs: Samples | number = 0,
  k: number = 5,
  absTolerance: number = 0
): StandardErrorCheck => {
  const a = values(lhs)
  const b = typeof rhs === "number" ? Float64Array.from({ length: a.length }, () => rhs) : values(rhs)
  if (a.length < 2) throw new Error(`a Monte Carlo check needs at least 2 samples, got ${a.length}`)
  const e = pairedDifference(a, b)
  const z = zScore(e)
  const passed = Number.isFinite(e.mean) && Number.isFinite(e.stderr) && Math.abs(e.mean) <= k * e.stderr + absTolerance
  return { mean: e.mean, stderr: e.stderr, z, n: e.n, k, absTolerance, passed }
}

/**
 * Options of {@link checkIdentity}.
 *
 * @since 0.1.0
 * @category models
 */
export interface CheckIdentityOptions {
  /** Bound in standard errors; default 5. */
  readonly k?: number
  /** Absolute slack added to the bound (e.g. float32 round-off); default 0. */
  readonly absTolerance?: number
}

const fmt = (x: number): string => (Number.isFinite(x) ? x.toPrecision(4) : String(x))

/**
 * The message {@link checkIdentity} throws: the identity's name, the estimate, z and the bound.
 *
 * @since 0.1.0
 * @category utils
 */
export const describeCheck = (name: string, c: StandardErrorCheck): string =>
  `${name}: E[lhs − rhs] = ${fmt(c.mean)} ± ${fmt(c.stderr)} (n = ${c.n}, z = ${fmt(c.z)}), ` +
  `${c.passed ? "within" : "outside"} ${c.k} standard errors${c.absTolerance > 0 ? ` + ${fmt(c.absTolerance)}` : ""}`

/**
 * {@link expectWithinStandardErrors}, throwing an Error that names the identity and gives the mean, standard error, z and
 * bound when the check fails (docs/algorithm.md §5, §10.2). Returns the check when it passes.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkIdentity = (
  name: string,
  lhs: Samples,
  rhs: Samples | number = 0,
  options: CheckIdentityOptions = {}
): StandardErrorCheck => {
  const c = expectWithinStandardErrors(lhs, rhs, options.k ?? 5, options.absTolerance ?? 0)
  if (!c.passed) throw new Error(describeCheck(name, c))
  return c
}
