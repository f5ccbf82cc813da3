/**
 * Kernel Inception Distance (KID; docs/algorithm.md §11): the unbiased MMD² between two feature sets with the cubic polynomial
 * kernel k(x, y) = (xᵀy/d + 1)³,
 *
 *   KID = Σ_{i≠j} k(x_i, x_j)/(N(N−1)) + Σ_{i≠j} k(y_i, y_j)/(M(M−1)) − 2 Σ_{i,j} k(x_i, y_j)/(NM).
 *
 * The reference code averages this estimator over 100 random subsets of 1,000 rows per side; here it is computed once
 * over all pairs (the same expectation, lower variance, deterministic), in row blocks of at most 2²⁰ kernel entries
 * against a pre-transposed y (the wasm engine's matMul with transposeB is 10–30× slower); each row of kernel entries
 * is summed in float32 and the row sums are added in float64. It can be slightly negative when the sets match. Bad
 * input throws {@link MetricInputError}.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { MetricInputError } from "./Moments.js"

const METRIC = "kernelInceptionDistance"

const BLOCK_ELEMENTS = 1 << 20

const check = (name: string, x: tf.Tensor): void => {
  if (x.rank !== 2) throw new MetricInputError(METRIC, `${name} must be [N, d], got shape [${x.shape.join(", ")}]`)
  if (x.shape[0]! < 2) throw new MetricInputError(METRIC, `${name} needs at least 2 rows, got ${x.shape[0]}`)
  if (tf.tidy(() => tf.all(tf.isFinite(x)).dataSync()[0]!) === 0) {
    throw new MetricInputError(METRIC, `${name} has a non-finite value`)
  }
}

const cube = (x: tf.Tensor): tf.Tensor => tf.mul(tf.square(x), x)

/** Σ_{i,j} k(a_i, b_j) and, when `self`, the diagonal Σ_i k(a_i, a_i) to subtract. */
const kernelSum = (a: tf.Tensor2D, b: tf.Tensor2D, self: boolean): number => {
  const [n, d] = a.shape
  const m = b.shape[0]
  const step = Math.max(1, Math.floor(BLOCK_ELEMENTS / m))
  const bT = tf.transpose(b)
  let total = 0
  try {
    for (let start = 0; start < n; start += step) {
      const rows = Math.min(step, n - start)
      const values = tf.tidy(() =>
        tf.sum(cube(tf.add(tf.div(tf.matMul(a.slice([start, 0], [rows, d]), bT), d), 1)), 1).dataSync()
      )
      for (let i = 0; i < values.length; i++) total += values[i]!
    }
  } finally {
    bT.dispose()
  }
  if (self) {
    const diagonal = tf.tidy(() => cube(tf.add(tf.div(tf.sum(tf.square(a), 1), d), 1)).dataSync())
    for (let i = 0; i < diagonal.length; i++) total -= diagonal[i]!
  }
  return total
}

/**
 * KID between feature sets `x` [N, d] and `y` [M, d] (docs/algorithm.md §11): unbiased MMD² with the kernel (xᵀy/d + 1)³ over
 * all pairs. The tensors are read, not disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const kernelInceptionDistance = (x: tf.Tensor, y: tf.Tensor): number => {
  check("x", x)
  check("y", y)
  if (x.shape[1] !== y.shape[1]) {
    throw new MetricInputError(METRIC, `x has ${x.shape[1]} features per row but y has ${y.shape[1]}`)
  }
  const n = x.shape[0]!
  const m = y.shape[0]!
  const a = x as tf.Tensor2D
  const b = y as tf.Tensor2D
  const kxx = kernelSum(a, a, true) / (n * (n - 1))
  const kyy = kernelSum(b, b, true) / (m * (m - 1))
  const kxy = kernelSum(a, b, false) / (n * m)
  return kxx + kyy - 2 * kxy
}
