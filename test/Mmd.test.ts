import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { mmd2, mmdTerms, mmdTermsFromValues } from "../src/domain/metrics/Mmd.js"
import { MetricInputError } from "../src/domain/metrics/Moments.js"
import { turn } from "./support/turn.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

type Rows = Array<Array<number>>

// naive O(N²) reference in float64 on the float32-rounded inputs the tensors hold
const reference = (x: Rows, y: Rows, bandwidths: ReadonlyArray<number>) => {
  const fx = x.map((r) => r.map(Math.fround))
  const fy = y.map((r) => r.map(Math.fround))
  const k = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => {
    const d2 = a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0)
    return bandwidths.reduce((s, h) => s + Math.exp(-d2 / (2 * h * h)), 0)
  }
  const sum = (a: Rows, b: Rows, skipDiagonal: boolean) => {
    let s = 0
    a.forEach((ai, i) =>
      b.forEach((bj, j) => {
        if (!skipDiagonal || i !== j) s += k(ai, bj)
      })
    )
    return s
  }
  const n = x.length
  const m = y.length
  const kxy = sum(fx, fy, false) / (n * m)
  return {
    unbiased: sum(fx, fx, true) / (n * (n - 1)) + sum(fy, fy, true) / (m * (m - 1)) - 2 * kxy,
    biased: sum(fx, fx, false) / (n * n) + sum(fy, fy, false) / (m * m) - 2 * kxy
  }
}

const withTensors = <A>(x: Rows, y: Rows, f: (tx: tf.Tensor2D, ty: tf.Tensor2D) => A): A => {
  const tx = tf.tensor2d(x)
  const ty = tf.tensor2d(y)
  try {
    return f(tx, ty)
  } finally {
    tf.dispose([tx, ty])
  }
}

const rows = (n: number, dim: number) =>
  fc.array(fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: dim, maxLength: dim }), {
    minLength: n,
    maxLength: n
  })

const smallCase = fc
  .record({
    dim: fc.integer({ min: 1, max: 4 }),
    n: fc.integer({ min: 2, max: 13 }),
    m: fc.integer({ min: 2, max: 11 })
  })
  .chain(({ dim, m, n }) =>
    fc.record({
      x: rows(n, dim),
      y: rows(m, dim),
      bandwidths: fc.array(fc.double({ min: 0.2, max: 3, noNaN: true }), { minLength: 1, maxLength: 3 }),
      maxBlockElements: fc.integer({ min: 1, max: 200 })
    })
  )

// the 8-mode ring of docs/algorithm.md §12.3: radius 0.702, per-mode std `std`, seeded
const ring = (n: number, std: number, seed: number): Rows => {
  let a = seed >>> 0
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())
  return Array.from({ length: n }, () => {
    const angle = (2 * Math.PI * Math.floor(uniform() * 8)) / 8
    return [0.702 * Math.cos(angle) + std * normal(), 0.702 * Math.sin(angle) + std * normal()]
  })
}

describe("mmd2 (docs/algorithm.md §12, §12.3)", () => {
  it("equals a naive O(N²) reference for any block size and bandwidth set", () => {
    fc.assert(
      fc.property(smallCase, ({ bandwidths, maxBlockElements, x, y }) => {
        const want = reference(x, y, bandwidths)
        const got = withTensors(x, y, (tx, ty) => mmdTerms(tx, ty, { bandwidth: bandwidths, maxBlockElements }))
        const tol = 2e-5 * bandwidths.length
        expect(Math.abs(got.unbiased - want.unbiased)).toBeLessThan(tol)
        expect(Math.abs(got.biased - want.biased)).toBeLessThan(tol)
        const single = withTensors(x, y, (tx, ty) =>
          mmd2(tx, ty, { bandwidth: bandwidths[0]!, maxBlockElements, estimator: "biased" })
        )
        expect(Math.abs(single - reference(x, y, [bandwidths[0]!]).biased)).toBeLessThan(2e-5)
        const js = mmdTermsFromValues(x.flat().map(Math.fround), y.flat().map(Math.fround), x[0]!.length, {
          bandwidth: bandwidths
        })
        expect(Math.abs(js.unbiased - want.unbiased)).toBeLessThan(1e-12)
        expect(Math.abs(js.biased - want.biased)).toBeLessThan(1e-12)
      }),
      { numRuns: 60 }
    )
  })

  it("does not depend on the block size (one block vs many uneven ones)", () => {
    const x = ring(300, 0.06, 11)
    const y = ring(257, 0.1, 12)
    const whole = withTensors(x, y, (tx, ty) => mmdTerms(tx, ty, { bandwidth: 0.1, maxBlockElements: 1e6 }))
    for (const maxBlockElements of [1, 299, 4097, 30_000]) {
      const blocked = withTensors(x, y, (tx, ty) => mmdTerms(tx, ty, { bandwidth: 0.1, maxBlockElements }))
      expect(Math.abs(blocked.unbiased - whole.unbiased)).toBeLessThan(1e-6)
      expect(Math.abs(blocked.kxx - whole.kxx)).toBeLessThan(1e-6)
    }
  })

  it("is symmetric, and the biased estimate is non-negative", () => {
    fc.assert(
      fc.property(smallCase, ({ bandwidths, x, y }) => {
        const xy = withTensors(x, y, (tx, ty) => mmdTerms(tx, ty, { bandwidth: bandwidths }))
        const yx = withTensors(y, x, (ty, tx) => mmdTerms(ty, tx, { bandwidth: bandwidths }))
        expect(Math.abs(xy.unbiased - yx.unbiased)).toBeLessThan(1e-5)
        expect(xy.biased).toBeGreaterThan(-1e-5)
      }),
      { numRuns: 40 }
    )
  })

  it("is ≈ 0 for two samples of one distribution and clearly positive for different ones", async () => {
    const n = 2000
    const a = ring(n, 0.06, 1)
    const b = ring(n, 0.06, 2)
    const same = withTensors(a, b, (tx, ty) => mmdTerms(tx, ty, { bandwidth: 0.1 }))
    // null scale: N·MMD²_u has a spread of order sqrt(kxx) (0 ≤ k ≤ 1, so Σλ² ≤ E k² ≤ kxx); measured over 20
    // seeds at N = 1000 its std was ≈ 2.2·sqrt(kxx)/N, so 12·sqrt(kxx)/N is about 5 standard deviations
    const tol = (12 * Math.sqrt(same.kxx)) / n
    expect(Math.abs(same.unbiased)).toBeLessThan(tol)
    await turn()
    // float32 tensor path vs float64 JS path on the same (float32-rounded) values
    const js = mmdTermsFromValues(a.flat().map(Math.fround), b.flat().map(Math.fround), 2, { bandwidth: 0.1 })
    expect(Math.abs(js.unbiased - same.unbiased)).toBeLessThan(1e-6)
    await turn()
    const wide = ring(n, 0.12, 3) // modes twice as wide
    const different = withTensors(a, wide, (tx, ty) => mmd2(tx, ty, { bandwidth: 0.1 }))
    expect(different).toBeGreaterThan(5 * tol)
    await turn()
    const shifted = a.map(([u, v]) => [u! + 0.05, v!])
    const moved = withTensors(b, shifted, (tx, ty) => mmd2(tx, ty, { bandwidth: [0.05, 0.1, 0.2] }))
    expect(moved).toBeGreaterThan(5 * tol)
  })

  it("leaves no tensors behind", () => {
    const x = tf.randomNormal([300, 2])
    const y = tf.randomNormal([200, 2])
    const before = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      mmd2(x, y, { bandwidth: [0.1, 1], maxBlockElements: 5000 })
      mmd2(x, y, { bandwidth: 0.5, estimator: "biased" })
    }
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, y])
  })

  it("rejects bad input with a MetricInputError and leaks nothing doing so", () => {
    const x = tf.tensor2d([[0, 1], [1, 0], [2, 2]])
    const wideD = tf.zeros([3, 3])
    const single = tf.zeros([1, 2])
    const flat = tf.zeros([6])
    const nan = tf.tensor2d([[0, NaN], [1, 1]])
    const inf = tf.tensor2d([[0, Infinity], [1, 1]])
    const before = tf.memory().numTensors
    const bad: ReadonlyArray<() => unknown> = [
      () => mmd2(x, wideD, { bandwidth: 1 }),
      () => mmd2(x, single, { bandwidth: 1 }),
      () => mmd2(x, flat, { bandwidth: 1 }),
      () => mmd2(x, x, { bandwidth: 0 }),
      () => mmd2(x, x, { bandwidth: [1, -1] }),
      () => mmd2(x, x, { bandwidth: NaN }),
      () => mmd2(x, x, { bandwidth: [] }),
      () => mmd2(x, x, { bandwidth: 1, maxBlockElements: 0 }),
      () => mmd2(x, nan, { bandwidth: 1 }),
      () => mmd2(x, inf, { bandwidth: 1 }),
      () => mmdTermsFromValues([0, 1, 2], [0, 1, 2, 3], 2, { bandwidth: 1 }),
      () => mmdTermsFromValues([0, 1], [0, 1, 2, 3], 2, { bandwidth: 1 }),
      () => mmdTermsFromValues([0, 1, NaN, 3], [0, 1, 2, 3], 2, { bandwidth: 1 }),
      () => mmdTermsFromValues([0, 1, 2, 3], [0, 1, 2, 3], 0, { bandwidth: 1 })
    ]
    for (const f of bad) expect(f).toThrow(MetricInputError)
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, wideD, single, flat, nan, inf])
  })
})
