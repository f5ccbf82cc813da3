import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { GRADIENT_STATISTICS_KERNEL, gradientStatistics } from "../src/domain/optim/GradientStatistics.js"
import { hasNativeGradientStatistics } from "../src/engine/kernels/native/GradientStatistics.js"
import { loadNativeAddon, nativeAddonPath } from "../src/engine/kernels/Native.js"
import { turn } from "./support/turn.js"
import { useEngine } from "./support/distillation.js"

fc.configureGlobal({ asyncBeforeEach: turn })

const built = (() => {
  try {
    return existsSync(nativeAddonPath()) && hasNativeGradientStatistics(loadNativeAddon())
  } catch {
    return false
  }
})()

/** A gradient entry: mostly finite, sometimes NaN or ±Inf. */
const entry = fc.oneof(
  { weight: 20, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity) }
)

const gradMap = fc.array(fc.array(entry, { minLength: 1, maxLength: 300 }), { minLength: 1, maxLength: 6 })

const statsOf = (arrays: ReadonlyArray<ReadonlyArray<number>>) =>
  tf.tidy(() => {
    const grads = Object.fromEntries(arrays.map((a, i) => [`p${i}`, tf.tensor1d(a as Array<number>)]))
    const { nonFinite, norm } = gradientStatistics(grads)
    return { norm: norm.dataSync()[0]!, nonFinite: nonFinite.dataSync()[0]!, dtypes: [norm.dtype, nonFinite.dtype] }
  })

describe("gradientStatistics without the kernel (cpu backend)", () => {
  it("is the global norm and the non-finite count", async () => {
    await tf.setBackend("cpu")
    const s = statsOf([[3, Number.NaN], [4, Infinity, -Infinity]])
    expect(s.nonFinite).toBe(3)
    expect(Number.isNaN(s.norm)).toBe(true)
    expect(statsOf([[3], [4, 0]]).norm).toBe(5)
  })
})

describe.runIf(built)("gradient statistics kernel on wasm-native (addon built)", () => {
  let release: () => Promise<void>

  beforeAll(async () => {
    release = await useEngine("wasm-native")
  })

  afterAll(() => release())

  it("gives the norm (exact to float32 rounding, and the cpu backend's) and the cpu backend's non-finite count, in one dispatch", async () => {
    await tf.setBackend("wasm")
    expect(tf.getKernel(GRADIENT_STATISTICS_KERNEL, "wasm")).toBeDefined()
    await fc.assert(
      fc.asyncProperty(gradMap, async (arrays) => {
        await tf.setBackend("wasm")
        const before = tf.memory().numTensors
        const profile = await tf.profile(() => statsOf(arrays))
        expect(profile.kernels.filter((k) => k.name === GRADIENT_STATISTICS_KERNEL)).toHaveLength(1)
        const native = statsOf(arrays)
        expect(tf.memory().numTensors).toBe(before)
        await tf.setBackend("cpu")
        const cpu = statsOf(arrays)
        expect(native.dtypes).toEqual(cpu.dtypes)
        expect(native.nonFinite).toBe(cpu.nonFinite)
        if (!Number.isFinite(cpu.norm)) {
          expect(native.norm).toBe(cpu.norm)
        } else {
          // The kernel sums in double: compare with the exact norm (the composed float32 one underflows for tiny
          // entries) and, where float32 squares do not underflow, with the cpu backend's.
          const exact = Math.sqrt(arrays.flat().reduce((s, x) => s + Math.fround(x) ** 2, 0))
          expect(Math.abs(native.norm - exact)).toBeLessThanOrEqual(1e-6 * exact)
          if (cpu.norm > 1e-15) expect(Math.abs(native.norm - cpu.norm)).toBeLessThanOrEqual(1e-5 * cpu.norm)
        }
      }),
      { numRuns: 60 }
    )
  })
})
