import * as tf from "@tensorflow/tfjs"
import { Either, Schema } from "effect"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { DistillConfig, decodeDistillConfig, encodeDistillConfig } from "../src/domain/config/DistillConfig.js"
import { P_MEAN, P_STD, SIGMA_MAX, SIGMA_MIN } from "../src/domain/edm/Edm.js"
import {
  denoise,
  dimension,
  gaussian1d,
  gaussianMixtureProblems,
  GaussianMixtureSchema,
  numComponents,
  sampleSeeded
} from "../src/domain/data/GaussianMixture.js"
import { mlpShapes } from "../src/domain/nn/Mlp.js"
import { disposeParameters } from "../src/domain/nn/Parameters.js"
import { normalTensor } from "../src/domain/data/RandomStream.js"
import { denoiserIdentityTerms } from "../src/domain/sid/ScoreIdentities.js"
import {
  checkIdentity,
  describeCheck,
  distillConfigArbitrary,
  EDM_SIGMA_RANGE,
  edmSigmaArbitrary,
  expectWithinStandardErrors,
  gaussianMixtureArbitrary,
  generatorSigmaRange,
  logUniformArbitrary,
  mixtureWithPointsArbitrary,
  mlpArbitrary,
  noisyPointsArbitrary,
  practicalDistillConfigArbitrary,
  sigmaArbitrary,
  TRAINING_SIGMA_RANGE,
  trainingSigmaArbitrary,
  uniformArbitrary
} from "../src/testing/index.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

describe("mixture arbitraries (docs/algorithm.md §4)", () => {
  it("every mixture is valid (gaussianMixtureProblems → [], decodes with the schema), K 1–5, d 1–3, std ≥ 0.05", () => {
    const seenK = new Set<number>()
    const seenD = new Set<number>()
    fc.assert(
      fc.property(gaussianMixtureArbitrary(), (g) => {
        expect(gaussianMixtureProblems(g)).toEqual([])
        expect(Either.isRight(Schema.decodeUnknownEither(GaussianMixtureSchema)(JSON.parse(JSON.stringify(g))))).toBe(true)
        const k = numComponents(g)
        const d = dimension(g)
        seenK.add(k)
        seenD.add(d)
        expect(k).toBeGreaterThanOrEqual(1)
        expect(k).toBeLessThanOrEqual(5)
        expect(d).toBeGreaterThanOrEqual(1)
        expect(d).toBeLessThanOrEqual(3)
        g.variances.flat().forEach((v) => {
          expect(v).toBeGreaterThanOrEqual(0.05 ** 2 * (1 - 1e-12))
          expect(v).toBeLessThanOrEqual(1 + 1e-12)
        })
        g.means.flat().forEach((m) => expect(Math.abs(m)).toBeLessThanOrEqual(1.5))
        g.weights.forEach((w) => expect(w).toBeGreaterThanOrEqual(0.1 / 5 - 1e-12))
      }),
      { numRuns: 300 }
    )
    expect([...seenK].sort()).toEqual([1, 2, 3, 4, 5])
    expect([...seenD].sort()).toEqual([1, 2, 3])
  })

  it("options narrow the ranges", () => {
    fc.assert(
      fc.property(gaussianMixtureArbitrary({ minComponents: 2, maxComponents: 2, minDim: 3, maxDim: 3, meanRange: 0.1, minStd: 0.3, maxStd: 0.4 }), (g) => {
        expect(gaussianMixtureProblems(g)).toEqual([])
        expect(numComponents(g)).toBe(2)
        expect(dimension(g)).toBe(3)
        g.means.flat().forEach((m) => expect(Math.abs(m)).toBeLessThanOrEqual(0.1))
        g.variances.flat().forEach((v) => {
          expect(Math.sqrt(v)).toBeGreaterThanOrEqual(0.3 - 1e-12)
          expect(Math.sqrt(v)).toBeLessThanOrEqual(0.4 + 1e-12)
        })
      }),
      { numRuns: 50 }
    )
  })

  it("the exact denoiser of every generated mixture is finite on points near it, at every σ of the EDM range", () => {
    fc.assert(
      fc.property(mixtureWithPointsArbitrary({}, { maxPoints: 16 }), ({ mixture, points, sigmas }) => {
        const ok = tf.tidy(() => {
          const d = denoise(mixture, tf.tensor2d(points.map((p) => [...p])), tf.tensor1d([...sigmas]))
          return tf.all(tf.isFinite(d)).dataSync()[0]
        })
        expect(ok).toBe(1)
      }),
      { numRuns: 60 }
    )
  })
})

describe("σ arbitraries (docs/algorithm.md §2.1, §2.2, §7)", () => {
  it("the ranges: EDM [0.002, 80], training exp(P_mean ± 2 P_std), generator [σ_min, σ(tmax/1000)]", () => {
    expect(EDM_SIGMA_RANGE).toEqual({ min: SIGMA_MIN, max: SIGMA_MAX })
    expect(TRAINING_SIGMA_RANGE.min).toBeCloseTo(Math.exp(P_MEAN - 2 * P_STD), 12)
    expect(TRAINING_SIGMA_RANGE.max).toBeCloseTo(Math.exp(P_MEAN + 2 * P_STD), 12)
    expect(TRAINING_SIGMA_RANGE.min).toBeCloseTo(0.0273, 4)
    expect(TRAINING_SIGMA_RANGE.max).toBeCloseTo(3.32, 2)
    const gen = generatorSigmaRange()
    expect(gen.min).toBeCloseTo(0.002, 12)
    expect(gen.max).toBeCloseTo(24.4, 1)
    expect(generatorSigmaRange(1000).max).toBeCloseTo(80, 9)
  })

  it("draws stay in range and spread log-uniformly (about half below the geometric mean)", () => {
    for (const [arb, range] of [
      [edmSigmaArbitrary, EDM_SIGMA_RANGE],
      [trainingSigmaArbitrary, TRAINING_SIGMA_RANGE],
      [sigmaArbitrary(generatorSigmaRange()), generatorSigmaRange()]
    ] as const) {
      const xs = fc.sample(arb, { numRuns: 3000, seed: 11 })
      xs.forEach((x) => {
        expect(x).toBeGreaterThanOrEqual(range.min)
        expect(x).toBeLessThanOrEqual(range.max)
      })
      const below = xs.filter((x) => x < Math.sqrt(range.min * range.max)).length / xs.length
      expect(below).toBeGreaterThan(0.4)
      expect(below).toBeLessThan(0.6)
      const decades = new Set(xs.map((x) => Math.floor(Math.log10(x))))
      expect(decades.size).toBeGreaterThanOrEqual(Math.floor(Math.log10(range.max / range.min)))
    }
  })

  it("uniform and log-uniform helpers respect their bounds and reject bad ranges", () => {
    fc.assert(
      fc.property(uniformArbitrary(-2, 3), logUniformArbitrary(1e-3, 10), (u, l) => {
        expect(u).toBeGreaterThanOrEqual(-2)
        expect(u).toBeLessThanOrEqual(3)
        expect(l).toBeGreaterThanOrEqual(1e-3)
        expect(l).toBeLessThanOrEqual(10)
      })
    )
    const us = fc.sample(uniformArbitrary(0, 1), { numRuns: 3000, seed: 3 })
    expect(us.filter((u) => u > 0.25 && u < 0.75).length / us.length).toBeGreaterThan(0.35)
    expect(() => logUniformArbitrary(0, 1)).toThrow()
    expect(() => logUniformArbitrary(2, 1)).toThrow()
  })
})

describe("points near a mixture (docs/algorithm.md §4)", () => {
  it("each point lies within ±spread·√(s_k² + σ²) of some component, with its σ in range", () => {
    fc.assert(
      fc.property(
        gaussianMixtureArbitrary().chain((g) =>
          fc.tuple(fc.constant(g), noisyPointsArbitrary(g, { minPoints: 3, maxPoints: 10, sigma: trainingSigmaArbitrary, spread: 2 }))
        ),
        ([g, { points, sigmas }]) => {
          expect(points.length).toBe(sigmas.length)
          expect(points.length).toBeGreaterThanOrEqual(3)
          expect(points.length).toBeLessThanOrEqual(10)
          points.forEach((p, i) => {
            const s = sigmas[i] ?? Number.NaN
            expect(s).toBeGreaterThanOrEqual(TRAINING_SIGMA_RANGE.min)
            expect(s).toBeLessThanOrEqual(TRAINING_SIGMA_RANGE.max)
            expect(p.length).toBe(dimension(g))
            const near = g.means.some((mu, k) =>
              p.every((x, j) => Math.abs(x - (mu[j] ?? 0)) <= 2 * Math.sqrt((g.variances[k]?.[j] ?? 0) + s * s) * (1 + 1e-9)))
            expect(near).toBe(true)
          })
        }
      ),
      { numRuns: 100 }
    )
  })

  it("σ = 0 gives clean points", () => {
    const g = gaussian1d(0.3, 0.1)
    fc.assert(
      fc.property(noisyPointsArbitrary(g, { sigma: fc.constant(0), spread: 1 }), ({ points, sigmas }) => {
        sigmas.forEach((s) => expect(s).toBe(0))
        points.forEach(([x]) => expect(Math.abs((x ?? Number.NaN) - 0.3)).toBeLessThanOrEqual(0.1 + 1e-12))
      }),
      { numRuns: 30 }
    )
  })
})

describe("random networks (docs/algorithm.md §12.3)", () => {
  it("mlpArbitrary gives small MLPs whose parameters match their shapes and whose output is finite [N, dim]", () => {
    const n0 = tf.memory().numTensors
    fc.assert(
      fc.property(mlpArbitrary(), fc.integer({ min: 1, max: 5 }), ({ network, seed, spec }, n) => {
        expect(spec.hidden).toBeGreaterThanOrEqual(2)
        expect(spec.hidden).toBeLessThanOrEqual(16)
        expect(spec.depth).toBeGreaterThanOrEqual(1)
        expect(spec.depth).toBeLessThanOrEqual(2)
        expect(network.dataShape).toEqual([spec.dim])
        const params = network.init(seed)
        const shapes = mlpShapes(spec)
        expect(Object.keys(params).sort()).toEqual(Object.keys(shapes).sort())
        Object.entries(params).forEach(([name, t]) => expect(t.shape).toEqual(shapes[name]))
        const again = network.init(seed)
        const out = tf.tidy(() => {
          const y = network.apply(params, normalTensor([n, spec.dim], seed, "x"), tf.fill([n], 0.1) as tf.Tensor1D)
          const same = Object.keys(params).every((k) => params[k]!.sub(again[k]!).abs().max().dataSync()[0] === 0)
          return { shape: y.shape, finite: tf.all(tf.isFinite(y)).dataSync()[0], same }
        })
        disposeParameters(params)
        disposeParameters(again)
        expect(out.shape).toEqual([n, spec.dim])
        expect(out.finite).toBe(1)
        expect(out.same).toBe(true)
      }),
      { numRuns: 40 }
    )
    expect(tf.memory().numTensors).toBe(n0)
  })

  it("a fixed dim is respected", () => {
    fc.assert(fc.property(mlpArbitrary({ dim: 2, maxHidden: 4, maxDepth: 1 }), ({ spec }) => {
      expect(spec.dim).toBe(2)
      expect(spec.hidden).toBeLessThanOrEqual(4)
      expect(spec.depth).toBe(1)
    }), { numRuns: 30 })
  })
})

describe("config arbitraries (docs/algorithm.md §9.2)", () => {
  it("Arbitrary.make(DistillConfig): every draw is a DistillConfig that round-trips through encode/decode", () => {
    fc.assert(
      fc.property(distillConfigArbitrary, (c) => {
        expect(c).toBeInstanceOf(DistillConfig)
        const decoded = decodeDistillConfig(encodeDistillConfig(c))
        expect(Either.isRight(decoded)).toBe(true)
        if (Either.isRight(decoded)) expect(encodeDistillConfig(decoded.right)).toEqual(encodeDistillConfig(c))
      }),
      { numRuns: 100 }
    )
  })

  it("practical configs decode and stay in their small-run ranges", () => {
    fc.assert(
      fc.property(practicalDistillConfigArbitrary, (c) => {
        expect(Either.isRight(decodeDistillConfig(encodeDistillConfig(c)))).toBe(true)
        expect(c.alpha).toBeLessThanOrEqual(1.5)
        expect(c.generatorLr).toBeGreaterThanOrEqual(1e-5)
        expect(c.generatorLr).toBeLessThanOrEqual(1e-3)
        expect(c.batchSize).toBeLessThanOrEqual(1024)
        expect(c.steps).toBeLessThanOrEqual(20_000)
        expect(c.tmax).toBeGreaterThanOrEqual(100)
      }),
      { numRuns: 100 }
    )
  })
})

describe("Monte Carlo checks (docs/algorithm.md §5, §10.2)", () => {
  it("expectWithinStandardErrors: mean, stderr, z of paired differences; numbers or samples on the right", () => {
    const c = expectWithinStandardErrors([5, 7, 9], [1, 2, 3], 5)
    expect(c.mean).toBeCloseTo(5, 12)
    expect(c.stderr).toBeCloseTo(1 / Math.sqrt(3), 12)
    expect(c.z).toBeCloseTo(5 * Math.sqrt(3), 9)
    expect(c.n).toBe(3)
    expect(c.passed).toBe(false)
    expect(expectWithinStandardErrors([5, 7, 9], [1, 2, 3], 9).passed).toBe(true)
    expect(expectWithinStandardErrors([1, 2, 3], 2).passed).toBe(true)
    expect(expectWithinStandardErrors([1, 1, 1], 1).passed).toBe(true)
    expect(expectWithinStandardErrors([1, 1, 1], 1.1).passed).toBe(false)
    expect(expectWithinStandardErrors([1, 1, 1], 1.1, 5, 0.2).passed).toBe(true)
    expect(expectWithinStandardErrors([1, Number.NaN, 3], 2).passed).toBe(false)
    expect(() => expectWithinStandardErrors([1], 1)).toThrow(/at least 2/)
    expect(() => expectWithinStandardErrors([1, 2], [1, 2, 3])).toThrow()
    const t = tf.tensor1d([1, 2, 3, 4])
    expect(expectWithinStandardErrors(t, 2.5)).toEqual(expectWithinStandardErrors([1, 2, 3, 4], 2.5))
    t.dispose()
  })

  it("checkIdentity passes a true identity (E[z²] = 1) and throws on a false one (E[z] = 0.05, n = 20000)", () => {
    const z = normalTensor([20000], 5, "z")
    const sq = z.square()
    const shifted = z.add(0.05)
    expect(checkIdentity("E[z²] = 1", sq, 1).passed).toBe(true)
    expect(() => checkIdentity("E[z + 0.05] = 0", shifted, 0)).toThrow(/E\[z \+ 0\.05\] = 0: .*z = .*outside 5 standard errors/)
    const c = expectWithinStandardErrors(shifted, 0)
    expect(c.z).toBeGreaterThan(5)
    expect(describeCheck("x", c)).toContain(`n = 20000`)
    tf.dispose([z, sq, shifted])
  })

  it("catches a false score identity: (I3) with the wrong denoiser fails, with the right one passes", () => {
    const truth = gaussian1d(0, 0.5)
    const wrong = gaussian1d(0.3, 0.5)
    const n = 20000
    const terms = tf.tidy(() => {
      const { x: xg } = sampleSeeded(truth, n, 9)
      const xt = xg.add(normalTensor([n, 1], 9, "eps").mul(0.7))
      const u = tf.tanh(xt).add(1)
      const good = denoiserIdentityTerms({ u, denoised: denoise(truth, xt, 0.7), xg })
      const bad = denoiserIdentityTerms({ u, denoised: denoise(wrong, xt, 0.7), xg })
      return { good: [good.lhs.dataSync(), good.rhs.dataSync()], bad: [bad.lhs.dataSync(), bad.rhs.dataSync()] }
    })
    expect(checkIdentity("I3 exact", terms.good[0]!, terms.good[1]!).passed).toBe(true)
    expect(() => checkIdentity("I3 wrong denoiser", terms.bad[0]!, terms.bad[1]!)).toThrow(/I3 wrong denoiser/)
  })
})
