/**
 * Exact Gaussian mixtures with diagonal covariances under EDM noising: exact teachers for tests and toys.
 *
 * Maths: `docs/algorithm.md` §4 (noisy marginal, responsibilities, per-component posterior means, exact denoiser and score),
 * §10.1 (1-D Gaussian), §12 (8-mode ring, 25-mode grid, mode assignment at σ → 0), §12.3 (ring calibration:
 * radius 0.702, per-mode std 0.06). Every tensor function is built from tf ops only, so it is differentiable in x.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { SIGMA_DATA } from "../edm/Edm.js"
import { normalTensor, uniformTensor } from "./RandomStream.js"
import type { SigmaLike } from "../nn/Tensors.js"

/**
 * A mixture Σ_k π_k N(μ_k, diag(s_k²)) in d dimensions with K components (docs/algorithm.md §4): `weights` [K] (positive, sum 1),
 * `means` [K][d], `variances` [K][d] (positive, the s_kj²).
 *
 * @since 0.1.0
 * @category models
 */
export interface GaussianMixture {
  readonly weights: ReadonlyArray<number>
  readonly means: ReadonlyArray<ReadonlyArray<number>>
  readonly variances: ReadonlyArray<ReadonlyArray<number>>
}

/**
 * The problems with a mixture's data, empty when it is valid (docs/algorithm.md §4): at least one component, weights finite,
 * positive and summing to 1 (within 1e-6), means and variances of shape [K][d] with d ≥ 1, finite means, finite
 * positive variances.
 *
 * @since 0.1.0
 * @category utils
 */
export const gaussianMixtureProblems = (g: GaussianMixture): ReadonlyArray<string> => {
  const problems: Array<string> = []
  const k = g.weights.length
  if (k === 0) return ["the mixture has no components"]
  if (g.means.length !== k) problems.push(`means has ${g.means.length} rows but there are ${k} weights`)
  if (g.variances.length !== k) problems.push(`variances has ${g.variances.length} rows but there are ${k} weights`)
  if (g.weights.some((w) => !Number.isFinite(w) || w <= 0)) problems.push("weights must be finite and positive")
  const total = g.weights.reduce((a, b) => a + b, 0)
  if (Math.abs(total - 1) > 1e-6) problems.push(`weights must sum to 1, they sum to ${total}`)
  const d = g.means[0]?.length ?? 0
  if (d === 0) problems.push("the dimension must be at least 1")
  g.means.forEach((m, i) => {
    if (m.length !== d) problems.push(`means[${i}] has ${m.length} entries, expected ${d}`)
    if (m.some((v) => !Number.isFinite(v))) problems.push(`means[${i}] has a non-finite entry`)
  })
  g.variances.forEach((v, i) => {
    if (v.length !== d) problems.push(`variances[${i}] has ${v.length} entries, expected ${d}`)
    if (v.some((x) => !Number.isFinite(x) || x <= 0)) problems.push(`variances[${i}] must be finite and positive`)
  })
  return problems
}

/**
 * Validates a mixture's data and returns it; throws an Error listing every problem (docs/algorithm.md §4).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeGaussianMixture = (g: GaussianMixture): GaussianMixture => {
  const problems = gaussianMixtureProblems(g)
  if (problems.length > 0) throw new Error(`invalid Gaussian mixture: ${problems.join("; ")}`)
  return g
}

/**
 * Schema of a valid mixture (the checks of {@link gaussianMixtureProblems}), for configs and files (docs/algorithm.md §4).
 *
 * @since 0.1.0
 * @category schemas
 */
export const GaussianMixtureSchema = Schema.Struct({
  weights: Schema.Array(Schema.Number),
  means: Schema.Array(Schema.Array(Schema.Number)),
  variances: Schema.Array(Schema.Array(Schema.Number))
}).pipe(Schema.filter((g) => {
  const problems = gaussianMixtureProblems(g)
  return problems.length === 0 ? true : problems.join("; ")
}))

/**
 * The dimension d of a mixture (docs/algorithm.md §4).
 *
 * @since 0.1.0
 * @category utils
 */
export const dimension = (g: GaussianMixture): number => g.means[0]?.length ?? 0

/**
 * The number of components K of a mixture (docs/algorithm.md §4).
 *
 * @since 0.1.0
 * @category utils
 */
export const numComponents = (g: GaussianMixture): number => g.weights.length

/**
 * The mixture's per-coordinate mean and variance (law of total variance), in float64 (docs/algorithm.md §12 "std ≈ 0.5").
 *
 * @since 0.1.0
 * @category utils
 */
export const moments = (g: GaussianMixture): { readonly mean: ReadonlyArray<number>; readonly variance: ReadonlyArray<number> } => {
  const d = dimension(g)
  const mean = Array.from({ length: d }, (_, j) => g.weights.reduce((a, w, k) => a + w * (g.means[k]?.[j] ?? 0), 0))
  const variance = Array.from({ length: d }, (_, j) =>
    g.weights.reduce((a, w, k) => {
      const m = g.means[k]?.[j] ?? 0
      return a + w * ((g.variances[k]?.[j] ?? 0) + (m - (mean[j] ?? 0)) ** 2)
    }, 0))
  return { mean, variance }
}

/**
 * A 1-D Gaussian N(mean, std²) as a one-component mixture (docs/algorithm.md §10.1); defaults N(0, σ_data²).
 *
 * @since 0.1.0
 * @category utils
 */
export const gaussian1d = (mean: number = 0, std: number = SIGMA_DATA): GaussianMixture =>
  makeGaussianMixture({ weights: [1], means: [[mean]], variances: [[std * std]] })

/**
 * Equal-weight isotropic modes on a circle (docs/algorithm.md §12, §12.3): defaults 8 modes, radius 0.702, per-mode std 0.06,
 * which gives a per-coordinate data std of 0.5. Mode k sits at angle 2πk/modes.
 *
 * @since 0.1.0
 * @category utils
 */
export const ring = (options: { readonly modes?: number; readonly radius?: number; readonly std?: number } = {}): GaussianMixture => {
  const modes = options.modes ?? 8
  const radius = options.radius ?? 0.702
  const std = options.std ?? 0.06
  return makeGaussianMixture({
    weights: Array.from({ length: modes }, () => 1 / modes),
    means: Array.from({ length: modes }, (_, k) => [radius * Math.cos((2 * Math.PI * k) / modes), radius * Math.sin((2 * Math.PI * k) / modes)]),
    variances: Array.from({ length: modes }, () => [std * std, std * std])
  })
}

/**
 * Equal-weight isotropic modes on a centred side×side grid (docs/algorithm.md §12, "25-mode grid"): defaults side 5, per-mode
 * std 0.05 and a spacing chosen so that the per-coordinate data std is σ_data = 0.5.
 *
 * @since 0.1.0
 * @category utils
 */
export const grid = (options: { readonly side?: number; readonly spacing?: number; readonly std?: number } = {}): GaussianMixture => {
  const side = options.side ?? 5
  const std = options.std ?? 0.05
  const spacing = options.spacing ??
    (side > 1 ? Math.sqrt(Math.max(SIGMA_DATA * SIGMA_DATA - std * std, 0) / ((side * side - 1) / 12)) : 0)
  const pos = Array.from({ length: side }, (_, i) => (i - (side - 1) / 2) * spacing)
  const means = pos.flatMap((a) => pos.map((b) => [a, b]))
  return makeGaussianMixture({
    weights: means.map(() => 1 / means.length),
    means,
    variances: means.map(() => [std * std, std * std])
  })
}

interface MixtureTensors {
  readonly logWeights: tf.Tensor1D
  readonly means: tf.Tensor2D
  readonly variances: tf.Tensor2D
}

const mixtureTensors = (g: GaussianMixture): MixtureTensors => ({
  logWeights: tf.tensor1d(g.weights.map((w) => Math.log(w)), "float32"),
  means: tf.tensor2d(g.means.map((m) => [...m]), [numComponents(g), dimension(g)], "float32"),
  variances: tf.tensor2d(g.variances.map((v) => [...v]), [numComponents(g), dimension(g)], "float32")
})

const checkPoints = (g: GaussianMixture, x: tf.Tensor): void => {
  if (x.rank !== 2 || x.shape[1] !== dimension(g)) {
    throw new Error(`points must have shape [N, ${dimension(g)}], got [${x.shape}]`)
  }
}

/** σ² shaped [N,1,1] (or a scalar) against the [N,K,d] component tensors. */
const sigmaSquared = (sigma: SigmaLike, n: number): tf.Tensor => {
  if (typeof sigma === "number") return tf.scalar(sigma * sigma)
  if (sigma.rank === 0) return tf.square(sigma)
  if (sigma.rank !== 1 || (sigma.shape[0] !== n && sigma.shape[0] !== 1)) {
    throw new Error(`σ must be a number, a scalar or a [${n}] vector, got shape [${sigma.shape}]`)
  }
  return tf.square(sigma).reshape([-1, 1, 1])
}

interface Parts {
  readonly logits: tf.Tensor2D
  readonly diff: tf.Tensor3D
  readonly total: tf.Tensor
  readonly t: MixtureTensors
}

/** Component log-densities plus log weights, [N,K]; x − μ_k, [N,K,d]; s_k² + σ², [N|1,K,d] (docs/algorithm.md §4). */
const parts = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): Parts => {
  checkPoints(g, x)
  const t = mixtureTensors(g)
  const n = x.shape[0] ?? 0
  const diff = tf.sub(x.expandDims(1), t.means.expandDims(0)) as tf.Tensor3D
  const total = tf.add(t.variances.expandDims(0), sigmaSquared(sigma, n))
  const quad = tf.add(tf.log(tf.mul(total, 2 * Math.PI)), tf.div(tf.square(diff), total)).sum(2)
  const logits = tf.sub(t.logWeights.expandDims(0), tf.mul(quad, 0.5)) as tf.Tensor2D
  return { logits, diff, total, t }
}

/**
 * ln p_σ(x) of the noised marginal p_σ = Σ_k π_k N(μ_k, Σ_k + σ²I) (docs/algorithm.md §4), log-sum-exp over k. x [N,d] → [N].
 *
 * @since 0.1.0
 * @category utils
 */
export const logDensity = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor1D =>
  tf.tidy(() => tf.logSumExp(parts(g, x, sigma).logits, 1) as tf.Tensor1D)

/**
 * Responsibilities r_k(x) = softmax_k(ln π_k + ln N(x; μ_k, Σ_k + σ²I)), max-shifted (log-sum-exp safe) (docs/algorithm.md §4). x [N,d] → [N,K].
 *
 * @since 0.1.0
 * @category utils
 */
export const responsibilities = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor2D =>
  tf.tidy(() => {
    return tf.softmax(parts(g, x, sigma).logits, 1) as tf.Tensor2D
  })

/**
 * Exact score ∇ ln p_σ(x) = −Σ_k r_k(x)(Σ_k + σ²I)^{-1}(x − μ_k) in closed form (docs/algorithm.md §4). x [N,d] → [N,d].
 *
 * @since 0.1.0
 * @category utils
 */
export const score = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor2D =>
  tf.tidy(() => {
    const { logits, diff, total } = parts(g, x, sigma)
    const r = tf.softmax(logits, 1).expandDims(2)
    return tf.neg(tf.mul(r, tf.div(diff, total)).sum(1)) as tf.Tensor2D
  })

/**
 * Exact denoiser D(x;σ) = E[x_0 | x_σ = x] = Σ_k r_k(x)·(μ_k + s_k²/(s_k² + σ²) ⊙ (x − μ_k)) (docs/algorithm.md §4): the posterior
 * mean, f_φ for an exact teacher and f_ψ* for an exact fake score. x [N,d] → [N,d].
 *
 * @since 0.1.0
 * @category utils
 */
export const denoise = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor2D =>
  tf.tidy(() => {
    const { logits, diff, total, t } = parts(g, x, sigma)
    const r = tf.softmax(logits, 1).expandDims(2)
    const m = tf.add(t.means.expandDims(0), tf.mul(tf.div(t.variances.expandDims(0), total), diff))
    return tf.mul(r, m).sum(1) as tf.Tensor2D
  })

/**
 * Hard assignment of each point to its most responsible component at σ → 0, argmax_k r_k(x; σ = 0)
 * (docs/algorithm.md §12, mode coverage and recovered weights). x [N,d] → int32 [N].
 *
 * @since 0.1.0
 * @category utils
 */
export const assignComponents = (g: GaussianMixture, x: tf.Tensor): tf.Tensor1D =>
  tf.tidy(() => tf.argMax(parts(g, x, 0).logits, 1) as tf.Tensor1D)

/**
 * The fraction of points assigned to each component at σ → 0, float64 [K] (docs/algorithm.md §12, recovered mixture weights).
 *
 * @since 0.1.0
 * @category utils
 */
export const assignedFractions = (g: GaussianMixture, x: tf.Tensor): ReadonlyArray<number> => {
  const idx = tf.tidy(() => assignComponents(g, x))
  const values = idx.dataSync()
  idx.dispose()
  const counts = new Array<number>(numComponents(g)).fill(0)
  for (const k of values) counts[k] = (counts[k] ?? 0) + 1
  return counts.map((c) => (values.length === 0 ? 0 : c / values.length))
}

/**
 * Samples from the (clean) mixture given the randomness (docs/algorithm.md §4): `uniforms` [N] in [0,1) pick the component by
 * inverse CDF of the weights, `normals` [N,d] are standard normals scaled by the component's std. Returns x [N,d] and the
 * int32 component index [N].
 *
 * @since 0.1.0
 * @category utils
 */
export const sample = (
  g: GaussianMixture,
  normals: tf.Tensor,
  uniforms: tf.Tensor
): { readonly x: tf.Tensor2D; readonly component: tf.Tensor1D } =>
  tf.tidy(() => {
    checkPoints(g, normals)
    const k = numComponents(g)
    const n = normals.shape[0] ?? 0
    if (uniforms.size !== n) throw new Error(`need ${n} uniform draws, got ${uniforms.size}`)
    const t = mixtureTensors(g)
    let acc = 0
    const cumulative = g.weights.slice(0, k - 1).map((w) => (acc += w))
    const component = (k === 1
      ? tf.zeros([n], "int32")
      : tf.greaterEqual(uniforms.reshape([n, 1]), tf.tensor2d([cumulative], [1, k - 1], "float32")).cast("int32").sum(1)) as tf.Tensor1D
    const x = tf.add(tf.gather(t.means, component), tf.mul(tf.gather(tf.sqrt(t.variances), component), normals)) as tf.Tensor2D
    return { x, component }
  })

/**
 * Draws n samples with an explicit integer seed, from the seeded streams of `RandomStream` (docs/algorithm.md §4).
 *
 * @since 0.1.0
 * @category utils
 */
export const sampleSeeded = (
  g: GaussianMixture,
  n: number,
  seed: number
): { readonly x: tf.Tensor2D; readonly component: tf.Tensor1D } =>
  tf.tidy(() =>
    sample(g, normalTensor([n, dimension(g)], seed, "mixture.normals"), uniformTensor([n], seed, "mixture.uniforms"))
  )

/**
 * Unequal weights and anisotropic (diagonal) covariances (docs/algorithm.md §12, a harder toy than the ring and the grid): six
 * modes of weights 0.30, 0.20, 0.15, 0.15, 0.12, 0.08, most stretched along one axis (std ratios up to 3:1), placed
 * without symmetry, centred, and scaled so that the mean per-coordinate data variance is σ_data² = 0.25.
 *
 * @since 0.2.0
 * @category utils
 */
export const anisotropic = (): GaussianMixture => {
  const modes: ReadonlyArray<readonly [number, number, number, number, number]> = [
    // weight, mean x, mean y, std x, std y
    [0.30, -0.60, 0.45, 0.100, 0.035],
    [0.20, 0.10, 0.65, 0.035, 0.090],
    [0.15, 0.75, 0.20, 0.060, 0.060],
    [0.15, -0.55, -0.45, 0.040, 0.100],
    [0.12, 0.15, -0.20, 0.090, 0.040],
    [0.08, 0.65, -0.65, 0.050, 0.050]
  ]
  const raw: GaussianMixture = {
    weights: modes.map((m) => m[0]),
    means: modes.map((m) => [m[1], m[2]]),
    variances: modes.map((m) => [m[3] * m[3], m[4] * m[4]])
  }
  const { mean, variance } = moments(raw)
  const scale = SIGMA_DATA / Math.sqrt(variance.reduce((a, b) => a + b, 0) / variance.length)
  return makeGaussianMixture({
    weights: raw.weights,
    means: raw.means.map((m) => m.map((v, j) => (v - mean[j]!) * scale)),
    variances: raw.variances.map((v) => v.map((s) => s * scale * scale))
  })
}

/**
 * Mahalanobis radius inside which a sample belongs to a mode ("in-mode", docs/algorithm.md §12.3: within 3 standard deviations).
 *
 * @since 0.2.0
 * @category constants
 */
export const IN_MODE_RADIUS = 3

/**
 * Half-width of the corridor joining two modes, in the mean of their standard deviations: wide enough for a ridge that
 * follows the ring's arc rather than the chord (its sagitta is 0.9 standard deviations on `ring()`).
 *
 * @since 0.2.0
 * @category constants
 */
export const CORRIDOR_HALF_WIDTH = 1.5

/** ln Γ(a) for a > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13). */
const logGamma = (a: number): number => {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7
  ]
  if (a < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * a)) - logGamma(1 - a)
  const x = a - 1
  let s = c[0]!
  for (let i = 1; i < 9; i++) s += c[i]! / (x + i)
  const t = x + 7.5
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(s)
}

/** The regularised lower incomplete gamma function P(a, x) by its power series (converges for every x ≥ 0). */
const lowerGammaRegularized = (a: number, x: number): number => {
  if (x <= 0) return 0
  let term = 1 / a
  let sum = term
  for (let n = 1; n < 1000; n++) {
    term *= x / (a + n)
    sum += term
    if (term < sum * 1e-15) break
  }
  return Math.min(1, Math.exp(-x + a * Math.log(x) - logGamma(a)) * sum)
}

/**
 * P(χ²_d ≤ q), the chi-square distribution function with d degrees of freedom.
 *
 * @since 0.2.0
 * @category utils
 */
export const chiSquareCdf = (d: number, q: number): number => lowerGammaRegularized(d / 2, q / 2)

/**
 * The covariance of a d-dimensional Gaussian truncated to its Mahalanobis ball of radius r, as a multiple of the
 * untruncated covariance: E[χ²_d | χ²_d ≤ r²]/d = P(χ²_{d+2} ≤ r²)/P(χ²_d ≤ r²) (0.949 for d = 2, r = 3). In-mode
 * covariances are compared with the truth scaled by this factor, so exact samples measure as the truth.
 *
 * @since 0.2.0
 * @category utils
 */
export const truncatedVarianceFactor = (d: number, r: number = IN_MODE_RADIUS): number =>
  chiSquareCdf(d + 2, r * r) / chiSquareCdf(d, r * r)

/**
 * The shape of a sample set against a mixture's modes (docs/algorithm.md §12, §12.3), beyond the distances: how much mass each
 * mode receives, where the rest lies, and how each mode's samples are placed and spread compared with the truth.
 *
 * A sample is *in-mode* when its Mahalanobis distance to some component is ≤ {@link IN_MODE_RADIUS}; it belongs to the
 * nearest such component. Per-mode figures use that component's in-mode samples, and are null where it has fewer than
 * `minSamples`.
 *
 * @since 0.2.0
 * @category models
 */
export interface ModeShape {
  /** Share of the in-mode samples per component (the true weights for a perfect sampler). */
  readonly modeWeights: ReadonlyArray<number>
  /** Components that received at least half their true share of in-mode samples. */
  readonly modesCovered: number
  /** Share of samples that are in no mode. */
  readonly offModeFraction: number
  /**
   * Share of samples that lie between the two modes nearest to them: in no mode, projected strictly inside the
   * segment joining the two means, and no farther from it than {@link CORRIDOR_HALF_WIDTH} × the mean of the two
   * modes' standard deviations. Bridges joining modes raise it; far outliers do not. The modes' own tails give exact
   * samples 0.2–0.5 % (aniso6, ring8, grid25).
   */
  readonly betweenModeFraction: number
  /** Per component: ‖Σ_k^{-1/2}(μ̂_k − μ_k)‖, the error of the in-mode sample mean in the mode's standard deviations. */
  readonly modeMeanErrors: ReadonlyArray<number | null>
  /**
   * Per component: ‖W_k − I‖_F with W_k = Σ_k^{-1/2} Σ̂_k Σ_k^{-1/2} / c, the whitened in-mode sample covariance
   * against the truth (c: {@link truncatedVarianceFactor}); 0 for the truth, |s² − 1|·√d for a mode scaled by s.
   */
  readonly modeCovarianceErrors: ReadonlyArray<number | null>
  /** Per component: det(W_k)^{1/(2d)}, the in-mode spread as a multiple of the truth's (1 for the truth). */
  readonly modeSpreads: ReadonlyArray<number | null>
  /** The modes' spreads averaged with the true weights (over the modes that have one); NaN when none has. */
  readonly inModeSpread: number
}

/**
 * Options of {@link modeShape}.
 *
 * @since 0.2.0
 * @category models
 */
export interface ModeShapeOptions {
  /** In-mode samples a component needs for its mean, covariance and spread (default max(10, 5d)). */
  readonly minSamples?: number
  /** Mahalanobis distance from both neighbouring modes beyond which a sample can be between them (default {@link IN_MODE_RADIUS}). */
  readonly betweenRadius?: number
  /** Half-width of the corridor between two modes, in their mean standard deviation (default {@link CORRIDOR_HALF_WIDTH}). */
  readonly corridorHalfWidth?: number
}

/** The determinant of a small square matrix (Gaussian elimination with partial pivoting). */
const determinant = (a: Array<Array<number>>): number => {
  const m = a.map((row) => [...row])
  const d = m.length
  let det = 1
  for (let i = 0; i < d; i++) {
    let pivot = i
    for (let r = i + 1; r < d; r++) if (Math.abs(m[r]![i]!) > Math.abs(m[pivot]![i]!)) pivot = r
    if (m[pivot]![i] === 0) return 0
    if (pivot !== i) {
      ;[m[i], m[pivot]] = [m[pivot]!, m[i]!]
      det = -det
    }
    det *= m[i]![i]!
    for (let r = i + 1; r < d; r++) {
      const f = m[r]![i]! / m[i]![i]!
      for (let c = i; c < d; c++) m[r]![c]! -= f * m[i]![c]!
    }
  }
  return det
}

/**
 * The {@link ModeShape} of `n` samples (row-major `values`, n × d) against a mixture, in plain float64 JS
 * (O(n·K·d + n·d²)).
 *
 * @since 0.2.0
 * @category utils
 */
export const modeShape = (
  g: GaussianMixture,
  values: ArrayLike<number>,
  n: number,
  options: ModeShapeOptions = {}
): ModeShape => {
  const k = numComponents(g)
  const d = dimension(g)
  const minSamples = options.minSamples ?? Math.max(10, 5 * d)
  const betweenRadius = options.betweenRadius ?? IN_MODE_RADIUS
  const corridorHalfWidth = options.corridorHalfWidth ?? CORRIDOR_HALF_WIDTH
  const r2 = IN_MODE_RADIUS * IN_MODE_RADIUS
  const stds = g.variances.map((v) => Math.sqrt(v.reduce((a, b) => a + b, 0) / d))
  const counts = new Array<number>(k).fill(0)
  const sums = Array.from({ length: k }, () => new Array<number>(d).fill(0))
  const products = Array.from({ length: k }, () => Array.from({ length: d }, () => new Array<number>(d).fill(0)))
  let inMode = 0
  let between = 0
  const dist = new Array<number>(k)
  for (let i = 0; i < n; i++) {
    let best = -1
    let second = -1
    for (let c = 0; c < k; c++) {
      let q = 0
      for (let j = 0; j < d; j++) q += (values[i * d + j]! - g.means[c]![j]!) ** 2 / g.variances[c]![j]!
      dist[c] = q
      if (best < 0 || q < dist[best]!) {
        second = best
        best = c
      } else if (second < 0 || q < dist[second]!) second = c
    }
    if (dist[best]! <= r2) {
      inMode++
      counts[best]! += 1
      for (let j = 0; j < d; j++) {
        const u = values[i * d + j]! - g.means[best]![j]!
        sums[best]![j]! += u
        for (let l = 0; l <= j; l++) products[best]![j]![l]! += u * (values[i * d + l]! - g.means[best]![l]!)
      }
      continue
    }
    if (second < 0 || dist[best]! <= betweenRadius * betweenRadius) continue
    const a = g.means[best]!
    const b = g.means[second]!
    let ab2 = 0
    let t = 0
    for (let j = 0; j < d; j++) {
      ab2 += (b[j]! - a[j]!) ** 2
      t += (values[i * d + j]! - a[j]!) * (b[j]! - a[j]!)
    }
    if (ab2 === 0) continue
    t /= ab2
    if (t <= 0 || t >= 1) continue
    let off2 = 0
    for (let j = 0; j < d; j++) off2 += (values[i * d + j]! - a[j]! - t * (b[j]! - a[j]!)) ** 2
    const width = (corridorHalfWidth * (stds[best]! + stds[second]!)) / 2
    if (off2 <= width * width) between++
  }
  const factor = truncatedVarianceFactor(d)
  const modeMeanErrors: Array<number | null> = []
  const modeCovarianceErrors: Array<number | null> = []
  const modeSpreads: Array<number | null> = []
  for (let c = 0; c < k; c++) {
    const m = counts[c]!
    if (m < minSamples) {
      modeMeanErrors.push(null)
      modeCovarianceErrors.push(null)
      modeSpreads.push(null)
      continue
    }
    const s = g.variances[c]!.map(Math.sqrt)
    const mean = sums[c]!.map((v) => v / m)
    modeMeanErrors.push(Math.sqrt(mean.reduce((acc, v, j) => acc + (v / s[j]!) ** 2, 0)))
    const w = Array.from({ length: d }, (_, j) =>
      Array.from({ length: d }, (_, l) => {
        const [hi, lo] = j >= l ? [j, l] : [l, j]
        const cov = (products[c]![hi]![lo]! - m * mean[hi]! * mean[lo]!) / (m - 1)
        return cov / (s[j]! * s[l]! * factor)
      }))
    let frobenius = 0
    for (let j = 0; j < d; j++) for (let l = 0; l < d; l++) frobenius += (w[j]![l]! - (j === l ? 1 : 0)) ** 2
    modeCovarianceErrors.push(Math.sqrt(frobenius))
    modeSpreads.push(Math.pow(Math.max(determinant(w), 0), 1 / (2 * d)))
  }
  let weighted = 0
  let weightTotal = 0
  modeSpreads.forEach((spread, c) => {
    if (spread === null) return
    weighted += g.weights[c]! * spread
    weightTotal += g.weights[c]!
  })
  const modeWeights = counts.map((c) => (inMode === 0 ? 0 : c / inMode))
  return {
    modeWeights,
    modesCovered: modeWeights.filter((w, c) => w >= 0.5 * g.weights[c]!).length,
    offModeFraction: n === 0 ? 0 : 1 - inMode / n,
    betweenModeFraction: n === 0 ? 0 : between / n,
    modeMeanErrors,
    modeCovarianceErrors,
    modeSpreads,
    inModeSpread: weightTotal === 0 ? NaN : weighted / weightTotal
  }
}
