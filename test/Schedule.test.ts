import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { P_MEAN, P_STD, RHO, SIGMA_MAX, SIGMA_MIN } from "../src/domain/edm/Edm.js"
import {
  generatorSigmaFromUniform,
  generatorSigmaSeeded,
  generatorTimeFromUniform,
  heunSteps,
  heunStepsTensor,
  logNormalSigma,
  logNormalSigmaNumber,
  logNormalSigmaSeeded,
  sigmaFromTime,
  sigmaFromTimeNumber
} from "../src/domain/edm/Schedule.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Tolerance of half a unit in the last printed digit of a spec value. */
const halfUlp = (s: string): number => 0.5 * Math.pow(10, -(s.split(".")[1]?.length ?? 0)) * 1.0001

describe("ρ-map t ↦ σ (docs/algorithm.md §2.2)", () => {
  it("hits the endpoints: σ(0) = σ_min, σ(1) = σ_max", () => {
    expect(sigmaFromTimeNumber(0)).toBeCloseTo(SIGMA_MIN, 12)
    expect(sigmaFromTimeNumber(1)).toBeCloseTo(SIGMA_MAX, 10)
  })

  it("matches docs/algorithm.md's listed values", () => {
    const listed: ReadonlyArray<[number, string]> = [
      [0.5, "2.515219"], [0.7, "12.38158"], [0.8, "24.40834"], [0.9, "45.31373"], [0.98, "71.66310"], [1, "80"]
    ]
    for (const [t, s] of listed) expect(Math.abs(sigmaFromTimeNumber(t) - Number(s))).toBeLessThanOrEqual(halfUlp(s))
  })

  it("is strictly increasing in t (numbers) and the tensor version agrees with it", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (a, b) => {
          fc.pre(Math.abs(a - b) > 1e-9)
          const [lo, hi] = a < b ? [a, b] : [b, a]
          expect(sigmaFromTimeNumber(lo)).toBeLessThan(sigmaFromTimeNumber(hi))
          const s = tf.tidy(() => sigmaFromTime(tf.tensor1d([lo, hi])).dataSync())
          expect(Math.abs((s[0] ?? 0) - sigmaFromTimeNumber(lo))).toBeLessThanOrEqual(1e-5 * sigmaFromTimeNumber(lo) + 1e-7)
          expect(Math.abs((s[1] ?? 0) - sigmaFromTimeNumber(hi))).toBeLessThanOrEqual(1e-5 * sigmaFromTimeNumber(hi) + 1e-7)
        }
      ),
      { numRuns: 200 }
    )
  })

  it("inverts: t = (σ^{1/ρ} − σ_max^{1/ρ})/(σ_min^{1/ρ} − σ_max^{1/ρ}) + 1", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), (t) => {
        const s = sigmaFromTimeNumber(t)
        const a = Math.pow(SIGMA_MAX, 1 / RHO)
        const b = Math.pow(SIGMA_MIN, 1 / RHO)
        expect(1 - (Math.pow(s, 1 / RHO) - a) / (b - a)).toBeCloseTo(t, 9)
      })
    )
  })

  it("honours custom limits", () => {
    expect(sigmaFromTimeNumber(0, { sigmaMin: 0.01, sigmaMax: 10, rho: 3 })).toBeCloseTo(0.01, 12)
    expect(sigmaFromTimeNumber(1, { sigmaMin: 0.01, sigmaMax: 10, rho: 3 })).toBeCloseTo(10, 10)
  })

  it("generator σ: t = u·tmax/1000 stays inside [σ_min, σ(tmax/1000)] and is seeded", () => {
    const t = tf.tidy(() => generatorTimeFromUniform(tf.tensor1d([0, 0.5, 0.999999]), 800).dataSync())
    expect(t[1]).toBeCloseTo(0.4, 6)
    const upper = sigmaFromTimeNumber(0.8)
    const s1 = tf.tidy(() => generatorSigmaSeeded(20000, 7).dataSync())
    const s2 = tf.tidy(() => generatorSigmaSeeded(20000, 7).dataSync())
    expect(Array.from(s1)).toEqual(Array.from(s2))
    expect(Math.min(...s1)).toBeGreaterThanOrEqual(SIGMA_MIN * (1 - 1e-5))
    expect(Math.max(...s1)).toBeLessThanOrEqual(upper * (1 + 1e-5))
    const sorted = Float64Array.from(s1).sort()
    // docs/algorithm.md §2.2: with tmax = 800, median σ ≈ 0.965 and P(σ > 2.5) ≈ 0.376
    expect(sorted[10000]).toBeGreaterThan(0.9)
    expect(sorted[10000]).toBeLessThan(1.03)
    const above = s1.filter((v) => v > 2.5).length / s1.length
    expect(Math.abs(above - 0.376)).toBeLessThan(0.02)
    const mapped = tf.tidy(() => generatorSigmaFromUniform(tf.tensor1d([1]), 1000).dataSync())
    expect(mapped[0]).toBeCloseTo(SIGMA_MAX, 3)
  })
})

describe("log-normal σ (docs/algorithm.md §2.4)", () => {
  it("σ = exp(n·P_std + P_mean), tensor and number agree", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -4, max: 4, noNaN: true }), { minLength: 1, maxLength: 20 }), (ns) => {
        const s = tf.tidy(() => logNormalSigma(tf.tensor1d(ns)).dataSync())
        ns.forEach((n, i) => {
          const expected = Math.exp(n * P_STD + P_MEAN)
          expect(logNormalSigmaNumber(n)).toBeCloseTo(expected, 12)
          expect(Math.abs((s[i] ?? 0) - expected)).toBeLessThanOrEqual(1e-5 * expected)
        })
      })
    )
  })

  it("seeded draws have ln σ ≈ N(−1.2, 1.2²)", () => {
    const s = tf.tidy(() => logNormalSigmaSeeded(40000, 11).log().dataSync())
    let m = 0
    for (const v of s) m += v
    m /= s.length
    let v2 = 0
    for (const v of s) v2 += (v - m) ** 2
    const sd = Math.sqrt(v2 / (s.length - 1))
    expect(Math.abs(m - P_MEAN)).toBeLessThan(5 * P_STD / Math.sqrt(s.length))
    expect(Math.abs(sd - P_STD)).toBeLessThan(0.03)
  })
})

describe("Heun step grid (docs/algorithm.md §2.2, §3)", () => {
  it("matches docs/algorithm.md's 18-step grid, with t_N = 0 appended", () => {
    const listed = ["80.0", "57.586", "40.7856", "28.3746", "19.3525", "12.9101", "8.4009", "5.3152", "3.2568", "1.9233",
      "1.0882", "0.5853", "0.2964", "0.1395", "0.0599", "0.0229", "0.0075", "0.002", "0"]
    const steps = heunSteps(18)
    expect(steps.length).toBe(19)
    listed.forEach((s, i) => expect(Math.abs((steps[i] ?? Number.NaN) - Number(s))).toBeLessThanOrEqual(halfUlp(s)))
  })

  it("starts at σ_max, ends at σ_min then 0, strictly decreasing; tensor equals numbers", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 300 }), (n) => {
        const steps = heunSteps(n)
        expect(steps.length).toBe(n + 1)
        expect(steps[0]).toBeCloseTo(SIGMA_MAX, 10)
        expect(steps[n - 1]).toBeCloseTo(SIGMA_MIN, 12)
        expect(steps[n]).toBe(0)
        for (let i = 1; i <= n; i++) expect(steps[i] ?? Number.NaN).toBeLessThan(steps[i - 1] ?? Number.NaN)
        const tensor = heunStepsTensor(n)
        const values = tensor.dataSync()
        tensor.dispose()
        steps.forEach((s, i) => expect(Math.abs((values[i] ?? Number.NaN) - s)).toBeLessThanOrEqual(1e-6 * s))
      }),
      { numRuns: 50 }
    )
  })

  it("the grid points are the ρ-map at t = 1 − i/(N−1)", () => {
    const steps = heunSteps(40)
    for (let i = 0; i < 40; i++) expect(steps[i]).toBeCloseTo(sigmaFromTimeNumber(1 - i / 39), 9)
  })

  it("rejects N < 2", () => {
    expect(() => heunSteps(1)).toThrow()
    expect(() => heunSteps(2.5)).toThrow()
  })
})

describe("memory", () => {
  it("leaves tf.memory().numTensors unchanged", () => {
    const t = tf.tensor1d([0.25])
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      tf.dispose([
        sigmaFromTime(t),
        generatorTimeFromUniform(t),
        generatorSigmaFromUniform(t),
        generatorSigmaSeeded(4, i),
        logNormalSigma(t),
        logNormalSigmaSeeded(4, i),
        heunStepsTensor(5)
      ])
    }
    expect(tf.memory().numTensors).toBe(n0)
    t.dispose()
  })
})
