import * as tf from "@tensorflow/tfjs"
import { Cause, Context, Effect, Exit, Layer, Option } from "effect"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { expectedParameterCount, makeReferenceDenoiser, makeReferenceTraining } from "../bench/ReferenceDenoiser.js"
import * as EngineLayers from "../src/engine/node/Engine.js"
import {
  groupNormGradient,
  loadNativeAddon,
  type NativeAddon,
  nativeAddonPath,
  nativePatches
} from "../src/engine/kernels/Native.js"
import { fastReduceGradients, installGradients } from "../src/engine/kernels/Gradients.js"
import { cpuPatches, install, installCount, wasmPatches } from "../src/engine/kernels/Patches.js"
import { ADAM_KERNEL, adamUpdate } from "../src/domain/optim/Adam.js"
import { GROUP_NORM_GRAD_KERNEL, GROUP_NORM_KERNEL, groupNorm } from "../src/domain/nn/GroupNorm.js"
import { Engine } from "../src/engine/node/Engine.js"
import { turn } from "./support/turn.js"
import { relativeL2 } from "./support/errors.js"
import { randoms } from "./support/random.js"

// A turn of the event loop before each property case, so that vitest's worker RPC is served between cases.
fc.configureGlobal({ asyncBeforeEach: turn })

const built = (() => {
  try {
    return existsSync(nativeAddonPath()) && loadNativeAddon() !== undefined
  } catch {
    return false
  }
})()

describe("wasm-native engine without the addon", () => {
  it("fails with EngineNativeKernelsNotBuilt naming the fix, and leaves the backend and kernels alone", async () => {
    await import("@tensorflow/tfjs-backend-wasm")
    await tf.setBackend("cpu")
    const before = tf.getKernel("Conv2D", "wasm")
    const exit = await Effect.runPromiseExit(
      Effect.scoped(Layer.build(EngineLayers.makeWasmNative({ nativeAddonPath: "/nonexistent/sid_native.node" })))
    )
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? Option.getOrThrow(Cause.failureOption(exit.cause)) : undefined
    expect(error?._tag).toBe("EngineNativeKernelsNotBuilt")
    expect(error?.message).toContain("npm run build:native")
    expect(error?.message).toContain("libopenblas-dev")
    expect(error?.message).toContain("/nonexistent/sid_native.node")
    expect(tf.getBackend()).toBe("cpu")
    expect(tf.getKernel("Conv2D", "wasm")).toBe(before)
    expect(installCount("wasm", "Conv2D", "native")).toBe(0)
  })
})

describe("Sum / Mean gradients broadcast with onesLike (installed by wasm-native)", () => {
  it("equal the stock gradients bit for bit, and the stock gradients come back on release", async () => {
    await tf.setBackend("cpu")
    const stockSum = tf.getGradient("Sum")
    const stockMean = tf.getGradient("Mean")
    const reduceCase = fc
      .array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 })
      .chain((shape) =>
        fc.record({
          shape: fc.constant(shape),
          axes: fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
          keepDims: fc.boolean(),
          seed: fc.nat()
        })
      )
    await fc.assert(
      fc.asyncProperty(reduceCase, async ({ axes, keepDims, seed, shape }) => {
        const grads = () =>
          tf.tidy(() => {
            const x = tf.tensor(randoms(size(shape), seed), shape)
            const f = (x: tf.Tensor) => {
              const s = tf.sum(tf.square(x), axes, keepDims)
              const m = tf.mean(x, axes, keepDims)
              return tf.sum(tf.mul(tf.add(s, m), tf.tensor(randoms(s.size, seed + 1), s.shape)))
            }
            return tf.grad(f)(x).dataSync().slice()
          })
        const stock = grads()
        const restore = installGradients(fastReduceGradients)
        const fast = grads()
        restore()
        expect(Array.from(fast)).toEqual(Array.from(stock))
      }),
      { numRuns: 30 }
    )
    expect(tf.getGradient("Sum")).toBe(stockSum)
    expect(tf.getGradient("Mean")).toBe(stockMean)
  })
})

describe("auto engine", () => {
  const nameOf = (layer: Layer.Layer<Engine, unknown>) =>
    Effect.runPromise(Effect.scoped(Effect.map(Layer.build(layer), (ctx) => Context.get(ctx, Engine).name)))

  it("falls back to wasm when the addon is not built", async () => {
    expect(await nameOf(EngineLayers.makeAuto({ nativeAddonPath: "/nonexistent/sid_native.node" }))).toBe("wasm")
  })

  it.runIf(built)("runs wasm-native when the addon is built", async () => {
    expect(await nameOf(EngineLayers.layer("auto"))).toBe("wasm-native")
  })
})

/**
 * ‖a − b‖ / max(‖b‖, 0.1). The floor matters for results that are sums with cancellation (a scalar's gradient, a bias
 * gradient): native and cpu kernels sum in different orders, so their float32 results differ by about 1e-6 in absolute
 * terms however small the sum is. A wrong kernel is off by O(1).
 */
const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeL2(a, b, 0.1)


const size = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)

const on = async <A>(backend: "wasm" | "cpu", f: () => A): Promise<A> => {
  await tf.setBackend(backend)
  return f()
}

describe.runIf(built)("native kernels (addon built)", () => {
  const calls = new Map<string, number>()
  let restoreBase: () => void = () => {}
  let restoreNative: () => void = () => {}
  let restoreGradients: () => void = () => {}
  let addon: NativeAddon

  /** The real addon with every call counted, so the tests can tell the native path ran (not a fallback). */
  const counted = (addon: NativeAddon): NativeAddon => {
    const wrap = <K extends keyof NativeAddon>(k: K): NativeAddon[K] =>
      ((...args: Array<never>) => {
        calls.set(k, (calls.get(k) ?? 0) + 1)
        return (addon[k] as (...a: Array<never>) => unknown)(...args)
      }) as NativeAddon[K]
    return {
      conv2d: wrap("conv2d"),
      conv2dBackpropInput: wrap("conv2dBackpropInput"),
      conv2dBackpropFilter: wrap("conv2dBackpropFilter"),
      batchMatMul: wrap("batchMatMul"),
      binary: wrap("binary"),
      sum: wrap("sum"),
      sigmoid: wrap("sigmoid"),
      adam: wrap("adam"),
      groupNorm: wrap("groupNorm"),
      groupNormGrad: wrap("groupNormGrad"),
      copyRows: wrap("copyRows"),
      resizeNearestGrad: wrap("resizeNearestGrad"),
      threads: addon.threads,
      useOneDnn: addon.useOneDnn,
      convLibrary: addon.convLibrary
    }
  }

  const ran = (k: keyof NativeAddon, f: () => unknown) => {
    const before = calls.get(k) ?? 0
    f()
    return (calls.get(k) ?? 0) - before
  }

  beforeAll(async () => {
    await import("@tensorflow/tfjs-backend-wasm")
    addon = counted(loadNativeAddon())
    restoreBase = install([...wasmPatches, ...cpuPatches])
    restoreNative = install(nativePatches(addon))
    restoreGradients = installGradients([groupNormGradient])
    await tf.setBackend("cpu")
    await tf.setBackend("wasm")
    await tf.ready()
  })

  afterAll(() => {
    restoreGradients()
    restoreNative()
    restoreBase()
  })

  /** Runs `f` with the wasm patches alone (native kernels released, then installed again). */
  const withoutNative = <A>(f: () => A): A => {
    restoreNative()
    try {
      return f()
    } finally {
      restoreNative = install(nativePatches(addon))
    }
  }

  type Pad = "same" | "valid" | [[0, 0], [number, number], [number, number], [0, 0]]
  const outSize = (n: number, k: number, s: number, d: number, pad: Pad, axis: 1 | 2) => {
    const ke = (k - 1) * d + 1
    if (pad === "same") return Math.ceil(n / s)
    if (pad === "valid") return Math.ceil((n - ke + 1) / s)
    return Math.floor((n + pad[axis][0] + pad[axis][1] - ke) / s) + 1
  }

  const convCase = fc
    .record({
      b: fc.integer({ min: 1, max: 3 }),
      h: fc.integer({ min: 2, max: 9 }),
      w: fc.integer({ min: 2, max: 9 }),
      cin: fc.integer({ min: 1, max: 5 }),
      cout: fc.integer({ min: 1, max: 5 }),
      kh: fc.integer({ min: 1, max: 3 }),
      kw: fc.integer({ min: 1, max: 3 }),
      stride: fc.constantFrom(1, 2),
      pad: fc.oneof(
        fc.constant<Pad>("same"),
        fc.constant<Pad>("valid"),
        fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2), fc.nat(2)).map(([t, b, l, r]): Pad => [[0, 0], [t, b], [l, r], [0, 0]])
      ),
      bias: fc.boolean(),
      seed: fc.nat()
    })
    .filter((c) => outSize(c.h, c.kh, c.stride, 1, c.pad, 1) >= 1 && outSize(c.w, c.kw, c.stride, 1, c.pad, 2) >= 1)

  type ConvCase = typeof convCase extends fc.Arbitrary<infer A> ? A : never

  /** Value and gradients (x, filter, bias) of Σ r ⊙ fused.conv2d(x, w, b). */
  const convAll = (c: ConvCase) => {
    const xShape = [c.b, c.h, c.w, c.cin] as const
    const wShape = [c.kh, c.kw, c.cin, c.cout] as const
    return tf.tidy(() => {
      const x = tf.tensor4d(randoms(size(xShape), c.seed), [...xShape])
      const w = tf.tensor4d(randoms(size(wShape), c.seed + 1), [...wShape])
      const bias = tf.tensor1d(randoms(c.cout, c.seed + 2))
      const conv = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
        c.bias
          ? tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: c.stride, pad: c.pad, bias: b })
          : tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad)
      const y = conv(x, w, bias)
      const r = tf.tensor(randoms(y.size, c.seed + 3), y.shape)
      const grads = c.bias
        ? tf.grads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => conv(x, w, b).mul(r).sum())([x, w, bias])
        : tf.grads((x: tf.Tensor, w: tf.Tensor) => conv(x, w, bias).mul(r).sum())([x, w])
      return {
        y: y.dataSync().slice(),
        dx: grads[0]!.dataSync().slice(),
        dw: grads[1]!.dataSync().slice(),
        db: grads[2]?.dataSync().slice() ?? new Float32Array()
      }
    })
  }

  it("conv2d / fused.conv2d values and gradients equal the cpu backend's (shapes, kernels, strides, paddings; oneDNN and OpenBLAS)", async () => {
    let native = 0
    await fc.assert(
      fc.asyncProperty(convCase, fc.boolean(), async (c, oneDnn) => {
        addon.useOneDnn(oneDnn)
        let wasm: ReturnType<typeof convAll> | undefined
        native += ran("conv2dBackpropFilter", () => {
          wasm = convAll(c)
        })
        const cpu = await on("cpu", () => convAll(c))
        await tf.setBackend("wasm")
        expect(relErr(wasm!.y, cpu.y)).toBeLessThanOrEqual(1e-5)
        expect(relErr(wasm!.dx, cpu.dx)).toBeLessThanOrEqual(1e-5)
        expect(relErr(wasm!.dw, cpu.dw)).toBeLessThanOrEqual(1e-5)
        expect(relErr(wasm!.db, cpu.db)).toBeLessThanOrEqual(1e-5)
      }),
      { numRuns: 60 }
    )
    addon.useOneDnn(true)
    expect(native).toBeGreaterThan(0)
    expect(calls.get("conv2d") ?? 0).toBeGreaterThan(0)
    expect(calls.get("conv2dBackpropInput") ?? 0).toBeGreaterThan(0)
  })

  it("dilated convolutions: forward equals the cpu backend; gradients equal the patched wasm kernels", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ k: fc.integer({ min: 2, max: 3 }), d: fc.integer({ min: 2, max: 3 }), seed: fc.nat() }),
        async ({ d, k, seed }) => {
          const [b, h, w, cin, cout] = [2, 9, 8, 2, 3]
          const xs = randoms(b * h * w * cin, seed)
          const dys = randoms(b * h * w * cout, seed + 1)
          const fs = randoms(k * k * cin * cout, seed + 2)
          const attrs = { strides: [1, 1], pad: "same", dataFormat: "NHWC", dilations: [d, d] }
          const all = () =>
            tf.tidy(() => {
              const x = tf.tensor4d(xs, [b, h, w, cin])
              const dy = tf.tensor4d(dys, [b, h, w, cout])
              const f = tf.tensor4d(fs, [k, k, cin, cout])
              const y = tf.conv2d(x, f, 1, "same", "NHWC", d)
              const dw = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, { ...attrs, filterShape: [k, k, cin, cout] })
              const dx = tf.engine().runKernel("Conv2DBackpropInput", { dy, filter: f }, { ...attrs, inputShape: [b, h, w, cin] })
              return {
                y: y.dataSync().slice(),
                dw: (dw as tf.Tensor).dataSync().slice(),
                dx: (dx as tf.Tensor).dataSync().slice()
              }
            })
          addon.useOneDnn(false)
          const blas = all()
          addon.useOneDnn(true)
          const native = all()
          const patched = withoutNative(all)
          expect(relErr(blas.y, native.y)).toBeLessThanOrEqual(1e-5)
          expect(relErr(blas.dw, native.dw)).toBeLessThanOrEqual(1e-5)
          expect(relErr(blas.dx, native.dx)).toBeLessThanOrEqual(1e-5)
          const cpuY = await on("cpu", () => tf.tidy(() => tf.conv2d(tf.tensor4d(xs, [b, h, w, cin]), tf.tensor4d(fs, [k, k, cin, cout]), 1, "same", "NHWC", d).dataSync().slice()))
          await tf.setBackend("wasm")
          expect(relErr(native.y, cpuY)).toBeLessThanOrEqual(1e-5)
          expect(relErr(native.dw, patched.dw)).toBeLessThanOrEqual(1e-5)
          expect(relErr(native.dx, patched.dx)).toBeLessThanOrEqual(1e-5)
        }
      ),
      { numRuns: 4 }
    )
  })

  it("batched matMul (transposes, broadcast batch) values and gradients equal the cpu backend's", async () => {
    // Gradients only without batch broadcasting: tfjs's own BatchMatMul gradient does not reduce broadcast batch dims.
    const matCase = fc.record({
      batch: fc.constantFrom<ReadonlyArray<number>>([], [3], [2, 2]),
      broadcast: fc.constantFrom("none", "a", "b"),
      m: fc.integer({ min: 1, max: 40 }),
      k: fc.integer({ min: 1, max: 40 }),
      n: fc.integer({ min: 1, max: 40 }),
      ta: fc.boolean(),
      tb: fc.boolean(),
      seed: fc.nat()
    })
    const before = calls.get("batchMatMul") ?? 0
    await fc.assert(
      fc.asyncProperty(matCase, async (c) => {
        const aBatch = c.broadcast === "a" ? c.batch.map(() => 1) : c.batch
        const bBatch = c.broadcast === "b" ? c.batch.map(() => 1) : c.batch
        const aShape = [...aBatch, ...(c.ta ? [c.k, c.m] : [c.m, c.k])]
        const bShape = [...bBatch, ...(c.tb ? [c.n, c.k] : [c.k, c.n])]
        const run = () =>
          tf.tidy(() => {
            const a = tf.tensor(randoms(size(aShape), c.seed), aShape)
            const b = tf.tensor(randoms(size(bShape), c.seed + 1), bShape)
            const y = tf.matMul(a, b, c.ta, c.tb)
            if (c.broadcast !== "none") return { y: y.dataSync().slice(), da: new Float32Array(), db: new Float32Array() }
            const r = tf.tensor(randoms(y.size, c.seed + 2), y.shape)
            const [da, db] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, c.ta, c.tb).mul(r).sum())([a, b])
            return { y: y.dataSync().slice(), da: da!.dataSync().slice(), db: db!.dataSync().slice() }
          })
        const wasm = run()
        const cpu = await on("cpu", run)
        await tf.setBackend("wasm")
        expect(relErr(wasm.y, cpu.y)).toBeLessThanOrEqual(1e-5)
        expect(relErr(wasm.da, cpu.da)).toBeLessThanOrEqual(1e-5)
        expect(relErr(wasm.db, cpu.db)).toBeLessThanOrEqual(1e-5)
      }),
      { numRuns: 25 }
    )
    expect((calls.get("batchMatMul") ?? 0) - before).toBeGreaterThan(0)
  })

  /** A shape and a broadcast-compatible partner: each dim kept, set to 1, or dropped from the front. */
  const broadcastPair = fc
    .array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 })
    .chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        other: fc.tuple(
          fc.integer({ min: 0, max: shape.length - 1 }),
          fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length })
        ).map(([drop, ones]) => shape.map((d, i) => (ones[i] ? 1 : d)).slice(drop)),
        swap: fc.boolean(),
        seed: fc.nat()
      })
    )

  it("broadcasting add / sub / mul / div / squaredDifference and their gradients equal the cpu backend's", async () => {
    const before = calls.get("binary") ?? 0
    await fc.assert(
      fc.asyncProperty(broadcastPair, async ({ other, seed, shape, swap }) => {
        const [sa, sb] = swap ? [other, shape] : [shape, other]
        const run = () =>
          tf.tidy(() => {
            const a = tf.tensor(randoms(size(sa), seed), sa)
            const b = tf.tensor(randoms(size(sb), seed + 1), sb).add(2)
            const fs = [tf.add, tf.sub, tf.mul, tf.div, tf.squaredDifference] as const
            return fs.map((f) => {
              const y = f(a, b)
              // tfjs's SquaredDifference gradient does not reduce over broadcast dims: values only for it.
              if (f === tf.squaredDifference) return [y.dataSync().slice()]
              const r = tf.tensor(randoms(y.size, seed + 2), y.shape)
              const [da, db] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b).mul(r).sum())([a, b])
              return [y.dataSync().slice(), da!.dataSync().slice(), db!.dataSync().slice()]
            })
          })
        const wasm = run()
        const cpu = await on("cpu", run)
        await tf.setBackend("wasm")
        wasm.forEach((outs, i) => outs.forEach((v, j) => expect(relErr(v, cpu[i]![j]!)).toBeLessThanOrEqual(1e-5)))
      }),
      { numRuns: 30 }
    )
    expect((calls.get("binary") ?? 0) - before).toBeGreaterThan(0)
  })

  it("sigmoid and SiLU values and gradients equal the cpu backend's", async () => {
    const before = calls.get("sigmoid") ?? 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 3 }),
        fc.double({ min: 0.1, max: 60, noNaN: true }),
        fc.nat(),
        async (shape, scale, seed) => {
          const run = () =>
            tf.tidy(() => {
              const x = tf.mul(tf.tensor(randoms(size(shape), seed), shape), scale)
              const silu = (x: tf.Tensor) => tf.mul(x, tf.sigmoid(x))
              const r = tf.tensor(randoms(size(shape), seed + 1), shape)
              const dx = tf.grad((x: tf.Tensor) => silu(x).mul(r).sum())(x)
              return [tf.sigmoid(x), silu(x), dx].map((t) => t.dataSync().slice())
            })
          const wasm = run()
          const cpu = await on("cpu", run)
          await tf.setBackend("wasm")
          wasm.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
        }
      ),
      { numRuns: 25 }
    )
    expect((calls.get("sigmoid") ?? 0) - before).toBeGreaterThan(0)
  })

  it("fused Adam gives the composed update's bits (the cpu backend's), one call per parameter", async () => {
    const before = calls.get("adam") ?? 0
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 70 }), { minLength: 1, maxLength: 3 }),
        fc.record({
          learningRate: fc.double({ min: 1e-6, max: 1e-1, noNaN: true }),
          beta1: fc.constantFrom(0, 0.9),
          beta2: fc.constantFrom(0.99, 0.999),
          epsilon: fc.constantFrom(1e-8, 1e-6)
        }),
        fc.integer({ min: 0, max: 5000 }),
        fc.nat(),
        async (shape, config, step, seed) => {
          const run = () =>
            tf.tidy(() => {
              const t = (k: number, scale: number) => tf.mul(tf.tensor(randoms(size(shape), seed + k), shape), scale)
              const params = { w: t(0, 1), b: t(1, 0.1) }
              const grads = { w: t(2, 3), b: t(3, 1e-3) }
              const m = { w: t(4, 0.5), b: t(5, 0.1) }
              const v = { w: tf.abs(t(6, 2)), b: tf.abs(t(7, 1e-4)) }
              const r = adamUpdate(config, params, grads, { step, m, v })
              return [r.params["w"]!, r.params["b"]!, r.state.m["w"]!, r.state.v["w"]!, r.state.v["b"]!].map((x) =>
                x.dataSync().slice()
              )
            })
          const wasm = run()
          const cpu = await on("cpu", run)
          await tf.setBackend("wasm")
          wasm.forEach((x, i) => expect(Array.from(x)).toEqual(Array.from(cpu[i]!)))
        }
      ),
      { numRuns: 30 }
    )
    expect((calls.get("adam") ?? 0) - before).toBeGreaterThanOrEqual(60)
  })

  const groupNormCase = fc.record({
    n: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 1, max: 9 }),
    w: fc.integer({ min: 1, max: 9 }),
    groups: fc.integer({ min: 1, max: 4 }),
    perGroup: fc.integer({ min: 1, max: 6 }),
    offset: fc.double({ min: -3, max: 3, noNaN: true }),
    scale: fc.double({ min: 0.05, max: 20, noNaN: true }),
    silu: fc.boolean(),
    seed: fc.nat()
  })

  type GroupNormCase = typeof groupNormCase extends fc.Arbitrary<infer T> ? T : never

  /** GroupNorm (+ SiLU) on the active backend: values and the gradients of Σ y·r for x, γ, β. */
  const groupNormRun = (c: GroupNormCase) =>
    tf.tidy(() => {
      const channels = c.groups * c.perGroup
      const shape = [c.n, c.h, c.w, channels]
      const x = tf.add(tf.mul(tf.tensor(randoms(size(shape), c.seed), shape), c.scale), c.offset) as tf.Tensor4D
      const gamma = tf.add(tf.tensor(randoms(channels, c.seed + 1), [channels]), 1)
      const beta = tf.tensor(randoms(channels, c.seed + 2), [channels])
      const r = tf.tensor(randoms(size(shape), c.seed + 3), shape)
      const f = (x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        groupNorm(x as tf.Tensor4D, c.groups, g, b, 1e-5, c.silu ? "silu" : "linear")
      const [dx, dg, db] = tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => f(x, g, b).mul(r).sum())([x, gamma, beta])
      const dxOnly = tf.grad((x: tf.Tensor) => f(x, gamma, beta).mul(r).sum())(x)
      return [f(x, gamma, beta), dx!, dg!, db!, dxOnly].map((t) => t.dataSync().slice())
    })

  it("fused GroupNorm (+ SiLU) values and gradients for x, γ, β equal the composed ops on the cpu backend", async () => {
    const before = [calls.get("groupNorm") ?? 0, calls.get("groupNormGrad") ?? 0]
    await fc.assert(
      fc.asyncProperty(groupNormCase, async (c) => {
        const wasm = groupNormRun(c)
        const cpu = await on("cpu", () => groupNormRun(c))
        await tf.setBackend("wasm")
        wasm.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(2e-4))
      }),
      { numRuns: 40 }
    )
    expect((calls.get("groupNorm") ?? 0) - before[0]!).toBeGreaterThan(0)
    expect((calls.get("groupNormGrad") ?? 0) - before[1]!).toBeGreaterThan(0)
  })

  it("fused GroupNorm over large tensors (several tasks per sample) and with x-only gradients leaks no tensor", async () => {
    const c = { n: 2, h: 32, w: 32, groups: 8, perGroup: 16, offset: 0.5, scale: 2, silu: true, seed: 9 }
    const wasm = groupNormRun(c)
    await turn()
    const cpu = await on("cpu", () => groupNormRun(c))
    await turn()
    await tf.setBackend("wasm")
    wasm.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(2e-4))
    groupNormRun(c)
    const count = tf.memory().numTensors
    for (let i = 0; i < 5; i++) {
      await turn()
      groupNormRun(c)
    }
    expect(tf.memory().numTensors).toBe(count)
  })

  it("sum / mean over any axes (keepDims or not) and moments equal the cpu backend's", async () => {
    const before = calls.get("sum") ?? 0
    const reduceCase = fc
      .array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 5 })
      .chain((shape) =>
        fc.record({
          shape: fc.constant(shape),
          axes: fc.subarray(shape.map((_, i) => i), { minLength: 1 }),
          keepDims: fc.boolean(),
          seed: fc.nat()
        })
      )
    await fc.assert(
      fc.asyncProperty(reduceCase, async ({ axes, keepDims, seed, shape }) => {
        const run = () =>
          tf.tidy(() => {
            const x = tf.tensor(randoms(size(shape), seed), shape)
            const { mean, variance } = tf.moments(x, axes, keepDims)
            return [tf.sum(x, axes, keepDims), tf.mean(x, axes, keepDims), mean, variance].map((t) => ({
              shape: t.shape,
              values: t.dataSync().slice()
            }))
          })
        const wasm = run()
        const cpu = await on("cpu", run)
        await tf.setBackend("wasm")
        wasm.forEach((w, i) => {
          expect(w.shape).toEqual(cpu[i]!.shape)
          expect(relErr(w.values, cpu[i]!.values)).toBeLessThanOrEqual(1e-5)
        })
      }),
      { numRuns: 30 }
    )
    expect((calls.get("sum") ?? 0) - before).toBeGreaterThan(0)
  })

  it("concat / split along any axis, nearest-neighbour upsampling and average-pool gradients, clone/cast equal the cpu backend's", async () => {
    const before = calls.get("copyRows") ?? 0
    const beforeResize = calls.get("resizeNearestGrad") ?? 0
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          b: fc.integer({ min: 1, max: 3 }),
          h: fc.integer({ min: 3, max: 7 }),
          w: fc.integer({ min: 3, max: 7 }),
          c1: fc.integer({ min: 1, max: 4 }),
          c2: fc.integer({ min: 1, max: 4 }),
          axis: fc.integer({ min: 0, max: 3 }),
          scale: fc.integer({ min: 1, max: 3 }),
          alignCorners: fc.boolean(),
          seed: fc.nat()
        }),
        async (c) => {
          const s1 = [c.b, c.h, c.w, c.c1]
          const s2 = [c.b, c.h, c.w, c.c1]
          s2[c.axis] = c.c2
          const run = () =>
            tf.tidy(() => {
              const a = tf.tensor4d(randoms(size(s1), c.seed), s1 as [number, number, number, number])
              const b = tf.tensor4d(randoms(size(s2), c.seed + 1), s2 as [number, number, number, number])
              const cat = tf.concat([a, b], c.axis)
              const [p, q] = tf.split(cat, [s1[c.axis]!, s2[c.axis]!], c.axis)
              const up = (x: tf.Tensor) =>
                tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [c.h * c.scale + 1, c.w * c.scale], c.alignCorners)
              const r = tf.tensor(randoms(size(up(a).shape), c.seed + 2), up(a).shape)
              const dUp = tf.grad((x: tf.Tensor) => up(x).mul(r).sum())(a)
              const copy = tf.clone(a)
              const cast = tf.cast(a, "float32")
              const pool = (x: tf.Tensor) => tf.avgPool(x as tf.Tensor4D, c.scale, c.scale, "valid")
              const rp = tf.tensor(randoms(size(pool(a).shape), c.seed + 3), pool(a).shape)
              const dPool = tf.grad((x: tf.Tensor) => pool(x).mul(rp).sum())(a)
              return [cat, p!, q!, dUp, copy, cast, dPool].map((t) => t.dataSync().slice())
            })
          const wasm = run()
          const cpu = await on("cpu", run)
          await tf.setBackend("wasm")
          wasm.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
        }
      ),
      { numRuns: 25 }
    )
    expect((calls.get("copyRows") ?? 0) - before).toBeGreaterThan(0)
    expect((calls.get("resizeNearestGrad") ?? 0) - beforeResize).toBeGreaterThan(0)
  })

  it("large tensors (several parallel tasks per kernel) give the cpu backend's values", async () => {
    const shape: [number, number, number, number] = [8, 64, 64, 16]
    const xs = randoms(size(shape), 21)
    const parts = [
      (x: tf.Tensor4D) => {
        const g = tf.tensor4d(randoms(8 * 16, 22), [8, 1, 1, 16])
        return [
          tf.sum(x),
          tf.sum(x, [0, 1, 2]),
          tf.sum(x, [1, 2]),
          tf.sum(x, 0),
          tf.mean(x, [0, 3]),
          tf.mul(x, g),
          tf.sub(x, tf.mean(x, [1, 2], true)),
          tf.concat(tf.split(x, [4, 12], 3).reverse(), 3)
        ]
      },
      (x: tf.Tensor4D) => {
        const w = tf.tensor4d(randoms(9 * 8 * 8, 23), [3, 3, 8, 8])
        const xc = tf.slice(x, [0, 0, 0, 0], [4, 32, 32, 8])
        const y = tf.conv2d(xc, w, 1, "same")
        const [dx, dw] = tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same").square().sum())([xc, w])
        return [y, dx!, dw!]
      }
    ]
    const run = async () => {
      const out: Array<Float32Array> = []
      for (const part of parts) {
        await turn()
        out.push(...tf.tidy(() => part(tf.tensor4d(xs, shape)).map((t) => Float32Array.from(t.dataSync() as Float32Array))))
      }
      return out
    }
    const wasm = await run()
    const cpu = await on("cpu", run)
    await tf.setBackend("wasm")
    wasm.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
  })

  it("clone shares data safely: disposing the source keeps the clone's values", () => {
    const before = tf.memory().numTensors
    const a = tf.tensor1d([1, 2, 3])
    const b = tf.clone(a)
    a.dispose()
    expect(Array.from(b.dataSync())).toEqual([1, 2, 3])
    b.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })
})

describe.runIf(built)("wasm-native engine (addon built)", () => {
  it("trains the reference denoiser like the wasm engine (loss, gradients) with a stable tensor count", async () => {
    const shape = { b: 4, h: 16, w: 16, c: 1 }
    const lossAndGrads = (t: typeof tf) => {
      const net = makeReferenceDenoiser(t, shape.c, 3, shape.h, shape.w)
      expect(net.parameterCount).toBe(expectedParameterCount(shape.c))
      const x0 = t.tensor4d(randoms(shape.b * shape.h * shape.w * shape.c, 5), [shape.b, shape.h, shape.w, shape.c])
      const sigma = t.tensor1d([0.1, 0.7, 2.5, 20].slice(0, shape.b))
      const { grads, value } = t.variableGrads(() =>
        t.tidy(() => {
          const s4 = sigma.reshape([shape.b, 1, 1, 1])
          const noisy = t.add(x0, t.mul(s4, t.tensor4d(randoms(x0.size, 6), x0.shape)))
          const input = t.div(noisy, t.sqrt(t.add(t.square(s4), 1))) as tf.Tensor4D
          return t.mean(t.squaredDifference(net.apply(input, sigma), x0)) as tf.Scalar
        }), net.variables as Array<tf.Variable>)
      const out = {
        loss: value.dataSync()[0]!,
        grads: net.variables.map((v) => grads[v.name]!.dataSync().slice())
      }
      t.dispose([value, ...Object.values(grads), x0, sigma])
      net.dispose()
      return out
    }
    const train = (t: typeof tf, steps: number) => {
      const net = makeReferenceDenoiser(t, shape.c, 4, shape.h, shape.w)
      const x0 = t.tensor4d(randoms(shape.b * shape.h * shape.w * shape.c, 9), [shape.b, shape.h, shape.w, shape.c])
      const opt = t.train.adam(1e-3)
      const counts: Array<number> = []
      const losses: Array<number> = []
      for (let i = 0; i < steps; i++) {
        const cost = opt.minimize(
          () => t.mean(t.squaredDifference(net.apply(x0, t.fill([shape.b], 0.5) as tf.Tensor1D), x0)) as tf.Scalar,
          true,
          net.variables as Array<tf.Variable>
        )!
        losses.push(cost.dataSync()[0]!)
        cost.dispose()
        counts.push(t.memory().numTensors)
      }
      opt.dispose()
      x0.dispose()
      net.dispose()
      return { counts, losses }
    }
    const runOn = (layer: Layer.Layer<Engine, unknown>) =>
      Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const ctx = yield* Layer.build(layer)
        const engine = Context.get(ctx, Engine)
        const before = engine.tf.memory().numTensors
        const g = lossAndGrads(engine.tf)
        const trained = train(engine.tf, 6)
        return { g, trained, before, after: engine.tf.memory().numTensors, facts: engine.facts }
      })))
    const native = await runOn(EngineLayers.makeWasmNative())
    const wasm = await runOn(EngineLayers.makeWasm())
    expect(native.facts.patchedKernels).toContain("wasm/Conv2DBackpropFilter (native)")
    expect(Math.abs(native.g.loss - wasm.g.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(wasm.g.loss))
    native.g.grads.forEach((g, i) => expect(relErr(g, wasm.g.grads[i]!)).toBeLessThanOrEqual(1e-4))
    expect(new Set(native.trained.counts.slice(1)).size).toBe(1)
    expect(native.after).toBe(native.before)
    native.trained.losses.forEach((l, i) => expect(Math.abs(l - wasm.trained.losses[i]!)).toBeLessThanOrEqual(1e-4 * Math.abs(l)))
  })

  it("200 training steps (fused GroupNorm + SiLU and Adam): no tensor, byte or wasm-heap growth after warm-up", async () => {
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const t = Context.get(yield* Layer.build(EngineLayers.makeWasmNative()), Engine).tf
      const training = makeReferenceTraining(t, { height: 8, width: 8, channels: 1, batch: 2 })
      const heap = () => (t.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length
      expect([ADAM_KERNEL, GROUP_NORM_KERNEL, GROUP_NORM_GRAD_KERNEL].map((k) => t.getKernel(k, "wasm") !== undefined))
        .toEqual([true, true, true])
      const snapshots: Array<[number, number, number]> = []
      for (let i = 0; i < 200; i++) {
        if (i % 20 === 0) yield* Effect.promise(turn)
        training.step()
        if (i === 19 || i === 199) snapshots.push([t.memory().numTensors, t.memory().numBytes, heap()])
      }
      training.dispose()
      return snapshots
    })))
    expect(result[1]).toEqual(result[0])
  })
})
