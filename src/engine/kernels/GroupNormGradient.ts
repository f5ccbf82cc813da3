/**
 * The gradient config of the fused GroupNorm (+ SiLU) kernel (`SidGroupNorm`, contracts in
 * `engine/kernels/KernelNames.ts`): portable, installed by every engine that registers the fused kernels
 * (`wasm-native`, `webgpu` in Node and in web pages).
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import { GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL } from "../../domain/nn/GroupNorm.js"

/**
 * The gradient of the fused GroupNorm kernel: one {@link GROUP_NORM_GRAD_KERNEL} call gives dx, dγ and dβ. It runs
 * when the gradient function is called (outside the per-input scopes of the tape walk), so each input's gradient is
 * one of its outputs and the unused ones are freed with the backward pass.
 *
 * @since 0.1.0
 * @category gradients
 */
export const groupNormGradient: tf.GradConfig = {
  kernelName: GROUP_NORM_KERNEL,
  inputsToSave: ["x", "gamma", "beta"],
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const [x, gamma, beta, mean, rstd] = saved
    const dy = Array.isArray(dys) ? dys[0]! : dys
    const [dx, dgamma, dbeta] = tf.engine().runKernel(
      GROUP_NORM_GRAD_KERNEL,
      { dy, x: x!, gamma: gamma!, beta: beta!, mean: mean!, rstd: rstd! },
      attrs as unknown as tf.NamedAttrMap
    ) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor]
    return { x: () => dx, gamma: () => dgamma, beta: () => dbeta }
  }
}
