/**
 * The three score identities and the SiD loss decomposition, evaluated on exact Gaussian mixtures.
 *
 * p_data is the 8-mode ring (the teacher f_φ is its exact posterior mean); p_θ is a "generator" mixture whose modes
 * are too wide and off-centre (its exact posterior mean stands for a perfectly trained fake score f_ψ). For noise σ
 * drawn from SiD's generator schedule it prints both sides of each identity with their Monte Carlo standard errors:
 *
 * - I1 Tweedie: E[x₀|x_t] = x_t + σ²∇log p(x_t), the score by autodiff of the log-density (exact, to float32);
 * - I2 score projection: E[u·∇log p_θ(x_t)] = E[u·(x_g − x_t)/σ²];
 * - I3 denoiser form: E[u·f*(x_t)] = E[u·x_g];
 * - the SiD loss: E[L̃] = E[L²] − α·E[L¹] = (1 − α)·E‖δ‖² (docs/algorithm.md §8.2), and why it hovers around 0 at α = 1.
 *
 * Run: `npx tsx examples/identities.ts [--samples 200000] [--alpha 1.2] [--seed 0]` (engine from SID_ENGINE).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import * as GaussianMixture from "../src/domain/data/GaussianMixture.js"
import { estimate, type Estimate, pairedDifference } from "../src/domain/metrics/MonteCarlo.js"
import { makeStream, normals, uniforms } from "../src/domain/data/RandomStream.js"
import { generatorSigmaFromUniform } from "../src/domain/edm/Schedule.js"
import { denoiserIdentityTerms, scoreProjectionTerms, tweedieDenoiser } from "../src/domain/sid/ScoreIdentities.js"
import { sidLossTerms } from "../src/domain/sid/SidLoss.js"
import * as Engine from "../src/engine/node/Engine.js"

/** One identity: both sides, the paired difference and its z-score. */
export interface IdentityCheck {
  readonly name: string
  readonly lhs: Estimate
  readonly rhs: Estimate
  readonly difference: Estimate
}

/** Everything the example computes. */
export interface IdentitiesReport {
  readonly samples: number
  readonly alpha: number
  /** Largest |D − (x + σ²·∇log p)| over the points, relative to max |D| (Tweedie is exact). */
  readonly tweedieMaxError: number
  readonly checks: ReadonlyArray<IdentityCheck>
}

const check = (name: string, lhs: tf.Tensor1D, rhs: tf.Tensor1D): IdentityCheck => {
  const a = lhs.dataSync()
  const b = rhs.dataSync()
  return { name, lhs: estimate(a), rhs: estimate(b), difference: pairedDifference(a, b) }
}

/** Runs every check with `samples` Monte Carlo samples. Pure tensor work on the current engine. */
export const identitiesReport = (options: { readonly samples: number; readonly alpha: number; readonly seed: number }): IdentitiesReport => {
  const data = GaussianMixture.ring()
  const model = GaussianMixture.makeGaussianMixture({
    weights: data.weights,
    means: data.means.map(([x, y]) => [1.1 * x! + 0.05, 1.1 * y!]),
    variances: data.variances.map(([v]) => [4 * v!, 4 * v!])
  })
  const n = options.samples
  let stream = makeStream(options.seed, "identities")
  const draw = (count: number, kind: "normal" | "uniform") => {
    const r = (kind === "normal" ? normals : uniforms)(stream, count)
    stream = r.state
    return r.values
  }
  let report: IdentitiesReport | undefined
  tf.tidy(() => {
    const xg = GaussianMixture.sample(model, tf.tensor2d(draw(2 * n, "normal"), [n, 2]), tf.tensor1d(draw(n, "uniform"))).x
    const sigma = generatorSigmaFromUniform(tf.tensor1d(draw(n, "uniform"))) as tf.Tensor1D
    const xt = tf.add(xg, tf.mul(tf.tensor2d(draw(2 * n, "normal"), [n, 2]), sigma.reshape([n, 1])))
    const u = tf.tanh(tf.matMul(xt, tf.tensor2d([[1.3, -0.4], [0.7, 0.9]])).add(tf.tensor1d([0.2, -0.1])))

    const m = Math.min(n, 2000)
    const xs = xt.slice([0, 0], [m, 2])
    const ss = sigma.slice(0, m)
    const autodiffScore = tf.grad((x: tf.Tensor) => GaussianMixture.logDensity(data, x, ss).sum())(xs)
    const exact = GaussianMixture.denoise(data, xs, ss)
    const tweedieMaxError = tf.abs(tf.sub(exact, tweedieDenoiser(xs, autodiffScore, ss))).max().dataSync()[0]! /
      tf.abs(exact).max().dataSync()[0]!

    const projection = scoreProjectionTerms({ u, score: GaussianMixture.score(model, xt, sigma), xg, xt, sigma })
    const denoiser = denoiserIdentityTerms({ u, denoised: GaussianMixture.denoise(model, xt, sigma), xg })
    const terms = sidLossTerms({
      xg,
      yReal: GaussianMixture.denoise(data, xt, sigma),
      yFake: GaussianMixture.denoise(model, xt, sigma)
    })
    const lossTilde = tf.sub(terms.l2, tf.mul(terms.l1, options.alpha)) as tf.Tensor1D
    report = {
      samples: n,
      alpha: options.alpha,
      tweedieMaxError,
      checks: [
        check("I2 score projection: E[u·∇log p_θ(x_t)] = E[u·(x_g − x_t)/σ²]", projection.lhs, projection.rhs),
        check("I3 denoiser form:    E[u·f_ψ*(x_t)]     = E[u·x_g]", denoiser.lhs, denoiser.rhs),
        check(`SiD loss:            E[L² − α·L¹]        = (1 − α)·E‖δ‖²  (α = ${options.alpha})`, lossTilde,
          tf.mul(terms.l1, 1 - options.alpha) as tf.Tensor1D),
        check("L² vs L¹ (equal in value when f_ψ is exact): E[δᵀ(f_φ − x_g)] = E‖δ‖²", terms.l2, terms.l1)
      ]
    }
  })
  return report!
}

const flag = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback
  return Number.isFinite(v) ? v : fallback
}

const show = (e: Estimate): string => `${e.mean.toExponential(4)} ± ${e.stderr.toExponential(1)}`

const main = Effect.gen(function*() {
  const report = identitiesReport({ samples: flag("samples", 200_000), alpha: flag("alpha", 1.2), seed: flag("seed", 0) })
  yield* Effect.log(`score identities on exact Gaussian mixtures, ${report.samples} samples, σ from SiD's t-schedule`)
  console.log(`I1 Tweedie: max |E[x₀|x_t] − (x_t + σ²∇log p)| / max|E[x₀|x_t]| = ${report.tweedieMaxError.toExponential(2)} (autodiff score; float32)`)
  for (const c of report.checks) {
    const z = c.difference.stderr > 0 ? c.difference.mean / c.difference.stderr : 0
    console.log(`${c.name}\n    lhs ${show(c.lhs)}   rhs ${show(c.rhs)}   lhs − rhs ${show(c.difference)}  (z = ${z.toFixed(2)})`)
  }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(main.pipe(Effect.provide(Engine.layerConfig))).catch((e) => {
    console.error(String(e))
    process.exit(1)
  })
}
