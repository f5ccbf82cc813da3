import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { SIGMA_DATA } from "../src/domain/edm/Edm.js"
import {
  cIn,
  cNoise,
  cOut,
  cSkip,
  edmCoefficients,
  edmCoefficientsNumber,
  edmDenoise,
  lossWeight,
  networkTarget
} from "../src/domain/edm/Preconditioning.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const sigmaArb = fc.double({ min: 0.002, max: 80, noNaN: true })
const sigmaDataArb = fc.double({ min: 0.1, max: 2, noNaN: true })

describe("EDM preconditioning (docs/algorithm.md §2.3)", () => {
  it("matches docs/algorithm.md's check values at σ = 2.5", () => {
    const c = edmCoefficientsNumber(2.5)
    expect(Math.abs(c.cSkip - 0.0384615)).toBeLessThan(5.1e-8)
    expect(Math.abs(c.cOut - 0.4902903)).toBeLessThan(5.1e-8)
    expect(Math.abs(c.cIn - 0.3922323)).toBeLessThan(5.1e-8)
    expect(Math.abs(c.cNoise - 0.2290727)).toBeLessThan(5.1e-8)
    const t = tf.tidy(() => {
      const k = edmCoefficients(tf.tensor1d([2.5]))
      return [k.cSkip, k.cOut, k.cIn, k.cNoise].map((x) => x.dataSync()[0] ?? Number.NaN)
    })
    expect(t[0]).toBeCloseTo(0.0384615, 6)
    expect(t[1]).toBeCloseTo(0.4902903, 6)
    expect(t[2]).toBeCloseTo(0.3922323, 6)
    expect(t[3]).toBeCloseTo(0.2290727, 6)
  })

  it("λ(σ)·c_out(σ)² = 1, c_skip + (c_out/σ_d)² = 1, c_in²(σ² + σ_d²) = 1 (float64)", () => {
    fc.assert(
      fc.property(sigmaArb, sigmaDataArb, (s, sd) => {
        const c = edmCoefficientsNumber(s, sd)
        expect(c.lossWeight * c.cOut * c.cOut).toBeCloseTo(1, 10)
        // c_skip + (c_out/σ_d)² = 1 and c_in²(σ² + σ_d²) = 1
        expect(c.cSkip + (c.cOut / sd) ** 2).toBeCloseTo(1, 10)
        expect(c.cIn * c.cIn * (s * s + sd * sd)).toBeCloseTo(1, 10)
        expect(Math.exp(4 * c.cNoise)).toBeCloseTo(s, 8)
      })
    )
  })

  it("tensor coefficients equal the float64 ones elementwise, and λ·c_out² = 1 in float32", () => {
    fc.assert(
      fc.property(fc.array(sigmaArb, { minLength: 1, maxLength: 16 }), sigmaDataArb, (ss, sd) => {
        const [a, b, c, d, e, prod] = tf.tidy(() => {
          const s = tf.tensor1d(ss)
          const co = cOut(s, sd)
          return [cSkip(s, sd), co, cIn(s, sd), cNoise(s), lossWeight(s, sd), lossWeight(s, sd).mul(co.square())]
            .map((x) => x.dataSync())
        })
        ss.forEach((s, i) => {
          const ref = edmCoefficientsNumber(s, sd)
          const rel = (x: number | undefined, y: number) => Math.abs((x ?? Number.NaN) - y) / Math.max(Math.abs(y), 1e-30)
          expect(rel(a?.[i], ref.cSkip)).toBeLessThan(1e-5)
          expect(rel(b?.[i], ref.cOut)).toBeLessThan(1e-5)
          expect(rel(c?.[i], ref.cIn)).toBeLessThan(1e-5)
          expect(Math.abs((d?.[i] ?? Number.NaN) - ref.cNoise)).toBeLessThan(1e-6)
          expect(rel(e?.[i], ref.lossWeight)).toBeLessThan(1e-5)
          expect(Math.abs((prod?.[i] ?? Number.NaN) - 1)).toBeLessThan(1e-5)
        })
      }),
      { numRuns: 50 }
    )
  })

  it("defaults σ_d to SIGMA_DATA", () => {
    const [a, b] = tf.tidy(() => [lossWeight(tf.scalar(0.7)), lossWeight(tf.scalar(0.7), SIGMA_DATA)].map((x) => x.dataSync()[0]))
    expect(a).toBe(b)
  })
})

describe("preconditioned denoiser (docs/algorithm.md §2.3, §2.4)", () => {
  it("D = c_skip·x + c_out·F(c_in·x, c_noise), per-sample σ broadcast over [N,H,W,C]", () => {
    fc.assert(
      fc.property(fc.array(sigmaArb, { minLength: 1, maxLength: 6 }), fc.integer({ min: 0, max: 1000 }), (ss, seed) => {
        const n = ss.length
        const { d, x, seen } = tf.tidy(() => {
          const x = tf.randomNormal([n, 2, 3, 1], 0, 1, "float32", seed)
          let seenNoise: Float32Array | Int32Array | Uint8Array = new Float32Array()
          const net = (xIn: tf.Tensor, noise: tf.Tensor1D) => {
            seenNoise = noise.dataSync()
            return tf.sin(xIn).mul(noise.reshape([-1, 1, 1, 1]).add(2))
          }
          const d = edmDenoise(x, tf.tensor1d(ss), net)
          return { d: d.dataSync(), x: x.dataSync(), seen: seenNoise }
        })
        for (let i = 0; i < n; i++) {
          const s = ss[i] ?? Number.NaN
          const c = edmCoefficientsNumber(s)
          expect(seen[i]).toBeCloseTo(c.cNoise, 5)
          for (let j = 0; j < 6; j++) {
            const xv = x[i * 6 + j] ?? Number.NaN
            const expected = c.cSkip * xv + c.cOut * Math.sin(c.cIn * xv) * (c.cNoise + 2)
            expect(Math.abs((d[i * 6 + j] ?? Number.NaN) - expected)).toBeLessThan(1e-5 * (1 + Math.abs(expected)))
          }
        }
      }),
      { numRuns: 30 }
    )
  })

  it("networkTarget inverts edmDenoise: F = (D − c_skip·x)/c_out", () => {
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 20, noNaN: true }), fc.integer({ min: 0, max: 1000 }), (s, seed) => {
        const err = tf.tidy(() => {
          const x = tf.randomNormal([5, 3], 0, 1, "float32", seed)
          const f = tf.randomNormal([5, 3], 0, 1, "float32", seed + 1)
          const d = edmDenoise(x, s, () => f)
          return networkTarget(d, x, s).sub(f).abs().max().dataSync()[0] ?? Number.NaN
        })
        expect(err).toBeLessThan(1e-3)
      }),
      { numRuns: 30 }
    )
  })

  it("leaves tf.memory().numTensors unchanged", () => {
    const s = tf.tensor1d([0.3, 2.5])
    const x = tf.ones([2, 3])
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      const c = edmCoefficients(s)
      tf.dispose([c.cSkip, c.cOut, c.cIn, c.cNoise, c.lossWeight])
      tf.dispose([cSkip(s), cOut(s), cIn(s), cNoise(s), lossWeight(s)])
      tf.dispose([edmDenoise(x, s, (xi) => xi.mul(2)), edmDenoise(x, 0.5, (xi) => xi.mul(2)), networkTarget(x, x, s)])
    }
    expect(tf.memory().numTensors).toBe(n0)
    tf.dispose([s, x])
  })
})
