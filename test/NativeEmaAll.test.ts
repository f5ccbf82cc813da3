import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emaUpdate } from "../src/domain/optim/Ema.js"
import { EMA_ALL_KERNEL } from "../src/domain/optim/EmaAll.js"
import { hasNativeEmaAll } from "../src/engine/kernels/native/EmaAll.js"
import { loadNativeAddon, nativeAddonPath } from "../src/engine/kernels/Native.js"
import { turn } from "./support/turn.js"
import { randoms } from "./support/random.js"
import { useEngine } from "./support/distillation.js"

fc.configureGlobal({ asyncBeforeEach: turn })

const built = (() => {
  try {
    return existsSync(nativeAddonPath()) && hasNativeEmaAll(loadNativeAddon())
  } catch {
    return false
  }
})()

const shapes = fc.array(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 0, maxLength: 3 }), { minLength: 1, maxLength: 5 })

const run = (shapesOf: ReadonlyArray<ReadonlyArray<number>>, beta: number, seed: number) =>
  tf.tidy(() => {
    const t = (shape: ReadonlyArray<number>, k: number) => tf.tensor(randoms(shape.reduce((a, b) => a * b, 1), seed + k, 8), [...shape])
    const names = shapesOf.map((_, i) => `p${i}`)
    const ema = Object.fromEntries(names.map((n, i) => [n, t(shapesOf[i]!, 2 * i)]))
    const params = Object.fromEntries(names.map((n, i) => [n, t(shapesOf[i]!, 2 * i + 1)]))
    const next = emaUpdate(ema, params, beta)
    return names.map((n) => Array.from(next[n]!.dataSync()))
  })

describe.runIf(built)("all-parameters EMA kernel on wasm-native (addon built)", () => {
  let release: () => Promise<void>

  beforeAll(async () => {
    release = await useEngine("wasm-native")
  })

  afterAll(() => release())

  it("gives the composed update's bits (the cpu backend's) in one dispatch, and leaks nothing", async () => {
    await fc.assert(
      fc.asyncProperty(shapes, fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(), async (s, beta, seed) => {
        await tf.setBackend("wasm")
        const profile = await tf.profile(() => run(s, beta, seed))
        const names = profile.kernels.map((k) => k.name)
        expect(names).toEqual([EMA_ALL_KERNEL])
        const before = tf.memory().numTensors
        const native = run(s, beta, seed)
        expect(tf.memory().numTensors).toBe(before)
        await tf.setBackend("cpu")
        expect(native).toEqual(run(s, beta, seed))
      }),
      { numRuns: 30 }
    )
  })

  it("names a parameter the network lacks, as the composed update does", async () => {
    await tf.setBackend("wasm")
    expect(() => tf.tidy(() => emaUpdate({ a: tf.zeros([2]) }, { b: tf.zeros([2]) }, 0.5))).toThrow(
      /EMA has parameter "a" that the network does not/
    )
  })
})
