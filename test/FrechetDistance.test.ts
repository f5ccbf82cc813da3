import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { frechetDistance, frechetDistanceFromMoments, frechetTerms } from "../src/domain/metrics/FrechetDistance.js"
import { MetricInputError, sampleMoments } from "../src/domain/metrics/Moments.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

// mulberry32 + Box–Muller, float64: independent of the code under test
const normals = (seed: number) => {
  let a = seed >>> 0
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())
}

type Rows = Array<Array<number>>

const sampleSet = (rows: number, dim: number) =>
  fc.array(fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: dim, maxLength: dim }), {
    minLength: rows,
    maxLength: rows
  })

const twoSets = fc
  .record({ dim: fc.integer({ min: 1, max: 4 }), n: fc.integer({ min: 3, max: 25 }), m: fc.integer({ min: 3, max: 25 }) })
  .chain(({ dim, m, n }) => fc.tuple(sampleSet(n, dim), sampleSet(m, dim)))

const fd = (x: Rows, y: Rows, covariance?: "biased" | "unbiased") => {
  const tx = tf.tensor2d(x)
  const ty = tf.tensor2d(y)
  try {
    return frechetTerms(tx, ty, covariance === undefined ? undefined : { covariance })
  } finally {
    tf.dispose([tx, ty])
  }
}

// the scale of a set's second moment, for tolerances: tr Σ + ‖μ‖²
const scale = (...sets: ReadonlyArray<Rows>) =>
  1 + sets.reduce((acc, s) => acc + s.reduce((a, row) => a + row.reduce((b, v) => b + v * v, 0), 0) / s.length, 0)

// a random orthogonal matrix from a product of Givens rotations
const orthogonal = (dim: number, angles: ReadonlyArray<number>): Rows => {
  const q: Rows = Array.from({ length: dim }, (_, i) => Array.from({ length: dim }, (_, j) => (i === j ? 1 : 0)))
  let k = 0
  for (let i = 0; i < dim; i++) {
    for (let j = i + 1; j < dim; j++) {
      const c = Math.cos(angles[k % angles.length]!)
      const s = Math.sin(angles[k % angles.length]!)
      k++
      for (const row of q) {
        const a = row[i]!
        const b = row[j]!
        row[i] = c * a - s * b
        row[j] = s * a + c * b
      }
    }
  }
  return q
}

const matmul = (a: Rows, b: Rows): Rows => a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)))
const transpose = (a: Rows): Rows => a[0]!.map((_, j) => a.map((row) => row[j]!))

describe("frechetDistance on sample sets (docs/algorithm.md §11)", () => {
  it("is 0 for identical sets", () => {
    fc.assert(
      fc.property(twoSets, ([x]) => {
        const { distance } = fd(x, x)
        expect(distance).toBeGreaterThanOrEqual(0)
        // arbitrary sets can have rank-deficient covariances: ~sqrt(machine ε) relative accuracy
        expect(distance).toBeLessThan(1e-7 * scale(x))
      }),
      { numRuns: 60 }
    )
  })

  it("is 0 to ~1e-12 for identical well-conditioned sets", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const z = normals(seed)
      const dim = 1 + (seed % 6)
      const x = Array.from({ length: 40 + 10 * dim }, () => Array.from({ length: dim }, () => 3 * z() + 1))
      expect(fd(x, x).distance).toBeLessThan(1e-12 * scale(x))
    }
  })

  it("is symmetric and its covariance term is non-negative", () => {
    fc.assert(
      fc.property(twoSets, ([x, y]) => {
        const xy = fd(x, y)
        const yx = fd(y, x)
        // rank-deficient covariances: square roots of rounding-level eigenvalues cost ~sqrt(machine ε) relative
        const tol = 1e-7 * scale(x, y)
        expect(Math.abs(xy.distance - yx.distance)).toBeLessThan(tol)
        expect(xy.meanTerm).toBeGreaterThanOrEqual(0)
        expect(xy.covarianceTerm).toBeGreaterThan(-tol)
        expect(xy.distance).toBeGreaterThanOrEqual(0)
      }),
      { numRuns: 60 }
    )
  })

  it("is invariant to a common rotation and translation of both sets", () => {
    const arb = twoSets.chain(([x, y]) =>
      fc.tuple(
        fc.constant(x),
        fc.constant(y),
        fc.array(fc.double({ min: -Math.PI, max: Math.PI, noNaN: true }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: x[0]!.length, maxLength: x[0]!.length })
      )
    )
    fc.assert(
      fc.property(arb, ([x, y, angles, shift]) => {
        const q = orthogonal(shift.length, angles)
        const move = (s: Rows) => matmul(s, q).map((row) => row.map((v, j) => v + shift[j]!))
        const before = fd(x, y).distance
        const after = fd(move(x), move(y)).distance
        // the moved sets are rounded to float32 again: the tolerance is float32 precision on the second moments
        expect(Math.abs(after - before)).toBeLessThan(1e-5 * scale(x, y, move(x), move(y)))
      }),
      { numRuns: 60 }
    )
  })

  it("matches the closed form between two 2-D Gaussians, within the sampling error", () => {
    const mu1 = [0.3, -0.2]
    const mu2 = [-0.4, 0.5]
    // Σ = L Lᵀ with non-commuting covariances
    const l1 = [[1.0, 0], [0.6, 0.5]]
    const l2 = [[0.4, 0], [-0.3, 1.2]]
    const cov = (l: Rows) => matmul(l, transpose(l))
    const s1 = cov(l1)
    const s2 = cov(l2)
    const draw = (n: number, mu: ReadonlyArray<number>, l: Rows, seed: number): Rows => {
      const z = normals(seed)
      return Array.from({ length: n }, () => {
        const e = [z(), z()]
        return mu.map((m, i) => m + l[i]![0]! * e[0]! + l[i]![1]! * e[1]!)
      })
    }
    const n = 60_000
    const x = draw(n, mu1, l1, 1)
    const y = draw(n, mu2, l2, 2)
    // 2 × 2: Tr sqrt(A) = sqrt(tr A + 2 sqrt(det A)) for A = Σ₁Σ₂ (non-negative real eigenvalues)
    const det = (a: Rows) => a[0]![0]! * a[1]![1]! - a[0]![1]! * a[1]![0]!
    const tr = (a: Rows) => a[0]![0]! + a[1]![1]!
    const traceSqrt = Math.sqrt(tr(matmul(s1, s2)) + 2 * Math.sqrt(det(s1) * det(s2)))
    const exact = (mu1[0]! - mu2[0]!) ** 2 + (mu1[1]! - mu2[1]!) ** 2 + tr(s1) + tr(s2) - 2 * traceSqrt
    // standard error: mean term ≈ 2|Δμ|·sqrt(λmax/N), covariance term ≈ ‖Σ‖_F·sqrt(2/N) per set, plus the
    // O(tr Σ/N) bias of the mean term; 5 standard errors
    const frob = (a: Rows) => Math.sqrt(a.flat().reduce((s, v) => s + v * v, 0))
    const dmu = Math.hypot(mu1[0]! - mu2[0]!, mu1[1]! - mu2[1]!)
    const stderr = 2 * dmu * Math.sqrt((tr(s1) + tr(s2)) / n) + (frob(s1) + frob(s2)) * Math.sqrt(2 / n)
    const estimate = fd(x, y).distance
    expect(Math.abs(estimate - exact)).toBeLessThan(5 * stderr + (tr(s1) + tr(s2)) / n)
    // the tolerance is meaningful: a 10 % error in the covariance would fail it
    expect(5 * stderr).toBeLessThan(0.1 * exact)
  })

  it("the biased and unbiased covariances differ by the factor (N − 1)/N", () => {
    fc.assert(
      fc.property(twoSets, ([x, y]) => {
        const tx = tf.tensor2d(x)
        const ty = tf.tensor2d(y)
        try {
          const mx = sampleMoments(tx, { covariance: "biased" })
          const my = sampleMoments(ty, { covariance: "biased" })
          const ux = sampleMoments(tx)
          const uy = sampleMoments(ty)
          ux.covariance.forEach((v, k) => {
            expect(Math.abs(v * (x.length - 1) / x.length - mx.covariance[k]!)).toBeLessThan(1e-9 * scale(x))
          })
          const viaMoments = frechetDistanceFromMoments(mx.mean, mx.covariance, my.mean, my.covariance)
          const direct = frechetDistance(tx, ty, { covariance: "biased" })
          expect(Math.abs(viaMoments - direct)).toBeLessThan(1e-12 * scale(x, y))
          expect(uy.n).toBe(y.length)
        } finally {
          tf.dispose([tx, ty])
        }
      }),
      { numRuns: 30 }
    )
  })

  it("sampleMoments matches a naive mean and covariance", () => {
    const x = [[1, 2], [3, 5], [-1, 0], [4, 4]]
    const t = tf.tensor2d(x)
    const { covariance, mean } = sampleMoments(t)
    t.dispose()
    const mx = [1.75, 2.75]
    expect(Array.from(mean)).toEqual(mx)
    const c = (i: number, j: number) => x.reduce((s, row) => s + (row[i]! - mx[i]!) * (row[j]! - mx[j]!), 0) / 3
    expect(Array.from(covariance).map((v) => +v.toFixed(12))).toEqual(
      [c(0, 0), c(0, 1), c(1, 0), c(1, 1)].map((v) => +v.toFixed(12))
    )
  })

  it("leaves no tensors behind", () => {
    const x = tf.randomNormal([200, 3])
    const y = tf.randomNormal([150, 3])
    const before = tf.memory().numTensors
    for (let i = 0; i < 20; i++) frechetDistance(x, y)
    expect(tf.memory().numTensors).toBe(before)
    tf.dispose([x, y])
  })

  it("rejects bad input with a MetricInputError", () => {
    const cases: ReadonlyArray<[tf.Tensor, tf.Tensor]> = [
      [tf.zeros([5, 2]), tf.zeros([5, 3])], // different d
      [tf.zeros([1, 2]), tf.zeros([5, 2])], // N = 1
      [tf.zeros([10]), tf.zeros([5, 1])], // rank 1
      [tf.tensor2d([[0, 1], [NaN, 2], [1, 1]]), tf.zeros([3, 2])],
      [tf.tensor2d([[0, 1], [Infinity, 2], [1, 1]]), tf.zeros([3, 2])]
    ]
    for (const [x, y] of cases) {
      expect(() => frechetDistance(x, y)).toThrow(MetricInputError)
      tf.dispose([x, y])
    }
    expect(() => frechetDistance(tf.zeros([1, 2]), tf.zeros([1, 2]), { covariance: "biased" })).not.toThrow()
  })
})

describe("frechetDistanceFromMoments (docs/algorithm.md §11)", () => {
  it("hand-computed 1-D case: (μ₁ − μ₂)² + (s₁ − s₂)²", () => {
    // N(1, 2²) vs N(−2, 1²): 9 + 1
    expect(frechetDistanceFromMoments([1], [4], [-2], [1])).toBeCloseTo(10, 12)
    expect(frechetDistanceFromMoments([1], [[4]], [-2], [[1]])).toBeCloseTo(10, 12)
  })

  it("diagonal Gaussians, also rotated by a common orthogonal matrix: Σ(μ₁ − μ₂)² + Σ(s₁ − s₂)²", () => {
    const arb = fc.integer({ min: 1, max: 8 }).chain((dim) => {
      const vec = (min: number) => fc.array(fc.double({ min, max: 3, noNaN: true }), { minLength: dim, maxLength: dim })
      return fc.tuple(vec(-3), vec(0), vec(-3), vec(0), fc.array(fc.double({ min: -3, max: 3, noNaN: true }), {
        minLength: 1,
        maxLength: 5
      }))
    })
    fc.assert(
      fc.property(arb, ([mu1, s1, mu2, s2, angles]) => {
        const exact = mu1.reduce((acc, m, i) => acc + (m - mu2[i]!) ** 2 + (s1[i]! - s2[i]!) ** 2, 0)
        const diag = (s: ReadonlyArray<number>) => s.map((v, i) => s.map((_, j) => (i === j ? v * v : 0)))
        const tol = 1e-7 * (1 + [...mu1, ...s1, ...mu2, ...s2].reduce((a, v) => a + v * v, 0))
        expect(Math.abs(frechetDistanceFromMoments(mu1, diag(s1), mu2, diag(s2)) - exact)).toBeLessThan(tol)
        const q = orthogonal(mu1.length, angles)
        const rotate = (c: Rows) => {
          const r = matmul(matmul(q, c), transpose(q))
          // exact symmetry, as a covariance computed by the caller would have
          return r.map((row, i) => row.map((v, j) => (i <= j ? v : r[j]![i]!)))
        }
        const rotated = frechetDistanceFromMoments(mu1, rotate(diag(s1)), mu2, rotate(diag(s2)))
        expect(Math.abs(rotated - exact)).toBeLessThan(tol)
      }),
      { numRuns: 100 }
    )
  })

  it("random 2 × 2 covariances: matches Tr sqrt(Σ₁Σ₂) = sqrt(tr Σ₁Σ₂ + 2 sqrt(det Σ₁ det Σ₂))", () => {
    const lower = fc.tuple(
      fc.double({ min: 0.05, max: 3, noNaN: true }),
      fc.double({ min: -3, max: 3, noNaN: true }),
      fc.double({ min: 0.05, max: 3, noNaN: true })
    )
    fc.assert(
      fc.property(lower, lower, ([a, b, c], [d, e, f]) => {
        const s1 = [[a * a, a * b], [a * b, b * b + c * c]]
        const s2 = [[d * d, d * e], [d * e, e * e + f * f]]
        const p = matmul(s1, s2)
        const traceSqrt = Math.sqrt(p[0]![0]! + p[1]![1]! + 2 * Math.abs(a * c * d * f))
        const exact = s1[0]![0]! + s1[1]![1]! + s2[0]![0]! + s2[1]![1]! - 2 * traceSqrt
        const got = frechetDistanceFromMoments([0, 0], s1, [0, 0], s2)
        expect(Math.abs(got - Math.max(exact, 0))).toBeLessThan(1e-9 * (1 + exact + a * a + b * b + d * d + e * e))
      }),
      { numRuns: 100 }
    )
  })

  it("accepts flat row-major covariances", () => {
    const rows = [[2, 0.5], [0.5, 1]]
    const other = [[1, -0.2], [-0.2, 0.7]]
    expect(frechetDistanceFromMoments([0, 1], rows.flat(), [1, 0], other.flat())).toBeCloseTo(
      frechetDistanceFromMoments([0, 1], rows, [1, 0], other),
      14
    )
  })

  it("rejects mismatched, non-finite, asymmetric and indefinite input", () => {
    const eye = [[1, 0], [0, 1]]
    expect(() => frechetDistanceFromMoments([0, 0], eye, [0], [[1]])).toThrow(MetricInputError)
    expect(() => frechetDistanceFromMoments([0, 0], [[1]], [0, 0], eye)).toThrow(MetricInputError)
    expect(() => frechetDistanceFromMoments([0, NaN], eye, [0, 0], eye)).toThrow(MetricInputError)
    expect(() => frechetDistanceFromMoments([0, 0], [[1, 0], [0, Infinity]], [0, 0], eye)).toThrow(MetricInputError)
    expect(() => frechetDistanceFromMoments([0, 0], [[1, 0.5], [0, 1]], [0, 0], eye)).toThrow(/not symmetric/)
    expect(() => frechetDistanceFromMoments([0, 0], [[1, 0], [0, -1]], [0, 0], eye)).toThrow(/positive semi-definite/)
    expect(() => frechetDistanceFromMoments([0, 0], eye, [0, 0], [[1, 2], [2, 1]])).toThrow(/positive semi-definite/)
    expect(() => frechetDistanceFromMoments([], [], [], [])).toThrow(MetricInputError)
  })
})
