/**
 * Train-mode dropout with seeded masks (docs/algorithm.md §9.1: G runs in train mode, dropout on, in the generator step and ψ in
 * the fake step; docs/algorithm.md §9.2 `--dropout`).
 *
 * A mask is a pure function of (seed, label, shape), and of the rows of the whole batch when a network is evaluated
 * on some rows of it (`DropoutMasks.rows`): each dropout site draws its uniforms from its own stream
 * `makeStream(seed, label)`, so the same seed gives the same masks on every engine and in every forward (the two
 * forwards of G in the two-stage generator update drop the same units), and a resumed run draws the masks the
 * uninterrupted run would have. As in PyTorch, kept units are multiplied by 1/(1 − p): the mask is built on the host
 * as a tensor of 0 and 1/(1 − p), so dropout costs one multiply (and its backward another).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { makeStream, nextUint32 } from "../data/RandomStream.js"

/**
 * Rows of a larger batch: the evaluated batch's row i stands for row `indices[i]` of a batch of `of` rows.
 *
 * @since 0.1.0
 * @category models
 */
export interface BatchRows {
  readonly of: number
  readonly indices: ReadonlyArray<number>
}

/**
 * Train-mode dropout of one network evaluation: the rate p ∈ [0, 1) and the seed of its masks.
 *
 * @since 0.1.0
 * @category models
 */
export interface DropoutMasks {
  readonly rate: number
  readonly seed: number
  /**
   * The evaluated batch is these rows of a larger one: each row gets the mask that row had in the whole batch, so a
   * network evaluated on a subset of a batch drops exactly the units it dropped for those rows in the full evaluation
   * (the generator step recomputed without its non-finite rows). Absent: the evaluated batch is the whole batch.
   */
  readonly rows?: BatchRows
}

/**
 * Throws unless `rate` is in [0, 1) (docs/algorithm.md §9.2: dropout probabilities 0.05–0.25).
 *
 * @since 0.1.0
 * @category utils
 */
export const checkDropoutRate = (what: string, rate: number): void => {
  if (!(rate >= 0 && rate < 1)) throw new Error(`${what}: dropout rate must be in [0, 1); got ${rate}`)
}

/**
 * The dropout mask of a site (docs/algorithm.md §9.1): k/(1 − p) per element with k = [w ≥ round(p·2²⁴)] for the top 24 bits w of
 * a uint32 from the stream (seed, label), i.e. an element is dropped with probability p to within 2⁻²⁵; a float32
 * tensor of `shape`. With `masks.rows`, the uniforms are drawn for the whole batch ([rows.of, ...shape[1:]], row-major)
 * and the rows `rows.indices` of that mask are returned, in that order.
 *
 * @since 0.1.0
 * @category utils
 */
export const dropoutMask = (shape: ReadonlyArray<number>, masks: DropoutMasks, label: string): tf.Tensor => {
  checkDropoutRate("dropout", masks.rate)
  const size = shape.reduce((a, b) => a * b, 1)
  const threshold = Math.round(masks.rate * 16777216)
  const scale = Math.fround(1 / (1 - masks.rate))
  const rows = masks.rows
  if (rows === undefined) {
    const raw = nextUint32(makeStream(masks.seed, label), size).values
    const mask = new Float32Array(raw.buffer, raw.byteOffset, raw.length)
    for (let i = 0; i < raw.length; i++) mask[i] = raw[i]! >>> 8 >= threshold ? scale : 0
    return tf.tensor(mask, [...shape], "float32")
  }
  if (rows.indices.length !== shape[0]) {
    throw new Error(`dropoutMask: ${rows.indices.length} row indices for a batch of ${shape[0]} rows`)
  }
  const perRow = shape.slice(1).reduce((a, b) => a * b, 1)
  const raw = nextUint32(makeStream(masks.seed, label), rows.of * perRow).values
  const mask = new Float32Array(size)
  rows.indices.forEach((row, i) => {
    if (!(Number.isInteger(row) && row >= 0 && row < rows.of)) {
      throw new Error(`dropoutMask: row index ${row} outside a batch of ${rows.of} rows`)
    }
    for (let j = 0; j < perRow; j++) mask[i * perRow + j] = raw[row * perRow + j]! >>> 8 >= threshold ? scale : 0
  })
  return tf.tensor(mask, [...shape], "float32")
}

/**
 * x ⊙ [u ≥ p]/(1 − p) with the mask of {@link dropoutMask}; x itself when the rate is 0 (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category utils
 */
export const dropout = (x: tf.Tensor, masks: DropoutMasks, label: string): tf.Tensor =>
  tf.tidy(() => {
    checkDropoutRate("dropout", masks.rate)
    return masks.rate === 0 ? tf.clone(x) : tf.mul(x, dropoutMask(x.shape, masks, label))
  })
