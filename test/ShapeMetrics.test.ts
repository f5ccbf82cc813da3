import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import {
  anisotropic,
  chiSquareCdf,
  type GaussianMixture,
  grid,
  IN_MODE_RADIUS,
  makeGaussianMixture,
  modeShape,
  moments,
  ring,
  sampleSeeded,
  truncatedVarianceFactor
} from "../src/domain/data/GaussianMixture.js"
import { mmdTerms, mmdTermsByBandwidth } from "../src/domain/metrics/Mmd.js"
import * as MetricsLayers from "../src/services/node/Metrics.js"
import { mixturePresets } from "../src/services/node/Teacher.js"
import { Metrics } from "../src/services/node/Metrics.js"
import { runWithEngine, useEngine } from "./support/distillation.js"

beforeAll(async () => {
  await useEngine("cpu")
  await tf.ready()
})

/** Exact samples of a mixture and their components, as plain arrays. */
const exact = (g: GaussianMixture, n: number, seed: number) => {
  const s = sampleSeeded(g, n, seed)
  const out = { values: Float32Array.from(s.x.dataSync()), component: Int32Array.from(s.component.dataSync()) }
  tf.dispose([s.x, s.component])
  return out
}

/** Each sample moved towards (s < 1) or away from (s > 1) its own component's mean by the factor s. */
const scaled = (g: GaussianMixture, values: Float32Array, component: Int32Array, s: number): Float32Array => {
  const d = g.means[0]!.length
  return values.map((v, i) => {
    const mu = g.means[component[Math.floor(i / d)]!]![i % d]!
    return mu + s * (v - mu)
  })
}

const mixtures: ReadonlyArray<readonly [string, GaussianMixture]> = [["ring8", ring()], ["grid25", grid()], ["aniso6", anisotropic()]]

describe("chi-square and the truncated-Gaussian factor", () => {
  it("chiSquareCdf matches closed forms (d = 2: 1 − e^{−q/2}; d = 1: erf(√(q/2)); d = 4: 1 − e^{−q/2}(1 + q/2))", () => {
    const erf = (x: number) => {
      // Abramowitz–Stegun 7.1.26, |error| < 1.5e-7
      const t = 1 / (1 + 0.3275911 * x)
      const y = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x)
      return y
    }
    for (const q of [0.1, 1, 4, 9, 16, 30]) {
      expect(chiSquareCdf(2, q)).toBeCloseTo(1 - Math.exp(-q / 2), 12)
      expect(chiSquareCdf(4, q)).toBeCloseTo(1 - Math.exp(-q / 2) * (1 + q / 2), 12)
      expect(Math.abs(chiSquareCdf(1, q) - erf(Math.sqrt(q / 2)))).toBeLessThan(2e-7)
    }
  })

  it("the truncated variance factor is E[χ²_d | χ²_d ≤ r²]/d, checked by Monte Carlo", () => {
    expect(truncatedVarianceFactor(2, 3)).toBeCloseTo((1 - Math.exp(-4.5) * 5.5) / (1 - Math.exp(-4.5)), 12)
    let a = 7
    const uniform = () => {
      // mulberry32
      a = (a + 0x6d2b79f5) >>> 0
      let t = a
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296
    }
    const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())
    for (const d of [1, 3]) {
      let sum = 0
      let count = 0
      for (let i = 0; i < 200_000; i++) {
        let q = 0
        for (let j = 0; j < d; j++) q += normal() ** 2
        if (q <= IN_MODE_RADIUS ** 2) {
          sum += q
          count++
        }
      }
      expect(Math.abs(sum / count / d - truncatedVarianceFactor(d))).toBeLessThan(0.01)
    }
  })
})

describe("modeShape (issue 18.2)", () => {
  it("exact mixture samples measure as the truth: weights, spread ≈ 1, small mean and covariance errors, between-mode mass only from the tails", () => {
    for (const [name, g] of mixtures) {
      const n = 20_000
      const { values } = exact(g, n, 11)
      const s = modeShape(g, values, n)
      expect(s.modesCovered, name).toBe(g.weights.length)
      s.modeWeights.forEach((w, k) => expect(Math.abs(w - g.weights[k]!), `${name} weight ${k}`).toBeLessThan(0.02))
      // P(χ²₂ > 9) = e^{−4.5} ≈ 1.1 %
      expect(Math.abs(s.offModeFraction - Math.exp(-4.5)), name).toBeLessThan(0.004)
      expect(s.betweenModeFraction, name).toBeLessThan(0.007)
      expect(Math.abs(s.inModeSpread - 1), name).toBeLessThan(0.03)
      for (const e of s.modeMeanErrors) expect(e!, name).toBeLessThan(0.25)
      for (const e of s.modeCovarianceErrors) expect(e!, name).toBeLessThan(0.3)
      for (const spread of s.modeSpreads) expect(Math.abs(spread! - 1), name).toBeLessThan(0.1)
    }
  })

  it("a shrunk mode has spread < 1 and a covariance error of about |s² − 1|·√d; a widened one spread > 1", () => {
    fc.assert(
      fc.property(fc.constantFrom(...mixtures), fc.double({ min: 0.5, max: 0.85, noNaN: true }), fc.integer({ min: 0, max: 1000 }), ([name, g], s, seed) => {
        const n = 8000
        const { component, values } = exact(g, n, seed)
        const shape = modeShape(g, scaled(g, values, component, s), n)
        expect(Math.abs(shape.inModeSpread - s), name).toBeLessThan(0.05)
        for (const e of shape.modeCovarianceErrors) {
          if (e !== null) expect(Math.abs(e - (1 - s * s) * Math.SQRT2), name).toBeLessThan(0.35)
        }
        expect(shape.offModeFraction).toBeLessThan(Math.exp(-4.5) + 0.005)
        const wide = modeShape(g, scaled(g, values, component, 1.15), n)
        expect(wide.inModeSpread, name).toBeGreaterThan(1.03)
      }),
      { numRuns: 8 }
    )
  })

  it("a shifted mode shows its shift in standard deviations; the others stay near 0", () => {
    const g = ring()
    const n = 16_000
    const { component, values } = exact(g, n, 5)
    const shifted = values.map((v, i) => (i % 2 === 0 && component[Math.floor(i / 2)] === 3 ? v + 0.5 * 0.06 : v))
    const s = modeShape(g, shifted, n)
    expect(Math.abs(s.modeMeanErrors[3]! - 0.5)).toBeLessThan(0.12)
    s.modeMeanErrors.forEach((e, k) => k !== 3 && expect(e!).toBeLessThan(0.2))
  })

  it("bridges between neighbouring modes raise the between-mode mass; far outliers do not", () => {
    const g = ring()
    const n = 10_000
    const { values } = exact(g, n, 9)
    const base = modeShape(g, values, n).betweenModeFraction
    const bridgeCount = 600
    // the middle of the arcs joining neighbouring modes: farther than 3 standard deviations from either mode
    const bridges = Array.from({ length: bridgeCount }, (_, i) => {
      const angle = (2 * Math.PI * ((i % 8) + 0.35 + 0.3 * ((i * 0.618) % 1))) / 8
      return [0.702 * Math.cos(angle), 0.702 * Math.sin(angle)]
    }).flat()
    const withBridges = new Float32Array([...values.slice(0, 2 * (n - bridgeCount)), ...bridges])
    const s = modeShape(g, withBridges, n)
    expect(Math.abs(s.betweenModeFraction - base - bridgeCount / n)).toBeLessThan(0.003)
    const outliers = Array.from({ length: bridgeCount }, (_, i) => [3 * Math.cos(i), 3 * Math.sin(i)]).flat()
    const far = modeShape(g, new Float32Array([...values.slice(0, 2 * (n - bridgeCount)), ...outliers]), n)
    expect(Math.abs(far.betweenModeFraction - base)).toBeLessThan(0.002)
    expect(far.offModeFraction).toBeGreaterThan(bridgeCount / n)
  })

  it("a missing mode has null figures and is not covered; the spread averages the others", () => {
    const g = ring()
    const n = 8000
    const { component, values } = exact(g, n, 2)
    const kept = Array.from(component).flatMap((c, i) => (c === 0 ? [] : [values[2 * i]!, values[2 * i + 1]!]))
    const s = modeShape(g, kept, kept.length / 2)
    expect(s.modesCovered).toBe(7)
    expect(s.modeMeanErrors[0]).toBeNull()
    expect(s.modeSpreads[0]).toBeNull()
    expect(Math.abs(s.inModeSpread - 1)).toBeLessThan(0.05)
  })
})

describe("the anisotropic mixture preset gmm:aniso6", () => {
  it("has unequal weights, anisotropic modes, centred data of mean variance 0.25, well-separated modes", () => {
    const g = anisotropic()
    expect(mixturePresets["aniso6"]!()).toEqual(g)
    expect(new Set(g.weights).size).toBeGreaterThan(3)
    expect(g.variances.some(([a, b]) => Math.max(a!, b!) / Math.min(a!, b!) > 4)).toBe(true)
    const { mean, variance } = moments(g)
    mean.forEach((m) => expect(Math.abs(m)).toBeLessThan(1e-12))
    expect((variance[0]! + variance[1]!) / 2).toBeCloseTo(0.25, 10)
    for (let a = 0; a < g.weights.length; a++) {
      for (let b = 0; b < g.weights.length; b++) {
        if (a === b) continue
        const maha = Math.sqrt(g.means[a]!.reduce((s, v, j) => s + (v - g.means[b]![j]!) ** 2 / g.variances[a]![j]!, 0))
        expect(maha).toBeGreaterThan(2 * IN_MODE_RADIUS + 1)
      }
    }
  })
})

describe("MMD at several bandwidths", () => {
  it("each bandwidth's figure equals the single-bandwidth MMD, and they sum to the multi-bandwidth one", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 40 }),
        fc.integer({ min: 2, max: 40 }),
        fc.array(fc.double({ min: 0.05, max: 2, noNaN: true }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 0, max: 1000 }),
        (n, m, bandwidths, maxBlockElements, seed) => {
          const x = tf.randomNormal([n, 2], 0, 0.5, "float32", seed)
          const y = tf.randomNormal([m, 2], 0.1, 0.4, "float32", seed + 1)
          try {
            const by = mmdTermsByBandwidth(x, y, { bandwidth: bandwidths, maxBlockElements })
            expect(by).toHaveLength(bandwidths.length)
            bandwidths.forEach((h, i) => {
              const single = mmdTerms(x, y, { bandwidth: h })
              expect(Math.abs(by[i]!.unbiased - single.unbiased)).toBeLessThan(2e-5)
              expect(Math.abs(by[i]!.biased - single.biased)).toBeLessThan(2e-5)
            })
            const all = mmdTerms(x, y, { bandwidth: bandwidths, maxBlockElements })
            expect(Math.abs(by.reduce((a, t) => a + t.unbiased, 0) - all.unbiased)).toBeLessThan(1e-5 * bandwidths.length)
          } finally {
            tf.dispose([x, y])
          }
        }
      ),
      { numRuns: 30 }
    )
  })

  it("a shrunk ring is seen more clearly below the mode width than above the ring's scale", () => {
    const g = ring()
    const n = 1000
    const truth = exact(g, n, 1)
    const other = exact(g, n, 2)
    const x = tf.tensor2d(truth.values, [n, 2], "float32")
    const shrunk = tf.tensor2d(scaled(g, other.values, other.component, 0.6), [n, 2], "float32")
    try {
      const [small, wide] = mmdTermsByBandwidth(x, shrunk, { bandwidth: [0.03, 0.5] })
      const [smallNull, wideNull] = (() => {
        const y = tf.tensor2d(other.values, [n, 2], "float32")
        try {
          return mmdTermsByBandwidth(x, y, { bandwidth: [0.03, 0.5] })
        } finally {
          y.dispose()
        }
      })()
      expect(small!.unbiased).toBeGreaterThan(8 * Math.abs(smallNull!.unbiased) + 1e-4)
      expect(small!.unbiased / small!.kxx).toBeGreaterThan(wide!.unbiased / wide!.kxx)
      expect(Math.abs(wideNull!.unbiased)).toBeLessThan(1e-3)
    } finally {
      tf.dispose([x, shrunk])
    }
  })
})

describe("the mixture metrics service", () => {
  it("reports the shape figures for exact samples (≈ truth) and for a shrunk generator (spread < 1)", async () => {
    const g = ring()
    const layer = MetricsLayers.layerGaussianMixture(g, { referenceSize: 3000, mmdSize: 600, seed: 4 })
    const { exactMetrics, shrunkMetrics } = await runWithEngine(
      Effect.scoped(
        Effect.gen(function*() {
          const metrics = yield* Metrics
          const n = 3000
          const { component, values } = exact(g, n, 21)
          const a = tf.tensor2d(values, [n, 2], "float32")
          const b = tf.tensor2d(scaled(g, values, component, 0.7), [n, 2], "float32")
          try {
            return { exactMetrics: yield* metrics.evaluate(a), shrunkMetrics: yield* metrics.evaluate(b) }
          } finally {
            tf.dispose([a, b])
          }
        })
      ).pipe(Effect.provide(layer))
    )
    expect(exactMetrics.mmdByBandwidth?.map((b) => b.bandwidth)).toEqual([...MetricsLayers.SHAPE_BANDWIDTHS])
    expect(exactMetrics.mmdByBandwidth?.find((b) => b.bandwidth === 0.1)?.mmd).toBe(exactMetrics.mmd)
    expect(Math.abs(exactMetrics.inModeSpread! - 1)).toBeLessThan(0.05)
    expect(exactMetrics.betweenModeFraction!).toBeLessThan(0.008)
    expect(exactMetrics.modeMeanErrors).toHaveLength(8)
    expect(exactMetrics.modeCovarianceErrors).toHaveLength(8)
    expect(Math.abs(shrunkMetrics.inModeSpread! - 0.7)).toBeLessThan(0.05)
    const small = (m: typeof exactMetrics) => m.mmdByBandwidth!.find((b) => b.bandwidth === 0.02)!.mmd
    expect(small(shrunkMetrics)).toBeGreaterThan(small(exactMetrics) + 1e-3)
  })

  it("modeStatistics keeps its figures (in-mode weights, coverage, off-mode mass)", () => {
    const g = makeGaussianMixture({ weights: [0.5, 0.5], means: [[-1, 0], [1, 0]], variances: [[0.01, 0.01], [0.01, 0.01]] })
    const points = new Float32Array([-1, 0, -1.05, 0.02, 1, 0, 0, 0, 5, 5])
    const s = MetricsLayers.modeStatistics(g, points, 5)
    expect(s.modeWeights).toEqual([2 / 3, 1 / 3])
    expect(s.modesCovered).toBe(2)
    expect(s.offModeFraction).toBeCloseTo(0.4, 12)
  })
})
