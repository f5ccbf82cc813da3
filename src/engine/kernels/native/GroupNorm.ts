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

import type { GroupNormActivation } from "../../../domain/nn/GroupNorm.js"
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

export { groupNormGradient } from "../GroupNormGradient.js"
