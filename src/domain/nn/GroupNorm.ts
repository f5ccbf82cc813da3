/**
 * Group normalisation for NHWC tensors, built from raw ops (tfjs-layers has no GroupNorm; docs/engines.md §2.1, §6).
 *
 * The C channels are split into G contiguous groups of C/G; each sample's group is normalised over its
 * [H, W, C/G] entries with `tf.moments`, so no statistic ever mixes samples of a batch. EDM's UNet blocks use
 * GroupNorm with ε = 1e-5 (docs/algorithm.md §2.3 backbones).
 *
 * An engine may register the fused kernel {@link GROUP_NORM_KERNEL} (normalisation, affine map and optional SiLU in
 * one call, with its gradient); {@link groupNorm} uses it where the active backend has it and composes TF.js ops
 * otherwise. Both compute the same function (the fused kernel accumulates the statistics in double precision).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { runFirstOutput } from "./FirstOutput.js"
import { type GroupNormActivation, SidGroupNorm, SidGroupNormGrad } from "../../engine/kernels/KernelNames.js"
import { silu } from "./Silu.js"

/**
 * ε added to the per-group variance (EDM/PyTorch GroupNorm default).
 *
 * @since 0.1.0
 * @category constants
 */
export const GROUP_NORM_EPS = 1e-5

const checkGroups = (x: tf.Tensor4D, groups: number): number => {
  if (x.rank !== 4) throw new Error(`groupNorm expects an NHWC tensor of rank 4; got shape [${x.shape}]`)
  const c = x.shape[3]
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) {
    throw new Error(`groupNorm: ${groups} groups do not divide ${c} channels`)
  }
  return c / groups
}

/**
 * (x − μ_g) / √(σ²_g + ε) for each sample and each of `groups` channel groups, statistics over [H, W, C/G]:
 * x [N,H,W,C] → [N,H,W,C], without the affine part. Throws when `groups` does not divide C.
 *
 * @since 0.1.0
 * @category utils
 */
export const groupNormalize = (x: tf.Tensor4D, groups: number, eps: number = GROUP_NORM_EPS): tf.Tensor4D =>
  tf.tidy(() => {
    const perGroup = checkGroups(x, groups)
    const [n, h, w, c] = x.shape
    const grouped = x.reshape([n, h, w, groups, perGroup])
    const { mean, variance } = tf.moments(grouped, [1, 2, 4], true)
    return tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps))).reshape([n, h, w, c]) as tf.Tensor4D
  })

export type { GroupNormActivation } from "../../engine/kernels/KernelNames.js"

/**
 * Name of the optional fused GroupNorm kernel; its contract is `SidGroupNorm` in `engine/kernels/KernelNames.ts`.
 *
 * @since 0.1.0
 * @category constants
 */
export const GROUP_NORM_KERNEL = SidGroupNorm

/**
 * Name of the fused GroupNorm gradient kernel (`SidGroupNormGrad` in `engine/kernels/KernelNames.ts`).
 *
 * @since 0.1.0
 * @category constants
 */
export const GROUP_NORM_GRAD_KERNEL = SidGroupNormGrad

const fusedAvailable = (x: tf.Tensor, weight: tf.Tensor, bias: tf.Tensor): boolean =>
  [x, weight, bias].every((t) => t.dtype === "float32") && weight.rank === 1 && bias.rank === 1 &&
  weight.shape[0] === x.shape[3] && bias.shape[0] === x.shape[3] && tf.getKernel(GROUP_NORM_KERNEL, tf.getBackend()) !== undefined

/**
 * GroupNorm with a per-channel affine map and an optional activation: `act(groupNormalize(x) · weight + bias)`,
 * weight and bias of shape [C] (initialised to 1 and 0). Runs {@link GROUP_NORM_KERNEL} where the active backend
 * registers it.
 *
 * @since 0.1.0
 * @category utils
 */
export const groupNorm = (
  x: tf.Tensor4D,
  groups: number,
  weight: tf.Tensor,
  bias: tf.Tensor,
  eps: number = GROUP_NORM_EPS,
  activation: GroupNormActivation = "linear"
): tf.Tensor4D =>
  tf.tidy(() => {
    checkGroups(x, groups)
    if (fusedAvailable(x, weight, bias)) {
      return runFirstOutput(GROUP_NORM_KERNEL, { x, gamma: weight, beta: bias }, { groups, epsilon: eps, activation }) as tf.Tensor4D
    }
    const z = tf.add(tf.mul(groupNormalize(x, groups, eps), weight), bias)
    return (activation === "silu" ? silu(z) : z) as tf.Tensor4D
  })
