import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DENSE_GRAD_KERNEL, DENSE_KERNEL, dense, type DenseActivation } from "../src/domain/nn/Dense.js"
import { hasNativeDense } from "../src/engine/kernels/native/Dense.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import { loadNativeAddon, nativeAddonPath } from "../src/engine/kernels/Native.js"
import { Engine } from "../src/engine/node/Engine.js"
import { turn } from "./support/turn.js"
import { relativeL2 } from "./support/errors.js"

fc.configureGlobal({ asyncBeforeEach: turn })

const built = (() => {
  try {
    return existsSync(nativeAddonPath()) && hasNativeDense(loadNativeAddon())
  } catch {
    return false
  }
})()

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeL2(a, b, 0.1)

const randoms = (n: number, seed: number, scale = 1): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 4294967296 - 0.5) * scale
  })
}

interface Case {
  readonly m: number
  readonly k: number
  readonly n: number
  readonly activation: DenseActivation
  readonly seed: number
}

/** y = dense(x, w, b) and the gradients of Σ y·r for x, w and b. */
const run = (c: Case) =>
  tf.tidy(() => {
    const x = tf.tensor2d(randoms(c.m * c.k, c.seed, 4), [c.m, c.k])
    const w = tf.tensor2d(randoms(c.k * c.n, c.seed + 1), [c.k, c.n])
    const b = tf.tensor1d(randoms(c.n, c.seed + 2))
    const r = tf.tensor2d(randoms(c.m * c.n, c.seed + 3), [c.m, c.n])
    const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(dense(x as tf.Tensor2D, w as tf.Tensor2D, b, c.activation), r))
    const y = dense(x, w, b, c.activation)
    const grads = tf.grads(f)([x, w, b])
    return [y, ...grads].map((t) => t.dataSync().slice())
  })

describe.runIf(built)("fused dense kernel on wasm-native (addon built)", () => {
  let scope: Scope.CloseableScope
  let t: typeof tf

  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    const ctx = await Effect.runPromise(Layer.buildWithScope(EngineLayers.makeWasmNative(), scope))
    t = Context.get(ctx, Engine).tf
  })

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("values and gradients for x, w and b (linear and SiLU) equal the composed ops on the cpu backend", async () => {
    expect([DENSE_KERNEL, DENSE_GRAD_KERNEL].map((k) => t.getKernel(k, "wasm") !== undefined)).toEqual([true, true])
    let fusedRuns = 0
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          m: fc.integer({ min: 1, max: 200 }),
          k: fc.integer({ min: 1, max: 40 }),
          n: fc.integer({ min: 1, max: 40 }),
          activation: fc.constantFrom<DenseActivation>("linear", "silu"),
          seed: fc.nat()
        }),
        async (c) => {
          await tf.setBackend("wasm")
          const profile = await tf.profile(() => run(c))
          fusedRuns += profile.kernels.filter((k) => k.name === DENSE_KERNEL).length
          const native = run(c)
          await tf.setBackend("cpu")
          const cpu = run(c)
          native.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
        }
      ),
      { numRuns: 40 }
    )
    await tf.setBackend("wasm")
    expect(fusedRuns).toBeGreaterThan(0)
  })

  it("a batch of 512 rows (several tasks) gives the cpu values, and repeated steps leak no tensor", async () => {
    const c: Case = { m: 512, k: 128, n: 128, activation: "silu", seed: 3 }
    await tf.setBackend("wasm")
    const native = run(c)
    await tf.setBackend("cpu")
    const cpu = run(c)
    native.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
    await tf.setBackend("wasm")
    run(c)
    const count = tf.memory().numTensors
    for (let i = 0; i < 5; i++) run(c)
    expect(tf.memory().numTensors).toBe(count)
  })

  it("rejects shapes that do not fit, naming them", () => {
    expect(() => dense(tf.zeros([2, 3]) as tf.Tensor2D, tf.zeros([4, 5]) as tf.Tensor2D, tf.zeros([5]))).toThrow(
      /dense: expected x \[M,K\], w \[K,N\], b \[N\]; got \[2,3\], \[4,5\], \[5\]/
    )
  })
})
