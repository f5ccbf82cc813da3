import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { denoise, gaussian1d, type GaussianMixture, makeGaussianMixture, sampleSeeded } from "../src/domain/data/GaussianMixture.js"
import { estimate, pairedDifference } from "../src/domain/metrics/MonteCarlo.js"
import { generatorSigmaSeeded } from "../src/domain/edm/Schedule.js"
import { sidGeneratorLoss, sidLossTerms } from "../src/domain/sid/SidLoss.js"
import { stopGradient } from "../src/domain/nn/StopGradient.js"
import { broadcastPerSample, keepRows, replaceNaN, rowDot, rowHasNaN, rowMean, rowSum, sigmaTensor } from "../src/domain/nn/Tensors.js"
import { turn } from "./support/turn.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const shape = (n: number) => [n, 2, 2, 1]
const rowSize = 4

const argsArb = fc.record({
  n: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 0, max: 1e6 }),
  alpha: fc.double({ min: 0, max: 1.5, noNaN: true }),
  lossScale: fc.double({ min: 0.5, max: 200, noNaN: true })
})

/** Float64 reference of docs/algorithm.md §8.1 on plain arrays. */
const reference = (
  xg: ArrayLike<number>,
  yr: ArrayLike<number>,
  yf: ArrayLike<number>,
  n: number,
  alpha: number,
  lossScale: number,
  normalize: boolean
) => {
  const perRow: Array<number> = []
  const ws: Array<number> = []
  for (let i = 0; i < n; i++) {
    let absSum = 0
    let acc = 0
    for (let j = 0; j < rowSize; j++) {
      const k = i * rowSize + j
      const [g, r, f] = [xg[k] ?? Number.NaN, yr[k] ?? Number.NaN, yf[k] ?? Number.NaN]
      absSum += Math.abs(g - r)
      acc += (r - f) * ((r - g) - alpha * (r - f))
    }
    const w = normalize ? Math.max(absSum / rowSize, 1e-5) : 1
    ws.push(w)
    perRow.push(acc / w)
  }
  return { perRow, w: ws, loss: (perRow.reduce((a, b) => a + b, 0) * lossScale) / n }
}

/** Inputs that depend on a parameter tensor x_g, like the real pipeline: y_r = f_φ(x_t), y_f = f_ψ(x_t). */
const networks = (xg: tf.Tensor, seed: number) => {
  const eps = tf.randomNormal(xg.shape, 0, 1, "float32", seed + 10)
  const xt = xg.add(eps.mul(0.5))
  return { yReal: tf.tanh(xt.mul(0.8)).add(0.1), yFake: tf.sin(xt).mul(0.7) }
}

describe("SiD generator loss (docs/algorithm.md §8.1)", () => {
  it("equals the float64 reference, with w = mean_CHW |x_g − y_r| clipped at 1e-5", () => {
    fc.assert(
      fc.property(argsArb, fc.boolean(), fc.boolean(), ({ alpha, lossScale, n, seed }, normalize, tieRow) => {
        const out = tf.tidy(() => {
          const xg = tf.randomNormal(shape(n), 0, 1, "float32", seed)
          const yrRaw = tf.randomNormal(shape(n), 0, 1, "float32", seed + 1)
          const tie = tf.tensor1d(Array.from({ length: n }, (_, i) => (tieRow && i === 0 ? 1 : 0))).reshape([n, 1, 1, 1])
          const yReal = tf.add(tf.mul(tie, xg), tf.mul(tf.sub(1, tie), yrRaw))
          const yFake = tf.randomNormal(shape(n), 0, 1, "float32", seed + 2)
          const r = sidGeneratorLoss({ xg, yReal, yFake, alpha, lossScale, normalize })
          return {
            xg: xg.dataSync(), yr: yReal.dataSync(), yf: yFake.dataSync(),
            loss: r.loss.dataSync()[0] ?? Number.NaN, perRow: r.perRow.dataSync(), w: r.w.dataSync(), mask: r.mask.dataSync()
          }
        })
        const ref = reference(out.xg, out.yr, out.yf, n, alpha, lossScale, normalize)
        ref.w.forEach((w, i) => expect(Math.abs((out.w[i] ?? Number.NaN) - w)).toBeLessThanOrEqual(1e-5 * w))
        if (tieRow && normalize) expect(out.w[0]).toBeCloseTo(1e-5, 10)
        ref.perRow.forEach((p, i) =>
          expect(Math.abs((out.perRow[i] ?? Number.NaN) - p)).toBeLessThanOrEqual(1e-4 * Math.abs(p) + 1e-5))
        const scale = ref.perRow.reduce((a, p) => a + Math.abs(p), 0) * lossScale / n
        expect(Math.abs(out.loss - ref.loss)).toBeLessThanOrEqual(1e-4 * scale + 1e-5)
        expect(Array.from(out.mask)).toEqual(new Array(n).fill(1))
      }),
      { numRuns: 60 }
    )
  })

  it("defaults: α = 1.2, lossScale = 100 (lsg), w normaliser on", () => {
    const [a, b] = tf.tidy(() => {
      const xg = tf.randomNormal(shape(3), 0, 1, "float32", 1)
      const yReal = tf.randomNormal(shape(3), 0, 1, "float32", 2)
      const yFake = tf.randomNormal(shape(3), 0, 1, "float32", 3)
      return [
        sidGeneratorLoss({ xg, yReal, yFake }).loss.dataSync()[0],
        sidGeneratorLoss({ xg, yReal, yFake, alpha: 1.2, lossScale: 100, normalize: true, wMin: 1e-5 }).loss.dataSync()[0]
      ]
    })
    expect(a).toBe(b)
  })

  it("at w = 1 the per-row loss is L² − α·L¹ = (1 − α)·L¹ + δᵀ(f_ψ − x_g) (docs/algorithm.md §8.2 decomposition)", () => {
    fc.assert(
      fc.property(argsArb, ({ alpha, n, seed }) => {
        const out = tf.tidy(() => {
          const xg = tf.randomNormal(shape(n), 0, 1, "float32", seed)
          const yReal = tf.randomNormal(shape(n), 0, 1, "float32", seed + 1)
          const yFake = tf.randomNormal(shape(n), 0, 1, "float32", seed + 2)
          const loss = sidGeneratorLoss({ xg, yReal, yFake, alpha, lossScale: 1, normalize: false })
          const t = sidLossTerms({ xg, yReal, yFake })
          return {
            perRow: loss.perRow.dataSync(),
            viaL2: t.l2.sub(t.l1.mul(alpha)).dataSync(),
            viaCross: t.l1.mul(1 - alpha).add(t.fakeCross).dataSync(),
            l1: t.l1.dataSync()
          }
        })
        for (let i = 0; i < n; i++) {
          const tol = 1e-4 * (1 + (out.l1[i] ?? 0) * (1 + alpha))
          expect(Math.abs((out.perRow[i] ?? Number.NaN) - (out.viaL2[i] ?? Number.NaN))).toBeLessThanOrEqual(tol)
          expect(Math.abs((out.perRow[i] ?? Number.NaN) - (out.viaCross[i] ?? Number.NaN))).toBeLessThanOrEqual(tol)
          expect(out.l1[i]).toBeGreaterThanOrEqual(0)
        }
      }),
      { numRuns: 40 }
    )
  })

  it("rejects mismatched shapes", () => {
    expect(() => tf.tidy(() => sidGeneratorLoss({ xg: tf.zeros([2, 3]), yReal: tf.zeros([2, 3]), yFake: tf.zeros([3, 3]) }))).toThrow()
  })
})

describe("tensor helpers", () => {
  it("per-sample broadcasting, row reductions and the NaN row mask", () => {
    const out = tf.tidy(() => {
      const x = tf.tensor3d([[[1, 2], [3, 4]], [[5, Number.NaN], [7, 8]], [[0, 0], [0, 1]]])
      const s = tf.tensor1d([1, 2, 3])
      return {
        b: broadcastPerSample(s, x).shape,
        prod: tf.mul(broadcastPerSample(s, x), replaceNaN(x)).arraySync(),
        sum: rowSum(replaceNaN(x)).arraySync(),
        mean: rowMean(replaceNaN(x)).arraySync(),
        dot: rowDot(replaceNaN(x), replaceNaN(x)).arraySync(),
        nan: Array.from(rowHasNaN(x).dataSync()),
        keep: Array.from(keepRows(x, tf.tensor3d([[[1, 1], [1, 1]], [[1, 1], [1, 1]], [[1, 1], [Number.NaN, 1]]])).dataSync()),
        keepGrad: tf.grad((v: tf.Tensor) => tf.where(keepRows(v), rowSum(v), tf.zerosLike(rowSum(v))).sum())(tf.ones([2, 3])).arraySync()
      }
    })
    expect(out.b).toEqual([3, 1, 1])
    expect(out.prod).toEqual([[[1, 2], [3, 4]], [[10, 0], [14, 16]], [[0, 0], [0, 3]]])
    expect(out.sum).toEqual([10, 20, 1])
    expect(out.mean).toEqual([2.5, 5, 0.25])
    expect(out.dot).toEqual([30, 138, 1])
    expect(out.nan).toEqual([0, 1, 0])
    expect(out.keep).toEqual([1, 0, 0])
    expect(out.keepGrad).toEqual([[1, 1, 1], [1, 1, 1]])
    expect(() => tf.tidy(() => broadcastPerSample(tf.ones([2]), tf.ones([3, 1])))).toThrow()
  })
})

describe("gradient wiring (docs/algorithm.md §8.1, §14)", () => {
  it("stopGradient is the identity forward and blocks the gradient", () => {
    const [value, grad, x] = tf.tidy(() => {
      const x = tf.tensor1d([1, -2, 3])
      return [
        stopGradient(x).arraySync(),
        tf.grad((v: tf.Tensor) => tf.sum(tf.mul(stopGradient(v), v)))(x).arraySync(),
        x.arraySync()
      ]
    })
    expect(value).toEqual(x)
    expect(grad).toEqual(x)
  })

  it("w receives no gradient: the loss gradient equals that of the same loss with w frozen as a constant", () => {
    fc.assert(
      fc.property(argsArb, ({ alpha, lossScale, n, seed }) => {
        const out = tf.tidy(() => {
          const xg0 = tf.randomNormal(shape(n), 0, 1, "float32", seed)
          const f = (xg: tf.Tensor) => sidGeneratorLoss({ xg, ...networks(xg, seed), alpha, lossScale })
          const wConst = tf.tensor1d(Array.from(f(xg0).w.dataSync())).reshape([n, 1, 1, 1])
          const frozen = (xg: tf.Tensor) => {
            const { yFake, yReal } = networks(xg, seed)
            const delta = yReal.sub(yFake)
            return delta.mul(yReal.sub(xg).sub(delta.mul(alpha))).div(wConst).sum().mul(lossScale / n) as tf.Scalar
          }
          const g = tf.grad((xg: tf.Tensor) => f(xg).loss)(xg0)
          const gFrozen = tf.grad(frozen)(xg0)
          const gW = tf.grad((xg: tf.Tensor) => f(xg).w.sum())(xg0)
          return {
            err: g.sub(gFrozen).abs().max().dataSync()[0] ?? Number.NaN,
            scale: gFrozen.abs().max().dataSync()[0] ?? Number.NaN,
            gW: gW.abs().max().dataSync()[0] ?? Number.NaN
          }
        })
        expect(out.gW).toBe(0)
        expect(out.err).toBeLessThanOrEqual(1e-5 * (1 + out.scale))
      }),
      { numRuns: 40 }
    )
  })

  it("the gradient flows through x_g, y_r and y_f", () => {
    const grads = tf.tidy(() => {
      const xg = tf.randomNormal(shape(3), 0, 1, "float32", 1)
      const yReal = tf.randomNormal(shape(3), 0, 1, "float32", 2)
      const yFake = tf.randomNormal(shape(3), 0, 1, "float32", 3)
      const gs = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
        sidGeneratorLoss({ xg: a, yReal: b, yFake: c, alpha: 1.2 }).loss)([xg, yReal, yFake])
      return gs.map((g) => g.abs().sum().dataSync()[0] ?? 0)
    })
    grads.forEach((g) => expect(g).toBeGreaterThan(0))
  })

  it("a NaN row is dropped (divisor kept) and changes no other row's loss or gradient", () => {
    fc.assert(
      fc.property(
        argsArb.filter((a) => a.n >= 2),
        fc.integer({ min: 0, max: 1e6 }),
        fc.constantFrom("xg" as const, "yReal" as const, "yFake" as const),
        ({ alpha, lossScale, n, seed }, pick, where) => {
          const bad = pick % n
          const out = tf.tidy(() => {
            const xg0 = tf.randomNormal(shape(n), 0, 1, "float32", seed)
            const buf = tf.buffer(shape(n), "float32")
            buf.set(Number.NaN, bad, pick % 2, (pick >> 1) % 2, 0)
            const poison = buf.toTensor()
            const run = (withNaN: boolean) => (x: tf.Tensor) => {
              const xg = withNaN && where === "xg" ? x.add(poison) : x
              const nets = networks(x, seed)
              return sidGeneratorLoss({
                xg,
                yReal: withNaN && where === "yReal" ? nets.yReal.add(poison) : nets.yReal,
                yFake: withNaN && where === "yFake" ? nets.yFake.add(poison) : nets.yFake,
                alpha,
                lossScale
              })
            }
            const clean = run(false)(xg0)
            const dirty = run(true)(xg0)
            return {
              cleanRows: clean.perRow.dataSync(),
              dirtyRows: dirty.perRow.dataSync(),
              cleanLoss: clean.loss.dataSync()[0] ?? Number.NaN,
              dirtyLoss: dirty.loss.dataSync()[0] ?? Number.NaN,
              mask: dirty.mask.dataSync(),
              gClean: tf.grad((x: tf.Tensor) => run(false)(x).loss)(xg0).reshape([n, rowSize]).arraySync() as Array<Array<number>>,
              gDirty: tf.grad((x: tf.Tensor) => run(true)(x).loss)(xg0).reshape([n, rowSize]).arraySync() as Array<Array<number>>
            }
          })
          for (let i = 0; i < n; i++) {
            if (i === bad) {
              expect(out.dirtyRows[i]).toBe(0)
              expect(out.mask[i]).toBe(0)
              out.gDirty[i]?.forEach((g) => expect(Number.isFinite(g)).toBe(true))
            } else {
              expect(out.dirtyRows[i]).toBe(out.cleanRows[i])
              expect(out.mask[i]).toBe(1)
              expect(out.gDirty[i]).toEqual(out.gClean[i])
            }
          }
          const expected = out.cleanLoss - ((out.cleanRows[bad] ?? Number.NaN) * lossScale) / n
          expect(Math.abs(out.dirtyLoss - expected)).toBeLessThanOrEqual(1e-4 * (Math.abs(out.cleanLoss) + Math.abs(expected)) + 1e-4)
        }
      ),
      { numRuns: 40 }
    )
  })
})

const mixtureArb: fc.Arbitrary<GaussianMixture> = fc.integer({ min: 1, max: 3 }).chain((k) =>
  fc.record({
    raw: fc.array(fc.double({ min: 0.1, max: 1, noNaN: true }), { minLength: k, maxLength: k }),
    means: fc.array(fc.array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 2 }), { minLength: k, maxLength: k }),
    stds: fc.array(fc.array(fc.double({ min: 0.05, max: 0.8, noNaN: true }), { minLength: 2, maxLength: 2 }), { minLength: k, maxLength: k })
  }).map(({ means, raw, stds }) => {
    const total = raw.reduce((a, b) => a + b, 0)
    return makeGaussianMixture({ weights: raw.map((w) => w / total), means, variances: stds.map((r) => r.map((s) => s * s)) })
  })
)

describe("SiD loss with exact teacher and exact fake score (docs/algorithm.md §8.2, §4, §10)", () => {
  it("mean L̃ (w = 1) matches (1 − α)·mean‖f_φ − f_ψ‖² within 5 standard errors, since E[δᵀ(f_ψ − x_g)] = 0 (I3)", () => {
    fc.assert(
      fc.property(mixtureArb, mixtureArb, fc.double({ min: 0, max: 1.5, noNaN: true }), fc.integer({ min: 0, max: 1e6 }), (data, gen, alpha, seed) => {
        const n = 20000
        const out = tf.tidy(() => {
          const { x: xg } = sampleSeeded(gen, n, seed)
          const sigma = generatorSigmaSeeded(n, seed + 2)
          const xt = xg.add(tf.randomNormal([n, 2], 0, 1, "float32", seed + 3).mul(sigma.reshape([n, 1])))
          const yReal = denoise(data, xt, sigma)
          const yFake = denoise(gen, xt, sigma)
          const r = sidGeneratorLoss({ xg, yReal, yFake, alpha, lossScale: 1, normalize: false })
          const t = sidLossTerms({ xg, yReal, yFake })
          return { perRow: r.perRow.dataSync(), loss: r.loss.dataSync()[0] ?? Number.NaN, target: t.l1.mul(1 - alpha).dataSync() }
        })
        const e = pairedDifference(out.perRow, out.target)
        expect(Math.abs(e.mean)).toBeLessThanOrEqual(5 * e.stderr)
        expect(out.loss).toBeCloseTo(estimate(out.perRow).mean, 3)
      }),
      { numRuns: 12 }
    )
  })

  it("1-D Gaussian: the batch gradient in (m, c) of x_g = m + c·z matches the closed forms of docs/algorithm.md §10.1", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          mu: fc.double({ min: -1, max: 1, noNaN: true }),
          s: fc.double({ min: 0.2, max: 1.5, noNaN: true }),
          m: fc.double({ min: -1, max: 1, noNaN: true }),
          c: fc.double({ min: 0.2, max: 2, noNaN: true }),
          sigma: fc.double({ min: 0.1, max: 3, noNaN: true }),
          alpha: fc.double({ min: 0, max: 1.5, noNaN: true }),
          seed: fc.integer({ min: 0, max: 1e6 })
        }),
        async ({ alpha, c, m, mu, s, seed, sigma }) => {
          await turn()
          const n = 100000
          const teacher = gaussian1d(mu, s)
          const fake = gaussian1d(m, c)
          const { gc, gm } = tf.tidy(() => {
            const z = tf.randomNormal([n, 1], 0, 1, "float32", seed)
            const eps = tf.randomNormal([n, 1], 0, 1, "float32", seed + 1)
            const loss = (mv: tf.Tensor, cv: tf.Tensor) => {
              const xg = mv.reshape([n, 1]).add(cv.reshape([n, 1]).mul(z))
              const xt = xg.add(eps.mul(sigma))
              return sidGeneratorLoss({
                xg, yReal: denoise(teacher, xt, sigma), yFake: denoise(fake, xt, sigma), alpha, lossScale: 1, normalize: false
              }).loss
            }
            // per-sample copies of (m, c): the gradient w.r.t. copy i is ∂ℓ_i/∂θ / N
            const [gmv, gcv] = tf.grads(loss)([tf.fill([n], m), tf.fill([n], c)])
            return { gm: gmv!.mul(n).dataSync(), gc: gcv!.mul(n).dataSync() }
          })
          const kd = (s * s) / (s * s + sigma * sigma)
          const kf = (c * c) / (c * c + sigma * sigma)
          const dk = kd - kf
          const delta = mu - m
          const expectedM = (1 - kd) * delta * ((1 - 2 * alpha) * dk - (1 - kd))
          const expectedC = 2 * c * dk * ((kd - 1) - alpha * dk)
          const em = estimate(gm)
          const ec = estimate(gc)
          expect(Math.abs(em.mean - expectedM)).toBeLessThanOrEqual(5 * em.stderr + 1e-5)
          expect(Math.abs(ec.mean - expectedC)).toBeLessThanOrEqual(5 * ec.stderr + 1e-5)
        }
      ),
      { numRuns: 20 }
    )
  })
})

describe("memory", () => {
  it("leaves tf.memory().numTensors unchanged", () => {
    const xg = tf.randomNormal(shape(3), 0, 1, "float32", 1)
    const yReal = tf.randomNormal(shape(3), 0, 1, "float32", 2)
    const yFake = tf.randomNormal(shape(3), 0, 1, "float32", 3)
    const sv = tf.ones([3])
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 10; i++) {
      const r = sidGeneratorLoss({ xg, yReal, yFake })
      const t = sidLossTerms({ xg, yReal, yFake })
      tf.dispose([r.loss, r.perRow, r.w, r.mask, t.l1, t.l2, t.fakeCross, t.mask, stopGradient(xg)])
      tf.grad((x: tf.Tensor) => sidGeneratorLoss({ xg: x, yReal, yFake }).loss)(xg).dispose()
      tf.dispose([
        broadcastPerSample(sv, xg), broadcastPerSample(0.5, xg), rowSum(xg), rowMean(xg),
        rowDot(xg, yReal), rowHasNaN(xg), replaceNaN(xg), keepRows(xg, yReal), sigmaTensor(0.3)
      ])
    }
    expect(tf.memory().numTensors).toBe(n0)
    tf.dispose([xg, yReal, yFake, sv])
  })
})
