import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { installSharedClone } from "../src/engine/SharedClone.js"

// The cpu backend's Identity shares its input's data, as the wasm-native engine's does, so the dispatch-free clone
// is checked here without the native addon.

let identityCalls = 0
let restoreIdentity: () => void = () => {}

beforeAll(async () => {
  await tf.setBackend("cpu")
  const stock = tf.getKernel("Identity", "cpu")!
  tf.unregisterKernel("Identity", "cpu")
  tf.registerKernel({
    ...stock,
    kernelFunc: (args) => {
      identityCalls += 1
      return stock.kernelFunc(args)
    }
  })
  restoreIdentity = () => {
    tf.unregisterKernel("Identity", "cpu")
    tf.registerKernel(stock)
  }
})

afterAll(() => restoreIdentity())

/** A small network-like function whose gradient needs saved inputs and outputs (matMul, add, mul, sigmoid, sum). */
const loss = (x: tf.Tensor2D, w: tf.Tensor2D, b: tf.Tensor1D): tf.Scalar => {
  const z = tf.add(tf.matMul(x, w), b)
  return tf.sum(tf.square(tf.mul(z, tf.sigmoid(z))))
}

const gradsOf = (xs: Float32Array, ws: Float32Array, bs: Float32Array) => {
  const calls0 = identityCalls
  const before = tf.memory().numTensors
  const values = tf.tidy(() => {
    const x = tf.tensor2d(xs, [3, 4])
    const w = tf.tensor2d(ws, [4, 5])
    const b = tf.tensor1d(bs)
    const { grads, value } = tf.valueAndGrads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      loss(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D)
    )([x, w, b])
    return [value.dataSync().slice(), ...grads.map((g) => g.dataSync().slice())]
  })
  return { values, identityCalls: identityCalls - calls0, leaked: tf.memory().numTensors - before }
}

const floats = (n: number) => fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -2, max: 2 })

describe("installSharedClone", () => {
  it("gives TF.js's gradients bit for bit without Identity dispatches for saved tensors, and leaks nothing", () => {
    fc.assert(
      fc.property(floats(12), floats(20), floats(5), (xs, ws, bs) => {
        const stock = gradsOf(xs, ws, bs)
        const restore = installSharedClone("cpu")
        let shared: ReturnType<typeof gradsOf>
        try {
          shared = gradsOf(xs, ws, bs)
        } finally {
          restore()
        }
        expect(stock.identityCalls).toBeGreaterThan(0)
        expect(shared.identityCalls).toBe(0)
        expect(shared.leaked).toBe(0)
        expect(stock.leaked).toBe(0)
        shared.values.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(stock.values[i]!)))
      }),
      { numRuns: 20 }
    )
  })

  it("keeps second derivatives (gradients through saved tensors) right", () => {
    const restore = installSharedClone("cpu")
    try {
      const d2 = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.grad((y: tf.Tensor) => tf.sum(tf.pow(y, 3)))(x))(tf.tensor1d([1, -2, 0.5])).dataSync())
      expect(Array.from(d2)).toEqual([6, -12, 3])
    } finally {
      restore()
    }
  })

  it("leaves other backends to TF.js's clone, and restore puts TF.js's clone back", () => {
    const proto = Object.getPrototypeOf(tf.engine()) as { clone: unknown }
    const original = proto.clone
    const restore = installSharedClone("wasm")
    expect(proto.clone).not.toBe(original)
    const calls0 = identityCalls
    tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, x)))(tf.tensor1d([1, 2])).dataSync())
    expect(identityCalls - calls0).toBeGreaterThan(0)
    restore()
    expect(proto.clone).toBe(original)
  })
})
