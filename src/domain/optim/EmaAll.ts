/**
 * One exponential-moving-average step over every parameter in one kernel call (issue 18 point 5):
 * {@link EMA_ALL_KERNEL} computes `e·β + p·(1 − β)` for all parameters, rounded as the composed ops round it (each
 * product, then the sum, in float32), where the composed update takes three dispatches per parameter.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SidEmaAll } from "../../engine/kernels/KernelNames.js"
import type { Parameters } from "../nn/Parameters.js"

/** Name of the `SidEmaAll` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const EMA_ALL_KERNEL = SidEmaAll

/**
 * The new averages `ema·β + params·(1 − β)` in one {@link EMA_ALL_KERNEL} call, or `undefined` when the active
 * backend does not register it or an average has no float32 parameter of its shape (the caller then composes ops).
 *
 * @since 0.1.0
 * @category utils
 */
export const emaAllFused = (ema: Parameters, params: Parameters, beta: number): Record<string, tf.Tensor> | undefined => {
  const names = Object.keys(ema)
  if (names.length === 0 || tf.getKernel(EMA_ALL_KERNEL, tf.getBackend()) === undefined) return undefined
  const inputs: Record<string, tf.Tensor> = {}
  for (const [i, name] of names.entries()) {
    const e = ema[name]!
    const p = params[name]
    if (p === undefined || e.dtype !== "float32" || p.dtype !== "float32" || !tf.util.arraysEqual(e.shape, p.shape)) {
      return undefined
    }
    inputs[`e${i}`] = e
    inputs[`p${i}`] = p
  }
  const outs = tf.engine().runKernel(EMA_ALL_KERNEL, inputs, { beta, count: names.length }) as unknown as Array<tf.Tensor>
  return Object.fromEntries(names.map((name, i) => [name, outs[i]!]))
}
