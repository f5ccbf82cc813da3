import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { denoisingLoss } from "../src/domain/edm/DenoisingLoss.js"
import { denoise, dimension, type GaussianMixture, makeGaussianMixture, ring, sampleSeeded } from "../src/domain/data/GaussianMixture.js"
import { pairedDifference } from "../src/domain/metrics/MonteCarlo.js"
import { cOut, edmCoefficientsNumber, edmDenoise, networkTarget } from "../src/domain/edm/Preconditioning.js"
import { logNormalSigma } from "../src/domain/edm/Schedule.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const inputArb = fc.record({
  n: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 0, max: 1e6 }),
  lossScale: fc.double({ min: 0.1, max: 10, noNaN: true }),
  sigmaData: fc.double({ min: 0.2, max: 1.5, noNaN: true })
})

/** Float64 reference of docs/algorithm.md §7 on plain arrays: Σ over kept rows of λ_i Σ_CHW (ŷ − y)², times ls / B. */
const referenceLoss = (
  y: ArrayLike<number>,
  yHat: ArrayLike<number>,
  sigma: ArrayLike<number>,
  perRowSize: number,
  lossScale: number,
  sigmaData: number,
  batchSize: number
) => {
  const perRow: Array<number> = []
  for (let i = 0; i < sigma.length; i++) {
    const lambda = edmCoefficientsNumber(sigma[i] ?? Number.NaN, sigmaData).lossWeight
    let acc = 0
    let nan = false
    for (let j = 0; j < perRowSize; j++) {
      const a = y[i * perRowSize + j] ?? Number.NaN
      const b = yHat[i * perRowSize + j] ?? Number.NaN
      if (Number.isNaN(a) || Number.isNaN(b)) nan = true
      acc += lambda * (b - a) ** 2
    }
    perRow.push(nan ? 0 : acc)
  }
  return { perRow, loss: (perRow.reduce((a, b) => a + b, 0) * lossScale) / batchSize }
}

const shape = (n: number) => [n, 2, 3, 2]
const rowSize = 12

describe("fake-score loss (docs/algorithm.md §7)", () => {
  it("equals the float64 reference Σ_rows Σ_CHW λ(σ)(ŷ − y)² · ls / N", () => {
    fc.assert(
      fc.property(inputArb, ({ lossScale, n, seed, sigmaData }) => {
        const out = tf.tidy(() => {
          const y = tf.randomNormal(shape(n), 0, 1, "float32", seed)
          const yHat = tf.randomNormal(shape(n), 0, 1, "float32", seed + 1)
          const sigma = logNormalSigma(tf.randomNormal([n], 0, 1, "float32", seed + 2))
          const r = denoisingLoss({ y, yHat, sigma, lossScale, sigmaData })
          return { y: y.dataSync(), yHat: yHat.dataSync(), s: sigma.dataSync(), loss: r.loss.dataSync()[0] ?? Number.NaN, perRow: r.perRow.dataSync(), mask: r.mask.dataSync() }
        })
        const ref = referenceLoss(out.y, out.yHat, out.s, rowSize, lossScale, sigmaData, n)
        expect(Math.abs(out.loss - ref.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.loss) + 1e-6)
        ref.perRow.forEach((p, i) => expect(Math.abs((out.perRow[i] ?? Number.NaN) - p)).toBeLessThanOrEqual(1e-5 * p + 1e-6))
        expect(Array.from(out.mask)).toEqual(new Array(n).fill(1))
      }),
      { numRuns: 50 }
    )
  })

  it("drops rows with a NaN in y or ŷ, keeps the divisor at the batch size, and leaves other rows and gradients alone", () => {
    fc.assert(
      fc.property(
        inputArb.filter((r) => r.n >= 2),
        fc.integer({ min: 0, max: 1e6 }),
        fc.boolean(),
        ({ lossScale, n, seed, sigmaData }, pick, inTarget) => {
          const bad = pick % n
          const out = tf.tidy(() => {
            const y = tf.randomNormal(shape(n), 0, 1, "float32", seed)
            const yHat = tf.randomNormal(shape(n), 0, 1, "float32", seed + 1)
            const sigma = logNormalSigma(tf.randomNormal([n], 0, 1, "float32", seed + 2))
            const nanMask = tf.buffer(shape(n), "float32")
            nanMask.set(Number.NaN, bad, pick % 2, pick % 3, 1)
            const poison = nanMask.toTensor()
            const f = (withNaN: boolean) => (h: tf.Tensor) => {
              const yy = withNaN && inTarget ? y.add(poison) : y
              const hh = withNaN && !inTarget ? h.add(poison) : h
              return denoisingLoss({ y: yy, yHat: hh, sigma, lossScale, sigmaData }).loss
            }
            const clean = denoisingLoss({ y, yHat, sigma, lossScale, sigmaData })
            const dirty = denoisingLoss({
              y: inTarget ? y.add(poison) : y,
              yHat: inTarget ? yHat : yHat.add(poison),
              sigma,
              lossScale,
              sigmaData
            })
            return {
              cleanRows: clean.perRow.dataSync(),
              dirtyRows: dirty.perRow.dataSync(),
              dirtyLoss: dirty.loss.dataSync()[0] ?? Number.NaN,
              mask: dirty.mask.dataSync(),
              gClean: tf.grad(f(false))(yHat).reshape([n, rowSize]).arraySync() as Array<Array<number>>,
              gDirty: tf.grad(f(true))(yHat).reshape([n, rowSize]).arraySync() as Array<Array<number>>
            }
          })
          let expected = 0
          for (let i = 0; i < n; i++) {
            if (i === bad) {
              expect(out.dirtyRows[i]).toBe(0)
              expect(out.mask[i]).toBe(0)
              out.gDirty[i]?.forEach((g) => expect(g).toBe(0))
            } else {
              expect(out.dirtyRows[i]).toBe(out.cleanRows[i])
              expect(out.mask[i]).toBe(1)
              expect(out.gDirty[i]).toEqual(out.gClean[i])
              expected += out.cleanRows[i] ?? Number.NaN
            }
          }
          expect(Number.isFinite(out.dirtyLoss)).toBe(true)
          expect(Math.abs(out.dirtyLoss - (expected * lossScale) / n)).toBeLessThanOrEqual(1e-5 * Math.abs(out.dirtyLoss) + 1e-6)
        }
      ),
      { numRuns: 40 }
    )
  })

  it("equals the unit-weighted MSE on the F-target, since λ·c_out² = 1 (docs/algorithm.md §2.4)", () => {
    fc.assert(
      fc.property(inputArb, ({ n, seed, sigmaData }) => {
        const { a, b } = tf.tidy(() => {
          const y = tf.randomNormal([n, 3, 2], 0, 0.5, "float32", seed)
          const noise = tf.randomNormal([n, 3, 2], 0, 1, "float32", seed + 1)
          const f = tf.randomNormal([n, 3, 2], 0, 1, "float32", seed + 2)
          const sigma = logNormalSigma(tf.randomUniform([n], -2.5, 2.5, "float32", seed + 3))
          const xNoisy = y.add(noise.mul(sigma.reshape([n, 1, 1])))
          const d = edmDenoise(xNoisy, sigma, () => f, sigmaData)
          const lossD = denoisingLoss({ y, yHat: d, sigma, sigmaData }).loss
          const lossF = f.sub(networkTarget(y, xNoisy, sigma, sigmaData)).square().sum().div(n)
          return { a: lossD.dataSync()[0] ?? Number.NaN, b: lossF.dataSync()[0] ?? Number.NaN }
        })
        expect(Math.abs(a - b)).toBeLessThanOrEqual(2e-3 * Math.abs(b) + 1e-5)
      }),
      { numRuns: 50 }
    )
  })

  it("the gradient reaches ŷ only, as 2λ(ŷ − y)·ls/B (batch size override included)", () => {
    fc.assert(
      fc.property(inputArb, fc.integer({ min: 1, max: 64 }), ({ lossScale, n, seed, sigmaData }, batchSize) => {
        const err = tf.tidy(() => {
          const y = tf.randomNormal([n, 4], 0, 1, "float32", seed)
          const yHat = tf.randomNormal([n, 4], 0, 1, "float32", seed + 1)
          const sigma = logNormalSigma(tf.randomNormal([n], 0, 1, "float32", seed + 2))
          const [gy, gh] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
            denoisingLoss({ y: a, yHat: b, sigma, lossScale, sigmaData, batchSize }).loss)([y, yHat])
          const lambda = sigma.square().add(sigmaData ** 2).div(sigma.mul(sigmaData).square()).reshape([n, 1])
          const expected = yHat.sub(y).mul(lambda).mul((2 * lossScale) / batchSize)
          // the loss is symmetric in (y, ŷ); the caller detaches y (docs/algorithm.md §7), so here both get gradients of opposite sign
          return Math.max(
            gh!.sub(expected).abs().div(expected.abs().add(1e-3)).max().dataSync()[0] ?? Number.NaN,
            gy!.add(expected).abs().div(expected.abs().add(1e-3)).max().dataSync()[0] ?? Number.NaN
          )
        })
        expect(err).toBeLessThan(1e-4)
      }),
      { numRuns: 30 }
    )
  })

  it("rejects mismatched shapes", () => {
    expect(() => tf.tidy(() => denoisingLoss({ y: tf.zeros([2, 3]), yHat: tf.zeros([2, 4]), sigma: tf.ones([2]) }))).toThrow()
    expect(() => tf.tidy(() => denoisingLoss({ y: tf.zeros([2, 3]), yHat: tf.zeros([2, 3]), sigma: tf.ones([3]) }))).toThrow()
  })
})

const mixtureArb: fc.Arbitrary<GaussianMixture> = fc.oneof(
  fc.constant(ring()),
  fc.record({
    raw: fc.array(fc.double({ min: 0.1, max: 1, noNaN: true }), { minLength: 3, maxLength: 3 }),
    means: fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 2 }), { minLength: 3, maxLength: 3 }),
    stds: fc.array(fc.array(fc.double({ min: 0.05, max: 0.6, noNaN: true }), { minLength: 2, maxLength: 2 }), { minLength: 3, maxLength: 3 })
  }).map(({ means, raw, stds }) => {
    const total = raw.reduce((a, b) => a + b, 0)
    return makeGaussianMixture({ weights: raw.map((w) => w / total), means, variances: stds.map((r) => r.map((s) => s * s)) })
  })
)

describe("denoising score matching picks the exact posterior mean (docs/algorithm.md §2.4, §7, §4)", () => {
  it("the exact denoiser scores a lower DSM loss than perturbed denoisers on the same samples and noise", () => {
    fc.assert(
      fc.property(
        mixtureArb,
        fc.double({ min: 0.2, max: 1, noNaN: true }),
        fc.array(fc.double({ min: -2, max: 2, noNaN: true }).filter((v) => Math.abs(v) > 0.5), { minLength: 4, maxLength: 4 }),
        fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 2 }),
        fc.integer({ min: 0, max: 1e6 }),
        (g, eps, w, b, seed) => {
          const n = 20000
          const out = tf.tidy(() => {
            const { x: y } = sampleSeeded(g, n, seed)
            const sigma = logNormalSigma(tf.randomNormal([n], 0, 1, "float32", seed + 2))
            const xt = y.add(tf.randomNormal([n, dimension(g)], 0, 1, "float32", seed + 3).mul(sigma.reshape([n, 1])))
            const exact = denoise(g, xt, sigma)
            const h = tf.tanh(tf.matMul(xt, tf.tensor2d(w, [2, 2])).add(tf.tensor1d(b)))
            const co = cOut(sigma).reshape([n, 1])
            const perturbed = exact.add(h.mul(co).mul(eps))
            const wrongSigma = denoise(g, xt, sigma.mul(1.5))
            const l = (yHat: tf.Tensor) => denoisingLoss({ y, yHat, sigma })
            const le = l(exact)
            // the cross term E[λ·hᵀ(D* − y)·c_out] vanishes because D* = E[y | x_t]
            const cross = h.mul(exact.sub(y)).div(co).sum(1)
            return {
              exact: le.loss.dataSync()[0] ?? Number.NaN,
              perturbed: l(perturbed).loss.dataSync()[0] ?? Number.NaN,
              wrongSigma: l(wrongSigma).loss.dataSync()[0] ?? Number.NaN,
              cross: cross.dataSync(),
              zeros: new Float32Array(n)
            }
          })
          expect(out.exact).toBeLessThan(out.perturbed)
          expect(out.exact).toBeLessThan(out.wrongSigma)
          const c = pairedDifference(out.cross, out.zeros)
          expect(Math.abs(c.mean)).toBeLessThanOrEqual(5 * c.stderr)
        }
      ),
      { numRuns: 10 }
    )
  })
})

describe("memory", () => {
  it("leaves tf.memory().numTensors unchanged", () => {
    const y = tf.randomNormal([4, 3], 0, 1, "float32", 1)
    const yHat = tf.randomNormal([4, 3], 0, 1, "float32", 2)
    const s = tf.fill([4], 0.5)
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      const r = denoisingLoss({ y, yHat, sigma: s, lossScale: 2 })
      const q = denoisingLoss({ y, yHat, sigma: 0.3 })
      tf.dispose([r.loss, r.perRow, r.mask, q.loss, q.perRow, q.mask])
    }
    expect(tf.memory().numTensors).toBe(n0)
    tf.dispose([y, yHat, s])
  })
})
