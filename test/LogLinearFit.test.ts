import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { logLinearFit } from "../src/domain/metrics/LogLinearFit.js"

describe("log-linear fit (the rate of an exponential trend)", () => {
  it("recovers the rate and level of exact exponentials, with R² = 1", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-4, max: 0.01, noNaN: true }),
        fc.boolean(),
        fc.double({ min: -3, max: 6, noNaN: true }),
        fc.integer({ min: 2, max: 30 }),
        (rate, falling, a, n) => {
          const b = falling ? -rate : rate
          const points = Array.from({ length: n }, (_, i) => [i * 100, Math.exp(a + b * i * 100)] as const)
          const fit = logLinearFit(points)
          expect(fit.slope).toBeCloseTo(b, 9)
          expect(fit.intercept).toBeCloseTo(a, 6)
          expect(fit.r2).toBeGreaterThan(1 - 1e-9)
          expect(fit.points).toBe(n)
        }
      ),
      { numRuns: 100 }
    )
  })

  it("is the least-squares line in log space: residuals sum to zero and are uncorrelated with x", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.double({ min: 0, max: 1000, noNaN: true }), fc.double({ min: 1e-3, max: 1e3, noNaN: true })), { minLength: 3, maxLength: 20 }), (pts) => {
        const xs = pts.map(([x]) => x)
        if (Math.max(...xs) - Math.min(...xs) < 1e-6) return
        const fit = logLinearFit(pts)
        const res = pts.map(([x, y]) => Math.log(y) - fit.intercept - fit.slope * x)
        expect(Math.abs(res.reduce((a, b) => a + b, 0))).toBeLessThan(1e-6 * pts.length * 10)
        expect(Math.abs(res.reduce((a, r, i) => a + r * (xs[i]! - xs.reduce((s, v) => s + v, 0) / xs.length), 0))).toBeLessThan(1e-3)
        expect(fit.r2).toBeGreaterThanOrEqual(0)
        expect(fit.r2).toBeLessThanOrEqual(1 + 1e-12)
      }),
      { numRuns: 100 }
    )
  })

  it("ignores non-positive and non-finite values and refuses too few points", () => {
    const fit = logLinearFit([[0, 1], [1, 0], [2, Math.exp(-2)], [3, NaN], [4, -1]])
    expect(fit.points).toBe(2)
    expect(fit.slope).toBeCloseTo(-1, 12)
    expect(() => logLinearFit([[0, 1], [1, 0]])).toThrow(RangeError)
    expect(() => logLinearFit([[2, 1], [2, 3]])).toThrow(/distinct/)
  })
})
