import * as tf from "@tensorflow/tfjs"
import { existsSync } from "node:fs"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { DENSE_KERNEL, dense, type DenseActivation } from "../src/domain/nn/Dense.js"
import { GROUP_NORM_KERNEL, groupNorm } from "../src/domain/nn/GroupNorm.js"
import { loadNativeAddon, nativeAddonPath } from "../src/engine/kernels/Native.js"
import { useEngine } from "./support/distillation.js"
import { randoms } from "./support/random.js"

const randomTensor = (shape: Array<number>, seed: number): tf.Tensor =>
  tf.tensor(randoms(shape.reduce((a, b) => a * b, 1), seed, 2), shape)

const nativeBuilt = (() => {
  try {
    return existsSync(nativeAddonPath()) && loadNativeAddon() !== undefined
  } catch {
    return false
  }
})()

/** The fused dense layer recorded the ordinary way: one tape node with all of the kernel's outputs. */
const denseOrdinary = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, activation: DenseActivation): tf.Tensor =>
  (tf.engine().runKernel(DENSE_KERNEL, { x, w, b }, { activation }) as unknown as Array<tf.Tensor>)[0]!

describe("fused kernels on the tape with their first output only (runFirstOutput) on the wasm engine", () => {
  let release: () => Promise<void>

  beforeAll(async () => {
    release = await useEngine("wasm")
  })

  afterAll(() => release())

  const [m, k, n] = [256, 24, 64]
  const gradsOf = (layer: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
    tf.tidy(() => {
      const x = randomTensor([m, k], 1)
      const w = randomTensor([k, n], 2)
      const b = randomTensor([n], 3)
      const r = randomTensor([m, n], 4)
      const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(layer(x, w, b), r))
      return tf.grads(f)([x, w, b]).map((g) => g.dataSync().slice())
    })

  it("gives the same bits as the ordinary recording, for x, w and b, linear and SiLU", () => {
    expect(tf.getBackend()).toBe("wasm")
    expect(tf.getKernel(DENSE_KERNEL, "wasm")).toBeDefined()
    for (const activation of ["linear", "silu"] as const) {
      const fused = gradsOf((x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b, activation))
      const ordinary = gradsOf((x, w, b) => denseOrdinary(x, w, b, activation))
      fused.forEach((g, i) => expect(Array.from(g)).toEqual(Array.from(ordinary[i]!)))
      expect(fused.some((g) => g.some((v) => v !== 0))).toBe(true)
    }
  })

  it("the backward pass builds no zero arrays for the outputs only the gradient reads", async () => {
    const peak = async (layer: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
      (await tf.profile(() => gradsOf(layer))).peakBytes
    const fused = await peak((x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b, "silu"))
    const ordinary = await peak((x, w, b) => denseOrdinary(x, w, b, "silu"))
    // The ordinary recording fills zeros for z and σ(z), [m,n] each, and keeps them to the end of the backward pass.
    expect(ordinary - fused).toBeGreaterThanOrEqual(2 * m * n * 4)
  })

  it("keeps nothing without a tape and leaks nothing over repeated gradient steps", () => {
    const x = randomTensor([m, k], 5)
    const w = randomTensor([k, n], 6)
    const b = randomTensor([n], 7)
    const before = tf.memory().numTensors
    for (let i = 0; i < 20; i++) tf.tidy(() => dense(x as tf.Tensor2D, w as tf.Tensor2D, b, "silu").dataSync())
    expect(tf.memory().numTensors).toBe(before)
    for (let i = 0; i < 20; i++) gradsOf((x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b, "silu"))
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, w, b])
  })
})

describe.runIf(nativeBuilt)("fused kernels with their first output only on wasm-native (addon built)", () => {
  let release: () => Promise<void>

  beforeAll(async () => {
    release = await useEngine("wasm-native")
  })

  afterAll(() => release())

  it("dense and GroupNorm (+ SiLU) gradients are the same bits as the ordinary recording", () => {
    expect([DENSE_KERNEL, GROUP_NORM_KERNEL].map((name) => tf.getKernel(name, "wasm") !== undefined)).toEqual([true, true])
    const denseGrads = (layer: (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
      tf.tidy(() => {
        const [x, w, b, r] = [randomTensor([512, 32], 1), randomTensor([32, 128], 2), randomTensor([128], 3), randomTensor([512, 128], 4)]
        return tf.grads((x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(layer(x, w, b), r)))([x, w, b]).map((g) => Array.from(g.dataSync()))
      })
    expect(denseGrads((x, w, b) => dense(x as tf.Tensor2D, w as tf.Tensor2D, b, "silu"))).toEqual(denseGrads((x, w, b) => denseOrdinary(x, w, b, "silu")))
    const normGrads = (norm: (x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor) => tf.Tensor) =>
      tf.tidy(() => {
        const [x, gamma, beta, r] = [randomTensor([2, 8, 8, 16], 5), randomTensor([16], 6), randomTensor([16], 7), randomTensor([2, 8, 8, 16], 8)]
        return tf.grads((x: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(norm(x, g, b), r)))([x, gamma, beta]).map((g) => Array.from(g.dataSync()))
      })
    const fused = normGrads((x, gamma, beta) => groupNorm(x as tf.Tensor4D, 4, gamma, beta, 1e-5, "silu"))
    const ordinary = normGrads((x, gamma, beta) =>
      (tf.engine().runKernel(GROUP_NORM_KERNEL, { x, gamma, beta }, { groups: 4, epsilon: 1e-5, activation: "silu" }) as unknown as Array<tf.Tensor>)[0]!)
    expect(fused).toEqual(ordinary)
    expect(fused[0]!.some((v) => v !== 0)).toBe(true)
  })
})
