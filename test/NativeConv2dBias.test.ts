import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { CONV2D_BIAS_KERNEL, CONV2D_FILTER_BIAS_GRAD_KERNEL, conv2dBias, type Conv2dPadding } from "../src/domain/nn/Conv2d.js"
import { loadNativeAddon, nativeAddonPath } from "../src/engine/kernels/Native.js"
import { turn } from "./support/turn.js"
import { relativeL2 } from "./support/errors.js"
import { randoms } from "./support/random.js"
import { useEngine } from "./support/distillation.js"

fc.configureGlobal({ asyncBeforeEach: turn })

const built = (() => {
  try {
    return existsSync(nativeAddonPath()) && loadNativeAddon() !== undefined
  } catch {
    return false
  }
})()

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeL2(a, b, 0.1)


interface Case {
  readonly b: number
  readonly h: number
  readonly w: number
  readonly cin: number
  readonly cout: number
  readonly k: number
  readonly stride: number
  readonly pad: Conv2dPadding
  readonly seed: number
}

const convCase = fc.record({
  b: fc.integer({ min: 1, max: 3 }),
  h: fc.integer({ min: 3, max: 9 }),
  w: fc.integer({ min: 3, max: 9 }),
  cin: fc.integer({ min: 1, max: 6 }),
  cout: fc.integer({ min: 1, max: 6 }),
  k: fc.constantFrom(1, 3),
  stride: fc.constantFrom(1, 2),
  pad: fc.constantFrom<Conv2dPadding>("same", "valid"),
  seed: fc.nat()
})

/** y = conv2dBias(x, f, b) and the gradients of Σ y·r for x, f and b. */
const run = (c: Case) =>
  tf.tidy(() => {
    const x = tf.tensor4d(randoms(c.b * c.h * c.w * c.cin, c.seed), [c.b, c.h, c.w, c.cin])
    const f = tf.tensor4d(randoms(c.k * c.k * c.cin * c.cout, c.seed + 1), [c.k, c.k, c.cin, c.cout])
    const bias = tf.tensor1d(randoms(c.cout, c.seed + 2))
    const y = conv2dBias(x, f, bias, c.stride, c.pad)
    const r = tf.tensor(randoms(y.size, c.seed + 3), y.shape)
    const grads = tf.grads((x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(conv2dBias(x as tf.Tensor4D, f as tf.Tensor4D, b, c.stride, c.pad), r))
    )([x, f, bias])
    return [y, ...grads].map((t) => t.dataSync().slice())
  })

describe.runIf(built)("convolution-with-bias kernel on wasm-native (addon built)", () => {
  let release: () => Promise<void>

  beforeAll(async () => {
    release = await useEngine("wasm-native")
  })

  afterAll(() => release())

  it("values and gradients for x, filter and bias equal tf.fused.conv2d on the cpu backend (kernels, strides, paddings)", async () => {
    await fc.assert(
      fc.asyncProperty(convCase, async (c) => {
        await tf.setBackend("wasm")
        const profile = await tf.profile(() => run(c))
        const names = profile.kernels.map((k) => k.name)
        expect(names).toContain(CONV2D_BIAS_KERNEL)
        expect(names).toContain(CONV2D_FILTER_BIAS_GRAD_KERNEL)
        const before = tf.memory().numTensors
        const native = run(c)
        expect(tf.memory().numTensors).toBe(before)
        await tf.setBackend("cpu")
        const cpu = run(c)
        native.forEach((v, i) => expect(relErr(v, cpu[i]!)).toBeLessThanOrEqual(1e-5))
      }),
      { numRuns: 40 }
    )
    await tf.setBackend("wasm")
  })

  it("computes no input gradient when only the weights need one", async () => {
    await tf.setBackend("wasm")
    const profile = await tf.profile(() =>
      tf.tidy(() => {
        const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D
        const f = tf.variable(tf.randomNormal([3, 3, 3, 4]))
        const b = tf.variable(tf.zeros([4]))
        const { grads } = tf.variableGrads(() => tf.sum(conv2dBias(x, f as tf.Tensor as tf.Tensor4D, b)), [f, b])
        const out = [grads[f.name]!.dataSync(), grads[b.name]!.dataSync()]
        f.dispose()
        b.dispose()
        return out
      })
    )
    const names = profile.kernels.map((k) => k.name)
    expect(names).toContain(CONV2D_FILTER_BIAS_GRAD_KERNEL)
    expect(names).not.toContain("Conv2DBackpropInput")
  })

  it("computes no filter or bias gradient for a frozen convolution, and the same bits either way", async () => {
    await tf.setBackend("wasm")
    const c: Case = { b: 2, h: 8, w: 8, cin: 3, cout: 4, k: 3, stride: 1, pad: "same", seed: 11 }
    const inputs = () => [
      tf.tensor4d(randoms(c.b * c.h * c.w * c.cin, c.seed), [c.b, c.h, c.w, c.cin]),
      tf.tensor4d(randoms(c.k * c.k * c.cin * c.cout, c.seed + 1), [c.k, c.k, c.cin, c.cout]),
      tf.tensor1d(randoms(c.cout, c.seed + 2))
    ] as const
    const loss = (x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(conv2dBias(x as tf.Tensor4D, f as tf.Tensor4D, b)))
    const inputOnly = await tf.profile(() =>
      tf.tidy(() => {
        const [x, f, b] = inputs()
        return tf.grad((x: tf.Tensor) => loss(x, f, b))(x).dataSync()
      })
    )
    const names = inputOnly.kernels.map((k) => k.name)
    expect(names).toContain("Conv2DBackpropInput")
    expect(names).not.toContain(CONV2D_FILTER_BIAS_GRAD_KERNEL)
    const [dfilter, dbias] = tf.tidy(() => {
      const [x, f, b] = inputs()
      return tf.grads((f: tf.Tensor, b: tf.Tensor) => loss(x, f, b))([f, b]).map((g) => Array.from(g.dataSync()))
    })
    const [both, filterOnly, biasOnly] = tf.tidy(() => {
      const [x, f] = inputs()
      const dy = tf.mul(2, conv2dBias(x as tf.Tensor4D, f as tf.Tensor4D, inputs()[2]))
      const attrs = { strides: [1, 1], pad: "same", dilations: [1, 1], filterShape: f.shape }
      const run = (only?: string) =>
        (tf.engine().runKernel(CONV2D_FILTER_BIAS_GRAD_KERNEL, { x, dy }, { ...attrs, ...(only === undefined ? {} : { only }) }) as unknown as Array<tf.Tensor>)
          .map((t) => Array.from(t.dataSync()))
      return [run(), run("filter"), run("bias")]
    })
    expect(filterOnly).toEqual([both[0]])
    expect(biasOnly).toEqual([both[1]])
    expect(dfilter).toEqual(both[0])
    expect(dbias).toEqual(both[1])
  })

  it("allocates its outputs before taking heap views: a heap that grows at an allocation leaves the gradients as they were", async () => {
    await tf.setBackend("wasm")
    const backend = tf.backend() as unknown as {
      makeOutput: (...args: Array<unknown>) => unknown
      readonly wasm: { readonly HEAPU8: Uint8Array; readonly _malloc: (n: number) => number; readonly _free: (p: number) => void }
    }
    const grads = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(randoms(2 * 8 * 8 * 3, 21), [2, 8, 8, 3])
        const f = tf.tensor4d(randoms(3 * 3 * 3 * 4, 22), [3, 3, 3, 4])
        const b = tf.tensor1d(randoms(4, 23))
        return tf.grads((x: tf.Tensor, f: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(conv2dBias(x as tf.Tensor4D, f as tf.Tensor4D, b))))([x, f, b])
          .map((g) => Array.from(g.dataSync()))
      })
    const expected = grads()
    const makeOutput = backend.makeOutput
    let grown = 0
    // The filter gradient's allocation first grows the heap (a block as large as the heap, allocated and freed
    // again), which detaches every view taken before it: WebAssembly memory growth replaces the heap's buffer.
    backend.makeOutput = (...args) => {
      if (grown < 4 && JSON.stringify(args[0]) === "[3,3,3,4]") {
        const before = backend.wasm.HEAPU8.buffer
        backend.wasm._free(backend.wasm._malloc(backend.wasm.HEAPU8.length))
        if (backend.wasm.HEAPU8.buffer !== before) grown++
      }
      return makeOutput.apply(backend, args)
    }
    let again: Array<Array<number>>
    try {
      again = grads()
    } finally {
      backend.makeOutput = makeOutput
    }
    expect(grown).toBeGreaterThan(0)
    expect(again).toEqual(expected)
  })
})
