/**
 * Stop-gradient for TF.js, which has no such op (docs/algorithm.md §14, tensorflow/tfjs issues #967 and #7438).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

const zeroGradIdentity = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const x = inputs[0]
  if (!(x instanceof tf.Tensor)) throw new Error("stopGradient expects a tensor")
  return { value: x.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) }
})

/**
 * sg(x): the identity in the forward pass, a zero gradient in the backward pass (docs/algorithm.md §8.1 "w = sg(...)", §14). Built with
 * `tf.customGrad`; returns a new tensor of x's shape and dtype.
 *
 * @since 0.1.0
 * @category utils
 */
export const stopGradient = <T extends tf.Tensor>(x: T): T => zeroGradIdentity(x) as T
