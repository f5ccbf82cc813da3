import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ADAM_KERNEL, adamUpdate } from "../src/domain/optim/Adam.js"
import { ADAM_ALL_KERNEL } from "../src/domain/optim/AdamAll.js"
import { hasNativeAdamAll } from "../src/engine/kernels/native/AdamAll.js"
import { loadNativeAddon, nativeAddonPath } from "../src/engine/kernels/Native.js"
import { turn } from "./support/turn.js"
import { randoms } from "./support/random.js"
import { useEngine } from "./support/distillation.js"

fc.configureGlobal({ asyncBeforeEach: turn })

const built = (() => {
  try {
    return existsSync(nativeAddonPath()) && hasNativeAdamAll(loadNativeAddon())
  } catch {
    return false
  }
})()


const config = fc.record({
  learningRate: fc.double({ min: 1e-6, max: 1e-1, noNaN: true }),
  beta1: fc.constantFrom(0, 0.9),
  beta2: fc.constantFrom(0.99, 0.999),
  epsilon: fc.constantFrom(1e-8, 1e-6)
})

const shapes = fc.array(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 0, maxLength: 3 }), { minLength: 1, maxLength: 5 })

/** adamUpdate over parameters of `shapes` (gradients for all, or all but the first); its outputs' values. */
const run = (
  shapesOf: ReadonlyArray<ReadonlyArray<number>>,
  c: { learningRate: number; beta1: number; beta2: number; epsilon: number },
  step: number,
  seed: number,
  dropFirstGrad: boolean
) =>
  tf.tidy(() => {
    const t = (shape: ReadonlyArray<number>, k: number, scale: number) =>
      tf.mul(tf.tensor(randoms(shape.reduce((a, b) => a * b, 1), seed + k), [...shape]), scale)
    const names = shapesOf.map((_, i) => `p${i}`)
    const params = Object.fromEntries(names.map((n, i) => [n, t(shapesOf[i]!, 10 * i, 1)]))
    const grads = Object.fromEntries(
      names.flatMap((n, i) => (dropFirstGrad && i === 0 ? [] : [[n, t(shapesOf[i]!, 10 * i + 1, 3)]]))
    )
    const m = Object.fromEntries(names.map((n, i) => [n, t(shapesOf[i]!, 10 * i + 2, 0.5)]))
    const v = Object.fromEntries(names.map((n, i) => [n, tf.abs(t(shapesOf[i]!, 10 * i + 3, 2))]))
    const r = adamUpdate(c, params, grads, { step, m, v })
    return names.flatMap((n) => [r.params[n]!, r.state.m[n]!, r.state.v[n]!].map((x) => Array.from(x.dataSync())))
  })

describe.runIf(built)("all-parameters Adam kernel on wasm-native (addon built)", () => {
  let release: () => Promise<void>

  beforeAll(async () => {
    release = await useEngine("wasm-native")
  })

  afterAll(() => release())

  it("gives the composed update's bits (the cpu backend's) in one dispatch, and leaks nothing", async () => {
    await fc.assert(
      fc.asyncProperty(shapes, config, fc.integer({ min: 0, max: 5000 }), fc.nat(), async (s, c, step, seed) => {
        await tf.setBackend("wasm")
        const profile = await tf.profile(() => run(s, c, step, seed, false))
        const names = profile.kernels.map((k) => k.name)
        expect(names.filter((n) => n === ADAM_ALL_KERNEL)).toHaveLength(1)
        expect(names).not.toContain(ADAM_KERNEL)
        const before = tf.memory().numTensors
        const native = run(s, c, step, seed, false)
        expect(tf.memory().numTensors).toBe(before)
        await tf.setBackend("cpu")
        expect(native).toEqual(run(s, c, step, seed, false))
      }),
      { numRuns: 30 }
    )
  })

  it("falls back to the per-parameter kernel when a parameter has no gradient (it keeps its value and moments)", async () => {
    const s = [[3, 2], [5]]
    const c = { learningRate: 1e-2, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 }
    await tf.setBackend("wasm")
    const profile = await tf.profile(() => run(s, c, 3, 7, true))
    expect(profile.kernels.map((k) => k.name)).not.toContain(ADAM_ALL_KERNEL)
    const native = run(s, c, 3, 7, true)
    await tf.setBackend("cpu")
    expect(native).toEqual(run(s, c, 3, 7, true))
  })
})
