import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RawKernelFunc } from "../src/engine/kernels/Backend.js"
import { cpuPatches, install, wasmPatches } from "../src/engine/kernels/Patches.js"
import { resizeNearestNeighborGradValues } from "../src/engine/kernels/ResizeNearestNeighborGrad.js"
import { relativeL2 } from "./support/errors.js"
import { randoms } from "./support/random.js"

type Shape4 = [number, number, number, number]
type Pad = "same" | "valid" | [[0, 0], [number, number], [number, number], [0, 0]]

let restore: () => void = () => {}
let stockCpuResizeGrad: RawKernelFunc

beforeAll(async () => {
  await import("@tensorflow/tfjs-backend-wasm")
  stockCpuResizeGrad = tf.getKernel("ResizeNearestNeighborGrad", "cpu").kernelFunc as RawKernelFunc
  restore = install([...wasmPatches, ...cpuPatches])
  await tf.setBackend("cpu")
  await tf.setBackend("wasm")
  await tf.ready()
})

afterAll(() => restore())

const on = async <A>(backend: "wasm" | "cpu", f: () => A): Promise<A> => {
  await tf.setBackend(backend)
  return f()
}

const relErr = (a: ArrayLike<number>, b: ArrayLike<number>): number => relativeL2(a, b, 1e-2)


const size = (shape: ReadonlyArray<number>) => shape.reduce((a, b) => a * b, 1)

const convOutSize = (n: number, k: number, stride: number, pad: Pad, axis: 1 | 2): number => {
  if (pad === "same") return Math.ceil(n / stride)
  if (pad === "valid") return Math.ceil((n - k + 1) / stride)
  return Math.floor((n + pad[axis][0] + pad[axis][1] - k) / stride) + 1
}

const convCase = fc
  .record({
    b: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 2, max: 8 }),
    w: fc.integer({ min: 2, max: 8 }),
    cin: fc.integer({ min: 1, max: 4 }),
    cout: fc.integer({ min: 1, max: 4 }),
    kh: fc.integer({ min: 1, max: 4 }),
    kw: fc.integer({ min: 1, max: 4 }),
    stride: fc.constantFrom(1, 2),
    pad: fc.oneof(
      fc.constant<Pad>("same"),
      fc.constant<Pad>("valid"),
      fc.tuple(fc.nat(2), fc.nat(2), fc.nat(2), fc.nat(2)).map(([t, b, l, r]): Pad => [[0, 0], [t, b], [l, r], [0, 0]])
    ),
    seed: fc.nat()
  })
  .filter((c) =>
    convOutSize(c.h, c.kh, c.stride, c.pad, 1) >= 1 && convOutSize(c.w, c.kw, c.stride, c.pad, 2) >= 1
  )

type ConvCase = typeof convCase extends fc.Arbitrary<infer A> ? A : never

const convGrads = (c: ConvCase) => {
  const xShape: Shape4 = [c.b, c.h, c.w, c.cin]
  const wShape: Shape4 = [c.kh, c.kw, c.cin, c.cout]
  const xs = randoms(size(xShape), c.seed)
  const ws = randoms(size(wShape), c.seed + 1)
  return tf.tidy(() => {
    const x = tf.tensor4d(xs, xShape)
    const w = tf.tensor4d(ws, wShape)
    const y0 = tf.conv2d(x, w, c.stride, c.pad)
    const r = tf.tensor(randoms(y0.size, c.seed + 2), y0.shape)
    const [dx, dw] = tf.grads((x: tf.Tensor, w: tf.Tensor) =>
      tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.stride, c.pad).mul(r).sum()
    )([x, w])
    return { dx: dx!.dataSync().slice(), dw: dw!.dataSync().slice() }
  })
}

describe("wasm conv2d gradients (patched Conv2DBackpropFilter / Conv2DBackpropInput)", () => {
  it("equal the cpu backend's gradients over shapes, kernel sizes, strides and paddings", async () => {
    await fc.assert(
      fc.asyncProperty(convCase, async (c) => {
        const wasm = await on("wasm", () => convGrads(c))
        const cpu = await on("cpu", () => convGrads(c))
        expect(relErr(wasm.dx, cpu.dx)).toBeLessThanOrEqual(1e-5)
        expect(relErr(wasm.dw, cpu.dw)).toBeLessThanOrEqual(1e-5)
      }),
      { numRuns: 100 }
    )
  })

  it("handles NCHW (filter gradient) like the cpu backend", async () => {
    const c = { b: 2, h: 6, w: 5, cin: 3, cout: 4, k: 3 }
    const xs = randoms(c.b * c.h * c.w * c.cin, 7)
    const dys = randoms(c.b * c.h * c.w * c.cout, 8)
    const dwOf = (format: "NHWC" | "NCHW") =>
      tf.tidy(() => {
        const xNhwc = tf.tensor4d(xs, [c.b, c.h, c.w, c.cin])
        const dyNhwc = tf.tensor4d(dys, [c.b, c.h, c.w, c.cout])
        const x = format === "NCHW" ? xNhwc.transpose([0, 3, 1, 2]) : xNhwc
        const dy = format === "NCHW" ? dyNhwc.transpose([0, 3, 1, 2]) : dyNhwc
        return (tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
          strides: [1, 1],
          pad: "same",
          dataFormat: format,
          filterShape: [c.k, c.k, c.cin, c.cout]
        }) as tf.Tensor).dataSync().slice()
      })
    const wasm = await on("wasm", () => dwOf("NCHW"))
    const cpu = await on("cpu", () => dwOf("NHWC"))
    expect(relErr(wasm, cpu)).toBeLessThanOrEqual(1e-5)
  })

  it("supports dilations given in the attrs (reference: cpu with a zero-inserted filter)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ k: fc.integer({ min: 2, max: 3 }), d: fc.integer({ min: 2, max: 3 }), seed: fc.nat() }),
        async ({ d, k, seed }) => {
          const [b, h, w, cin, cout] = [2, 9, 8, 2, 3]
          const kd = (k - 1) * d + 1
          const xs = randoms(b * h * w * cin, seed)
          const dys = randoms(b * h * w * cout, seed + 1)
          const fs = randoms(k * k * cin * cout, seed + 2)
          const grads = (dilated: boolean) =>
            tf.tidy(() => {
              const x = tf.tensor4d(xs, [b, h, w, cin])
              const dy = tf.tensor4d(dys, [b, h, w, cout])
              const f = tf.tensor4d(fs, [k, k, cin, cout])
              const attrs = { strides: [1, 1], pad: "same", dataFormat: "NHWC" }
              if (dilated) {
                const dw = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
                  ...attrs,
                  filterShape: [k, k, cin, cout],
                  dilations: [d, d]
                }) as tf.Tensor
                const dx = tf.engine().runKernel("Conv2DBackpropInput", { dy, filter: f }, {
                  ...attrs,
                  inputShape: [b, h, w, cin],
                  dilations: [d, d]
                }) as tf.Tensor
                return { dw: dw.dataSync().slice(), dx: dx.dataSync().slice() }
              }
              const wide = tf.engine().runKernel("Conv2DBackpropFilter", { x, dy }, {
                ...attrs,
                filterShape: [kd, kd, cin, cout]
              }) as tf.Tensor
              const dw = tf.stridedSlice(wide, [0, 0, 0, 0], [kd, kd, cin, cout], [d, d, 1, 1])
              const inserted = new Float32Array(kd * kd * cin * cout)
              for (let i = 0; i < k; i++) {
                for (let j = 0; j < k; j++) {
                  for (let q = 0; q < cin * cout; q++) {
                    inserted[((i * d) * kd + j * d) * cin * cout + q] = fs[(i * k + j) * cin * cout + q]!
                  }
                }
              }
              const dx = tf.engine().runKernel("Conv2DBackpropInput", { dy, filter: tf.tensor4d(inserted, [kd, kd, cin, cout]) }, {
                ...attrs,
                inputShape: [b, h, w, cin]
              }) as tf.Tensor
              return { dw: dw.dataSync().slice(), dx: dx.dataSync().slice() }
            })
          const wasm = await on("wasm", () => grads(true))
          const cpu = await on("cpu", () => grads(false))
          expect(relErr(wasm.dw, cpu.dw)).toBeLessThanOrEqual(1e-5)
          expect(relErr(wasm.dx, cpu.dx)).toBeLessThanOrEqual(1e-5)
        }
      ),
      { numRuns: 6 }
    )
  })

  it("gives fused.conv2d (bias, relu) and conv2dTranspose the cpu backend's gradients", async () => {
    const xs = randoms(2 * 6 * 6 * 3, 11)
    const ws = randoms(3 * 3 * 3 * 5, 12)
    const bs = randoms(5, 13)
    const ts = randoms(2 * 2 * 2 * 3, 14)
    const grads = () =>
      tf.tidy(() => {
        const x = tf.tensor4d(xs, [2, 6, 6, 3])
        const w = tf.tensor4d(ws, [3, 3, 3, 5])
        const bias = tf.tensor1d(bs)
        const t = tf.tensor4d(ts, [2, 2, 2, 3])
        const g = tf.grads((x: tf.Tensor, w: tf.Tensor, bias: tf.Tensor, t: tf.Tensor) => {
          const y = tf.fused.conv2d({
            x: x as tf.Tensor4D,
            filter: w as tf.Tensor4D,
            strides: 1,
            pad: "same",
            bias,
            activation: "relu"
          })
          const up = tf.conv2dTranspose(x as tf.Tensor4D, t as tf.Tensor4D, [2, 12, 12, 2], 2, "same")
          return y.square().sum().add(up.square().sum())
        })([x, w, bias, t])
        return g.map((gi) => gi.dataSync().slice())
      })
    const wasm = await on("wasm", grads)
    const cpu = await on("cpu", grads)
    wasm.forEach((g, i) => expect(relErr(g, cpu[i]!)).toBeLessThanOrEqual(1e-5))
  })
})

describe("wasm BatchMatMul with transposed operands (patched)", () => {
  it("equals the cpu backend's product, and dense-layer gradients match, for every transpose combination", async () => {
    fc.assert(
      fc.asyncProperty(
        fc.record({
          batch: fc.integer({ min: 1, max: 3 }),
          m: fc.integer({ min: 1, max: 9 }),
          k: fc.integer({ min: 1, max: 9 }),
          n: fc.integer({ min: 1, max: 9 }),
          ta: fc.boolean(),
          tb: fc.boolean(),
          seed: fc.integer({ min: 1, max: 1000 })
        }),
        async ({ batch, k, m, n, seed, ta, tb }) => {
          const aShape: [number, number, number] = ta ? [batch, k, m] : [batch, m, k]
          const bShape: [number, number, number] = tb ? [batch, n, k] : [batch, k, n]
          const av = randoms(size(aShape), seed)
          const bv = randoms(size(bShape), seed + 1)
          const product = () =>
            tf.tidy(() => tf.matMul(tf.tensor(av, aShape) as tf.Tensor3D, tf.tensor(bv, bShape) as tf.Tensor3D, ta, tb).dataSync())
          const grads = () =>
            tf.tidy(() => {
              const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, ta, tb))))
              return g([tf.tensor(av, aShape), tf.tensor(bv, bShape)]).map((t) => t.dataSync())
            })
          expect(relErr(await on("wasm", product), await on("cpu", product))).toBeLessThanOrEqual(1e-5)
          const [wa, wb] = await on("wasm", grads)
          const [ca, cb] = await on("cpu", grads)
          expect(relErr(wa!, ca!)).toBeLessThanOrEqual(1e-5)
          expect(relErr(wb!, cb!)).toBeLessThanOrEqual(1e-5)
        }
      ),
      { numRuns: 60 }
    )
  })
})

describe("wasm cpu-delegated kernels", () => {
  it("depthwiseConv2d gradients equal the cpu backend's", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          stride: fc.constantFrom(1, 2),
          pad: fc.constantFrom<"same" | "valid">("same", "valid"),
          k: fc.integer({ min: 1, max: 3 }),
          mult: fc.integer({ min: 1, max: 2 }),
          seed: fc.nat()
        }),
        async ({ k, mult, pad, seed, stride }) => {
          const xs = randoms(2 * 5 * 6 * 3, seed)
          const ws = randoms(k * k * 3 * mult, seed + 1)
          const grads = () =>
            tf.tidy(() => {
              const g = tf.grads((x: tf.Tensor, w: tf.Tensor) =>
                tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, pad).square().sum()
              )([tf.tensor4d(xs, [2, 5, 6, 3]), tf.tensor4d(ws, [k, k, 3, mult])])
              return g.map((gi) => gi.dataSync().slice())
            })
          const wasm = await on("wasm", grads)
          const cpu = await on("cpu", grads)
          wasm.forEach((g, i) => expect(relErr(g, cpu[i]!)).toBeLessThanOrEqual(1e-5))
        }
      ),
      { numRuns: 10 }
    )
  })

  it("gather (UnsortedSegmentSum) gradients equal the cpu backend's", async () => {
    const grads = () =>
      tf.tidy(() => {
        const table = tf.tensor2d(randoms(6 * 4, 3), [6, 4])
        const idx = tf.tensor1d([0, 5, 2, 2, 0, 3], "int32")
        const r = tf.tensor2d(randoms(6 * 4, 4), [6, 4])
        return tf.grad((t: tf.Tensor) => tf.gather(t, idx).mul(r).sum())(table).dataSync().slice()
      })
    const wasm = await on("wasm", grads)
    const cpu = await on("cpu", grads)
    expect(relErr(wasm, cpu)).toBeLessThanOrEqual(1e-5)
    expect(Array.from(wasm.slice(4, 8))).toEqual([0, 0, 0, 0])
  })
})

const resizeCase = fc
  .record({
    b: fc.integer({ min: 1, max: 3 }),
    h: fc.integer({ min: 1, max: 5 }),
    w: fc.integer({ min: 1, max: 5 }),
    c: fc.integer({ min: 1, max: 3 }),
    oh: fc.integer({ min: 1, max: 11 }),
    ow: fc.integer({ min: 1, max: 11 }),
    mode: fc.constantFrom("default", "alignCorners", "halfPixelCenters"),
    seed: fc.nat()
  })

type ResizeCase = typeof resizeCase extends fc.Arbitrary<infer A> ? A : never

const resizeFlags = (c: ResizeCase): [boolean, boolean] => [c.mode === "alignCorners", c.mode === "halfPixelCenters"]

/** Independent reference: read the forward op's source pixel from an index image, then scatter-add dy in plain JS. */
const scatterReference = async (c: ResizeCase, dy: Float32Array): Promise<Float32Array> => {
  const [alignCorners, halfPixelCenters] = resizeFlags(c)
  const source = await on("cpu", () =>
    tf.tidy(() =>
      tf.image.resizeNearestNeighbor(
        tf.range(0, c.b * c.h * c.w * c.c).reshape([c.b, c.h, c.w, c.c]) as tf.Tensor4D,
        [c.oh, c.ow],
        alignCorners,
        halfPixelCenters
      ).dataSync().slice()
    )
  )
  const dx = new Float32Array(c.b * c.h * c.w * c.c)
  for (let i = 0; i < dy.length; i++) dx[source[i]!]! += dy[i]!
  return dx
}

const resizeGrad = (c: ResizeCase, dy: Float32Array): Float32Array => {
  const [alignCorners, halfPixelCenters] = resizeFlags(c)
  return tf.tidy(() => {
    const x = tf.zeros([c.b, c.h, c.w, c.c]) as tf.Tensor4D
    const r = tf.tensor4d(dy, [c.b, c.oh, c.ow, c.c])
    return tf.grad((x: tf.Tensor) =>
      tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [c.oh, c.ow], alignCorners, halfPixelCenters).mul(r).sum()
    )(x).dataSync().slice() as Float32Array
  })
}

describe("ResizeNearestNeighborGrad (fixed cpu kernel, patched wasm kernel)", () => {
  it("equals a hand-written scatter-add of dy on both backends (alignCorners, halfPixelCenters)", async () => {
    await fc.assert(
      fc.asyncProperty(resizeCase, async (c) => {
        const dy = randoms(c.b * c.oh * c.ow * c.c, c.seed)
        const ref = await scatterReference(c, dy)
        expect(relErr(await on("cpu", () => resizeGrad(c, dy)), ref)).toBeLessThanOrEqual(1e-5)
        expect(relErr(await on("wasm", () => resizeGrad(c, dy)), ref)).toBeLessThanOrEqual(1e-5)
        const [alignCorners, halfPixelCenters] = resizeFlags(c)
        const pure = resizeNearestNeighborGradValues([c.b, c.h, c.w, c.c], [c.b, c.oh, c.ow, c.c], dy, alignCorners, halfPixelCenters)
        expect(relErr(pure, ref)).toBeLessThanOrEqual(1e-5)
      }),
      { numRuns: 60 }
    )
  })

  it("fixes a real bug: the stock cpu kernel is wrong for batch > 1 and right for batch 1", async () => {
    const stock = async (c: ResizeCase, dy: Float32Array) =>
      on("cpu", () =>
        tf.tidy(() => {
          const backend = tf.backend() as unknown as { readSync: (id: tf.DataId) => Float32Array; disposeData: (id: tf.DataId) => boolean }
          const images = tf.zeros([c.b, c.h, c.w, c.c])
          const dyT = tf.tensor4d(dy, [c.b, c.oh, c.ow, c.c])
          const out = stockCpuResizeGrad({
            inputs: { images, dy: dyT },
            backend,
            attrs: { alignCorners: false, halfPixelCenters: false }
          }) as tf.TensorInfo
          const values = backend.readSync(out.dataId).slice()
          backend.disposeData(out.dataId)
          return values
        })
      )
    for (const shape of [[2, 3, 3, 2], [2, 8, 8, 4], [3, 4, 4, 1]] as const) {
      const [b, h, w, ch] = shape
      const c: ResizeCase = { b, h, w, c: ch, oh: 2 * h, ow: 2 * w, mode: "default", seed: 5 }
      const dy = randoms(b * 4 * h * w * ch, 99)
      const ref = await scatterReference(c, dy)
      const fixed = await on("cpu", () => resizeGrad(c, dy))
      expect(relErr(fixed, ref)).toBeLessThanOrEqual(1e-5)
      const bad = await stock(c, dy)
      const perSample = h * w * ch
      expect(relErr(bad.slice(0, perSample), ref.slice(0, perSample))).toBeLessThanOrEqual(1e-5)
      expect(relErr(bad, ref)).toBeGreaterThan(0.1)
      const solo: ResizeCase = { ...c, b: 1 }
      const soloDy = dy.slice(0, c.oh * c.ow * ch)
      expect(relErr(await stock(solo, soloDy), await scatterReference(solo, soloDy))).toBeLessThanOrEqual(1e-5)
    }
  })
})

describe("batch consistency and memory", () => {
  it("the gradient of sample i in a batch equals its solo gradient (conv on wasm, resize on cpu and wasm)", async () => {
    const b = 3
    const xs = randoms(b * 6 * 6 * 2, 21)
    const ws = randoms(3 * 3 * 2 * 4, 22)
    const perSample = 6 * 6 * 2
    const net = (x: tf.Tensor, w: tf.Tensor) => {
      const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same")
      const back = (w as tf.Tensor4D).transpose([0, 1, 3, 2]).slice([0, 0, 0, 0], [3, 3, 4, 2]) as tf.Tensor4D
      const z = tf.conv2d(y, back, 2, "same")
      return tf.image.resizeNearestNeighbor(z.relu() as tf.Tensor4D, [6, 6]).square().sum()
    }
    const dxOf = (n: number, from: number) =>
      tf.tidy(() => {
        const x = tf.tensor4d(xs.slice(from * perSample, (from + n) * perSample), [n, 6, 6, 2])
        return tf.grad((x: tf.Tensor) => net(x, tf.tensor4d(ws, [3, 3, 2, 4])))(x).dataSync().slice()
      })
    for (const backend of ["wasm", "cpu"] as const) {
      const batch = await on(backend, () => dxOf(b, 0))
      for (let i = 0; i < b; i++) {
        const solo = await on(backend, () => dxOf(1, i))
        expect(relErr(batch.slice(i * perSample, (i + 1) * perSample), solo)).toBeLessThanOrEqual(1e-5)
      }
    }
  })

  it("leaves tf.memory() numTensors and data buffers unchanged after many calls", async () => {
    const c: ConvCase = { b: 2, h: 7, w: 7, cin: 3, cout: 4, kh: 3, kw: 3, stride: 1, pad: "same", seed: 1 }
    const r: ResizeCase = { b: 2, h: 3, w: 3, c: 2, oh: 6, ow: 6, mode: "halfPixelCenters", seed: 2 }
    for (const backend of ["wasm", "cpu"] as const) {
      await tf.setBackend(backend)
      convGrads(c)
      const before = tf.memory()
      for (let i = 0; i < 25; i++) {
        convGrads({ ...c, stride: i % 2 === 0 ? 1 : 2, pad: i % 3 === 0 ? "valid" : "same" })
        resizeGrad(r, randoms(2 * 6 * 6 * 2, i))
        tf.tidy(() => {
          const idx = tf.tensor1d([1, 0, 1], "int32")
          tf.grad((t: tf.Tensor) => tf.gather(t, idx).sum())(tf.ones([2, 3])).dataSync()
          tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.depthwiseConv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, "same").sum())([
            tf.ones([1, 4, 4, 2]),
            tf.ones([3, 3, 2, 1])
          ])
        })
      }
      const after = tf.memory()
      expect(after.numTensors).toBe(before.numTensors)
      expect(after.numDataBuffers).toBe(before.numDataBuffers)
    }
  })
})
