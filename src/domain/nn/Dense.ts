/**
 * A dense (fully connected) layer with an optional SiLU: `act(x·W + b)` for rows x [M,K], W [K,N], b [N].
 *
 * An engine may register the fused kernel {@link DENSE_KERNEL} (product, bias and activation in one call, with a
 * one-call gradient {@link DENSE_GRAD_KERNEL}); {@link dense} uses it where the active backend has it and composes
 * TF.js ops (`matMul`, `add`, `silu`) otherwise. Both compute the same function up to float32 rounding. In a small
 * network's training step each composed layer costs about fourteen kernel dispatches forward and backward, the fused
 * one two (issue 18 point 5).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { runFirstOutput } from "./FirstOutput.js"
import { SidDense, SidDenseGrad } from "../../engine/kernels/KernelNames.js"
import { silu } from "./Silu.js"

/**
 * The activation after the affine map: none, or SiLU z·sigmoid(z).
 *
 * @since 0.1.0
 * @category models
 */
export type DenseActivation = "linear" | "silu"

/** Name of the `SidDense` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const DENSE_KERNEL = SidDense

/** Name of the `SidDenseGrad` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const DENSE_GRAD_KERNEL = SidDenseGrad

const fusedAvailable = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor): boolean =>
  x.rank === 2 && w.rank === 2 && b.rank === 1 && x.shape[1] === w.shape[0] && b.shape[0] === w.shape[1] &&
  [x, w, b].every((t) => t.dtype === "float32" && t.size > 0) && tf.getKernel(DENSE_KERNEL, tf.getBackend()) !== undefined

/**
 * `act(x·w + b)`: x [M,K], w [K,N], b [N] → [M,N]. Runs {@link DENSE_KERNEL} where the active backend registers it.
 * Throws when the shapes do not fit.
 *
 * @since 0.1.0
 * @category layers
 */
export const dense = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor, activation: DenseActivation = "linear"): tf.Tensor2D =>
  tf.tidy(() => {
    if (x.rank !== 2 || w.rank !== 2 || x.shape[1] !== w.shape[0] || b.rank !== 1 || b.shape[0] !== w.shape[1]) {
      throw new Error(`dense: expected x [M,K], w [K,N], b [N]; got [${x.shape}], [${w.shape}], [${b.shape}]`)
    }
    if (fusedAvailable(x, w, b)) {
      return runFirstOutput(DENSE_KERNEL, { x, w, b }, { activation }) as tf.Tensor2D
    }
    const z = tf.add(tf.matMul(x, w), b) as tf.Tensor2D
    return activation === "silu" ? silu(z) : z
  })
