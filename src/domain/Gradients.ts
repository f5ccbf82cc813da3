/**
 * Gradient hygiene: NaN/Inf sanitisation and norms.
 *
 * SiD sanitises every gradient before each optimiser step with `nan_to_num(nan=0, posinf=1e5, neginf=-1e5)`
 * (spec §5.1, §8.3); there is no clipping beyond that.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { Parameters } from "./Parameters.js"

/** Bound that ±Inf gradients are replaced by (spec §5.1). */
export const GRADIENT_INF_REPLACEMENT = 1e5

/** NaN → 0, +Inf → 1e5, −Inf → −1e5; finite values unchanged (PyTorch's `nan_to_num` as SiD calls it). */
export const sanitizeGradient = (g: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    const noNaN = tf.where(tf.isNaN(g), tf.zerosLike(g), g)
    return tf.clipByValue(noNaN, -GRADIENT_INF_REPLACEMENT, GRADIENT_INF_REPLACEMENT)
  })

/** Sanitises every gradient of a map (new tensors the caller owns). */
export const sanitizeGradients = (grads: Parameters): Record<string, tf.Tensor> =>
  Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, sanitizeGradient(g)]))

/** The global L2 norm √(Σ‖g‖²) over a gradient map, as a scalar tensor. */
export const globalNorm = (grads: Parameters): tf.Scalar =>
  tf.tidy(() => {
    const parts = Object.values(grads).map((g) => tf.sum(tf.square(g)))
    return parts.length === 0 ? tf.scalar(0) : (tf.sqrt(tf.addN(parts)) as tf.Scalar)
  })

/** Number of non-finite entries over a gradient map, as a scalar tensor. */
export const countNonFinite = (grads: Parameters): tf.Scalar =>
  tf.tidy(() => {
    const parts = Object.values(grads).map((g) =>
      tf.sum(tf.cast(tf.logicalOr(tf.isNaN(g), tf.isInf(g)), "int32"))
    )
    return parts.length === 0 ? tf.scalar(0, "int32") : (tf.addN(parts) as tf.Scalar)
  })
