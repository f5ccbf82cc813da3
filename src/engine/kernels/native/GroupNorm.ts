/**
 * The fused GroupNorm (+ SiLU) kernel and its gradient (`SidGroupNorm`, `SidGroupNormGrad`, contracts in
 * `engine/kernels/KernelNames.ts`) on the addon, and the gradient config that routes TF.js's tape through them.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view } from "./Addon.js"
import type { Shape4 } from "./Conv2D.js"

import { GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL, type GroupNormActivation } from "../../../domain/nn/GroupNorm.js"
export interface GroupNormAttrs {
  readonly groups: number
  readonly epsilon: number
  readonly activation: GroupNormActivation
}

export const normDims = (x: tf.TensorInfo, groups: number): Array<number> => {
  const [n, h, w, c] = x.shape as Shape4
  return [n, h * w, c, groups]
}

export const makeGroupNorm = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { beta, gamma, x } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as GroupNormAttrs
  const be = args.backend as WasmHeapBackend
  const [n] = x!.shape
  const y = be.makeOutput([...x!.shape], "float32")
  const mean = be.makeOutput([n!, a.groups], "float32")
  const rstd = be.makeOutput([n!, a.groups], "float32")
  addon.groupNorm(
    view(be, x!),
    view(be, gamma!),
    view(be, beta!),
    view(be, y),
    view(be, mean),
    view(be, rstd),
    normDims(x!, a.groups),
    a.epsilon,
    a.activation === "silu"
  )
  return [y, mean, rstd]
}

export const makeGroupNormGrad = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { beta, dy, gamma, mean, rstd, x } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as GroupNormAttrs
  const be = args.backend as WasmHeapBackend
  const dx = be.makeOutput([...x!.shape], "float32")
  const dgamma = be.makeOutput([...gamma!.shape], "float32")
  const dbeta = be.makeOutput([...beta!.shape], "float32")
  addon.groupNormGrad(
    view(be, dy!),
    view(be, x!),
    view(be, gamma!),
    view(be, beta!),
    view(be, mean!),
    view(be, rstd!),
    view(be, dx),
    view(be, dgamma),
    view(be, dbeta),
    normDims(x!, a.groups),
    a.activation === "silu"
  )
  return [dx, dgamma, dbeta]
}

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
