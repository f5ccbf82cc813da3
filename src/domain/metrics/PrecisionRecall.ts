/**
 * Improved precision and recall (Kynkäänniemi et al. 2019; docs/algorithm.md §11, "pr50k3_full"): each feature set is turned into
 * a manifold estimate — the union of balls around its points whose radius is the distance to the point's k-th nearest
 * neighbour in the same set (k = 3; SiD's `kthvalue(k + 1)` counts the point itself at distance 0) — and
 *
 *   precision = share of generated features inside some real feature's ball,
 *   recall    = share of real features inside some generated feature's ball.
 *
 * A point lies in the ball of y when ‖x − y‖ ≤ r_y. Distances are Euclidean, computed in float32 as
 * ‖a‖² + ‖b‖² − 2a·b after centring both sets on their pooled mean (the distances are translation invariant), in row
 * blocks so no full N × M matrix is held (against the pre-transposed other set: the wasm engine's matMul with
 * transposeB is 10–30× slower). Bad input throws {@link MetricInputError}.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { MetricInputError } from "./Moments.js"
import { read, type Reads, runSync } from "../data/HostReads.js"

const METRIC = "precisionRecall"

/**
 * docs/algorithm.md §11: k = 3 nearest neighbours.
 *
 * @since 0.1.0
 * @category constants
 */
export const DEFAULT_K = 3

/** Kernel-matrix elements per block (2²⁰). */
const BLOCK_ELEMENTS = 1 << 20

/**
 * Options of {@link precisionRecall} and {@link nearestNeighbourRadii}.
 *
 * @since 0.1.0
 * @category models
 */
export interface PrecisionRecallOptions {
  /** The neighbour whose distance is the ball radius (default 3, docs/algorithm.md §11). */
  readonly k?: number
}

/**
 * Precision and recall of generated features against real ones (docs/algorithm.md §11), both in [0, 1].
 *
 * @since 0.1.0
 * @category models
 */
export interface PrecisionRecall {
  readonly precision: number
  readonly recall: number
}

function* check(name: string, x: tf.Tensor): Reads<void> {
  if (x.rank !== 2) throw new MetricInputError(METRIC, `${name} must be [N, d], got shape [${x.shape.join(", ")}]`)
  const flag = tf.tidy(() => tf.all(tf.isFinite(x)))
  let finite: number
  try {
    finite = (yield* read([flag]))[0]![0]!
  } finally {
    flag.dispose()
  }
  if (finite === 0) throw new MetricInputError(METRIC, `${name} has a non-finite value`)
}

const checkK = (k: number, n: number, name: string): void => {
  if (!Number.isInteger(k) || k < 1) throw new MetricInputError(METRIC, `k = ${k} must be an integer ≥ 1`)
  if (n < k + 1) throw new MetricInputError(METRIC, `${name} has ${n} rows; k = ${k} needs at least ${k + 1}`)
}

/** Squared distances [rows of a, rows of b] from precomputed squared norms, clamped at 0. */
const squaredDistances = (a: tf.Tensor2D, aNorms: tf.Tensor2D, bT: tf.Tensor2D, bNorms: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy(() => tf.relu(tf.add(tf.sub(aNorms, tf.mul(tf.matMul(a, bT), 2)), tf.reshape(bNorms, [1, -1]))) as tf.Tensor2D)

const norms = (x: tf.Tensor2D): tf.Tensor2D => tf.tidy(() => tf.sum(tf.square(x), 1, true))

const squaredRadii = (x: tf.Tensor2D, k: number): tf.Tensor1D =>
  tf.tidy(() => {
    const n = x.shape[0]
    const xNorms = norms(x)
    const xT = tf.transpose(x)
    const step = Math.max(1, Math.floor(BLOCK_ELEMENTS / n))
    const parts: Array<tf.Tensor1D> = []
    for (let start = 0; start < n; start += step) {
      const rows = Math.min(step, n - start)
      parts.push(tf.tidy(() => {
        const d2 = squaredDistances(x.slice([start, 0], [rows, -1]), xNorms.slice([start, 0], [rows, -1]), xT, xNorms)
        const smallest = tf.neg(tf.topk(tf.neg(d2), k + 1).values)
        return tf.reshape(tf.slice(smallest, [0, k], [rows, 1]), [rows]) as tf.Tensor1D
      }))
    }
    return tf.concat(parts) as tf.Tensor1D
  })

/**
 * Share of `query` rows within the ball (squared radius `radii2`) of at least one `reference` row: the count of each
 * block of rows on the engine, all read in one request and added in order.
 */
function* coverage(query: tf.Tensor2D, reference: tf.Tensor2D, radii2: tf.Tensor1D): Reads<number> {
  const m = query.shape[0]
  const n = reference.shape[0]
  const step = Math.max(1, Math.floor(BLOCK_ELEMENTS / n))
  const counts = tf.tidy(() => {
    const refNorms = norms(reference)
    const refT = tf.transpose(reference)
    const blocks: Array<tf.Tensor> = []
    for (let start = 0; start < m; start += step) {
      const rows = Math.min(step, m - start)
      blocks.push(tf.tidy(() => {
        const q = query.slice([start, 0], [rows, -1])
        const d2 = squaredDistances(q, norms(q), refT, refNorms)
        const margin = tf.min(tf.sub(d2, tf.reshape(radii2, [1, -1])), 1)
        return tf.reshape(tf.sum(tf.cast(tf.lessEqual(margin, 0), "int32")), [1])
      }))
    }
    return blocks.length === 1 ? blocks[0]! : tf.concat(blocks)
  })
  let values: ArrayLike<number>
  try {
    values = (yield* read([counts]))[0]!
  } finally {
    counts.dispose()
  }
  let inside = 0
  for (let i = 0; i < values.length; i++) inside += values[i]!
  return inside / m
}

/**
 * The k-NN radius of every row of `features` [N, d] within its own set (docs/algorithm.md §11: `kthvalue(k + 1)`, self included at
 * distance 0), as a new [N] tensor the caller owns.
 *
 * @since 0.1.0
 * @category utils
 */
export const nearestNeighbourRadii = (features: tf.Tensor, options: PrecisionRecallOptions = {}): tf.Tensor1D =>
  runSync(nearestNeighbourRadiiReads(features, options))

/**
 * {@link nearestNeighbourRadii} as a {@link Reads} computation (the finiteness check is its one host read).
 *
 * @since 0.2.0
 * @category utils
 */
export function* nearestNeighbourRadiiReads(features: tf.Tensor, options: PrecisionRecallOptions = {}): Reads<tf.Tensor1D> {
  const k = options.k ?? DEFAULT_K
  yield* check("features", features)
  checkK(k, features.shape[0]!, "features")
  return tf.tidy(() => {
    const centred = tf.sub(features, tf.mean(features, 0, true)) as tf.Tensor2D
    return tf.sqrt(squaredRadii(centred, k))
  })
}

/**
 * Share of `query` [M, d] rows inside the union of balls of radius `radii` [N] around the `reference` [N, d] rows
 * (docs/algorithm.md §11): precision with query = generated, reference = real; recall with the roles swapped.
 *
 * @since 0.1.0
 * @category utils
 */
export const manifoldCoverage = (query: tf.Tensor, reference: tf.Tensor, radii: tf.Tensor): number =>
  runSync(manifoldCoverageReads(query, reference, radii))

/**
 * {@link manifoldCoverage} as a {@link Reads} computation: the finiteness of each set, then the block counts in one
 * request. The same value.
 *
 * @since 0.2.0
 * @category utils
 */
export function* manifoldCoverageReads(query: tf.Tensor, reference: tf.Tensor, radii: tf.Tensor): Reads<number> {
  yield* check("query", query)
  yield* check("reference", reference)
  if (query.shape[1] !== reference.shape[1]) {
    throw new MetricInputError(METRIC, `query has ${query.shape[1]} features per row but reference has ${reference.shape[1]}`)
  }
  if (radii.rank !== 1 || radii.shape[0] !== reference.shape[0]) {
    throw new MetricInputError(METRIC, `radii must be [${reference.shape[0]}], got [${radii.shape.join(", ")}]`)
  }
  const centred = tf.tidy(() => {
    const centre = tf.mean(reference, 0, true)
    return [tf.sub(query, centre), tf.sub(reference, centre), tf.square(radii)] as const
  })
  try {
    return yield* coverage(centred[0] as tf.Tensor2D, centred[1] as tf.Tensor2D, centred[2] as tf.Tensor1D)
  } finally {
    tf.dispose([...centred])
  }
}

/**
 * Improved precision and recall of `generated` [M, d] against `real` [N, d] features with k-NN balls
 * (Kynkäänniemi et al. 2019; docs/algorithm.md §11, k = 3). The tensors are read, not disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const precisionRecall = (
  real: tf.Tensor,
  generated: tf.Tensor,
  options: PrecisionRecallOptions = {}
): PrecisionRecall => runSync(precisionRecallReads(real, generated, options))

/**
 * {@link precisionRecall} as a {@link Reads} computation. The same values.
 *
 * @since 0.2.0
 * @category utils
 */
export function* precisionRecallReads(
  real: tf.Tensor,
  generated: tf.Tensor,
  options: PrecisionRecallOptions = {}
): Reads<PrecisionRecall> {
  const k = options.k ?? DEFAULT_K
  yield* check("real", real)
  yield* check("generated", generated)
  if (real.shape[1] !== generated.shape[1]) {
    throw new MetricInputError(METRIC, `real has ${real.shape[1]} features per row but generated has ${generated.shape[1]}`)
  }
  checkK(k, real.shape[0]!, "real")
  checkK(k, generated.shape[0]!, "generated")
  const [r, g] = tf.tidy(() => {
    const centre = tf.mean(tf.concat([real, generated]), 0, true)
    return [tf.sub(real, centre) as tf.Tensor2D, tf.sub(generated, centre) as tf.Tensor2D] as const
  })
  try {
    const realRadii2 = squaredRadii(r, k)
    const genRadii2 = squaredRadii(g, k)
    try {
      const precision = yield* coverage(g, r, realRadii2)
      return { precision, recall: yield* coverage(r, g, genRadii2) }
    } finally {
      tf.dispose([realRadii2, genRadii2])
    }
  } finally {
    tf.dispose([r, g])
  }
}
