import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { adamUpdate, initAdam } from "../src/domain/optim/Adam.js"
import { emaBeta, emaUpdate } from "../src/domain/optim/Ema.js"
import { countNonFinite, globalNorm, sanitizeGradient, sanitizeGradientValue } from "../src/domain/nn/Gradients.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

describe("Adam", () => {
  it("matches tf.train.adam step for step (β₁ = 0 and 0.9)", () => {
    for (const beta1 of [0, 0.9]) {
      const init = tf.tensor1d([0.5, -1.2, 3])
      const target = tf.tensor1d([1, 2, -1])
      const variable = tf.variable(init.clone())
      const reference = tf.train.adam(0.05, beta1, 0.999, 1e-8)
      let params: Record<string, tf.Tensor> = { w: init.clone() }
      let state = initAdam(params)
      for (let i = 0; i < 25; i++) {
        reference.minimize(() => tf.sum(tf.square(tf.sub(variable, target))) as tf.Scalar)
        const g = tf.mul(tf.sub(params["w"]!, target), 2)
        const next = adamUpdate({ learningRate: 0.05, beta1, beta2: 0.999, epsilon: 1e-8 }, params, { w: g }, state)
        tf.dispose([g, params["w"]!, state.m["w"]!, state.v["w"]!])
        params = next.params
        state = next.state
      }
      const ours = params["w"]!.dataSync()
      const theirs = variable.dataSync()
      for (let i = 0; i < 3; i++) expect(Math.abs(ours[i]! - theirs[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(theirs[i]!)))
      expect(state.step).toBe(25)
      tf.dispose([init, target, variable, params["w"]!, state.m["w"]!, state.v["w"]!])
      reference.dispose()
    }
  })

  it("leaves parameters without a gradient unchanged and leaks nothing", () => {
    const params = { a: tf.ones([2]), b: tf.zeros([3]) }
    const state = initAdam(params)
    const g = { a: tf.ones([2]) }
    const before = tf.memory().numTensors
    const next = adamUpdate({ learningRate: 0.1, beta1: 0, beta2: 0.999, epsilon: 1e-8 }, params, g, state)
    expect(Array.from(next.params["b"]!.dataSync())).toEqual([0, 0, 0])
    expect(next.params["a"]!.dataSync()[0]).toBeCloseTo(0.9, 5)
    const created = Object.values(next.params).length + Object.values(next.state.m).length * 2
    expect(tf.memory().numTensors).toBe(before + created)
  })
})

describe("EMA", () => {
  it("follows the half-life and ramp-up rule of docs/algorithm.md §9.1", () => {
    const cfg = { halfLifeKimg: 0.5, rampupRatio: 0.05 }
    expect(emaBeta(cfg, 512, 0)).toBe(0)
    expect(emaBeta({ halfLifeKimg: 0.5, rampupRatio: null }, 500, 0)).toBeCloseTo(0.5, 12)
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), fc.integer({ min: 1, max: 10_000_000 }), (batch, seen) => {
        const h = Math.min(500, 0.05 * seen)
        expect(emaBeta(cfg, batch, seen)).toBeCloseTo(Math.pow(0.5, batch / h), 12)
        expect(emaBeta(cfg, batch, seen)).toBeLessThanOrEqual(emaBeta(cfg, batch, seen + 1000))
      })
    )
  })

  it("blends β·ema + (1−β)·θ", () => {
    const out = emaUpdate({ w: tf.tensor1d([1, 1]) }, { w: tf.tensor1d([3, -1]) }, 0.25)
    expect(Array.from(out["w"]!.dataSync())).toEqual([2.5, -0.5])
  })
})

describe("gradient sanitisation", () => {
  it("is nan_to_num(nan=0, posinf=1e5, neginf=-1e5): NaN → 0, ±Inf → ±1e5, finite values beyond ±1e5 kept", () => {
    const g = tf.tensor1d([NaN, Infinity, -Infinity, 1.5, -2e6, 3e38])
    expect(Array.from(sanitizeGradient(g).dataSync())).toEqual([0, 1e5, -1e5, 1.5, -2e6, Math.fround(3e38)])
    expect(countNonFinite({ g }).dataSync()[0]).toBe(3)
    expect(globalNorm({ a: tf.tensor1d([3]), b: tf.tensor1d([4]) }).dataSync()[0]).toBeCloseTo(5, 6)
  })

  it("property: finite entries untouched bit for bit, NaN → 0, ±Inf → ±1e5, on the tensor and the host path", () => {
    const entry = fc.oneof(
      { weight: 6, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
      { weight: 1, arbitrary: fc.constantFrom(NaN, Infinity, -Infinity) }
    )
    fc.assert(
      fc.property(fc.array(entry, { minLength: 1, maxLength: 64 }), (values) => {
        const before = tf.memory().numTensors
        const input = Float32Array.from(values)
        const g = tf.tensor1d(input)
        const sanitised = sanitizeGradient(g)
        const out = sanitised.dataSync()
        tf.dispose([g, sanitised])
        for (let i = 0; i < input.length; i++) {
          const x = input[i]!
          const expected = Number.isNaN(x) ? 0 : x === Infinity ? 1e5 : x === -Infinity ? -1e5 : x
          expect(Object.is(out[i], expected)).toBe(true)
          expect(Object.is(sanitizeGradientValue(x), expected)).toBe(true)
        }
        expect(tf.memory().numTensors).toBe(before)
      }),
      { numRuns: 200 }
    )
  })
})
