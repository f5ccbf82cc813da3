import * as tf from "@tensorflow/tfjs"
import { Either, Schema } from "effect"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import {
  assignComponents,
  assignedFractions,
  denoise,
  dimension,
  gaussian1d,
  type GaussianMixture,
  GaussianMixtureSchema,
  gaussianMixtureProblems,
  grid,
  logDensity,
  makeGaussianMixture,
  moments,
  numComponents,
  responsibilities,
  ring,
  sample,
  sampleSeeded,
  score
} from "../src/domain/data/GaussianMixture.js"
import { estimate } from "../src/domain/metrics/MonteCarlo.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Random valid mixtures: K ∈ [1,4], d ∈ [1,3], means in [−2,2], stds in [0.05,1.5], weights ≥ 0.1 before normalising. */
const mixtureArb = (maxD = 3): fc.Arbitrary<GaussianMixture> =>
  fc.record({ k: fc.integer({ min: 1, max: 4 }), d: fc.integer({ min: 1, max: maxD }) }).chain(({ d, k }) =>
    fc.record({
      raw: fc.array(fc.double({ min: 0.1, max: 1, noNaN: true }), { minLength: k, maxLength: k }),
      means: fc.array(fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: d, maxLength: d }), { minLength: k, maxLength: k }),
      stds: fc.array(fc.array(fc.double({ min: 0.05, max: 1.5, noNaN: true }), { minLength: d, maxLength: d }), { minLength: k, maxLength: k })
    }).map(({ means, raw, stds }) => {
      const total = raw.reduce((a, b) => a + b, 0)
      return makeGaussianMixture({
        weights: raw.map((w) => w / total),
        means,
        variances: stds.map((row) => row.map((s) => s * s))
      })
    })
  )

/** Float64 reference: ln Σ_k π_k Π_j N(x_j; μ_kj, s_kj² + σ²) and the responsibilities. */
const reference = (g: GaussianMixture, x: ReadonlyArray<number>, sigma: number) => {
  const logits = g.weights.map((w, k) => {
    let acc = Math.log(w)
    x.forEach((xj, j) => {
      const v = (g.variances[k]?.[j] ?? Number.NaN) + sigma * sigma
      acc -= 0.5 * (Math.log(2 * Math.PI * v) + (xj - (g.means[k]?.[j] ?? Number.NaN)) ** 2 / v)
    })
    return acc
  })
  const m = Math.max(...logits)
  const lse = m + Math.log(logits.reduce((a, l) => a + Math.exp(l - m), 0))
  return { logDensity: lse, r: logits.map((l) => Math.exp(l - lse)) }
}

const rows = (t: tf.Tensor): Array<Array<number>> => t.arraySync() as Array<Array<number>>

describe("mixture data (docs/algorithm.md §4)", () => {
  it("rejects invalid data with a clear error", () => {
    expect(() => makeGaussianMixture({ weights: [0.5, 0.4], means: [[0], [1]], variances: [[1], [1]] })).toThrow(/sum to 1/)
    expect(() => makeGaussianMixture({ weights: [1], means: [[0]], variances: [[0]] })).toThrow(/positive/)
    expect(() => makeGaussianMixture({ weights: [0.5, 0.5], means: [[0, 1], [1]], variances: [[1, 1], [1, 1]] })).toThrow(/entries/)
    expect(() => makeGaussianMixture({ weights: [1, 0], means: [[0], [1]], variances: [[1], [1]] })).toThrow(/positive/)
    expect(() => makeGaussianMixture({ weights: [], means: [], variances: [] })).toThrow(/no components/)
    expect(gaussianMixtureProblems(ring())).toEqual([])
  })

  it("the Schema accepts valid mixtures and rejects invalid ones", () => {
    const decode = Schema.decodeUnknownEither(GaussianMixtureSchema)
    expect(Either.isRight(decode(grid()))).toBe(true)
    expect(Either.isLeft(decode({ weights: [0.3], means: [[0]], variances: [[1]] }))).toBe(true)
    expect(Either.isLeft(decode({ weights: [1], means: [[0]] }))).toBe(true)
  })

  it("presets: the 8-mode ring and 25-mode grid have per-coordinate std ≈ 0.5 (docs/algorithm.md §12, §12.3)", () => {
    const r = ring()
    expect(numComponents(r)).toBe(8)
    expect(dimension(r)).toBe(2)
    r.means.forEach((m) => expect(Math.hypot(m[0] ?? 0, m[1] ?? 0)).toBeCloseTo(0.702, 10))
    r.variances.forEach((v) => expect(v).toEqual([0.06 ** 2, 0.06 ** 2]))
    moments(r).variance.forEach((v) => expect(Math.sqrt(v)).toBeCloseTo(0.5, 3))
    moments(r).mean.forEach((m) => expect(m).toBeCloseTo(0, 10))
    const g = grid()
    expect(numComponents(g)).toBe(25)
    moments(g).variance.forEach((v) => expect(Math.sqrt(v)).toBeCloseTo(0.5, 10))
    const one = gaussian1d(0.3, 0.7)
    expect(moments(one)).toEqual({ mean: [0.3], variance: [0.7 ** 2] })
  })
})

describe("noised marginal (docs/algorithm.md §4)", () => {
  it("log-density and responsibilities match a float64 reference", () => {
    fc.assert(
      fc.property(mixtureArb(), fc.double({ min: 0, max: 3, noNaN: true }), fc.integer({ min: 0, max: 1e6 }), (g, sigma, seed) => {
        const d = dimension(g)
        const { lp, r, x } = tf.tidy(() => {
          const x = tf.randomUniform([6, d], -3, 3, "float32", seed)
          return { x: rows(x), lp: logDensity(g, x, sigma).arraySync(), r: rows(responsibilities(g, x, sigma)) }
        })
        x.forEach((xi, i) => {
          const ref = reference(g, xi, sigma)
          expect(Math.abs((lp[i] ?? Number.NaN) - ref.logDensity)).toBeLessThan(2e-4 * (1 + Math.abs(ref.logDensity)))
          const ri = r[i] ?? []
          expect(ri.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5)
          ref.r.forEach((rk, k) => expect(Math.abs((ri[k] ?? Number.NaN) - rk)).toBeLessThan(1e-4))
        })
      }),
      { numRuns: 60 }
    )
  })

  it("Tweedie exactly: D(x;σ) = x + σ²·∇ln p_σ(x), with the score from autodiff of the log-density", () => {
    fc.assert(
      fc.property(
        mixtureArb(),
        fc.double({ min: 0.05, max: 3, noNaN: true }),
        fc.integer({ min: 0, max: 1e6 }),
        (g, sigma, seed) => {
          const d = dimension(g)
          const { dn, viaGrad, closed, x } = tf.tidy(() => {
            const x = tf.randomUniform([8, d], -3, 3, "float32", seed)
            const sigmas = tf.fill([8], sigma)
            const grad = tf.grad((xx: tf.Tensor) => logDensity(g, xx, sigmas).sum())(x)
            return {
              x: rows(x),
              dn: rows(denoise(g, x, sigmas)),
              viaGrad: rows(x.add(grad.mul(sigma * sigma))),
              closed: rows(score(g, x, sigma)),
              grad: rows(grad)
            }
          })
          x.forEach((xi, i) =>
            xi.forEach((_, j) => {
              const a = dn[i]?.[j] ?? Number.NaN
              const b = viaGrad[i]?.[j] ?? Number.NaN
              expect(Math.abs(a - b)).toBeLessThan(2e-4 * (1 + Math.abs(xi[j] ?? 0)))
              const c = (closed[i]?.[j] ?? Number.NaN) * sigma * sigma + (xi[j] ?? 0)
              expect(Math.abs(c - b)).toBeLessThan(2e-4 * (1 + Math.abs(xi[j] ?? 0)))
            })
          )
        }
      ),
      { numRuns: 80 }
    )
  })

  it("the autodiff score equals the closed-form score (relative to its scale)", () => {
    fc.assert(
      fc.property(mixtureArb(), fc.double({ min: 0.05, max: 3, noNaN: true }), fc.integer({ min: 0, max: 1e6 }), (g, sigma, seed) => {
        const err = tf.tidy(() => {
          const x = tf.randomUniform([8, dimension(g)], -3, 3, "float32", seed)
          const auto = tf.grad((xx: tf.Tensor) => logDensity(g, xx, sigma).sum())(x)
          const closed = score(g, x, sigma)
          return auto.sub(closed).abs().div(closed.abs().add(1)).max().dataSync()[0] ?? Number.NaN
        })
        expect(err).toBeLessThan(1e-4)
      }),
      { numRuns: 60 }
    )
  })

  it("second-order Tweedie: σ²·∂D/∂x is a symmetric PSD covariance (docs/algorithm.md §4), via autodiff", () => {
    fc.assert(
      fc.property(mixtureArb(2).filter((g) => dimension(g) === 2), fc.double({ min: 0.1, max: 2, noNaN: true }), fc.integer({ min: 0, max: 1e6 }), (g, sigma, seed) => {
        const { jac } = tf.tidy(() => {
          const x = tf.randomUniform([5, 2], -2, 2, "float32", seed)
          const cols = [0, 1].map((j) =>
            tf.grad((xx: tf.Tensor) => denoise(g, xx, sigma).slice([0, j], [-1, 1]).sum())(x))
          return { jac: cols.map(rows) }
        })
        for (let i = 0; i < 5; i++) {
          // J[a][b] = ∂D_b/∂x_a from column b's gradient
          const j00 = jac[0]?.[i]?.[0] ?? Number.NaN
          const j01 = jac[1]?.[i]?.[0] ?? Number.NaN
          const j10 = jac[0]?.[i]?.[1] ?? Number.NaN
          const j11 = jac[1]?.[i]?.[1] ?? Number.NaN
          const scale = 1 + Math.abs(j00) + Math.abs(j11) + Math.abs(j01)
          expect(Math.abs(j01 - j10)).toBeLessThan(2e-4 * scale)
          expect(j00).toBeGreaterThan(-1e-4 * scale)
          expect(j11).toBeGreaterThan(-1e-4 * scale)
          expect(j00 * j11 - j01 * j10).toBeGreaterThan(-1e-3 * scale * scale)
        }
      }),
      { numRuns: 30 }
    )
  })

  it("D → x as σ → 0 and D → the data mean as σ → ∞", () => {
    fc.assert(
      fc.property(mixtureArb(), fc.integer({ min: 0, max: 1e6 }), (g, seed) => {
        const d = dimension(g)
        const { x, small, large } = tf.tidy(() => {
          const x = tf.randomUniform([4, d], -2, 2, "float32", seed)
          return { x: rows(x), small: rows(denoise(g, x, 1e-3)), large: rows(denoise(g, x, 1e4)) }
        })
        const { mean } = moments(g)
        x.forEach((xi, i) => xi.forEach((v, j) => {
          expect(Math.abs((small[i]?.[j] ?? Number.NaN) - v)).toBeLessThan(5e-3)
          expect(Math.abs((large[i]?.[j] ?? Number.NaN) - (mean[j] ?? 0))).toBeLessThan(5e-3)
        }))
      }),
      { numRuns: 30 }
    )
  })

  it("accepts σ as a number, a scalar tensor or a per-sample vector, consistently", () => {
    const g = ring()
    const out = tf.tidy(() => {
      const x = tf.randomNormal([3, 2], 0, 0.5, "float32", 5)
      const s = [0.1, 0.7, 2]
      const byRow = rows(denoise(g, x, tf.tensor1d(s)))
      const single = s.map((si, i) => rows(denoise(g, x.slice([i, 0], [1, 2]), si))[0])
      const scalarT = rows(denoise(g, x, tf.scalar(0.7)))
      const num = rows(denoise(g, x, 0.7))
      return { byRow, single, scalarT, num }
    })
    out.byRow.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(out.single[i]?.[j] ?? Number.NaN, 5)))
    out.scalarT.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(out.num[i]?.[j] ?? Number.NaN, 6)))
    expect(() => tf.tidy(() => denoise(g, tf.zeros([3, 2]), tf.tensor1d([1, 2])))).toThrow()
    expect(() => tf.tidy(() => denoise(g, tf.zeros([3, 3]), 1))).toThrow()
  })
})

describe("sampling and mode assignment (docs/algorithm.md §4, §12)", () => {
  it("sample moments and component frequencies match the mixture within Monte Carlo error", () => {
    fc.assert(
      fc.property(mixtureArb(2), fc.integer({ min: 0, max: 1e6 }), (g, seed) => {
        const n = 20000
        const { x, comp } = tf.tidy(() => {
          const s = sampleSeeded(g, n, seed)
          return { x: s.x.transpose().arraySync() as Array<Array<number>>, comp: s.component.dataSync() }
        })
        const { mean, variance } = moments(g)
        x.forEach((col, j) => {
          const e = estimate(col)
          expect(Math.abs(e.mean - (mean[j] ?? 0))).toBeLessThan(5 * e.stderr)
          const sq = estimate(col.map((v) => (v - (mean[j] ?? 0)) ** 2))
          expect(Math.abs(sq.mean - (variance[j] ?? 0))).toBeLessThan(5 * sq.stderr)
        })
        g.weights.forEach((w, k) => {
          const f = estimate(Array.from(comp, (c) => (c === k ? 1 : 0)))
          expect(Math.abs(f.mean - w)).toBeLessThan(5 * Math.sqrt(w * (1 - w) / n) + 1e-9)
        })
      }),
      { numRuns: 10 }
    )
  })

  it("sample() is a deterministic function of its draws, and the component is the inverse CDF of the weights", () => {
    const g = makeGaussianMixture({ weights: [0.2, 0.5, 0.3], means: [[-1], [0], [1]], variances: [[0.01], [0.04], [0.09]] })
    const { x, comp } = tf.tidy(() => {
      const s = sample(g, tf.tensor2d([[1], [1], [1], [1], [-2]]), tf.tensor1d([0, 0.19, 0.2, 0.69, 0.71]))
      return { x: s.x.dataSync(), comp: Array.from(s.component.dataSync()) }
    })
    expect(comp).toEqual([0, 0, 1, 1, 2])
    const expected = [-1 + 0.1, -1 + 0.1, 0 + 0.2, 0 + 0.2, 1 - 0.6]
    expected.forEach((e, i) => expect(x[i]).toBeCloseTo(e, 5))
  })

  it("hard assignment at σ → 0 recovers the sampled ring mode and the equal weights", () => {
    const g = ring()
    const s = sampleSeeded(g, 8000, 3)
    const agree = tf.tidy(() => assignComponents(g, s.x).equal(s.component).cast("float32").mean().dataSync()[0] ?? 0)
    const fractions = assignedFractions(g, s.x)
    tf.dispose([s.x, s.component])
    expect(agree).toBeGreaterThan(0.999)
    fractions.forEach((f) => expect(Math.abs(f - 1 / 8)).toBeLessThan(5 * Math.sqrt((1 / 8) * (7 / 8) / 8000)))
  })
})

describe("memory", () => {
  it("leaves tf.memory().numTensors unchanged", () => {
    const g = ring()
    const x = tf.randomNormal([16, 2], 0, 0.5, "float32", 1)
    const s = tf.fill([16], 0.4)
    const normals = tf.randomNormal([16, 2], 0, 1, "float32", 2)
    const u = tf.randomUniform([16], 0, 1, "float32", 3)
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      const smp = sample(g, normals, u)
      const seeded = sampleSeeded(g, 8, i)
      tf.dispose([
        logDensity(g, x, s), responsibilities(g, x, 0.3), score(g, x, s), denoise(g, x, 0.2), assignComponents(g, x),
        smp.x, smp.component, seeded.x, seeded.component
      ])
      assignedFractions(g, x)
      tf.grad((xx: tf.Tensor) => logDensity(g, xx, s).sum())(x).dispose()
    }
    expect(tf.memory().numTensors).toBe(n0)
    tf.dispose([x, s, normals, u])
  })
})
