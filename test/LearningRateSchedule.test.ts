import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { inverseSqrtDecay, withLearningRateSchedule } from "../src/domain/optim/LearningRateSchedule.js"
import { adam, adamHost, initOptimizerState, type Optimizer, type OptimizerState } from "../src/domain/optim/Optimizer.js"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { defaultOptimizers } from "../src/layers/Distillation.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const config = { learningRate: 0.05, beta1: 0, beta2: 0.999, epsilon: 1e-8 }

/** `steps` updates of `optimizer` on Σ(w − target)², from the same start; the final weights. */
const train = (optimizer: Optimizer, steps: number): Float32Array => {
  const target = tf.tensor1d([1, 2, -1])
  let params: Record<string, tf.Tensor> = { w: tf.tensor1d([0.5, -1.2, 3]) }
  let state: OptimizerState = initOptimizerState(optimizer, params)
  for (let i = 0; i < steps; i++) {
    const g = tf.tidy(() => tf.mul(tf.sub(params["w"]!, target), 2))
    const next = optimizer.update(params, { w: g }, state)
    tf.dispose([g, params["w"]!, ...Object.values(state.slots).flatMap((s) => Object.values(s))])
    params = next.params
    state = next.state
  }
  const out = params["w"]!.dataSync() as Float32Array
  tf.dispose([target, params["w"]!, ...Object.values(state.slots).flatMap((s) => Object.values(s))])
  return out
}

describe("the inverse-square-root decay (docs/algorithm.md §9.4)", () => {
  it("is 1 until the reference images are seen, then 1/√(images / ref); no decay for a reference of 0", () => {
    const f = inverseSqrtDecay(1000, 100)
    expect([0, 5, 10].map(f)).toEqual([1, 1, 1])
    expect(f(40)).toBeCloseTo(0.5, 15)
    expect(f(90)).toBeCloseTo(1 / 3, 15)
    expect(inverseSqrtDecay(0, 100)(1e6)).toBe(1)
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 0, max: 1e6 }), (a, b) =>
      f(Math.min(a, b)) >= f(Math.max(a, b)) && f(a) <= 1 && f(a) > 0))
  })
})

describe("an optimiser with a learning-rate schedule", () => {
  it("takes each update at the rate its step count gives, on engine tensors and in host memory alike", () => {
    const factor = (step: number) => 1 / (1 + step)
    const scheduled = withLearningRateSchedule(adam, config, factor, "1/(1 + step)")
    expect(scheduled.name).toMatch(/adam\(lr 0.05.*\), 1\/\(1 \+ step\)$/)
    const target = tf.tensor1d([1, 2, -1])
    let params: Record<string, tf.Tensor> = { w: tf.tensor1d([0.5, -1.2, 3]) }
    let state = initOptimizerState(scheduled, params)
    for (let step = 0; step < 6; step++) {
      const g = tf.tidy(() => tf.mul(tf.sub(params["w"]!, target), 2))
      const next = scheduled.update(params, { w: g }, state)
      const plain = adam({ ...config, learningRate: config.learningRate * factor(step) }).update(params, { w: g }, state)
      expect(next.params["w"]!.dataSync()).toEqual(plain.params["w"]!.dataSync())
      tf.dispose([g, params["w"]!, plain.params["w"]!, ...Object.values(plain.state.slots).flatMap((s) => Object.values(s))])
      tf.dispose(Object.values(state.slots).flatMap((s) => Object.values(s)))
      params = next.params
      state = next.state
    }
    tf.dispose([target, params["w"]!, ...Object.values(state.slots).flatMap((s) => Object.values(s))])
    const host = withLearningRateSchedule(adamHost, config, factor, "1/(1 + step)")
    const value = new Float32Array([0.5, -1.2, 3])
    const hostSlots = { m: new Float32Array(3), v: new Float32Array(3) }
    const viaTensors = new Float32Array([0.5, -1.2, 3])
    const tensorSlots = { m: new Float32Array(3), v: new Float32Array(3) }
    for (let step = 0; step < 6; step++) {
      const grad = value.map((x, i) => 2 * (x - [1, 2, -1][i]!))
      host.host!(step, value, grad, hostSlots)
      adamHost({ ...config, learningRate: config.learningRate * factor(step) }).host!(step, viaTensors, grad, tensorSlots)
    }
    expect(value).toEqual(viaTensors)
  })

  it("is the plain optimiser while the factor is 1, and slows training once it falls", () => {
    const plain = train(adam(config), 12)
    expect(train(withLearningRateSchedule(adam, config, inverseSqrtDecay(1e9, 1), "never"), 12)).toEqual(plain)
    const decayed = train(withLearningRateSchedule(adam, config, inverseSqrtDecay(1, 1), "from the first step"), 12)
    expect(decayed).not.toEqual(plain)
    const moved = (w: Float32Array) => Math.hypot(w[0]! - 0.5, w[1]! + 1.2, w[2]! - 3)
    expect(moved(decayed)).toBeLessThan(moved(plain))
  })

  it("is what a distillation config with lrDecayKimg builds, for both networks, and nothing without it", () => {
    const constant = defaultOptimizers(distillConfig({}))
    expect(constant.generator.name).not.toMatch(/√/)
    const decayed = defaultOptimizers(distillConfig({ lrDecayKimg: 2048, batchSize: 1024 }))
    expect(decayed.generator.name).toMatch(/lr \/ √\(images \/ 2048 kimg\) after 2048 kimg/)
    expect(decayed.fakeScore.name).toMatch(/after 2048 kimg/)
    expect(defaultOptimizers(distillConfig({ lrDecayKimg: 1, lowMemory: true })).generator.host).toBeDefined()
    expect(() => distillConfig({ lrDecayKimg: -1 })).toThrow(/lrDecayKimg.*must be a finite number ≥ 0 of thousands of images/)
  })
})
