/**
 * The fused Adam kernel (`SidAdam`, contract in `engine/kernels/KernelNames.ts`) on the addon.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view } from "./Addon.js"

/**
 * The float32 hyper-parameter vector the addon's Adam kernels take:
 * `[lr, β₁, β₂, ε, 1 − β₁, 1 − β₂, 1 − β₁ᵗ, 1 − β₂ᵗ]` (the rounding of each entry is part of the bit-exact contract).
 *
 * @since 0.2.0
 * @category kernels
 */
export const adamHyperParameters = (
  a: { readonly learningRate: number; readonly beta1: number; readonly beta2: number; readonly epsilon: number; readonly step: number }
): Float32Array =>
  Float32Array.of(
    a.learningRate,
    a.beta1,
    a.beta2,
    a.epsilon,
    1 - a.beta1,
    1 - a.beta2,
    1 - Math.pow(a.beta1, a.step),
    1 - Math.pow(a.beta2, a.step)
  )

export const makeAdam = (addon: NativeAddon): RawKernelFunc => (args) => {
  const { grad, m, param, v } = args.inputs as Record<string, tf.TensorInfo>
  const a = args.attrs as unknown as { learningRate: number; beta1: number; beta2: number; epsilon: number; step: number }
  const be = args.backend as WasmHeapBackend
  const outs = [0, 1, 2].map(() => be.makeOutput([...param!.shape], "float32"))
  const h = adamHyperParameters(a)
  addon.adam(view(be, param!), view(be, grad!), view(be, m!), view(be, v!), view(be, outs[0]!), view(be, outs[1]!), view(be, outs[2]!), h)
  return outs
}
