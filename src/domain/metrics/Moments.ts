/**
 * First and second moments of a sample set, accumulated in float64, plus the input error shared by the
 * sample-set metrics.
 *
 * Maths: `docs/algorithm.md` §11 (FID = Fréchet distance between the Gaussian moments of two feature sets; SiD's FeatureStats
 * divides the covariance by N, EDM's `fid.py` by N − 1) and §12 (the same formula on raw 2-D coordinates).
 *
 * The metrics in this folder stay Effect-free: they throw {@link MetricInputError} on bad input (wrong rank,
 * mismatched dimension, too few rows, non-finite values). Callers in Effect code wrap them in `Effect.try`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/**
 * Bad input to a sample-set metric (docs/algorithm.md §11, §12): wrong rank, mismatched dimensions, too few samples,
 * non-finite values, or a covariance that is not symmetric positive semi-definite. Thrown, never returned.
 *
 * @since 0.1.0
 * @category errors
 */
export class MetricInputError extends Error {
  /** Discriminant, so `Effect.try` callers can map it to a tagged failure. */
  readonly _tag = "MetricInputError" as const
  /** Which metric rejected its input. */
  readonly metric: string

  constructor(metric: string, reason: string) {
    super(`${metric}: ${reason}`)
    this.name = "MetricInputError"
    this.metric = metric
  }
}

/**
 * Covariance normalisation (docs/algorithm.md §11): `"unbiased"` divides by N − 1 (EDM `fid.py`, the default here),
 * `"biased"` divides by N (SiD's `FeatureStats`). The difference is negligible at 50k samples.
 *
 * @since 0.1.0
 * @category models
 */
export type CovarianceNormalisation = "unbiased" | "biased"

/**
 * Mean and covariance of `n` samples in `dim` dimensions (docs/algorithm.md §11). `covariance` is a dense, symmetric,
 * row-major `dim × dim` matrix.
 *
 * @since 0.1.0
 * @category models
 */
export interface SampleMoments {
  readonly n: number
  readonly dim: number
  readonly mean: Float64Array
  readonly covariance: Float64Array
}

/**
 * Reads a rank-2 tensor `[N, d]` once (`dataSync`, no tensors allocated) and returns its values with the shape.
 * Throws {@link MetricInputError} if the tensor is not rank 2 (docs/algorithm.md §11: sample sets are `[N, d]`).
 *
 * @since 0.1.0
 * @category utils
 */
export const readSamples = (
  metric: string,
  name: string,
  x: tf.Tensor
): { readonly n: number; readonly dim: number; readonly values: ArrayLike<number> } => {
  if (x.rank !== 2) {
    throw new MetricInputError(metric, `${name} must be a [N, d] tensor, got shape [${x.shape.join(", ")}]`)
  }
  const [n, dim] = x.shape as [number, number]
  return { n, dim, values: x.dataSync() as ArrayLike<number> }
}

/**
 * Sample mean and covariance of `n` rows of `dim` values stored row-major in `values`, accumulated in float64
 * with a two-pass (mean, then centred products) scheme (docs/algorithm.md §11). Requires `n ≥ 2` for the unbiased estimate
 * (`n ≥ 1` for the biased one) and finite values, else throws {@link MetricInputError}.
 *
 * @since 0.1.0
 * @category utils
 */
export const momentsFromValues = (
  values: ArrayLike<number>,
  n: number,
  dim: number,
  options?: { readonly covariance?: CovarianceNormalisation; readonly metric?: string }
): SampleMoments => {
  const metric = options?.metric ?? "moments"
  const normalisation = options?.covariance ?? "unbiased"
  if (!Number.isInteger(n) || !Number.isInteger(dim) || dim < 1 || values.length !== n * dim) {
    throw new MetricInputError(metric, `expected ${n} × ${dim} values, got ${values.length}`)
  }
  const minRows = normalisation === "unbiased" ? 2 : 1
  if (n < minRows) {
    throw new MetricInputError(metric, `needs at least ${minRows} samples for a ${normalisation} covariance, got ${n}`)
  }
  const mean = new Float64Array(dim)
  for (let i = 0; i < n; i++) {
    const row = i * dim
    for (let j = 0; j < dim; j++) {
      const v = values[row + j]!
      if (!Number.isFinite(v)) {
        throw new MetricInputError(metric, `non-finite value ${v} at sample ${i}, coordinate ${j}`)
      }
      mean[j]! += v
    }
  }
  for (let j = 0; j < dim; j++) mean[j]! /= n
  const covariance = new Float64Array(dim * dim)
  const centred = new Float64Array(dim)
  for (let i = 0; i < n; i++) {
    const row = i * dim
    for (let j = 0; j < dim; j++) centred[j] = values[row + j]! - mean[j]!
    for (let a = 0; a < dim; a++) {
      const ca = centred[a]!
      const base = a * dim
      for (let b = a; b < dim; b++) covariance[base + b]! += ca * centred[b]!
    }
  }
  const divisor = normalisation === "unbiased" ? n - 1 : n
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = covariance[a * dim + b]! / divisor
      covariance[a * dim + b] = v
      covariance[b * dim + a] = v
    }
  }
  return { n, dim, mean, covariance }
}

/**
 * Sample mean and covariance of a `[N, d]` tensor (docs/algorithm.md §11), read once and accumulated in float64.
 * The tensor is not disposed. Throws {@link MetricInputError} on bad input.
 *
 * @since 0.1.0
 * @category utils
 */
export const sampleMoments = (
  x: tf.Tensor,
  options?: { readonly covariance?: CovarianceNormalisation }
): SampleMoments => {
  const { dim, n, values } = readSamples("moments", "x", x)
  return momentsFromValues(values, n, dim, { ...options, metric: "moments" })
}
