/**
 * The two statistics a training step reads off its gradients before the optimiser (docs/algorithm.md §9.1, §15, item 3): the global L2
 * norm √(Σ‖g‖²) and the number of NaN / ±Inf entries, over a whole gradient map.
 *
 * An engine may register the kernel {@link GRADIENT_STATISTICS_KERNEL} (both statistics over every gradient in one
 * call); {@link gradientStatistics} uses it where the active backend has it and composes `globalNorm` and
 * `countNonFinite` (two or more kernels per gradient) otherwise. The fused kernel sums the squares in double
 * precision, so its norm can differ from the composed one in the last float32 bits; the count is exact either way.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SidGradientStatistics } from "../../engine/kernels/KernelNames.js"
import { countNonFinite, globalNorm } from "../nn/Gradients.js"
import type { Parameters } from "../nn/Parameters.js"

/** Name of the `SidGradientStatistics` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const GRADIENT_STATISTICS_KERNEL = SidGradientStatistics

/**
 * The global norm and the non-finite count of a gradient map, as scalar tensors the caller owns.
 *
 * @since 0.1.0
 * @category models
 */
export interface GradientStatistics {
  readonly norm: tf.Scalar
  readonly nonFinite: tf.Scalar
}

/**
 * {@link GradientStatistics} of `grads`: one {@link GRADIENT_STATISTICS_KERNEL} call where the active backend
 * registers it and every gradient is float32, else `globalNorm` and `countNonFinite`.
 *
 * @since 0.1.0
 * @category utils
 */
export const gradientStatistics = (grads: Parameters): GradientStatistics => {
  const list = Object.values(grads)
  if (
    list.length > 0 && list.every((g) => g.dtype === "float32") &&
    tf.getKernel(GRADIENT_STATISTICS_KERNEL, tf.getBackend()) !== undefined
  ) {
    const inputs = Object.fromEntries(list.map((g, i) => [`g${i}`, g]))
    const [norm, nonFinite] = tf.engine().runKernel(GRADIENT_STATISTICS_KERNEL, inputs, {}) as unknown as [tf.Scalar, tf.Scalar]
    return { norm, nonFinite }
  }
  return tf.tidy(() => {
    const norm = globalNorm(grads)
    const nonFinite = countNonFinite(grads)
    return { norm, nonFinite }
  })
}
