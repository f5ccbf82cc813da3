import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { inceptionScore, inceptionScoreFromLogits } from "../src/domain/metrics/InceptionScore.js"
import { kernelInceptionDistance } from "../src/domain/metrics/KernelInceptionDistance.js"
import { MetricInputError } from "../src/domain/metrics/Moments.js"
import { manifoldCoverage, nearestNeighbourRadii, precisionRecall } from "../src/domain/metrics/PrecisionRecall.js"
import { makeStream, normals } from "../src/domain/data/RandomStream.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const gaussian = (n: number, d: number, seed: number, shift = 0, scale = 1): tf.Tensor2D =>
  tf.tidy(() => tf.add(tf.mul(tf.tensor2d(normals(makeStream(seed, "pr-test"), n * d).values, [n, d]), scale), shift))

describe("InceptionScore (docs/algorithm.md §11)", () => {
  it("confident predictions spread evenly over K classes give IS = K; identical rows give IS = 1", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 6 }), (k, perClass) => {
        const rows = Array.from({ length: k * perClass }, (_, i) => Array.from({ length: k }, (_, c) => (c === i % k ? 1 : 0)))
        const p = tf.tensor2d(rows)
        expect(inceptionScore(p).mean).toBeCloseTo(k, 4)
        p.dispose()
      }),
      { numRuns: 30 }
    )
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: Math.fround(0.01), max: 1, noNaN: true }), { minLength: 2, maxLength: 10 }),
        fc.integer({ min: 1, max: 20 }),
        (weights, n) => {
          const total = weights.reduce((a, b) => a + b, 0)
          const row = weights.map((w) => w / total)
          const p = tf.tensor2d(Array.from({ length: n }, () => row))
          expect(inceptionScore(p).mean).toBeCloseTo(1, 5)
          p.dispose()
        }
      ),
      { numRuns: 30 }
    )
  })

  it("lies in [1, K] and equals exp(mean KL(p_i ‖ p̄)) computed by hand, per split", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 4, max: 30 }), fc.integer({ min: 0, max: 1000 }), (k, n, seed) => {
        const logits = tf.tensor2d(normals(makeStream(seed, "is"), n * k).values, [n, k])
        const p = tf.softmax(logits)
        const rows = p.arraySync() as Array<Array<number>>
        const splits = n >= 8 ? 2 : 1
        const size = Math.floor(n / splits)
        const byHand = Array.from({ length: splits }, (_, s) => {
          const block = rows.slice(s * size, s === splits - 1 ? n : (s + 1) * size)
          const mean = Array.from({ length: k }, (_, c) => block.reduce((a, r) => a + r[c]!, 0) / block.length)
          const kl = block.reduce((a, r) => a + r.reduce((b, pc, c) => b + pc * (Math.log(pc) - Math.log(mean[c]!)), 0), 0)
          return Math.exp(kl / block.length)
        })
        const is = inceptionScoreFromLogits(logits, { splits })
        is.splits.forEach((v, s) => expect(v).toBeCloseTo(byHand[s]!, 4))
        expect(is.mean).toBeGreaterThanOrEqual(1 - 1e-5)
        expect(is.mean).toBeLessThanOrEqual(k + 1e-5)
        tf.dispose([logits, p])
      }),
      { numRuns: 25 }
    )
  })

  it("rejects rows that are not probabilities, and leaks no tensors", () => {
    const bad = tf.tensor2d([[0.5, 0.2], [0.5, 0.5]])
    expect(() => inceptionScore(bad)).toThrow(MetricInputError)
    const before = tf.memory().numTensors
    const p = tf.tensor2d([[1, 0], [0, 1], [0.5, 0.5]])
    for (let i = 0; i < 5; i++) inceptionScore(p, { splits: 1 })
    p.dispose()
    bad.dispose()
    expect(tf.memory().numTensors).toBe(before - 1)
  })
})

describe("PrecisionRecall (Kynkäänniemi et al. 2019; docs/algorithm.md §11, k = 3)", () => {
  it("identical sets have precision = recall = 1", () => {
    fc.assert(
      fc.property(fc.integer({ min: 5, max: 60 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 999 }), (n, d, seed) => {
        const x = gaussian(n, d, seed)
        const pr = precisionRecall(x, x)
        expect(pr.precision).toBe(1)
        expect(pr.recall).toBe(1)
        x.dispose()
      }),
      { numRuns: 20 }
    )
  })

  it("far-apart sets have precision = recall = 0; a collapsed generator keeps precision but loses recall", () => {
    const real = gaussian(300, 4, 1)
    const far = gaussian(300, 4, 2, 50)
    expect(precisionRecall(real, far)).toEqual({ precision: 0, recall: 0 })
    const collapsed = gaussian(300, 4, 3, 0, 0.05)
    const pr = precisionRecall(real, collapsed)
    expect(pr.precision).toBeGreaterThan(0.95)
    expect(pr.recall).toBeLessThan(0.2)
    const same = gaussian(300, 4, 4)
    const pr2 = precisionRecall(real, same)
    expect(pr2.precision).toBeGreaterThan(0.6)
    expect(pr2.recall).toBeGreaterThan(0.6)
    tf.dispose([real, far, collapsed, same])
  })

  it("radii are the distances to the 3rd nearest other point, and coverage matches a brute-force count", () => {
    fc.assert(
      fc.property(fc.integer({ min: 5, max: 40 }), fc.integer({ min: 0, max: 999 }), (n, seed) => {
        const x = gaussian(n, 3, seed)
        const y = gaussian(n + 3, 3, seed + 5000, 0.5)
        const xs = x.arraySync()
        const ys = y.arraySync()
        const dist = (a: Array<number>, b: Array<number>) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0))
        const radii = xs.map((a, i) => xs.filter((_, j) => j !== i).map((b) => dist(a, b)).sort((p, q) => p - q)[2]!)
        const r = nearestNeighbourRadii(x)
        const got = Array.from(r.dataSync())
        got.forEach((v, i) => expect(v).toBeCloseTo(radii[i]!, 3))
        const inside = ys.filter((q) => xs.some((a, j) => dist(q, a) <= radii[j]! * (1 - 1e-4))).length
        const insideLoose = ys.filter((q) => xs.some((a, j) => dist(q, a) <= radii[j]! * (1 + 1e-4))).length
        const c = Math.round(manifoldCoverage(y, x, r) * ys.length)
        expect(c).toBeGreaterThanOrEqual(inside)
        expect(c).toBeLessThanOrEqual(insideLoose)
        tf.dispose([x, y, r])
      }),
      { numRuns: 20 }
    )
  })

  it("leaks no tensors and rejects bad input", () => {
    const a = gaussian(50, 3, 7)
    const b = gaussian(40, 3, 8)
    const before = tf.memory().numTensors
    for (let i = 0; i < 3; i++) precisionRecall(a, b)
    expect(tf.memory().numTensors).toBe(before)
    expect(() => precisionRecall(a, gaussian(3, 3, 9))).toThrow(MetricInputError)
    expect(() => precisionRecall(a, tf.tensor2d([[NaN, 0, 0], [0, 0, 0], [1, 1, 1], [2, 2, 2]]))).toThrow(/non-finite/)
    tf.dispose([a, b])
  })
})

describe("KernelInceptionDistance (docs/algorithm.md §11)", () => {
  it("matches a brute-force unbiased polynomial-kernel MMD² and is ≈ 0 for one distribution, large for shifted", () => {
    const x = gaussian(30, 4, 11)
    const y = gaussian(25, 4, 12, 0.7)
    const xs = x.arraySync()
    const ys = y.arraySync()
    const kern = (a: Array<number>, b: Array<number>) => (a.reduce((s, v, i) => s + v * b[i]!, 0) / 4 + 1) ** 3
    let kxx = 0
    let kyy = 0
    let kxy = 0
    xs.forEach((a, i) => xs.forEach((b, j) => (kxx += i === j ? 0 : kern(a, b))))
    ys.forEach((a, i) => ys.forEach((b, j) => (kyy += i === j ? 0 : kern(a, b))))
    xs.forEach((a) => ys.forEach((b) => (kxy += kern(a, b))))
    const expected = kxx / (30 * 29) + kyy / (25 * 24) - (2 * kxy) / (30 * 25)
    expect(kernelInceptionDistance(x, y)).toBeCloseTo(expected, 3)
    const p = gaussian(400, 4, 13)
    const q = gaussian(400, 4, 14)
    const shifted = gaussian(400, 4, 15, 1)
    const same = kernelInceptionDistance(p, q)
    const apart = kernelInceptionDistance(p, shifted)
    expect(Math.abs(same)).toBeLessThan(0.05 * apart)
    tf.dispose([x, y, p, q, shifted])
  })
})
