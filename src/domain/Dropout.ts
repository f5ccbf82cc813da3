/**
 * Train-mode dropout with seeded masks (spec §5.1: G runs in train mode, dropout on, in the generator step and ψ in
 * the fake step; §5.2 `--dropout`).
 *
 * A mask is a pure function of (seed, label, shape): each dropout site draws its uniforms from its own stream
 * `makeStream(seed, label)`, so the same seed gives the same masks on every engine and in every forward (the two
 * forwards of G in the two-stage generator update drop the same units), and a resumed run draws the masks the
 * uninterrupted run would have. As in PyTorch, kept units are scaled by 1/(1 − p).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { uniformTensor } from "./RandomStream.js"

/** Train-mode dropout of one network evaluation: the rate p ∈ [0, 1) and the seed of its masks. */
export interface DropoutMasks {
  readonly rate: number
  readonly seed: number
}

/** Throws unless `rate` is in [0, 1) (spec §5.2: dropout probabilities 0.05–0.25). */
export const checkDropoutRate = (what: string, rate: number): void => {
  if (!(rate >= 0 && rate < 1)) throw new Error(`${what}: dropout rate must be in [0, 1); got ${rate}`)
}

/**
 * x ⊙ m / (1 − p) with m = [u ≥ p], u uniform from the stream (seed, label); x itself when the rate is 0 (spec §5.1).
 */
export const dropout = (x: tf.Tensor, masks: DropoutMasks, label: string): tf.Tensor =>
  tf.tidy(() => {
    checkDropoutRate("dropout", masks.rate)
    if (masks.rate === 0) return tf.clone(x)
    const keep = tf.greaterEqual(uniformTensor(x.shape, masks.seed, label), masks.rate)
    return tf.div(tf.mul(x, tf.cast(keep, "float32")), 1 - masks.rate)
  })
