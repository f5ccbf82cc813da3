/**
 * Inception Score from class probabilities (docs/algorithm.md §11, "IS (is50k)"): per split,
 * IS = exp( mean_i Σ_c p_ic (ln p_ic − ln p̄_c) ) with p̄_c = mean_i p_ic, i.e. exp E_x[KL(p(y|x) ‖ p(y))];
 * the splits are consecutive equal blocks of rows (SiD: 10 splits of 5k) and the result is their mean and std.
 *
 * Bounds: 1 ≤ IS ≤ K (K classes). Confident predictions spread evenly over the classes give K; identical rows give 1.
 * Terms with p_ic = 0 contribute 0 (the limit of p ln p). Bad input throws {@link MetricInputError}.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { read, type Reads, runSync } from "../data/HostReads.js"
import { MetricInputError } from "./Moments.js"

const METRIC = "inceptionScore"

/**
 * The Inception Score over splits (docs/algorithm.md §11): mean and population standard deviation of the per-split scores.
 *
 * @since 0.1.0
 * @category models
 */
export interface InceptionScore {
  readonly mean: number
  readonly std: number
  readonly splits: ReadonlyArray<number>
}

/**
 * Options of {@link inceptionScore}.
 *
 * @since 0.1.0
 * @category models
 */
export interface InceptionScoreOptions {
  /** Number of consecutive splits (default 1; SiD's is50k uses 10). The last split takes the remainder. */
  readonly splits?: number
}

const checkProbabilities = (probabilities: tf.Tensor, splits: number): void => {
  if (probabilities.rank !== 2) {
    throw new MetricInputError(METRIC, `probabilities must be [N, K], got shape [${probabilities.shape.join(", ")}]`)
  }
  const n = probabilities.shape[0]!
  if (!Number.isInteger(splits) || splits < 1) throw new MetricInputError(METRIC, `splits ${splits} must be an integer ≥ 1`)
  if (n < splits) throw new MetricInputError(METRIC, `${n} rows cannot form ${splits} splits`)
}

/** exp(mean_i KL(p_i ‖ p̄)) of the rows of one block [n, K]; a scalar tensor. */
const splitScore = (p: tf.Tensor2D): tf.Scalar =>
  tf.tidy(() => {
    const marginal = tf.mean(p, 0, true)
    const positive = tf.greater(p, 0)
    const safe = tf.where(positive, p, tf.onesLike(p))
    const terms = tf.where(positive, tf.mul(p, tf.sub(tf.log(safe), tf.log(tf.maximum(marginal, 1e-30)))), tf.zerosLike(p))
    return tf.exp(tf.mean(tf.sum(terms, 1))) as tf.Scalar
  })

/**
 * Inception Score of class probabilities `probabilities` [N, K] (rows sum to 1), over `splits` consecutive blocks
 * (docs/algorithm.md §11). The tensor is read, not disposed. Throws {@link MetricInputError} for a bad shape, a negative or
 * non-finite entry, or rows that do not sum to 1 (within 1e-3).
 *
 * @since 0.1.0
 * @category utils
 */
export const inceptionScore = (probabilities: tf.Tensor, options: InceptionScoreOptions = {}): InceptionScore =>
  runSync(inceptionScoreReads(probabilities, options))

/**
 * {@link inceptionScore} as a {@link Reads} computation (for engines that read only asynchronously, e.g. `webgpu`):
 * the validity checks in one request, every split's score in another. The same values.
 *
 * @since 0.2.0
 * @category utils
 */
export function* inceptionScoreReads(probabilities: tf.Tensor, options: InceptionScoreOptions = {}): Reads<InceptionScore> {
  const splits = options.splits ?? 1
  checkProbabilities(probabilities, splits)
  const [n, k] = probabilities.shape as [number, number]
  const checks = tf.tidy(() => {
    const p = probabilities as tf.Tensor2D
    const invalid = tf.logicalNot(tf.logicalAnd(tf.isFinite(p), tf.greaterEqual(p, 0)))
    return [tf.any(invalid), tf.max(tf.abs(tf.sub(tf.sum(p, 1), 1)))]
  })
  let bad: ReadonlyArray<ArrayLike<number>>
  try {
    bad = yield* read(checks)
  } finally {
    tf.dispose(checks)
  }
  if (bad[0]![0] !== 0) throw new MetricInputError(METRIC, "probabilities must be finite and ≥ 0")
  if (!(bad[1]![0]! <= 1e-3)) throw new MetricInputError(METRIC, `rows must sum to 1 (largest deviation ${bad[1]![0]})`)
  const size = Math.floor(n / splits)
  const perSplit = tf.tidy(() => {
    const parts: Array<tf.Scalar> = []
    for (let s = 0; s < splits; s++) {
      const start = s * size
      const rows = s === splits - 1 ? n - start : size
      parts.push(splitScore(tf.slice(probabilities as tf.Tensor2D, [start, 0], [rows, k])))
    }
    return tf.stack(parts)
  })
  let values: ArrayLike<number>
  try {
    values = (yield* read([perSplit]))[0]!
  } finally {
    perSplit.dispose()
  }
  const scores = Array.from(values)
  const mean = scores.reduce((a, b) => a + b, 0) / splits
  const std = Math.sqrt(scores.reduce((a, b) => a + (b - mean) ** 2, 0) / splits)
  return { mean, std, splits: scores }
}

/**
 * {@link inceptionScore} of softmax(logits) for logits [N, K] (docs/algorithm.md §11: p(y|x) from the classifier's softmax).
 *
 * @since 0.1.0
 * @category utils
 */
export const inceptionScoreFromLogits = (logits: tf.Tensor, options: InceptionScoreOptions = {}): InceptionScore =>
  runSync(inceptionScoreFromLogitsReads(logits, options))

/**
 * {@link inceptionScoreFromLogits} as a {@link Reads} computation. The same values.
 *
 * @since 0.2.0
 * @category utils
 */
export function* inceptionScoreFromLogitsReads(logits: tf.Tensor, options: InceptionScoreOptions = {}): Reads<InceptionScore> {
  if (logits.rank !== 2) throw new MetricInputError(METRIC, `logits must be [N, K], got shape [${logits.shape.join(", ")}]`)
  const p = tf.tidy(() => tf.softmax(logits as tf.Tensor2D))
  try {
    return yield* inceptionScoreReads(p, options)
  } finally {
    p.dispose()
  }
}
