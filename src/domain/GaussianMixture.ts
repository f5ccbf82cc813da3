/**
 * Exact Gaussian mixtures with diagonal covariances under EDM noising: exact teachers for tests and toys.
 *
 * Spec: `sid.md` §10.1 (noisy marginal, responsibilities, per-component posterior means, exact denoiser and score),
 * §10.2 (1-D Gaussian), §10.3 (8-mode ring, 25-mode grid, mode assignment at σ → 0), §10.5 (ring calibration:
 * radius 0.702, per-mode std 0.06). Every tensor function is built from tf ops only, so it is differentiable in x.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { SIGMA_DATA } from "./Edm.js"
import { normalTensor, uniformTensor } from "./RandomStream.js"
import type { SigmaLike } from "./Tensors.js"

/**
 * A mixture Σ_k π_k N(μ_k, diag(s_k²)) in d dimensions with K components (spec §10.1): `weights` [K] (positive, sum 1),
 * `means` [K][d], `variances` [K][d] (positive, the s_kj²).
 */
export interface GaussianMixture {
  readonly weights: ReadonlyArray<number>
  readonly means: ReadonlyArray<ReadonlyArray<number>>
  readonly variances: ReadonlyArray<ReadonlyArray<number>>
}

/**
 * The problems with a mixture's data, empty when it is valid (spec §10.1): at least one component, weights finite,
 * positive and summing to 1 (within 1e-6), means and variances of shape [K][d] with d ≥ 1, finite means, finite
 * positive variances.
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

/** Validates a mixture's data and returns it; throws an Error listing every problem (spec §10.1). */
export const makeGaussianMixture = (g: GaussianMixture): GaussianMixture => {
  const problems = gaussianMixtureProblems(g)
  if (problems.length > 0) throw new Error(`invalid Gaussian mixture: ${problems.join("; ")}`)
  return g
}

/** Schema of a valid mixture (the checks of {@link gaussianMixtureProblems}), for configs and files (spec §10.1). */
export const GaussianMixtureSchema = Schema.Struct({
  weights: Schema.Array(Schema.Number),
  means: Schema.Array(Schema.Array(Schema.Number)),
  variances: Schema.Array(Schema.Array(Schema.Number))
}).pipe(Schema.filter((g) => {
  const problems = gaussianMixtureProblems(g)
  return problems.length === 0 ? true : problems.join("; ")
}))

/** The dimension d of a mixture (spec §10.1). */
export const dimension = (g: GaussianMixture): number => g.means[0]?.length ?? 0

/** The number of components K of a mixture (spec §10.1). */
export const numComponents = (g: GaussianMixture): number => g.weights.length

/** The mixture's per-coordinate mean and variance (law of total variance), in float64 (spec §10.3 "std ≈ 0.5"). */
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

/** A 1-D Gaussian N(mean, std²) as a one-component mixture (spec §10.2); defaults N(0, σ_data²). */
export const gaussian1d = (mean: number = 0, std: number = SIGMA_DATA): GaussianMixture =>
  makeGaussianMixture({ weights: [1], means: [[mean]], variances: [[std * std]] })

/**
 * Equal-weight isotropic modes on a circle (spec §10.3, §10.5): defaults 8 modes, radius 0.702, per-mode std 0.06,
 * which gives a per-coordinate data std of 0.5. Mode k sits at angle 2πk/modes.
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
 * Equal-weight isotropic modes on a centred side×side grid (spec §10.3, "25-mode grid"): defaults side 5, per-mode
 * std 0.05 and a spacing chosen so that the per-coordinate data std is σ_data = 0.5.
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

/** Component log-densities plus log weights, [N,K]; x − μ_k, [N,K,d]; s_k² + σ², [N|1,K,d] (spec §10.1). */
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

/** ln p_σ(x) of the noised marginal p_σ = Σ_k π_k N(μ_k, Σ_k + σ²I) (spec §10.1), log-sum-exp over k. x [N,d] → [N]. */
export const logDensity = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor1D =>
  tf.tidy(() => tf.logSumExp(parts(g, x, sigma).logits, 1) as tf.Tensor1D)

/** Responsibilities r_k(x) = softmax_k(ln π_k + ln N(x; μ_k, Σ_k + σ²I)), max-shifted (log-sum-exp safe) (spec §10.1). x [N,d] → [N,K]. */
export const responsibilities = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor2D =>
  tf.tidy(() => {
    return tf.softmax(parts(g, x, sigma).logits, 1) as tf.Tensor2D
  })

/** Exact score ∇ ln p_σ(x) = −Σ_k r_k(x)(Σ_k + σ²I)^{-1}(x − μ_k) in closed form (spec §10.1). x [N,d] → [N,d]. */
export const score = (g: GaussianMixture, x: tf.Tensor, sigma: SigmaLike): tf.Tensor2D =>
  tf.tidy(() => {
    const { logits, diff, total } = parts(g, x, sigma)
    const r = tf.softmax(logits, 1).expandDims(2)
    return tf.neg(tf.mul(r, tf.div(diff, total)).sum(1)) as tf.Tensor2D
  })

/**
 * Exact denoiser D(x;σ) = E[x_0 | x_σ = x] = Σ_k r_k(x)·(μ_k + s_k²/(s_k² + σ²) ⊙ (x − μ_k)) (spec §10.1): the posterior
 * mean, f_φ for an exact teacher and f_ψ* for an exact fake score. x [N,d] → [N,d].
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
 * (spec §10.3, mode coverage and recovered weights). x [N,d] → int32 [N].
 */
export const assignComponents = (g: GaussianMixture, x: tf.Tensor): tf.Tensor1D =>
  tf.tidy(() => tf.argMax(parts(g, x, 0).logits, 1) as tf.Tensor1D)

/** The fraction of points assigned to each component at σ → 0, float64 [K] (spec §10.3, recovered mixture weights). */
export const assignedFractions = (g: GaussianMixture, x: tf.Tensor): ReadonlyArray<number> => {
  const idx = tf.tidy(() => assignComponents(g, x))
  const values = idx.dataSync()
  idx.dispose()
  const counts = new Array<number>(numComponents(g)).fill(0)
  for (const k of values) counts[k] = (counts[k] ?? 0) + 1
  return counts.map((c) => (values.length === 0 ? 0 : c / values.length))
}

/**
 * Samples from the (clean) mixture given the randomness (spec §10.1): `uniforms` [N] in [0,1) pick the component by
 * inverse CDF of the weights, `normals` [N,d] are standard normals scaled by the component's std. Returns x [N,d] and the
 * int32 component index [N].
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

/** Draws n samples with an explicit integer seed, from the seeded streams of `RandomStream` (spec §10.1). */
export const sampleSeeded = (
  g: GaussianMixture,
  n: number,
  seed: number
): { readonly x: tf.Tensor2D; readonly component: tf.Tensor1D } =>
  tf.tidy(() =>
    sample(g, normalTensor([n, dimension(g)], seed, "mixture.normals"), uniformTensor([n], seed, "mixture.uniforms"))
  )
