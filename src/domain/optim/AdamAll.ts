/**
 * One Adam step over every parameter in one kernel call (issue 18 point 5): {@link ADAM_ALL_KERNEL} applies the
 * per-parameter update of `ADAM_KERNEL` (src/domain/Adam.ts, the same float32 operations in the same order, so the
 * same bits) to all parameters, where the per-parameter kernel takes one dispatch each (66 in the reference
 * denoiser's step).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SidAdamAll } from "../../engine/kernels/KernelNames.js"
import type { AdamConfig } from "./Adam.js"
import type { Parameters } from "../nn/Parameters.js"

/** Name of the `SidAdamAll` kernel (contract in `engine/kernels/KernelNames.ts`). */
export const ADAM_ALL_KERNEL = SidAdamAll

/**
 * The new parameters and moments of one Adam step.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdamAllResult {
  readonly params: Record<string, tf.Tensor>
  readonly m: Record<string, tf.Tensor>
  readonly v: Record<string, tf.Tensor>
}

/**
 * Step `t` (1-based) of Adam over all `params` in one {@link ADAM_ALL_KERNEL} call, or `undefined` when the active
 * backend does not register it or a parameter lacks a gradient or moments or is not float32 of its gradient's shape
 * (the caller then updates parameter by parameter).
 *
 * @since 0.1.0
 * @category utils
 */
export const adamAllFused = (
  config: AdamConfig,
  t: number,
  params: Parameters,
  grads: Parameters,
  m: Parameters,
  v: Parameters
): AdamAllResult | undefined => {
  const names = Object.keys(params)
  if (names.length === 0 || tf.getKernel(ADAM_ALL_KERNEL, tf.getBackend()) === undefined) return undefined
  const inputs: Record<string, tf.Tensor> = {}
  for (const [i, name] of names.entries()) {
    const group = [params[name], grads[name], m[name], v[name]]
    if (!group.every((x) => x !== undefined && x.dtype === "float32" && tf.util.arraysEqual(x.shape, params[name]!.shape))) {
      return undefined
    }
    ;["p", "g", "m", "v"].forEach((k, j) => {
      inputs[`${k}${i}`] = group[j]!
    })
  }
  const outs = tf.engine().runKernel(ADAM_ALL_KERNEL, inputs, {
    learningRate: config.learningRate,
    beta1: config.beta1,
    beta2: config.beta2,
    epsilon: config.epsilon,
    step: t,
    count: names.length
  }) as unknown as Array<tf.Tensor>
  const pick = (offset: number) => Object.fromEntries(names.map((name, i) => [name, outs[offset + i]!]))
  return { params: pick(0), m: pick(names.length), v: pick(2 * names.length) }
}
