import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import {
  denoise,
  dimension,
  gaussian1d,
  type GaussianMixture,
  sampleSeeded,
  score
} from "../src/domain/data/GaussianMixture.js"
import { estimate, estimateTensor, pairedDifference, withinStandardErrors, zScore } from "../src/domain/metrics/MonteCarlo.js"
import { normalTensor, uniformTensor } from "../src/domain/data/RandomStream.js"
import {
  denoiserIdentityTerms,
  type IdentityTerms,
  scoreProjectionTerms,
  tweedieDenoiser,
  tweedieScore
} from "../src/domain/sid/ScoreIdentities.js"
import {
  checkIdentity,
  expectWithinStandardErrors,
  gaussianMixtureArbitrary,
  noisyPointsArbitrary,
  type SigmaRange,
  type StandardErrorCheck,
  trainingSigmaArbitrary,
  uniformArbitrary
} from "../src/testing/index.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

/** Mixtures from sid-ts/testing: K 1–5, d 1–3, means in ±1.5, stds in [0.05, 1] (docs/algorithm.md §4). */
const mixtureArb: fc.Arbitrary<GaussianMixture> = gaussianMixtureArbitrary()

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
    w: fc.array(uniformArbitrary(-2, 2), { minLength: d * d, maxLength: d * d }),
    b: fc.array(uniformArbitrary(-1, 1), { minLength: d, maxLength: d }),
    a: fc.array(uniformArbitrary(0.2, 2), { minLength: d, maxLength: d })
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

/** Per-sample σ of the Monte Carlo draws: log-uniform on [0.1, 3]. */
const MC_SIGMA_RANGE: SigmaRange = { min: 0.1, max: 3 }

/** x_g ~ p_θ, σ log-uniform on MC_SIGMA_RANGE per sample, x_t = x_g + σε (docs/algorithm.md §5); seeded streams. */
const draw = (g: GaussianMixture, n: number, seed: number): Draw =>
  tf.tidy(() => {
    const { x: xg } = sampleSeeded(g, n, seed)
    const logRange = Math.log(MC_SIGMA_RANGE.max / MC_SIGMA_RANGE.min)
    const sigma = tf.exp(uniformTensor([n], seed, "draw.sigma").mul(logRange).add(Math.log(MC_SIGMA_RANGE.min))) as tf.Tensor1D
    const eps = normalTensor([n, dimension(g)], seed, "draw.eps")
    const xt = tf.add(xg, tf.mul(sigma.reshape([n, 1]), eps)) as tf.Tensor2D
    return { xg, xt, sigma }
  })

const disposeDraw = (d: Draw) => tf.dispose([d.xg, d.xt, d.sigma])

/** Reads and disposes an identity's per-sample terms. */
const read = (terms: IdentityTerms): { readonly lhs: Float32Array; readonly rhs: Float32Array } => {
  const out = { lhs: terms.lhs.dataSync() as Float32Array, rhs: terms.rhs.dataSync() as Float32Array }
  tf.dispose([terms.lhs, terms.rhs])
  return out
}

/** E[lhs − rhs] = 0 within 5 standard errors; throws a descriptive Error otherwise (sid-ts/testing). */
const check = (name: string, terms: IdentityTerms): StandardErrorCheck => {
  const { lhs, rhs } = read(terms)
  return checkIdentity(name, lhs, rhs)
}

/** The check without throwing, for the power test. */
const measure = (terms: IdentityTerms): StandardErrorCheck => {
  const { lhs, rhs } = read(terms)
  return expectWithinStandardErrors(lhs, rhs)
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

describe("(I1) Tweedie (docs/algorithm.md §5)", () => {
  it("tweedieDenoiser(score) = exact posterior mean and tweedieScore(D) = exact score, per-sample σ across the EDM range", () => {
    fc.assert(
      fc.property(
        mixtureArb.chain((g) => fc.tuple(fc.constant(g), noisyPointsArbitrary(g, { minPoints: 32, maxPoints: 64 }))),
        ([g, { points, sigmas }]) => {
          const { errD, errS } = tf.tidy(() => {
            const xt = tf.tensor2d(points.map((p) => [...p]))
            const sigma = tf.tensor1d([...sigmas])
            const s = score(g, xt, sigma)
            const d = denoise(g, xt, sigma)
            const errD = tweedieDenoiser(xt, s, sigma).sub(d).abs().div(xt.abs().add(1)).max().dataSync()[0] ?? Number.NaN
            const errS = tweedieScore(xt, d, sigma).sub(s).abs().div(s.abs().add(1))
              .mul(sigma.square().reshape([-1, 1])).max().dataSync()[0] ?? Number.NaN
            return { errD, errS }
          })
          expect(errD).toBeLessThan(1e-4)
          expect(errS).toBeLessThan(1e-4)
        }
      ),
      { numRuns: 40 }
    )
  })
})

describe("(I2) score projection and (I3) denoiser form hold in expectation (docs/algorithm.md §5)", () => {
  it("E[u(x_t)ᵀ∇ln p_θ(x_t)] = E[u(x_t)ᵀ(x_g − x_t)/σ²] within 5 standard errors", () => {
    fc.assert(
      fc.property(
        mixtureArb.chain((g) => fc.tuple(fc.constant(g), testFunctionArb(dimension(g)))),
        fc.integer({ min: 0, max: 1e6 }),
        ([g, u], seed) => {
          const d = draw(g, N, seed)
          try {
            check("(I2) score projection", tf.tidy(() =>
              scoreProjectionTerms({ u: applyU(u, d.xt), score: score(g, d.xt, d.sigma), xg: d.xg, xt: d.xt, sigma: d.sigma })))
          } finally {
            disposeDraw(d)
          }
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
          try {
            check("(I3) denoiser form", tf.tidy(() =>
              denoiserIdentityTerms({ u: applyU(u, d.xt), denoised: denoise(g, d.xt, d.sigma), xg: d.xg })))
          } finally {
            disposeDraw(d)
          }
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
      return { xg, sigma, xt: xg.add(normalTensor([N, 1], 100, "eps").mul(0.7)) as tf.Tensor2D }
    })
    const i2 = measure(tf.tidy(() =>
      scoreProjectionTerms({ u: applyU(u, d.xt), score: score(wrong, d.xt, d.sigma), xg: d.xg, xt: d.xt, sigma: d.sigma })))
    const i3 = measure(tf.tidy(() => denoiserIdentityTerms({ u: applyU(u, d.xt), denoised: denoise(wrong, d.xt, d.sigma), xg: d.xg })))
    const ok2 = measure(tf.tidy(() =>
      scoreProjectionTerms({ u: applyU(u, d.xt), score: score(truth, d.xt, d.sigma), xg: d.xg, xt: d.xt, sigma: d.sigma })))
    const ok3 = measure(tf.tidy(() => denoiserIdentityTerms({ u: applyU(u, d.xt), denoised: denoise(truth, d.xt, d.sigma), xg: d.xg })))
    disposeDraw(d)
    expect(Math.abs(i2.z)).toBeGreaterThan(10)
    expect(Math.abs(i3.z)).toBeGreaterThan(10)
    expect(i2.passed).toBe(false)
    expect(i3.passed).toBe(false)
    expect(ok2.passed).toBe(true)
    expect(ok3.passed).toBe(true)
  })

  it("a scalar σ works as well as a per-sample one (σ across the training range)", () => {
    fc.assert(
      fc.property(
        mixtureArb.chain((g) => fc.tuple(fc.constant(g), testFunctionArb(dimension(g)))),
        trainingSigmaArbitrary,
        fc.integer({ min: 0, max: 1e6 }),
        ([g, u], sigma, seed) => {
          const { xg, xt } = tf.tidy(() => {
            const { x: xg } = sampleSeeded(g, N, seed)
            return { xg, xt: xg.add(normalTensor([N, dimension(g)], seed, "eps").mul(sigma)) }
          })
          try {
            check("(I2) scalar σ", tf.tidy(() => scoreProjectionTerms({ u: applyU(u, xt), score: score(g, xt, sigma), xg, xt, sigma })))
            check("(I3) scalar σ", tf.tidy(() => denoiserIdentityTerms({ u: applyU(u, xt), denoised: denoise(g, xt, sigma), xg })))
          } finally {
            tf.dispose([xg, xt])
          }
        }
      ),
      { numRuns: 8 }
    )
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
