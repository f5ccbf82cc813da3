import * as tf from "@tensorflow/tfjs"
import { beforeAll, describe, expect, it } from "vitest"
import * as GaussianMixture from "../src/domain/data/GaussianMixture.js"
import { heunEvaluations, heunSample } from "../src/domain/edm/HeunSampler.js"
import { heunSteps } from "../src/domain/edm/Schedule.js"
import { modeStatistics } from "../src/services/node/Metrics.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

describe("EDM Heun sampler (docs/algorithm.md §3)", () => {
  it("makes 2N − 1 denoiser evaluations", () => {
    let calls = 0
    const x = heunSample((x) => {
      calls++
      return tf.zerosLike(x)
    }, tf.ones([3, 2]), { numSteps: 18 })
    expect(calls).toBe(heunEvaluations(18))
    expect(calls).toBe(35)
    x.dispose()
  })

  it("driven by an exact mixture denoiser, reproduces the mixture: means, variances, mode weights (docs/algorithm.md §4)", () => {
    const mixture = GaussianMixture.makeGaussianMixture({
      weights: [0.2, 0.5, 0.3],
      means: [[-1, 0.5], [0.8, -0.2], [0.1, 1.2]],
      variances: [[0.02, 0.05], [0.03, 0.01], [0.04, 0.04]]
    })
    const n = 8000
    const latents = tf.randomNormal([n, 2], 0, 1, "float32", 7)
    const before = tf.memory().numTensors
    const samples = heunSample((x, sigma) => GaussianMixture.denoise(mixture, x, sigma), latents, { numSteps: 40 })
    latents.dispose()
    const values = samples.dataSync() as Float32Array
    const stats = modeStatistics(mixture, values, n)
    stats.modeWeights.forEach((w, k) => expect(Math.abs(w - mixture.weights[k]!)).toBeLessThan(0.03))
    expect(stats.offModeFraction).toBeLessThan(0.02)
    const truth = GaussianMixture.moments(mixture)
    for (let j = 0; j < 2; j++) {
      let m = 0
      for (let i = 0; i < n; i++) m += values[2 * i + j]!
      m /= n
      let v = 0
      for (let i = 0; i < n; i++) v += (values[2 * i + j]! - m) ** 2
      v /= n - 1
      expect(Math.abs(m - truth.mean[j]!)).toBeLessThan(5 * Math.sqrt(truth.variance[j]! / n) + 0.01)
      expect(Math.abs(v / truth.variance[j]! - 1)).toBeLessThan(0.06)
    }
    samples.dispose()
    expect(tf.memory().numTensors).toBe(before - 1)
  })

  it("on a 1-D Gaussian equals the exact Heun map of the probability-flow ODE, discretisation error included", () => {
    // For N(μ, s²) the ODE dx/dσ = (x − D(x;σ))/σ is linear: dx/dσ = σ(x − μ)/(s² + σ²). Heun's steps multiply x − μ
    // by a known factor per step, so the sampler's output std is t₀·∏ factors (float64), e.g. 12% too wide at N = 18.
    const mu = 0.3
    const s2 = 0.16
    for (const numSteps of [18, 30]) {
      const t = heunSteps(numSteps)
      const d = (sigma: number) => sigma / (s2 + sigma * sigma)
      let factor = t[0]!
      for (let i = 0; i < numSteps; i++) {
        const a = t[i]!
        const b = t[i + 1]!
        let e = 1 + (b - a) * d(a)
        if (i < numSteps - 1) e = 1 + ((b - a) * (d(a) + d(b) * e)) / 2
        factor *= e
      }
      const n = 20_000
      const latents = tf.randomNormal([n, 1], 0, 1, "float32", 11)
      const out = heunSample((x, sigma) => GaussianMixture.denoise(GaussianMixture.gaussian1d(mu, 0.4), x, sigma), latents, { numSteps })
      const z = latents.dataSync()
      const x = out.dataSync()
      let zz = 0
      let zx = 0
      for (let i = 0; i < n; i++) {
        zz += z[i]! * z[i]!
        zx += z[i]! * (x[i]! - mu)
      }
      const slope = zx / zz
      expect(Math.abs(slope / factor - 1)).toBeLessThan(1e-3)
      expect(Math.abs(factor / 0.4 - 1)).toBeGreaterThan(0.015)
      tf.dispose([latents, out])
    }
  })

  it("with churn (S_churn > 0) still samples the mixture and uses the churn noise", () => {
    const mixture = GaussianMixture.gaussian1d(0.3, 0.4)
    let noiseCalls = 0
    const samples = heunSample(
      (x, sigma) => GaussianMixture.denoise(mixture, x, sigma),
      tf.randomNormal([6000, 1], 0, 1, "float32", 3),
      {
        numSteps: 100,
        sChurn: 10,
        sMin: 0.05,
        sMax: 50,
        churnNoise: (i) => {
          noiseCalls++
          return tf.randomNormal([6000, 1], 0, 1, "float32", 100 + i)
        }
      }
    )
    expect(noiseCalls).toBeGreaterThan(0)
    const { mean, variance } = tf.tidy(() => {
      const m = tf.moments(samples)
      return { mean: m.mean.dataSync()[0]!, variance: m.variance.dataSync()[0]! }
    })
    expect(Math.abs(mean - 0.3)).toBeLessThan(0.03)
    expect(Math.abs(variance / 0.16 - 1)).toBeLessThan(0.06)
    samples.dispose()
  })
})
