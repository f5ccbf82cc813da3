/**
 * Adam with explicit, serialisable state, as a pure function.
 *
 * The update is PyTorch's (and `tf.train.adam`'s, docs/algorithm.md §14): m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g²,
 * p ← p − lr·m̂/(√v̂ + ε) with m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ). SiD uses β = (0, 0.999) and ε = 1e-8 (docs/algorithm.md §9.1).
 * The moments live in a plain name → tensor map with the parameters' names, so a checkpoint stores them like any
 * other weights and a resumed run continues with exactly the same moments and step count.
 *
 * An engine may register the fused kernel {@link ADAM_KERNEL} (one call per parameter instead of a dozen ops, the same
 * float32 operations in the same order); {@link adamUpdate} uses it where the active backend has it.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SidAdam } from "../../engine/kernels/KernelNames.js"
import type { Parameters } from "../nn/Parameters.js"
import { adamAllFused } from "./AdamAll.js"

/**
 * Adam's hyper-parameters.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdamConfig {
  readonly learningRate: number
  readonly beta1: number
  readonly beta2: number
  readonly epsilon: number
}

/**
 * Adam's state: first and second moments by parameter name, and the number of updates taken.
 *
 * @since 0.1.0
 * @category models
 */
export interface AdamState {
  readonly step: number
  readonly m: Parameters
  readonly v: Parameters
}

/**
 * Zero moments shaped like the parameters (step 0). The caller owns the tensors.
 *
 * @since 0.1.0
 * @category utils
 */
export const initAdam = (params: Parameters): AdamState => ({
  step: 0,
  m: Object.fromEntries(Object.entries(params).map(([n, p]) => [n, tf.zerosLike(p)])),
  v: Object.fromEntries(Object.entries(params).map(([n, p]) => [n, tf.zerosLike(p)]))
})

/**
 * Name of the optional fused Adam kernel; its contract is `SidAdam` in `engine/kernels/KernelNames.ts`.
 *
 * @since 0.1.0
 * @category constants
 */
export const ADAM_KERNEL = SidAdam

const fusedAdam = (config: AdamConfig, t: number, p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor) =>
  tf.engine().runKernel(
    ADAM_KERNEL,
    { param: p, grad: g, m, v },
    { learningRate: config.learningRate, beta1: config.beta1, beta2: config.beta2, epsilon: config.epsilon, step: t }
  ) as unknown as [tf.Tensor, tf.Tensor, tf.Tensor]

/**
 * One Adam update's results: new parameter values and new state (all new tensors the caller owns).
 *
 * @since 0.1.0
 * @category models
 */
export interface AdamUpdate {
  readonly params: Record<string, tf.Tensor>
  readonly state: AdamState
}

/**
 * One Adam update of every parameter that has a gradient. Parameters without a gradient keep their values (copied).
 * Pure: inputs are not modified or disposed.
 *
 * @since 0.1.0
 * @category utils
 */
export const adamUpdate = (
  config: AdamConfig,
  params: Parameters,
  grads: Parameters,
  state: AdamState
): AdamUpdate =>
  tf.tidy(() => {
    const t = state.step + 1
    const c1 = 1 - Math.pow(config.beta1, t)
    const c2 = 1 - Math.pow(config.beta2, t)
    const next: Record<string, tf.Tensor> = {}
    const m: Record<string, tf.Tensor> = {}
    const v: Record<string, tf.Tensor> = {}
    const fused = tf.getKernel(ADAM_KERNEL, tf.getBackend()) !== undefined
    const all = fused ? adamAllFused(config, t, params, grads, state.m, state.v) : undefined
    if (all !== undefined) return { params: all.params, state: { step: t, m: all.m, v: all.v } }
    for (const [name, p] of Object.entries(params)) {
      const g = grads[name]
      const m0 = state.m[name]
      const v0 = state.v[name]
      if (m0 === undefined || v0 === undefined) throw new Error(`Adam state has no moments for parameter "${name}"`)
      if (g === undefined) {
        next[name] = tf.clone(p)
        m[name] = tf.clone(m0)
        v[name] = tf.clone(v0)
        continue
      }
      if (fused && [p, g, m0, v0].every((x) => x.dtype === "float32" && tf.util.arraysEqual(x.shape, p.shape))) {
        ;[next[name], m[name], v[name]] = fusedAdam(config, t, p, g, m0, v0)
        continue
      }
      const m1 = tf.add(tf.mul(m0, config.beta1), tf.mul(g, 1 - config.beta1))
      const v1 = tf.add(tf.mul(v0, config.beta2), tf.mul(tf.square(g), 1 - config.beta2))
      const update = tf.div(tf.div(m1, c1), tf.add(tf.sqrt(tf.div(v1, c2)), config.epsilon))
      next[name] = tf.sub(p, tf.mul(update, config.learningRate))
      m[name] = m1
      v[name] = v1
    }
    return { params: next, state: { step: t, m, v } }
  })

/**
 * One Adam update of one parameter in host memory (docs/algorithm.md §9.1, §14), in place: `value`, `m` and `v` are overwritten,
 * `grad` is read. `step` is the number of updates taken before this one. Every operation is rounded to float32 in the
 * order {@link adamUpdate} runs its tensor ops, so on an IEEE float32 engine both give the same bits.
 *
 * @since 0.1.0
 * @category utils
 */
export const adamUpdateHost = (
  config: AdamConfig,
  step: number,
  value: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array
): void => {
  const f = Math.fround
  const t = step + 1
  const b1 = f(config.beta1)
  const b2 = f(config.beta2)
  const g1 = f(1 - config.beta1)
  const g2 = f(1 - config.beta2)
  const c1 = f(1 - Math.pow(config.beta1, t))
  const c2 = f(1 - Math.pow(config.beta2, t))
  const eps = f(config.epsilon)
  const lr = f(config.learningRate)
  const n = value.length
  for (let i = 0; i < n; i++) {
    const g = grad[i]!
    const m1 = f(f(m[i]! * b1) + f(g * g1))
    const v1 = f(f(v[i]! * b2) + f(f(g * g) * g2))
    const u = f(f(m1 / c1) / f(f(Math.sqrt(f(v1 / c2))) + eps))
    value[i] = value[i]! - f(u * lr)
    m[i] = m1
    v[i] = v1
  }
}
