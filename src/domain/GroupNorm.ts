/**
 * Group normalisation for NHWC tensors, built from raw ops (tfjs-layers has no GroupNorm; tensor-engine notes §6).
 *
 * The C channels are split into G contiguous groups of C/G; each sample's group is normalised over its
 * [H, W, C/G] entries with `tf.moments`, so no statistic ever mixes samples of a batch. EDM's UNet blocks use
 * GroupNorm with ε = 1e-5 (spec §1.3 backbones).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/** ε added to the per-group variance (EDM/PyTorch GroupNorm default). */
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
 */
export const groupNormalize = (x: tf.Tensor4D, groups: number, eps: number = GROUP_NORM_EPS): tf.Tensor4D =>
  tf.tidy(() => {
    const perGroup = checkGroups(x, groups)
    const [n, h, w, c] = x.shape
    const grouped = x.reshape([n, h, w, groups, perGroup])
    const { mean, variance } = tf.moments(grouped, [1, 2, 4], true)
    return tf.mul(tf.sub(grouped, mean), tf.rsqrt(tf.add(variance, eps))).reshape([n, h, w, c]) as tf.Tensor4D
  })

/**
 * GroupNorm with a per-channel affine map: `groupNormalize(x) · weight + bias`, weight and bias of shape [C]
 * (initialised to 1 and 0).
 */
export const groupNorm = (
  x: tf.Tensor4D,
  groups: number,
  weight: tf.Tensor,
  bias: tf.Tensor,
  eps: number = GROUP_NORM_EPS
): tf.Tensor4D => tf.tidy(() => tf.add(tf.mul(groupNormalize(x, groups, eps), weight), bias) as tf.Tensor4D)
