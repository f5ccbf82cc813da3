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
import { read, type Reads, runSync } from "../data/HostReads.js"

const METRIC = "kernelInceptionDistance"

const BLOCK_ELEMENTS = 1 << 20

/** Whether every entry of `x` is finite: one host read of one flag. */
function* allFinite(x: tf.Tensor): Reads<boolean> {
  const flag = tf.tidy(() => tf.all(tf.isFinite(x)))
  try {
    return (yield* read([flag]))[0]![0]! !== 0
  } finally {
    flag.dispose()
  }
}

function* check(name: string, x: tf.Tensor): Reads<void> {
  if (x.rank !== 2) throw new MetricInputError(METRIC, `${name} must be [N, d], got shape [${x.shape.join(", ")}]`)
  if (x.shape[0]! < 2) throw new MetricInputError(METRIC, `${name} needs at least 2 rows, got ${x.shape[0]}`)
  if (!(yield* allFinite(x))) throw new MetricInputError(METRIC, `${name} has a non-finite value`)
}

const cube = (x: tf.Tensor): tf.Tensor => tf.mul(tf.square(x), x)

/**
 * Σ_{i,j} k(a_i, b_j) and, when `self`, the diagonal Σ_i k(a_i, a_i) to subtract: the row sums of every block and the
 * diagonal, as tensors for one host read ({@link kernelTotal} adds them up).
 */
const kernelSum = (a: tf.Tensor2D, b: tf.Tensor2D, self: boolean): { readonly rows: tf.Tensor1D; readonly diagonal?: tf.Tensor1D } =>
  tf.tidy(() => {
    const [n, d] = a.shape
    const m = b.shape[0]
    const step = Math.max(1, Math.floor(BLOCK_ELEMENTS / m))
    const bT = tf.transpose(b)
    const blocks: Array<tf.Tensor1D> = []
    for (let start = 0; start < n; start += step) {
      const rows = Math.min(step, n - start)
      blocks.push(tf.tidy(() => tf.sum(cube(tf.add(tf.div(tf.matMul(a.slice([start, 0], [rows, d]), bT), d), 1)), 1)))
    }
    const rows = (blocks.length === 1 ? blocks[0]! : tf.concat(blocks)) as tf.Tensor1D
    return self ? { rows, diagonal: cube(tf.add(tf.div(tf.sum(tf.square(a), 1), d), 1)) as tf.Tensor1D } : { rows }
  })

/** The float64 total of a kernel sum's row sums (in order), less its diagonal. */
const kernelTotal = (rows: ArrayLike<number>, diagonal: ArrayLike<number> | undefined): number => {
  let total = 0
  for (let i = 0; i < rows.length; i++) total += rows[i]!
  if (diagonal !== undefined) for (let i = 0; i < diagonal.length; i++) total -= diagonal[i]!
  return total
}

/**
 * KID between feature sets `x` [N, d] and `y` [M, d] (docs/algorithm.md §11): unbiased MMD² with the kernel (xᵀy/d + 1)³ over
 * all pairs. The tensors are read, not disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const kernelInceptionDistance = (x: tf.Tensor, y: tf.Tensor): number => runSync(kernelInceptionDistanceReads(x, y))

/**
 * {@link kernelInceptionDistance} as a {@link Reads} computation (for engines that read only asynchronously, e.g.
 * `webgpu`): the finiteness of each set, then every kernel sum in one request. The same value.
 *
 * @since 0.2.0
 * @category utils
 */
export function* kernelInceptionDistanceReads(x: tf.Tensor, y: tf.Tensor): Reads<number> {
  yield* check("x", x)
  yield* check("y", y)
  if (x.shape[1] !== y.shape[1]) {
    throw new MetricInputError(METRIC, `x has ${x.shape[1]} features per row but y has ${y.shape[1]}`)
  }
  const n = x.shape[0]!
  const m = y.shape[0]!
  const a = x as tf.Tensor2D
  const b = y as tf.Tensor2D
  const sums = [kernelSum(a, a, true), kernelSum(b, b, true), kernelSum(a, b, false)]
  const tensors = sums.flatMap((k) => (k.diagonal === undefined ? [k.rows] : [k.rows, k.diagonal]))
  let values: ReadonlyArray<ArrayLike<number>>
  try {
    values = yield* read(tensors)
  } finally {
    tf.dispose(tensors)
  }
  const kxx = kernelTotal(values[0]!, values[1]!) / (n * (n - 1))
  const kyy = kernelTotal(values[2]!, values[3]!) / (m * (m - 1))
  const kxy = kernelTotal(values[4]!, undefined) / (n * m)
  return kxx + kyy - 2 * kxy
}
