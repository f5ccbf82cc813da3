import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import {
  denoise,
  dimension,
  gaussian1d,
  type GaussianMixture,
  makeGaussianMixture,
  sampleSeeded,
  score
} from "../src/domain/GaussianMixture.js"
import { estimate, estimateTensor, pairedDifference, withinStandardErrors, zScore } from "../src/domain/MonteCarlo.js"
import {
  denoiserIdentityTerms,
  scoreProjectionTerms,
  tweedieDenoiser,
  tweedieScore
} from "../src/domain/ScoreIdentities.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const mixtureArb: fc.Arbitrary<GaussianMixture> = fc
  .record({ k: fc.integer({ min: 1, max: 4 }), d: fc.integer({ min: 1, max: 2 }) })
  .chain(({ d, k }) =>
    fc.record({
      raw: fc.array(fc.double({ min: 0.1, max: 1, noNaN: true }), { minLength: k, maxLength: k }),
      means: fc.array(fc.array(fc.double({ min: -1.5, max: 1.5, noNaN: true }), { minLength: d, maxLength: d }), { minLength: k, maxLength: k }),
      stds: fc.array(fc.array(fc.double({ min: 0.05, max: 1, noNaN: true }), { minLength: d, maxLength: d }), { minLength: k, maxLength: k })
    }).map(({ means, raw, stds }) => {
      const total = raw.reduce((a, b) => a + b, 0)
      return makeGaussianMixture({ weights: raw.map((w) => w / total), means, variances: stds.map((r) => r.map((s) => s * s)) })
    })
  )

/** A random test function u: R^d → R^d, u(x) = a ⊙ act(x·W + b), act ∈ {identity, tanh, sin}. */
interface TestFunction {
  readonly kind: "linear" | "tanh" | "sin"
  readonly w: ReadonlyArray<number>
  readonly b: ReadonlyArray<number>
  readonly a: ReadonlyArray<number>
}

const testFunctionArb = (d: number): fc.Arbitrary<TestFunction> =>
  fc.record({
    kind: fc.constantFrom("linear" as const, "tanh" as const, "sin" as const),
    w: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: d * d, maxLength: d * d }),
    b: fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: d, maxLength: d }),
    a: fc.array(fc.double({ min: 0.2, max: 2, noNaN: true }), { minLength: d, maxLength: d })
  })

const applyU = (u: TestFunction, x: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    const d = x.shape[1] ?? 1
    const pre = tf.matMul(x as tf.Tensor2D, tf.tensor2d([...u.w], [d, d])).add(tf.tensor1d([...u.b]))
    const act = u.kind === "linear" ? pre : u.kind === "tanh" ? tf.tanh(pre) : tf.sin(pre)
    return act.mul(tf.tensor1d([...u.a]))
  })

interface Draw {
  readonly xg: tf.Tensor2D
  readonly xt: tf.Tensor2D
  readonly sigma: tf.Tensor1D
}

/** x_g ~ p_θ, σ log-uniform in [0.1, 3] per sample, x_t = x_g + σε (spec §4.2). */
const draw = (g: GaussianMixture, n: number, seed: number): Draw =>
  tf.tidy(() => {
    const { x: xg } = sampleSeeded(g, n, seed)
    const sigma = tf.exp(tf.randomUniform([n], Math.log(0.1), Math.log(3), "float32", seed + 2)) as tf.Tensor1D
    const eps = tf.randomNormal([n, dimension(g)], 0, 1, "float32", seed + 3)
    const xt = tf.add(xg, tf.mul(sigma.reshape([n, 1]), eps)) as tf.Tensor2D
    return { xg, xt, sigma }
  })

const disposeDraw = (d: Draw) => tf.dispose([d.xg, d.xt, d.sigma])

const pairedFromTerms = (terms: { lhs: tf.Tensor1D; rhs: tf.Tensor1D }) => {
  const e = pairedDifference(terms.lhs.dataSync(), terms.rhs.dataSync())
  tf.dispose([terms.lhs, terms.rhs])
  return e
}

const N = 20000

describe("Monte Carlo summaries", () => {
  it("mean, standard error (n − 1) and paired differences", () => {
    const e = estimate([1, 2, 3, 4])
    expect(e.mean).toBe(2.5)
    expect(e.stderr).toBeCloseTo(Math.sqrt(5 / 3) / 2, 12)
    expect(e.n).toBe(4)
    const p = pairedDifference([5, 7, 9], [1, 2, 3])
    expect(p.mean).toBeCloseTo(5, 12)
    expect(p.stderr).toBeCloseTo(1 / Math.sqrt(3), 12)
    expect(() => pairedDifference([1], [1, 2])).toThrow()
    expect(zScore({ mean: 1, stderr: 0, n: 3 })).toBe(Number.POSITIVE_INFINITY)
    expect(zScore({ mean: 0, stderr: 0, n: 3 })).toBe(0)
    expect(withinStandardErrors({ mean: 0.3, stderr: 0.1, n: 10 }, 0, 5)).toBe(true)
    expect(withinStandardErrors({ mean: 0.6, stderr: 0.1, n: 10 }, 0, 5)).toBe(false)
    const t = tf.tensor1d([1, 2, 3, 4])
    expect(estimateTensor(t)).toEqual(e)
    t.dispose()
  })

  it("shifting all values moves only the mean; scaling scales the stderr", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -100, max: 100, noNaN: true }), { minLength: 2, maxLength: 50 }),
        fc.double({ min: -10, max: 10, noNaN: true }),
        fc.double({ min: 0.1, max: 10, noNaN: true }),
        (xs, shift, scale) => {
          const e = estimate(xs)
          const s = estimate(xs.map((x) => x * scale + shift))
          expect(s.mean).toBeCloseTo(e.mean * scale + shift, 6)
          expect(s.stderr).toBeCloseTo(e.stderr * scale, 6)
        }
      )
    )
  })
})

describe("(I1) Tweedie (spec §4.2)", () => {
  it("tweedieDenoiser(score) = exact posterior mean and tweedieScore(D) = exact score, per-sample σ", () => {
    fc.assert(
      fc.property(mixtureArb, fc.integer({ min: 0, max: 1e6 }), (g, seed) => {
        const { errD, errS } = tf.tidy(() => {
          const { sigma, xt } = draw(g, 64, seed)
          const s = score(g, xt, sigma)
          const d = denoise(g, xt, sigma)
          const errD = tweedieDenoiser(xt, s, sigma).sub(d).abs().div(xt.abs().add(1)).max().dataSync()[0] ?? Number.NaN
          const errS = tweedieScore(xt, d, sigma).sub(s).abs().div(s.abs().add(1))
            .mul(sigma.square().reshape([-1, 1])).max().dataSync()[0] ?? Number.NaN
          return { errD, errS }
        })
        expect(errD).toBeLessThan(1e-4)
        expect(errS).toBeLessThan(1e-4)
      }),
      { numRuns: 40 }
    )
  })
})

describe("(I2) score projection and (I3) denoiser form hold in expectation (spec §4.2)", () => {
  it("E[u(x_t)ᵀ∇ln p_θ(x_t)] = E[u(x_t)ᵀ(x_g − x_t)/σ²] within 5 standard errors", () => {
    fc.assert(
      fc.property(
        mixtureArb.chain((g) => fc.tuple(fc.constant(g), testFunctionArb(dimension(g)))),
        fc.integer({ min: 0, max: 1e6 }),
        ([g, u], seed) => {
          const d = draw(g, N, seed)
          const e = pairedFromTerms(tf.tidy(() =>
            scoreProjectionTerms({ u: applyU(u, d.xt), score: score(g, d.xt, d.sigma), xg: d.xg, xt: d.xt, sigma: d.sigma })
          ))
          disposeDraw(d)
          expect(Math.abs(e.mean)).toBeLessThanOrEqual(5 * e.stderr)
        }
      ),
      { numRuns: 20 }
    )
  })

  it("E[u(x_t)ᵀ f*(x_t)] = E[u(x_t)ᵀ x_g] within 5 standard errors, f* the exact posterior mean of p_θ", () => {
    fc.assert(
      fc.property(
        mixtureArb.chain((g) => fc.tuple(fc.constant(g), testFunctionArb(dimension(g)))),
        fc.integer({ min: 0, max: 1e6 }),
        ([g, u], seed) => {
          const d = draw(g, N, seed)
          const e = pairedFromTerms(tf.tidy(() =>
            denoiserIdentityTerms({ u: applyU(u, d.xt), denoised: denoise(g, d.xt, d.sigma), xg: d.xg })
          ))
          disposeDraw(d)
          expect(Math.abs(e.mean)).toBeLessThanOrEqual(5 * e.stderr)
        }
      ),
      { numRuns: 20 }
    )
  })

  it("the checks have power: a wrong model's score or denoiser violates the identities by far more than 5 stderr", () => {
    const truth = gaussian1d(0, 0.5)
    const wrong = gaussian1d(1, 0.3)
    const u: TestFunction = { kind: "linear", w: [0.2], b: [1], a: [1] }
    const d: Draw = tf.tidy(() => {
      const { x: xg } = sampleSeeded(truth, N, 99)
      const sigma = tf.fill([N], 0.7) as tf.Tensor1D
      return { xg, sigma, xt: xg.add(tf.randomNormal([N, 1], 0, 1, "float32", 100).mul(0.7)) as tf.Tensor2D }
    })
    const [i2, i3] = [
      pairedFromTerms(tf.tidy(() =>
        scoreProjectionTerms({ u: applyU(u, d.xt), score: score(wrong, d.xt, d.sigma), xg: d.xg, xt: d.xt, sigma: d.sigma }))),
      pairedFromTerms(tf.tidy(() => denoiserIdentityTerms({ u: applyU(u, d.xt), denoised: denoise(wrong, d.xt, d.sigma), xg: d.xg })))
    ]
    const [ok2, ok3] = [
      pairedFromTerms(tf.tidy(() =>
        scoreProjectionTerms({ u: applyU(u, d.xt), score: score(truth, d.xt, d.sigma), xg: d.xg, xt: d.xt, sigma: d.sigma }))),
      pairedFromTerms(tf.tidy(() => denoiserIdentityTerms({ u: applyU(u, d.xt), denoised: denoise(truth, d.xt, d.sigma), xg: d.xg })))
    ]
    disposeDraw(d)
    expect(Math.abs(zScore(i2!))).toBeGreaterThan(10)
    expect(Math.abs(zScore(i3!))).toBeGreaterThan(10)
    expect(withinStandardErrors(ok2!)).toBe(true)
    expect(withinStandardErrors(ok3!)).toBe(true)
  })

  it("a scalar σ works as well as a per-sample one", () => {
    const g = makeGaussianMixture({ weights: [0.4, 0.6], means: [[-0.5, 0.2], [0.6, -0.1]], variances: [[0.04, 0.09], [0.01, 0.25]] })
    const u: TestFunction = { kind: "sin", w: [1, -0.5, 0.7, 1.2], b: [0.1, -0.3], a: [1, 0.5] }
    const sigma = 0.8
    const { xg, xt } = tf.tidy(() => {
      const { x: xg } = sampleSeeded(g, N, 5)
      return { xg, xt: xg.add(tf.randomNormal([N, 2], 0, 1, "float32", 6).mul(sigma)) }
    })
    const e2 = pairedFromTerms(tf.tidy(() => scoreProjectionTerms({ u: applyU(u, xt), score: score(g, xt, sigma), xg, xt, sigma })))
    const e3 = pairedFromTerms(tf.tidy(() => denoiserIdentityTerms({ u: applyU(u, xt), denoised: denoise(g, xt, sigma), xg })))
    tf.dispose([xg, xt])
    expect(withinStandardErrors(e2)).toBe(true)
    expect(withinStandardErrors(e3)).toBe(true)
  })
})

describe("memory", () => {
  it("leaves tf.memory().numTensors unchanged", () => {
    const x = tf.randomNormal([8, 2], 0, 1, "float32", 1)
    const y = tf.randomNormal([8, 2], 0, 1, "float32", 2)
    const s = tf.fill([8], 0.5)
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      const a = scoreProjectionTerms({ u: x, score: y, xg: y, xt: x, sigma: s })
      const b = denoiserIdentityTerms({ u: x, denoised: y, xg: x })
      tf.dispose([a.lhs, a.rhs, b.lhs, b.rhs, tweedieDenoiser(x, y, s), tweedieScore(x, y, 0.3)])
    }
    expect(tf.memory().numTensors).toBe(n0)
    tf.dispose([x, y, s])
  })
})
