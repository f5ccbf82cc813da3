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
export const inceptionScore = (probabilities: tf.Tensor, options: InceptionScoreOptions = {}): InceptionScore => {
  const splits = options.splits ?? 1
  checkProbabilities(probabilities, splits)
  const [n, k] = probabilities.shape as [number, number]
  const bad = tf.tidy(() => {
    const p = probabilities as tf.Tensor2D
    const invalid = tf.logicalNot(tf.logicalAnd(tf.isFinite(p), tf.greaterEqual(p, 0)))
    const rowError = tf.max(tf.abs(tf.sub(tf.sum(p, 1), 1)))
    return [tf.any(invalid).dataSync()[0]!, rowError.dataSync()[0]!] as const
  })
  if (bad[0] !== 0) throw new MetricInputError(METRIC, "probabilities must be finite and ≥ 0")
  if (!(bad[1] <= 1e-3)) throw new MetricInputError(METRIC, `rows must sum to 1 (largest deviation ${bad[1]})`)
  const size = Math.floor(n / splits)
  const scores: Array<number> = []
  for (let s = 0; s < splits; s++) {
    const start = s * size
    const rows = s === splits - 1 ? n - start : size
    scores.push(
      tf.tidy(() => splitScore(tf.slice(probabilities as tf.Tensor2D, [start, 0], [rows, k])).dataSync()[0]!)
    )
  }
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
export const inceptionScoreFromLogits = (logits: tf.Tensor, options: InceptionScoreOptions = {}): InceptionScore => {
  if (logits.rank !== 2) throw new MetricInputError(METRIC, `logits must be [N, K], got shape [${logits.shape.join(", ")}]`)
  const p = tf.tidy(() => tf.softmax(logits as tf.Tensor2D))
  try {
    return inceptionScore(p, options)
  } finally {
    p.dispose()
  }
}
