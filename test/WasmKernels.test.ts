import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dense, type DenseActivation } from "../src/domain/nn/Dense.js"
import { silu } from "../src/domain/nn/Silu.js"
import { ADAM_KERNEL, adamUpdate } from "../src/domain/optim/Adam.js"
import { ADAM_ALL_KERNEL } from "../src/domain/optim/AdamAll.js"
import { EMA_ALL_KERNEL } from "../src/domain/optim/EmaAll.js"
import { emaUpdate } from "../src/domain/optim/Ema.js"
import { GRADIENT_STATISTICS_KERNEL, gradientStatistics } from "../src/domain/optim/GradientStatistics.js"
import { countNonFinite, globalNorm } from "../src/domain/nn/Gradients.js"
import * as EngineLayers from "../src/engine/Engine.js"
import { Engine } from "../src/engine/Engine.js"
import { SidDense, SidSiluGrad } from "../src/engine/kernels/KernelNames.js"
import { installCount } from "../src/engine/kernels/Patches.js"
import { turn } from "./support/turn.js"
import { relativeL2 } from "./support/errors.js"

fc.configureGlobal({ asyncBeforeEach: turn })

const randoms = (n: number, seed: number, scale = 1): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 4294967296 - 0.5) * scale
  })
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeL2(a, b, 0.1)

interface DenseCase {
  readonly m: number
  readonly k: number
  readonly n: number
  readonly activation: DenseActivation
  readonly seed: number
}

type Layer = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor, activation: DenseActivation) => tf.Tensor2D

const composed: Layer = (x, w, b, activation) =>
  tf.tidy(() => {
    const z = tf.add(tf.matMul(x, w), b) as tf.Tensor2D
    return activation === "silu" ? silu(z) : z
  })

/** y = layer(x, w, b) and the gradients of Σ y·r for x, w and b, as arrays. */
const runDense = (c: DenseCase, layer: Layer) =>
  tf.tidy(() => {
    const x = tf.tensor2d(randoms(c.m * c.k, c.seed, 4), [c.m, c.k])
    const w = tf.tensor2d(randoms(c.k * c.n, c.seed + 1), [c.k, c.n])
    const b = tf.tensor1d(randoms(c.n, c.seed + 2))
    const r = tf.tensor2d(randoms(c.m * c.n, c.seed + 3), [c.m, c.n])
    const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(layer(x as tf.Tensor2D, w as tf.Tensor2D, b, c.activation), r))
    const y = layer(x, w, b, c.activation)
    return [y, ...tf.grads(f)([x, w, b])].map((t) => Array.from(t.dataSync()))
  })

const denseCase = fc.record({
  m: fc.integer({ min: 1, max: 160 }),
  k: fc.integer({ min: 1, max: 40 }),
  n: fc.integer({ min: 1, max: 40 }),
  activation: fc.constantFrom<DenseActivation>("linear", "silu"),
  seed: fc.nat()
})

describe("the plain wasm engine's JavaScript kernels", () => {
  let scope: Scope.CloseableScope
  let t: typeof tf

  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    const ctx = await Effect.runPromise(Layer.buildWithScope(EngineLayers.makeWasm(), scope))
    t = Context.get(ctx, Engine).tf
  })

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    expect(installCount("wasm", SidDense, "wasm-js")).toBe(0)
    expect(tf.getKernel(SidDense, "wasm")).toBeUndefined()
  })

  it("the fused dense layer gives the composed ops' bits on wasm, values and gradients, in one forward dispatch", async () => {
    expect([SidDense, SidSiluGrad].map((k) => t.getKernel(k, "wasm") !== undefined)).toEqual([true, true])
    await fc.assert(
      fc.asyncProperty(denseCase, async (c) => {
        await tf.setBackend("wasm")
        const profile = await tf.profile(() => runDense(c, dense))
        expect(profile.kernels.filter((k) => k.name === SidDense).length).toBe(2)
        expect(runDense(c, dense)).toEqual(runDense(c, composed))
      }),
      { numRuns: 40 }
    )
  })

  it("the fused dense layer's values and gradients equal the cpu backend's within float32 rounding", async () => {
    await fc.assert(
      fc.asyncProperty(denseCase, async (c) => {
        await tf.setBackend("wasm")
        const wasm = runDense(c, dense)
        await tf.setBackend("cpu")
        const cpu = runDense(c, dense)
        wasm.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
      }),
      { numRuns: 25 }
    )
    await tf.setBackend("wasm")
  })

  it("the dense gradient computes only what the tape asks for: no weight gradient for a network not differentiated", async () => {
    await tf.setBackend("wasm")
    const x = tf.tensor2d(randoms(64 * 8, 1), [64, 8])
    const w = tf.tensor2d(randoms(8 * 16, 2), [8, 16])
    const b = tf.tensor1d(randoms(16, 3))
    // Counts the products run (the forward one included) by wrapping the registered kernel for the duration.
    const config = tf.getKernel("BatchMatMul", "wasm")!
    let products = 0
    tf.unregisterKernel("BatchMatMul", "wasm")
    tf.registerKernel({ ...config, kernelFunc: (args) => (products++, config.kernelFunc(args)) })
    const count = (f: () => tf.TensorContainer) => {
      products = 0
      tf.tidy(f)
      return products
    }
    try {
      expect(count(() => tf.grad((x: tf.Tensor) => tf.sum(dense(x as tf.Tensor2D, w, b, "silu")))(x))).toBe(2)
      expect(count(() => tf.grads((w: tf.Tensor, b: tf.Tensor) => tf.sum(dense(x, w as tf.Tensor2D, b, "silu")))([w, b]))).toBe(2)
      expect(count(() => tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.sum(dense(x as tf.Tensor2D, w as tf.Tensor2D, b, "linear")))([x, w]))).toBe(3)
    } finally {
      tf.unregisterKernel("BatchMatMul", "wasm")
      tf.registerKernel(config)
    }
    tf.dispose([x, w, b])
  })

  it("a 512 × 128 SiLU layer gives the composed bits and repeated steps leak no tensor", async () => {
    await tf.setBackend("wasm")
    const c: DenseCase = { m: 512, k: 128, n: 128, activation: "silu", seed: 5 }
    expect(runDense(c, dense)).toEqual(runDense(c, composed))
    const count = tf.memory().numTensors
    for (let i = 0; i < 3; i++) runDense(c, dense)
    expect(tf.memory().numTensors).toBe(count)
  })

  it("Adam over all parameters gives the composed update's bits (the cpu backend's) in one dispatch", async () => {
    const shapes = fc.array(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 0, maxLength: 3 }), { minLength: 1, maxLength: 5 })
    const config = fc.record({
      learningRate: fc.double({ min: 1e-6, max: 1e-1, noNaN: true }),
      beta1: fc.constantFrom(0, 0.9),
      beta2: fc.constantFrom(0.99, 0.999),
      epsilon: fc.constantFrom(1e-8, 1e-6)
    })
    const run = (s: ReadonlyArray<ReadonlyArray<number>>, c: { learningRate: number; beta1: number; beta2: number; epsilon: number }, step: number, seed: number) =>
      tf.tidy(() => {
        const make = (shape: ReadonlyArray<number>, k: number, scale: number) =>
          tf.mul(tf.tensor(randoms(shape.reduce((a, b) => a * b, 1), seed + k), [...shape]), scale)
        const names = s.map((_, i) => `p${i}`)
        const params = Object.fromEntries(names.map((n, i) => [n, make(s[i]!, 10 * i, 1)]))
        const grads = Object.fromEntries(names.map((n, i) => [n, make(s[i]!, 10 * i + 1, 3)]))
        const m = Object.fromEntries(names.map((n, i) => [n, make(s[i]!, 10 * i + 2, 0.5)]))
        const v = Object.fromEntries(names.map((n, i) => [n, tf.abs(make(s[i]!, 10 * i + 3, 2))]))
        const r = adamUpdate(c, params, grads, { step, m, v })
        return names.flatMap((n) => [r.params[n]!, r.state.m[n]!, r.state.v[n]!].map((x) => Array.from(x.dataSync())))
      })
    await fc.assert(
      fc.asyncProperty(shapes, config, fc.integer({ min: 0, max: 5000 }), fc.nat(), async (s, c, step, seed) => {
        await tf.setBackend("wasm")
        const profile = await tf.profile(() => run(s, c, step, seed))
        const names = profile.kernels.map((k) => k.name)
        expect(names.filter((n) => n === ADAM_ALL_KERNEL)).toHaveLength(1)
        expect(names).not.toContain(ADAM_KERNEL)
        const before = tf.memory().numTensors
        const wasm = run(s, c, step, seed)
        expect(tf.memory().numTensors).toBe(before)
        await tf.setBackend("cpu")
        expect(wasm).toEqual(run(s, c, step, seed))
      }),
      { numRuns: 30 }
    )
    await tf.setBackend("wasm")
  })

  it("the EMA over all parameters gives the composed bits in one dispatch", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat(), async (sizes, beta, seed) => {
        const run = () =>
          tf.tidy(() => {
            const ema = Object.fromEntries(sizes.map((n, i) => [`e${i}`, tf.tensor1d(randoms(n, seed + i))]))
            const params = Object.fromEntries(sizes.map((n, i) => [`e${i}`, tf.tensor1d(randoms(n, seed + 100 + i, 5))]))
            return Object.values(emaUpdate(ema, params, beta)).map((x) => Array.from(x.dataSync()))
          })
        await tf.setBackend("wasm")
        const profile = await tf.profile(run)
        expect(profile.kernels.filter((k) => k.name === EMA_ALL_KERNEL)).toHaveLength(1)
        const wasm = run()
        await tf.setBackend("cpu")
        expect(wasm).toEqual(run())
      }),
      { numRuns: 25 }
    )
    await tf.setBackend("wasm")
  })

  it("gradient statistics: the composed norm within float32 rounding and the exact non-finite count, in one dispatch", async () => {
    await tf.setBackend("wasm")
    const grads = {
      a: tf.tensor2d(randoms(300, 1, 3), [30, 10]),
      b: tf.tensor1d([1, Number.NaN, 2, Number.POSITIVE_INFINITY, -3]),
      c: tf.tensor1d(randoms(77, 2))
    }
    const finite = { a: grads.a, c: grads.c }
    const profile = await tf.profile(() => {
      const s = gradientStatistics(finite)
      tf.dispose([s.norm, s.nonFinite])
    })
    expect(profile.kernels.map((k) => k.name)).toEqual([GRADIENT_STATISTICS_KERNEL])
    const before = tf.memory().numTensors
    const s = gradientStatistics(finite)
    const norm = globalNorm(finite)
    expect(relErr(s.norm.dataSync(), norm.dataSync())).toBeLessThanOrEqual(1e-6)
    expect(s.nonFinite.dataSync()[0]).toBe(0)
    const bad = gradientStatistics(grads)
    const count = countNonFinite(grads)
    expect(bad.nonFinite.dataSync()[0]).toBe(count.dataSync()[0])
    expect(bad.nonFinite.dataSync()[0]).toBe(2)
    expect(Number.isFinite(bad.norm.dataSync()[0])).toBe(false)
    tf.dispose([s.norm, s.nonFinite, norm, bad.norm, bad.nonFinite, count])
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose(Object.values(grads))
  })

  it("row sums and transposed products give the stock kernels' bits", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 70 }), fc.integer({ min: 1, max: 3 }), fc.nat(), async (r, c, batch, seed) => {
        await tf.setBackend("wasm")
        const run = () =>
          tf.tidy(() => {
            const x = tf.tensor2d(randoms(r * c, seed, 3), [r, c])
            const y = tf.tensor3d(randoms(batch * r * c, seed + 1), [batch, r, c])
            const z = tf.tensor3d(randoms(batch * r * 5, seed + 2), [batch, r, 5])
            return [
              tf.sum(x, 0),
              tf.sum(x, 0, true),
              tf.sum(x, 1),
              tf.sum(x),
              tf.matMul(y, z, true, false),
              tf.matMul(z, y, true, false),
              tf.matMul(y, y, false, true)
            ].map((t) => Array.from(t.dataSync()))
          })
        const own = run()
        const expected = tf.tidy(() => {
          const x = tf.tensor2d(randoms(r * c, seed, 3), [r, c])
          const y = tf.tensor3d(randoms(batch * r * c, seed + 1), [batch, r, c])
          const z = tf.tensor3d(randoms(batch * r * 5, seed + 2), [batch, r, 5])
          const yT = tf.transpose(y, [0, 2, 1])
          const zT = tf.transpose(z, [0, 2, 1])
          const colSums = tf.sum(tf.transpose(x), 1)
          return [colSums, tf.reshape(colSums, [1, c]), tf.sum(x, 1), tf.sum(x), tf.matMul(yT, z), tf.matMul(zT, y), tf.matMul(y, yT)].map(
            (t) => Array.from(t.dataSync())
          )
        })
        expect(own).toEqual(expected)
      }),
      { numRuns: 30 }
    )
  })
})
