import * as tf from "@tensorflow/tfjs"
import fc from "fast-check"
import { beforeAll, describe, expect, it } from "vitest"
import { denoise, dimension, gaussian1d, type GaussianMixture, sampleSeeded } from "../src/domain/data/GaussianMixture.js"
import {
  dmdLoss,
  type GeneratorLoss,
  type GeneratorLossOptions,
  l1Loss,
  l2Loss,
  sidLoss
} from "../src/domain/sid/SidLoss.js"
import { normalTensor } from "../src/domain/data/RandomStream.js"
import { sidGeneratorLoss } from "../src/domain/sid/SidLoss.js"
import { checkIdentity, edmSigmaArbitrary, gaussianMixtureArbitrary, sigmaArbitrary, uniformArbitrary } from "../src/testing/index.js"
import { turn } from "./support/turn.js"

beforeAll(async () => {
  await tf.setBackend("cpu")
  await tf.ready()
})

const shape = (n: number) => [n, 2, 2, 1]
const rowSize = 4

type Variant = "sid" | "l1" | "l2" | "dmd"
const VARIANTS: ReadonlyArray<Variant> = ["sid", "l1", "l2", "dmd"]

const make = (variant: Variant, alpha: number, options: GeneratorLossOptions): GeneratorLoss =>
  variant === "sid" ? sidLoss({ alpha, ...options }) : variant === "l1" ? l1Loss(options) : variant === "l2" ? l2Loss(options) : dmdLoss(options)

/** Float64 per-element reference of each variant's value (docs/algorithm.md §8.1, §8.2, §8.4), w applied per row. */
const elementValue = (variant: Variant, alpha: number, g: number, r: number, f: number, w: number): number => {
  switch (variant) {
    case "sid":
      return ((r - f) * ((r - g) - alpha * (r - f))) / w
    case "l1":
      return (r - f) ** 2 / w
    case "l2":
      return ((r - f) * (r - g)) / w
    case "dmd":
      return 0.5 * ((f - r) / w) ** 2
  }
}

const reference = (
  variant: Variant,
  xg: ArrayLike<number>,
  yr: ArrayLike<number>,
  yf: ArrayLike<number>,
  n: number,
  alpha: number,
  lossScale: number,
  normalize: boolean
) => {
  const perRow: Array<number> = []
  for (let i = 0; i < n; i++) {
    let absSum = 0
    for (let j = 0; j < rowSize; j++) absSum += Math.abs((xg[i * rowSize + j] ?? Number.NaN) - (yr[i * rowSize + j] ?? Number.NaN))
    const w = normalize ? Math.max(absSum / rowSize, 1e-5) : 1
    let acc = 0
    for (let j = 0; j < rowSize; j++) {
      const k = i * rowSize + j
      acc += elementValue(variant, alpha, xg[k] ?? Number.NaN, yr[k] ?? Number.NaN, yf[k] ?? Number.NaN, w)
    }
    perRow.push(acc)
  }
  return { perRow, loss: (perRow.reduce((a, b) => a + b, 0) * lossScale) / n }
}

/** Inputs depending on x_g like the real pipeline: y_r = f_φ(x_t), y_f = f_ψ(x_t) with smooth stand-in networks. */
const networks = (xg: tf.Tensor, seed: number) => {
  const xt = xg.add(normalTensor(xg.shape, seed, "test.eps", 0.5))
  return { yReal: tf.tanh(xt.mul(0.8)).add(0.1), yFake: tf.sin(xt).mul(0.7) }
}

const argsArb = fc.record({
  n: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 0, max: 1e6 }),
  alpha: uniformArbitrary(0, 1.5),
  lossScale: uniformArbitrary(0.5, 200),
  normalize: fc.boolean(),
  variant: fc.constantFrom(...VARIANTS)
})

const first = (t: tf.Tensor): number => t.dataSync()[0] ?? Number.NaN

describe("generator loss values (docs/algorithm.md §8.1, §8.2, §8.4)", () => {
  it("each variant equals its float64 reference, with the SiD normaliser w = sg(mean_CHW |x_g − y_r|) ∨ 1e-5 or w = 1", () => {
    fc.assert(
      fc.property(argsArb, ({ alpha, lossScale, n, normalize, seed, variant }) => {
        const out = tf.tidy(() => {
          const xg = normalTensor(shape(n), seed, "xg")
          const yReal = normalTensor(shape(n), seed, "yr")
          const yFake = normalTensor(shape(n), seed, "yf")
          const r = make(variant, alpha, { lossScale, normalize }).compute({ xg, yReal, yFake })
          return {
            xg: xg.dataSync(), yr: yReal.dataSync(), yf: yFake.dataSync(),
            loss: first(r.loss), perRow: r.perRow.dataSync(), mask: r.mask.dataSync()
          }
        })
        const ref = reference(variant, out.xg, out.yr, out.yf, n, alpha, lossScale, normalize)
        ref.perRow.forEach((p, i) => expect(Math.abs((out.perRow[i] ?? Number.NaN) - p)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(p))))
        const scale = (ref.perRow.reduce((a, p) => a + Math.abs(p), 0) * lossScale) / n
        expect(Math.abs(out.loss - ref.loss)).toBeLessThanOrEqual(1e-4 * (1 + scale))
        expect(Array.from(out.mask)).toEqual(new Array(n).fill(1))
      }),
      { numRuns: 80 }
    )
  })

  it("sidLoss is sidGeneratorLoss; l2Loss is SiD at α = 0; SiD = L² − α·L¹ row by row", () => {
    fc.assert(
      fc.property(argsArb, ({ alpha, lossScale, n, normalize, seed }) => {
        const out = tf.tidy(() => {
          const xg = normalTensor(shape(n), seed, "xg")
          const input = { xg, ...networks(xg, seed) }
          const options = { lossScale, normalize }
          const direct = sidGeneratorLoss({ ...input, alpha, ...options })
          const sid = sidLoss({ alpha, ...options }).compute(input)
          const sid0 = sidLoss({ alpha: 0, ...options }).compute(input)
          const l1 = l1Loss(options).compute(input)
          const l2 = l2Loss(options).compute(input)
          return {
            direct: direct.perRow.dataSync(), directLoss: first(direct.loss), sid: sid.perRow.dataSync(), sidLoss: first(sid.loss),
            sid0: sid0.perRow.dataSync(), l1: l1.perRow.dataSync(), l2: l2.perRow.dataSync(),
            combo: l2.perRow.sub(l1.perRow.mul(alpha)).dataSync(), comboLoss: first(l2.loss.sub(l1.loss.mul(alpha)))
          }
        })
        expect(Array.from(out.sid)).toEqual(Array.from(out.direct))
        expect(out.sidLoss).toBe(out.directLoss)
        for (let i = 0; i < n; i++) {
          const tol = 1e-5 * (1 + Math.abs(out.l2[i] ?? 0) + alpha * (out.l1[i] ?? 0))
          expect(Math.abs((out.l2[i] ?? Number.NaN) - (out.sid0[i] ?? Number.NaN))).toBeLessThanOrEqual(tol)
          expect(Math.abs((out.sid[i] ?? Number.NaN) - (out.combo[i] ?? Number.NaN))).toBeLessThanOrEqual(tol)
          expect(out.l1[i]).toBeGreaterThanOrEqual(0)
        }
        expect(Math.abs(out.sidLoss - out.comboLoss)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(out.sidLoss)) * lossScale)
      }),
      { numRuns: 40 }
    )
  })

  it("normalize = false is w = 1: it equals the normalised loss on inputs whose mean|x_g − y_r| is exactly 1", () => {
    fc.assert(
      fc.property(argsArb, ({ alpha, lossScale, n, seed, variant }) => {
        const out = tf.tidy(() => {
          // x_g on a 1/8 grid and y_r = x_g ± 1: |x_g − y_r| = 1 exactly in float32, so w = 1
          const xg = normalTensor(shape(n), seed, "xg").mul(8).round().div(8)
          const signs = tf.sign(normalTensor(shape(n), seed, "signs"))
          const yFake = normalTensor(shape(n), seed, "yf")
          const loss = (normalize: boolean) => (x: tf.Tensor, yr: tf.Tensor, yf: tf.Tensor) =>
            make(variant, alpha, { lossScale, normalize }).compute({ xg: x, yReal: yr, yFake: yf }).loss
          const yReal = xg.add(signs)
          const on = tf.grads(loss(true))([xg, yReal, yFake])
          const off = tf.grads(loss(false))([xg, yReal, yFake])
          return {
            on: first(loss(true)(xg, yReal, yFake)),
            off: first(loss(false)(xg, yReal, yFake)),
            gradErr: Math.max(...on.map((g, i) => first(g.sub(off[i]!).abs().max()))),
            gradScale: Math.max(...off.map((g) => first(g.abs().max())))
          }
        })
        expect(Math.abs(out.on - out.off)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(out.off)))
        expect(out.gradErr).toBeLessThanOrEqual(1e-6 * (1 + out.gradScale))
      }),
      { numRuns: 40 }
    )
  })

  it("names, descriptions, defaults (lossScale 100, w on) and shape checks", () => {
    const losses = [sidLoss({ alpha: 1.2 }), l1Loss(), l2Loss(), dmdLoss()]
    expect(losses.map((l) => l.name)).toEqual(["sid", "l1", "l2", "dmd"])
    expect(new Set(losses.map((l) => l.description)).size).toBe(4)
    const [a, b, c, d] = tf.tidy(() => {
      const xg = normalTensor(shape(3), 1, "xg")
      const yReal = normalTensor(shape(3), 2, "yr")
      const yFake = normalTensor(shape(3), 3, "yf")
      return [
        first(dmdLoss().compute({ xg, yReal, yFake }).loss),
        first(dmdLoss({ lossScale: 100, normalize: true, wMin: 1e-5 }).compute({ xg, yReal, yFake }).loss),
        first(l1Loss().compute({ xg, yReal, yFake, batchSize: 6 }).loss),
        first(l1Loss().compute({ xg, yReal, yFake }).loss)
      ]
    })
    expect(a).toBe(b)
    expect(c).toBeCloseTo((d ?? Number.NaN) / 2, 4)
    for (const l of losses) {
      expect(() => tf.tidy(() => l.compute({ xg: tf.zeros([2, 3]), yReal: tf.zeros([2, 3]), yFake: tf.zeros([3, 3]) }))).toThrow()
    }
  })
})

describe("DMD / Diff-Instruct direction (docs/algorithm.md §8.4)", () => {
  it("∂L/∂x_g = (y_f − y_r)/w · lossScale/N exactly; y_r and y_f get no gradient", () => {
    fc.assert(
      fc.property(argsArb, ({ lossScale, n, normalize, seed }) => {
        const out = tf.tidy(() => {
          const xg = normalTensor(shape(n), seed, "xg").mul(3)
          const yReal = normalTensor(shape(n), seed, "yr")
          const yFake = normalTensor(shape(n), seed, "yf")
          const [gx, gr, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
            dmdLoss({ lossScale, normalize }).compute({ xg: a, yReal: b, yFake: c }).loss)([xg, yReal, yFake])
          const w = normalize ? tf.maximum(xg.sub(yReal).abs().mean([1, 2, 3]), 1e-5).reshape([n, 1, 1, 1]) : tf.scalar(1)
          const expected = yFake.sub(yReal).div(w).mul(lossScale / n)
          return {
            err: first(gx!.sub(expected).abs().max()),
            scale: first(expected.abs().max()),
            gr: first(gr!.abs().max()),
            gf: first(gf!.abs().max())
          }
        })
        expect(out.err).toBeLessThanOrEqual(1e-6 * out.scale)
        expect(out.gr).toBe(0)
        expect(out.gf).toBe(0)
      }),
      { numRuns: 40 }
    )
  })
})

const mixturePairArb = gaussianMixtureArbitrary({ maxComponents: 3 }).chain((data) =>
  fc.tuple(fc.constant(data), gaussianMixtureArbitrary({ minDim: dimension(data), maxDim: dimension(data), maxComponents: 3 }))
)

/** Jᵀu of the exact mixture denoiser at x, by autodiff: ∇_x Σ u ⊙ D(x; σ) (docs/algorithm.md §4 Jacobian, §8.3). */
const vjp = (g: GaussianMixture, x: tf.Tensor, sigma: tf.Tensor1D, u: tf.Tensor): tf.Tensor =>
  tf.grad((v: tf.Tensor) => tf.sum(tf.mul(u, denoise(g, v, sigma))))(x)

describe("SiD vs DMD: the Jacobian terms (docs/algorithm.md §8.3 per-sample gradient)", () => {
  it("per-sample ∂/∂x_g: SiD − DMD = (1/w)[(J_φ − J_ψ)ᵀ((f_φ − x_g) − αδ) + (J_φ − α(J_φ − J_ψ))ᵀδ]; L¹, L² likewise", () => {
    fc.assert(
      fc.property(
        mixturePairArb,
        fc.array(edmSigmaArbitrary, { minLength: 16, maxLength: 16 }),
        uniformArbitrary(0, 1.5),
        fc.boolean(),
        fc.integer({ min: 0, max: 1e6 }),
        ([data, gen], sigmas, alpha, normalize, seed) => {
          const n = sigmas.length
          const out = tf.tidy(() => {
            const sigma = tf.tensor1d(sigmas)
            const xg0 = sampleSeeded(gen, n, seed).x
            const eps = normalTensor(xg0.shape, seed, "eps")
            const inputs = (xg: tf.Tensor) => {
              const xt = xg.add(eps.mul(sigma.reshape([n, 1])))
              return { xg, yReal: denoise(data, xt, sigma), yFake: denoise(gen, xt, sigma) }
            }
            // lossScale = N makes L = Σ_rows ℓ_i, so the gradient's row i is ∂ℓ_i/∂x_g,i
            const grad = (loss: GeneratorLoss) => tf.grad((xg: tf.Tensor) => loss.compute(inputs(xg)).loss)(xg0)
            const options = { lossScale: n, normalize }
            const sid = grad(sidLoss({ alpha, ...options }))
            const dmd = grad(dmdLoss(options))
            const l1 = grad(l1Loss(options))
            const l2 = grad(l2Loss(options))
            const { yFake: fPsi, yReal: fPhi } = inputs(xg0)
            const xt = xg0.add(eps.mul(sigma.reshape([n, 1])))
            const a = fPhi.sub(xg0)
            const delta = fPhi.sub(fPsi)
            const w = normalize ? tf.maximum(a.abs().mean(1), 1e-5).reshape([n, 1]) : tf.ones([n, 1])
            const jPhi = (u: tf.Tensor) => vjp(data, xt, sigma, u)
            const jPsi = (u: tf.Tensor) => vjp(gen, xt, sigma, u)
            const u = a.sub(delta.mul(alpha))
            const terms = [jPhi(u), jPsi(u), jPhi(delta), jPsi(delta), jPhi(a), jPsi(a)]
            const [phiU, psiU, phiD, psiD, phiA, psiA] = terms as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]
            const jacobianPart = phiU.sub(psiU).add(phiD.sub(phiD.sub(psiD).mul(alpha))).div(w)
            const l1Expected = phiD.sub(psiD).mul(2).div(w)
            const l2Expected = phiA.sub(psiA).add(phiD).sub(delta).div(w)
            const scale = tf.stack(terms.map((t) => t.abs().div(w))).max(0).add(delta.abs().div(w)).add(1)
            const rel = (x: tf.Tensor, y: tf.Tensor) => first(x.sub(y).abs().div(scale).max())
            return {
              sidMinusDmd: rel(sid.sub(dmd), jacobianPart),
              dmd: rel(dmd, delta.neg().div(w)),
              l1: rel(l1, l1Expected),
              l2: rel(l2, l2Expected),
              sid: rel(sid, l2Expected.sub(l1Expected.mul(alpha)))
            }
          })
          // float32 tolerance, relative to the largest term per element (worst seen in 600 runs: 3.3e-5, at σ = 0.002)
          expect(out.sidMinusDmd).toBeLessThanOrEqual(2e-4)
          expect(out.dmd).toBeLessThanOrEqual(2e-4)
          expect(out.l1).toBeLessThanOrEqual(2e-4)
          expect(out.l2).toBeLessThanOrEqual(2e-4)
          expect(out.sid).toBeLessThanOrEqual(2e-4)
        }
      ),
      { numRuns: 30 }
    )
  })
})

/*
 * 1-D Gaussian closed forms (docs/algorithm.md §10.1), w = 1, σ fixed. Teacher N(μ, s²): D_φ(x) = μ + k_d(x − μ), k_d = s²/(s² + σ²);
 * generator x_g = m + c·z; exact fake frozen at the current (m, c): D_ψ(x) = m + k_f(x − m), k_f = c²/(c² + σ²);
 * x_t = x_g + σε. Write Δ = μ − m, Δk = k_d − k_f, and v = ∂x_g/∂θ = ∂x_t/∂θ (v = 1 for m, v = z for c).
 * Facts at the current (m, c): E[x_t] = m, E[x_t·z] = c, E[x_g·z] = c, E[z] = 0, so
 *   δ = D_φ − D_ψ = (1 − k_d)μ − (1 − k_f)m + Δk·x_t,        E[δ] = (1 − k_d)Δ,        E[δ·z] = Δk·c;
 *   a = D_φ − x_g = (1 − k_d)μ + k_d·x_t − x_g,             E[a] = (1 − k_d)Δ,        E[a·z] = (k_d − 1)c;
 *   ∂δ/∂θ = Δk·v (the fake's parameters are frozen but its input moves), ∂a/∂θ = (k_d − 1)·v.
 * L¹ = δ²:  ∂L¹/∂θ = 2δ·Δk·v, so
 *   E[∂L¹/∂m] = 2Δk(1 − k_d)Δ,                E[∂L¹/∂c] = 2Δk²·c.
 * L² = δ·a: ∂L²/∂θ = v·(Δk·a + (k_d − 1)·δ), so
 *   E[∂L²/∂m] = (1 − k_d)Δ·(Δk − (1 − k_d)),  E[∂L²/∂c] = 2c·Δk·(k_d − 1).
 * SiD = L² − αL¹ gives the formulas of docs/algorithm.md §10.1: (1 − k_d)Δ[(1 − 2α)Δk − (1 − k_d)] and 2cΔk[(k_d − 1) − αΔk].
 * DMD (docs/algorithm.md §8.4): the surrogate's gradient in x_g is g = D_ψ − D_φ = −δ with no derivative through D_φ, D_ψ, so
 *   ∂/∂θ = −δ·v,  E[∂DMD/∂m] = −(1 − k_d)Δ = (k_d − 1)(μ − m),  E[∂DMD/∂c] = −Δk·c = (k_f − k_d)·c.
 * Like SiD, DMD's fixed point is (μ, s): both vanish iff m = μ and k_f = k_d (c = s); descent moves m towards μ and
 * raises c when c < s (k_f < k_d).
 */
const closedForms = (p: { mu: number; s: number; m: number; c: number; sigma: number; alpha: number }) => {
  const kd = (p.s * p.s) / (p.s * p.s + p.sigma * p.sigma)
  const kf = (p.c * p.c) / (p.c * p.c + p.sigma * p.sigma)
  const dk = kd - kf
  const delta = p.mu - p.m
  const l1 = { m: 2 * dk * (1 - kd) * delta, c: 2 * dk * dk * p.c }
  const l2 = { m: (1 - kd) * delta * (dk - (1 - kd)), c: 2 * p.c * dk * (kd - 1) }
  return {
    l1,
    l2,
    sid: { m: (1 - kd) * delta * ((1 - 2 * p.alpha) * dk - (1 - kd)), c: 2 * p.c * dk * ((kd - 1) - p.alpha * dk) },
    dmd: { m: -(1 - kd) * delta, c: (kf - kd) * p.c }
  }
}

describe("1-D Gaussian: expected gradients in (m, c) match the closed forms (docs/algorithm.md §10.1)", () => {
  it("SiD (any α), L¹, L² and DMD, within 5 standard errors of the per-sample gradients", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          mu: uniformArbitrary(-1, 1),
          s: uniformArbitrary(0.2, 1.5),
          m: uniformArbitrary(-1, 1),
          c: uniformArbitrary(0.2, 2),
          sigma: sigmaArbitrary({ min: 0.1, max: 3 }),
          alpha: uniformArbitrary(0, 1.5),
          seed: fc.integer({ min: 0, max: 1e6 })
        }),
        async (p) => {
          await turn()
          const n = 50000
          const teacher = gaussian1d(p.mu, p.s)
          const fake = gaussian1d(p.m, p.c)
          const losses: Record<Variant, GeneratorLoss> = {
            sid: sidLoss({ alpha: p.alpha, lossScale: n, normalize: false }),
            l1: l1Loss({ lossScale: n, normalize: false }),
            l2: l2Loss({ lossScale: n, normalize: false }),
            dmd: dmdLoss({ lossScale: n, normalize: false })
          }
          const grads = tf.tidy(() => {
            const z = normalTensor([n, 1], p.seed, "z")
            const eps = normalTensor([n, 1], p.seed, "eps")
            const perSample = (loss: GeneratorLoss) => {
              const f = (mv: tf.Tensor, cv: tf.Tensor) => {
                const xg = mv.reshape([n, 1]).add(cv.reshape([n, 1]).mul(z))
                const xt = xg.add(eps.mul(p.sigma))
                return loss.compute({ xg, yReal: denoise(teacher, xt, p.sigma), yFake: denoise(fake, xt, p.sigma) }).loss
              }
              // per-sample copies of (m, c); with lossScale = N the gradient w.r.t. copy i is ∂ℓ_i/∂θ
              const [gm, gc] = tf.grads(f)([tf.fill([n], p.m), tf.fill([n], p.c)])
              return { m: gm!.dataSync(), c: gc!.dataSync() }
            }
            return Object.fromEntries(VARIANTS.map((v) => [v, perSample(losses[v])])) as Record<Variant, { m: Float32Array; c: Float32Array }>
          })
          const expected = closedForms(p)
          for (const v of VARIANTS) {
            checkIdentity(`${v} ∂/∂m`, grads[v].m, expected[v].m, { absTolerance: 1e-5 })
            checkIdentity(`${v} ∂/∂c`, grads[v].c, expected[v].c, { absTolerance: 1e-5 })
          }
        }
      ),
      { numRuns: 15 }
    )
  })

  it("the check has power: swapping the L¹ and DMD closed forms fails", () => {
    const p = { mu: 0.8, s: 0.4, m: -0.3, c: 1.2, sigma: 0.5, alpha: 1.2 }
    const n = 50000
    const grads = tf.tidy(() => {
      const z = normalTensor([n, 1], 7, "z")
      const eps = normalTensor([n, 1], 7, "eps")
      const f = (loss: GeneratorLoss) => (mv: tf.Tensor, cv: tf.Tensor) => {
        const xg = mv.reshape([n, 1]).add(cv.reshape([n, 1]).mul(z))
        const xt = xg.add(eps.mul(p.sigma))
        return loss.compute({ xg, yReal: denoise(gaussian1d(p.mu, p.s), xt, p.sigma), yFake: denoise(gaussian1d(p.m, p.c), xt, p.sigma) }).loss
      }
      const [l1m, l1c] = tf.grads(f(l1Loss({ lossScale: n, normalize: false })))([tf.fill([n], p.m), tf.fill([n], p.c)])
      const [dm, dc] = tf.grads(f(dmdLoss({ lossScale: n, normalize: false })))([tf.fill([n], p.m), tf.fill([n], p.c)])
      return { l1m: l1m!.dataSync(), l1c: l1c!.dataSync(), dm: dm!.dataSync(), dc: dc!.dataSync() }
    })
    const e = closedForms(p)
    expect(() => checkIdentity("l1 ∂/∂c vs dmd form", grads.l1c, e.dmd.c)).toThrow(/outside 5 standard errors/)
    expect(() => checkIdentity("dmd ∂/∂m vs l1 form", grads.dm, e.l1.m)).toThrow(/dmd ∂\/∂m vs l1 form/)
    checkIdentity("l1 ∂/∂m", grads.l1m, e.l1.m)
    checkIdentity("dmd ∂/∂c", grads.dc, e.dmd.c)
  })
})

describe("NaN rows and memory", () => {
  it("a NaN row is dropped (divisor kept) and changes no other row's loss or gradient, for every variant", () => {
    fc.assert(
      fc.property(
        argsArb.filter((a) => a.n >= 2),
        fc.integer({ min: 0, max: 1e6 }),
        fc.constantFrom("xg" as const, "yReal" as const, "yFake" as const),
        ({ alpha, lossScale, n, normalize, seed, variant }, pick, where) => {
          const bad = pick % n
          const loss = make(variant, alpha, { lossScale, normalize })
          const out = tf.tidy(() => {
            const xg0 = normalTensor(shape(n), seed, "xg")
            const buf = tf.buffer(shape(n), "float32")
            buf.set(Number.NaN, bad, pick % 2, (pick >> 1) % 2, 0)
            const poison = buf.toTensor()
            const run = (withNaN: boolean) => (x: tf.Tensor) => {
              const nets = networks(x, seed)
              return loss.compute({
                xg: withNaN && where === "xg" ? x.add(poison) : x,
                yReal: withNaN && where === "yReal" ? nets.yReal.add(poison) : nets.yReal,
                yFake: withNaN && where === "yFake" ? nets.yFake.add(poison) : nets.yFake
              })
            }
            const clean = run(false)(xg0)
            const dirty = run(true)(xg0)
            return {
              cleanRows: clean.perRow.dataSync(),
              dirtyRows: dirty.perRow.dataSync(),
              cleanLoss: first(clean.loss),
              dirtyLoss: first(dirty.loss),
              mask: dirty.mask.dataSync(),
              gClean: tf.grad((x: tf.Tensor) => run(false)(x).loss)(xg0).reshape([n, rowSize]).arraySync() as Array<Array<number>>,
              gDirty: tf.grad((x: tf.Tensor) => run(true)(x).loss)(xg0).reshape([n, rowSize]).arraySync() as Array<Array<number>>
            }
          })
          for (let i = 0; i < n; i++) {
            if (i === bad) {
              expect(out.dirtyRows[i]).toBe(0)
              expect(out.mask[i]).toBe(0)
              out.gDirty[i]?.forEach((g) => expect(Math.abs(g)).toBe(0))
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
      { numRuns: 60 }
    )
  })

  it("leaves tf.memory().numTensors unchanged", () => {
    const xg = normalTensor(shape(3), 1, "xg")
    const yReal = normalTensor(shape(3), 2, "yr")
    const yFake = normalTensor(shape(3), 3, "yf")
    const losses = [sidLoss({ alpha: 1.2 }), l1Loss(), l2Loss(), dmdLoss({ normalize: false })]
    const n0 = tf.memory().numTensors
    for (let i = 0; i < 5; i++) {
      for (const l of losses) {
        const r = l.compute({ xg, yReal, yFake })
        tf.dispose([r.loss, r.perRow, r.mask])
        tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => l.compute({ xg: a, yReal: b, yFake: c }).loss)([xg, yReal, yFake])
          .forEach((g) => g.dispose())
      }
    }
    expect(tf.memory().numTensors).toBe(n0)
    tf.dispose([xg, yReal, yFake])
  })
})
