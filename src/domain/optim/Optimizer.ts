/**
 * Optimisers as pure values: named state slots (tensor maps with the parameters' names), an initialiser and an
 * update. The generator and the fake score each take one; Adam with SiD's β = (0, 0.999), ε = 1e-8 is the default
 * (docs/algorithm.md §9.1), and any other optimiser can be swapped in without touching the rest of a pipeline. Slots are stored in
 * checkpoints under their names, so a resumed run continues with exactly the same state.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { type AdamConfig, adamUpdate, adamUpdateHost } from "./Adam.js"
import type { Parameters } from "../nn/Parameters.js"

/**
 * An optimiser's state: the number of updates taken and one tensor map per slot (e.g. Adam's `m` and `v`).
 *
 * @since 0.1.0
 * @category models
 */
export interface OptimizerState {
  readonly step: number
  readonly slots: Readonly<Record<string, Parameters>>
}

/**
 * An optimiser's update of one parameter in host memory, in place: `value` and every slot array are overwritten from
 * the (already sanitised) `grad`; `step` counts the updates taken before this one. Host arrays live outside the tensor
 * engine (the wasm heap is limited to 4 GB), so a large network's optimiser state does not take engine memory.
 *
 * @since 0.1.0
 * @category models
 */
export type HostUpdate = (
  step: number,
  value: Float32Array,
  grad: Float32Array,
  slots: Readonly<Record<string, Float32Array>>
) => void

/**
 * An optimiser. `update` is pure: new parameter values and new state, all new tensors the caller owns. An optimiser
 * with `host` is applied by trainable weights one parameter at a time in host memory, its slots kept as
 * `Float32Array`s outside the engine (materialised as tensors only for a checkpoint); `update` is the same rule on
 * tensors.
 *
 * @since 0.1.0
 * @category models
 */
export interface Optimizer {
  readonly name: string
  /** The names of its state slots, e.g. `["m", "v"]`. */
  readonly slotNames: ReadonlyArray<string>
  readonly update: (
    params: Parameters,
    grads: Parameters,
    state: OptimizerState
  ) => { readonly params: Record<string, tf.Tensor>; readonly state: OptimizerState }
  /** The same rule per parameter in host memory; when present, state lives outside the engine. */
  readonly host?: HostUpdate
}

/**
 * Zero-filled state for an optimiser's slots, shaped like the parameters (step 0). The caller owns the tensors.
 *
 * @since 0.1.0
 * @category utils
 */
export const initOptimizerState = (optimizer: Optimizer, params: Parameters): OptimizerState => ({
  step: 0,
  slots: Object.fromEntries(
    optimizer.slotNames.map((slot) => [slot, Object.fromEntries(Object.entries(params).map(([n, p]) => [n, tf.zerosLike(p)]))])
  )
})

const slot = (state: OptimizerState, name: string): Parameters => {
  const s = state.slots[name]
  if (s === undefined) throw new Error(`optimizer state has no slot "${name}"`)
  return s
}

/**
 * Adam (docs/algorithm.md §9.1, §14) with slots `m` and `v`.
 *
 * @since 0.1.0
 * @category utils
 */
export const adam = (config: AdamConfig): Optimizer => ({
  name: `adam(lr ${config.learningRate}, β ${config.beta1}/${config.beta2}, ε ${config.epsilon})`,
  slotNames: ["m", "v"],
  update: (params, grads, state) => {
    const next = adamUpdate(config, params, grads, { step: state.step, m: slot(state, "m"), v: slot(state, "v") })
    return { params: next.params, state: { step: next.state.step, slots: { m: next.state.m, v: next.state.v } } }
  }
})

/**
 * Adam (docs/algorithm.md §9.1, §14) with its moments `m`, `v` in host memory: the same update as {@link adam}, float32 operation
 * for float32 operation, applied one parameter at a time outside the tensor engine. For networks whose seven weight
 * copies (teacher, θ, θ_ema, ψ and both optimisers' moments) do not fit the wasm heap beside a backward pass.
 *
 * @since 0.1.0
 * @category utils
 */
export const adamHost = (config: AdamConfig): Optimizer => {
  const tensor = adam(config)
  return {
    ...tensor,
    name: `adam-host(lr ${config.learningRate}, β ${config.beta1}/${config.beta2}, ε ${config.epsilon})`,
    host: (step, value, grad, slots) => {
      const m = slots["m"]
      const v = slots["v"]
      if (m === undefined || v === undefined) throw new Error("host Adam state has no slot \"m\" or \"v\"")
      adamUpdateHost(config, step, value, grad, m, v)
    }
  }
}

/**
 * SGD with heavy-ball momentum: v ← μ·v + g, p ← p − lr·v (slot `velocity`). Parameters without a gradient keep
 * their values.
 *
 * @since 0.1.0
 * @category utils
 */
export const sgd = (config: { readonly learningRate: number; readonly momentum: number }): Optimizer => ({
  name: `sgd(lr ${config.learningRate}, momentum ${config.momentum})`,
  slotNames: ["velocity"],
  update: (params, grads, state) =>
    tf.tidy(() => {
      const velocity = slot(state, "velocity")
      const nextParams: Record<string, tf.Tensor> = {}
      const nextVelocity: Record<string, tf.Tensor> = {}
      for (const [name, p] of Object.entries(params)) {
        const g = grads[name]
        const v0 = velocity[name]
        if (v0 === undefined) throw new Error(`optimizer state has no velocity for parameter "${name}"`)
        if (g === undefined) {
          nextParams[name] = tf.clone(p)
          nextVelocity[name] = tf.clone(v0)
          continue
        }
        const v1 = tf.add(tf.mul(v0, config.momentum), g)
        nextParams[name] = tf.sub(p, tf.mul(v1, config.learningRate))
        nextVelocity[name] = v1
      }
      return { params: nextParams, state: { step: state.step + 1, slots: { velocity: nextVelocity } } }
    })
})
