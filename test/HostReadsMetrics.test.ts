/**
 * The host-read computations of the metrics and the optimiser step (issue 16) read the same values whichever way
 * they are served: run with `runAsync` (one batched asynchronous read per request, what the `webgpu` engine uses),
 * every figure equals the synchronous API's bit for bit on `cpu`; `cacheOnHost` reads nothing synchronously and
 * each of its tensors once asynchronously; nothing leaks.
 */
import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it, vi } from "vitest"
import { cacheOnHost, runAsync, runReads, runSync } from "../src/domain/data/HostReads.js"
import { inceptionScoreFromLogits, inceptionScoreFromLogitsReads } from "../src/domain/metrics/InceptionScore.js"
import { kernelInceptionDistance, kernelInceptionDistanceReads } from "../src/domain/metrics/KernelInceptionDistance.js"
import { mmdTermsByBandwidth, mmdTermsByBandwidthReads } from "../src/domain/metrics/Mmd.js"
import { precisionRecall, precisionRecallReads } from "../src/domain/metrics/PrecisionRecall.js"
import { accuracy, accuracyReads } from "../src/domain/nn/LeNet.js"
import { MetricInputError } from "../src/domain/metrics/Moments.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Seeded values in [-1.5, 1.5). */
const values = (n: number, seed: number): Float32Array => {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 2 ** 32) * 3 - 1.5
  })
}

describe("host-read computations of the metrics", () => {
  it("served asynchronously, KID, precision/recall, IS, MMD by bandwidth and accuracy equal the synchronous API exactly", async () => {
    const x = tf.tensor2d(values(150 * 6, 1), [150, 6])
    const y = tf.tensor2d(values(130 * 6, 2), [130, 6]).add(0.3) as tf.Tensor2D
    const logits = tf.tensor2d(values(200 * 10, 3), [200, 10])
    const labels = tf.tensor1d(Array.from({ length: 200 }, (_, i) => i % 10), "int32")
    const before = tf.memory().numTensors
    // small blocks, so the block sums of several blocks are batched into one read
    const mmdOptions = { bandwidth: [0.5, 1, 2], maxBlockElements: 1024 }
    expect(await runAsync(kernelInceptionDistanceReads(x, y))).toBe(kernelInceptionDistance(x, y))
    expect(await runAsync(precisionRecallReads(x, y))).toEqual(precisionRecall(x, y))
    expect(await runAsync(inceptionScoreFromLogitsReads(logits, { splits: 4 }))).toEqual(inceptionScoreFromLogits(logits, { splits: 4 }))
    expect(await runAsync(mmdTermsByBandwidthReads(x, y, mmdOptions))).toEqual(mmdTermsByBandwidth(x, y, mmdOptions))
    expect(await runAsync(accuracyReads(logits, labels))).toBe(accuracy(logits, labels))
    expect(await runReads(kernelInceptionDistanceReads(x, y))).toBe(kernelInceptionDistance(x, y))
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, y, logits, labels])
  })

  it("a non-finite input fails the asynchronous computation as the synchronous one, without leaks", async () => {
    const x = tf.tensor2d([[0, 1], [NaN, 2], [3, 4], [5, 6]])
    const y = tf.tensor2d(values(8, 4), [4, 2])
    const before = tf.memory().numTensors
    expect(() => kernelInceptionDistance(x, y)).toThrow(MetricInputError)
    await expect(runAsync(kernelInceptionDistanceReads(x, y))).rejects.toThrow(/non-finite/)
    await expect(runAsync(precisionRecallReads(y, x))).rejects.toThrow(/non-finite/)
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, y])
  })

  it("cacheOnHost reads nothing synchronously, and each tensor once asynchronously", async () => {
    const ts = [tf.tensor1d([1, 2, 3]), tf.tensor2d([[4, 5]])]
    const dataSync = ts.map((t) => vi.spyOn(t, "dataSync"))
    const data = ts.map((t) => vi.spyOn(t, "data"))
    runSync(cacheOnHost(ts))
    expect(dataSync.map((s) => s.mock.calls.length)).toEqual([0, 0])
    expect(data.map((s) => s.mock.calls.length)).toEqual([0, 0])
    await runAsync(cacheOnHost(ts))
    expect(data.map((s) => s.mock.calls.length)).toEqual([1, 1])
    expect(dataSync.map((s) => s.mock.calls.length)).toEqual([0, 0])
    tf.dispose(ts)
  })
})
