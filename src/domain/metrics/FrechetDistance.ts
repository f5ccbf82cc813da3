/**
 * Fréchet distance between the Gaussian moments of two sample sets: the formula behind FID, here on raw
 * coordinates or any feature vectors.
 *
 * Maths: `docs/algorithm.md` §11 (FID = ‖μ_x − μ_y‖² + Tr(Σ_x + Σ_y − 2·(Σ_x Σ_y)^{1/2}), with Tr sqrtm(Σ_x Σ_y) computed as
 * Σ_i sqrt(λ_i(Σ_x^{1/2} Σ_y Σ_x^{1/2})) through symmetric eigendecompositions) and docs/algorithm.md §12/§12.3 ("raw-coordinate
 * FID" on the 2-D ring).
 *
 * Everything is accumulated in float64: the samples are read once, the moments are computed in JS, and the matrix
 * square roots use ml-matrix's symmetric `EigenvalueDecomposition`. Bad input throws {@link MetricInputError}.
 * Accuracy: about 1e-12 relative for well-conditioned covariances; with rank-deficient ones the square roots of
 * rounding-level eigenvalues limit it to about sqrt(machine ε) ≈ 1e-8 relative to tr Σ (as with scipy's `sqrtm`).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { EigenvalueDecomposition, Matrix } from "ml-matrix"
import type { CovarianceNormalisation } from "./Moments.js"
import { MetricInputError, momentsFromValues, readSamples } from "./Moments.js"

const METRIC = "frechetDistance"

/** Relative tolerance for asymmetry and negative eigenvalues of a covariance (rounding, not real defects). */
const PSD_TOLERANCE = 1e-6

/**
 * A `d × d` matrix, either flat row-major (length d², e.g. a reference `sigma` read from an npz file) or as
 * `d` rows of length `d` (docs/algorithm.md §11, reference statistics (μ, Σ)).
 *
 * @since 0.1.0
 * @category models
 */
export type MatrixInput = ArrayLike<number> | ReadonlyArray<ArrayLike<number>>

/**
 * The two parts of the Fréchet distance (docs/algorithm.md §11): `meanTerm` = ‖μ₁ − μ₂‖², `covarianceTerm` =
 * Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}), and their sum `distance`, clamped at 0 against rounding.
 *
 * @since 0.1.0
 * @category models
 */
export interface FrechetTerms {
  readonly meanTerm: number
  readonly covarianceTerm: number
  readonly distance: number
}

/**
 * Options of {@link frechetDistance} (docs/algorithm.md §11).
 *
 * @since 0.1.0
 * @category models
 */
export interface FrechetOptions {
  /** `"unbiased"` (÷(N − 1), EDM `fid.py`; default) or `"biased"` (÷N, SiD `FeatureStats`). */
  readonly covariance?: CovarianceNormalisation
}

const isRows = (m: MatrixInput): m is ReadonlyArray<ArrayLike<number>> => m.length > 0 && typeof m[0] !== "number"

const toVector = (name: string, v: ArrayLike<number>): Float64Array => {
  const out = Float64Array.from(v)
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i]!)) throw new MetricInputError(METRIC, `${name}[${i}] = ${out[i]} is not finite`)
  }
  return out
}

const toSymmetricMatrix = (name: string, m: MatrixInput, dim: number): Matrix => {
  const flat = new Float64Array(dim * dim)
  if (isRows(m)) {
    if (m.length !== dim || m.some((row) => row.length !== dim)) {
      throw new MetricInputError(METRIC, `${name} must be ${dim} × ${dim} to match the mean`)
    }
    m.forEach((row, i) => {
      for (let j = 0; j < dim; j++) flat[i * dim + j] = row[j]!
    })
  } else {
    if (m.length !== dim * dim) {
      throw new MetricInputError(METRIC, `${name} must hold ${dim} × ${dim} = ${dim * dim} values, got ${m.length}`)
    }
    for (let k = 0; k < flat.length; k++) flat[k] = m[k]!
  }
  let scale = 0
  for (let k = 0; k < flat.length; k++) {
    const v = flat[k]!
    if (!Number.isFinite(v)) throw new MetricInputError(METRIC, `${name} has a non-finite entry ${v}`)
    scale = Math.max(scale, Math.abs(v))
  }
  const out = new Matrix(dim, dim)
  for (let i = 0; i < dim; i++) {
    for (let j = i; j < dim; j++) {
      const a = flat[i * dim + j]!
      const b = flat[j * dim + i]!
      if (Math.abs(a - b) > PSD_TOLERANCE * scale) {
        throw new MetricInputError(METRIC, `${name} is not symmetric: [${i}][${j}] = ${a} but [${j}][${i}] = ${b}`)
      }
      const s = 0.5 * (a + b)
      out.set(i, j, s)
      out.set(j, i, s)
    }
  }
  return out
}

const maxAbs = (values: ReadonlyArray<number>): number => values.reduce((acc, v) => Math.max(acc, Math.abs(v)), 0)

/** Below this, relative to the largest entry, an entry is flushed to 0 before the decomposition. */
const FLUSH_RELATIVE = 1e-200

/**
 * Symmetric eigendecomposition through ml-matrix, applied to the matrix scaled to a largest entry of 1 with
 * negligible entries flushed to 0: ml-matrix 6.15's `tql2` indexes past the end on subnormal off-diagonals.
 */
const symmetricEigenvalues = (m: Matrix): { readonly values: Array<number>; readonly vectors: Matrix } => {
  const scale = maxAbs(m.to1DArray())
  if (scale === 0) return { values: new Array<number>(m.rows).fill(0), vectors: Matrix.eye(m.rows) }
  const normalised = new Matrix(m.rows, m.columns)
  for (let i = 0; i < m.rows; i++) {
    for (let j = 0; j < m.columns; j++) {
      const v = m.get(i, j) / scale
      normalised.set(i, j, Math.abs(v) < FLUSH_RELATIVE ? 0 : v)
    }
  }
  const evd = new EigenvalueDecomposition(normalised, { assumeSymmetric: true })
  return { values: evd.realEigenvalues.map((v) => v * scale), vectors: evd.eigenvectorMatrix }
}

const checkPsd = (name: string, values: ReadonlyArray<number>, scale: number): void => {
  const smallest = values.reduce((acc, v) => Math.min(acc, v), Infinity)
  if (smallest < -PSD_TOLERANCE * scale) {
    throw new MetricInputError(METRIC, `${name} is not positive semi-definite (smallest eigenvalue ${smallest})`)
  }
}

const trace = (m: Matrix): number => {
  let t = 0
  for (let i = 0; i < m.rows; i++) t += m.get(i, i)
  return t
}

/**
 * Both terms of the Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (docs/algorithm.md §11), in float64:
 * Tr(Σ₁Σ₂)^{1/2} = Σ_i sqrt(max(λ_i(Σ₁^{1/2} Σ₂ Σ₁^{1/2}), 0)) with symmetric eigendecompositions.
 * Throws {@link MetricInputError} if the shapes disagree, a value is not finite, or a covariance is not
 * symmetric positive semi-definite (up to a relative tolerance of 1e-6).
 *
 * @since 0.1.0
 * @category utils
 */
export const frechetTermsFromMoments = (
  mu1: ArrayLike<number>,
  cov1: MatrixInput,
  mu2: ArrayLike<number>,
  cov2: MatrixInput
): FrechetTerms => {
  const m1 = toVector("mu1", mu1)
  const m2 = toVector("mu2", mu2)
  const dim = m1.length
  if (dim < 1) throw new MetricInputError(METRIC, "the means must have at least one coordinate")
  if (m2.length !== dim) throw new MetricInputError(METRIC, `mu1 has ${dim} coordinates but mu2 has ${m2.length}`)
  const s1 = toSymmetricMatrix("cov1", cov1, dim)
  const s2 = toSymmetricMatrix("cov2", cov2, dim)

  const e1 = symmetricEigenvalues(s1)
  const scale1 = maxAbs(e1.values)
  checkPsd("cov1", e1.values, scale1)
  const rootValues = Matrix.diag(e1.values.map((v) => Math.sqrt(Math.max(v, 0))))
  const root1 = e1.vectors.mmul(rootValues).mmul(e1.vectors.transpose())
  const product = root1.mmul(s2).mmul(root1)
  const symmetricProduct = product.add(product.transpose()).mul(0.5)
  const eProduct = symmetricEigenvalues(symmetricProduct).values
  checkPsd("cov1^(1/2) · cov2 · cov1^(1/2)", eProduct, scale1 * dim * maxAbs(s2.to1DArray()))
  const traceSqrt = eProduct.reduce((acc, v) => acc + Math.sqrt(Math.max(v, 0)), 0)

  let meanTerm = 0
  for (let i = 0; i < dim; i++) meanTerm += (m1[i]! - m2[i]!) ** 2
  const covarianceTerm = trace(s1) + trace(s2) - 2 * traceSqrt
  return { meanTerm, covarianceTerm, distance: Math.max(meanTerm + covarianceTerm, 0) }
}

/**
 * Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (docs/algorithm.md §11), e.g. generated statistics against precomputed
 * reference statistics (an EDM `fid-refs` npz's `mu`, `sigma`). See {@link frechetTermsFromMoments}.
 *
 * @since 0.1.0
 * @category utils
 */
export const frechetDistanceFromMoments = (
  mu1: ArrayLike<number>,
  cov1: MatrixInput,
  mu2: ArrayLike<number>,
  cov2: MatrixInput
): number => frechetTermsFromMoments(mu1, cov1, mu2, cov2).distance

/**
 * Fréchet distance between two sample sets `x` `[N, d]` and `y` `[M, d]` (docs/algorithm.md §11; §12's "raw-coordinate FID").
 * Each tensor is read once with `dataSync` (no tensors allocated, none disposed); moments are float64.
 * Throws {@link MetricInputError} for a rank other than 2, different `d`, fewer than 2 samples (1 for the biased
 * covariance) or a non-finite value.
 *
 * @since 0.1.0
 * @category utils
 */
export const frechetDistance = (x: tf.Tensor, y: tf.Tensor, options?: FrechetOptions): number =>
  frechetTerms(x, y, options).distance

/**
 * Both terms of {@link frechetDistance} (docs/algorithm.md §11): mean shift and covariance mismatch.
 *
 * @since 0.1.0
 * @category utils
 */
export const frechetTerms = (x: tf.Tensor, y: tf.Tensor, options?: FrechetOptions): FrechetTerms => {
  const a = readSamples(METRIC, "x", x)
  const b = readSamples(METRIC, "y", y)
  if (a.dim !== b.dim) {
    throw new MetricInputError(METRIC, `x has ${a.dim} coordinates per sample but y has ${b.dim}`)
  }
  const covariance = options?.covariance ?? "unbiased"
  const mx = momentsFromValues(a.values, a.n, a.dim, { covariance, metric: METRIC })
  const my = momentsFromValues(b.values, b.n, b.dim, { covariance, metric: METRIC })
  return frechetTermsFromMoments(mx.mean, mx.covariance, my.mean, my.covariance)
}
