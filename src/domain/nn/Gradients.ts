/**
 * Gradient hygiene: NaN/Inf sanitisation and norms.
 *
 * SiD sanitises every gradient before each optimiser step with `nan_to_num(nan=0, posinf=1e5, neginf=-1e5)`
 * (docs/algorithm.md §9.1, §15, item 3): only non-finite entries change; finite values pass untouched, however large (there is no clipping
 * of any kind, docs/algorithm.md §9.1).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { Parameters } from "./Parameters.js"

/**
 * The value ±Inf gradient entries are replaced by, with their sign (docs/algorithm.md §9.1: `posinf=1e5, neginf=-1e5`).
 *
 * @since 0.1.0
 * @category constants
 */
export const GRADIENT_INF_REPLACEMENT = 1e5

/**
 * One gradient entry sanitised as {@link sanitizeGradient} does, on the host: NaN → 0, ±Inf → ±1e5, finite values
 * unchanged.
 *
 * @since 0.1.0
 * @category utils
 */
export const sanitizeGradientValue = (x: number): number =>
  Number.isNaN(x) ? 0 : x === Infinity ? GRADIENT_INF_REPLACEMENT : x === -Infinity ? -GRADIENT_INF_REPLACEMENT : x

/**
 * PyTorch's `nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5)` as SiD calls it (docs/algorithm.md §9.1): NaN → 0, +Inf → 1e5,
 * −Inf → −1e5, every finite value unchanged (a finite 2e6 stays 2e6: this is no clip).
 *
 * @since 0.1.0
 * @category utils
 */
export const sanitizeGradient = (g: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    const infReplaced = tf.where(tf.isInf(g), tf.mul(tf.sign(g), GRADIENT_INF_REPLACEMENT), g)
    return tf.where(tf.isNaN(g), tf.zerosLike(g), infReplaced)
  })

/**
 * Sanitises every gradient of a map (new tensors the caller owns).
 *
 * @since 0.1.0
 * @category utils
 */
export const sanitizeGradients = (grads: Parameters): Record<string, tf.Tensor> =>
  Object.fromEntries(Object.entries(grads).map(([n, g]) => [n, sanitizeGradient(g)]))

/**
 * The global L2 norm √(Σ‖g‖²) over a gradient map, as a scalar tensor.
 *
 * @since 0.1.0
 * @category utils
 */
export const globalNorm = (grads: Parameters): tf.Scalar =>
  tf.tidy(() => {
    const parts = Object.values(grads).map((g) => tf.sum(tf.square(g)))
    return parts.length === 0 ? tf.scalar(0) : (tf.sqrt(tf.addN(parts)) as tf.Scalar)
  })

/**
 * Number of non-finite entries over a gradient map, as a scalar tensor.
 *
 * @since 0.1.0
 * @category utils
 */
export const countNonFinite = (grads: Parameters): tf.Scalar =>
  tf.tidy(() => {
    const parts = Object.values(grads).map((g) =>
      tf.sum(tf.cast(tf.logicalOr(tf.isNaN(g), tf.isInf(g)), "int32"))
    )
    return parts.length === 0 ? tf.scalar(0, "int32") : (tf.addN(parts) as tf.Scalar)
  })
