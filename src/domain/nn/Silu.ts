/**
 * SiLU (swish), z·sigmoid(z): the activation of EDM's networks and of the project's MLP and UNet (docs/algorithm.md §2.3).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/**
 * SiLU, z·sigmoid(z), elementwise.
 *
 * @since 0.1.0
 * @category utils
 */
export const silu = <T extends tf.Tensor>(z: T): T => tf.tidy(() => tf.mul(z, tf.sigmoid(z)) as T)
