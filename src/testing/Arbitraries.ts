/**
 * fast-check arbitraries for property tests of SiD code: configs (derived from the Schema classes), Gaussian mixtures
 * (exact teachers, docs/algorithm.md §4), noise levels across the EDM range (docs/algorithm.md §2.1, §2.2), points near a mixture and small
 * random MLP networks (docs/algorithm.md §12.3).
 *
 * Built on `FastCheck` from "effect", the same copy as the "fast-check" package, so these arbitraries mix with
 * `fc.*` in tests. No arbitrary creates tensors (shrinking would leak them): networks come as a spec, a
 * {@link Network} and a seed, and `network.init(seed)` gives parameters the caller owns.
 *
 * @module
 */
import { Arbitrary, FastCheck } from "effect"
import { DistillConfig, distillConfig } from "../domain/config/DistillConfig.js"
import { P_MEAN, P_STD, SIGMA_MAX, SIGMA_MIN, TMAX } from "../domain/edm/Edm.js"
import { dimension, type GaussianMixture, makeGaussianMixture, numComponents } from "../domain/data/GaussianMixture.js"
import { type MlpSpec, mlpSpec } from "../domain/nn/Mlp.js"
import { mlpNetwork, type Network } from "../domain/nn/Network.js"
import { sigmaFromTimeNumber } from "../domain/edm/Schedule.js"

const RESOLUTION = 2 ** 31 - 1

/**
 * A number uniform on [min, max] (spec-free helper). Unlike `fc.double`, whose draws are uniform over the binary
 * representations and so crowd towards 0, this is uniform in value; it still hits both ends often.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const uniformArbitrary = (min: number, max: number): FastCheck.Arbitrary<number> =>
  FastCheck.integer({ min: 0, max: RESOLUTION }).map((i) => Math.min(max, Math.max(min, min + ((max - min) * i) / RESOLUTION)))

/**
 * A number log-uniform on [min, max] (0 < min ≤ max), clamped so rounding never leaves the range.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const logUniformArbitrary = (min: number, max: number): FastCheck.Arbitrary<number> => {
  if (!(min > 0 && max >= min)) throw new Error(`log-uniform range needs 0 < min ≤ max, got [${min}, ${max}]`)
  return uniformArbitrary(Math.log(min), Math.log(max)).map((l) => Math.min(max, Math.max(min, Math.exp(l))))
}

/**
 * A closed range of noise levels [min, max].
 *
 * @since 0.1.0
 * @category models
 */
export interface SigmaRange {
  readonly min: number
  readonly max: number
}

/**
 * The whole EDM range [σ_min, σ_max] = [0.002, 80] (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const EDM_SIGMA_RANGE: SigmaRange = { min: SIGMA_MIN, max: SIGMA_MAX }

/**
 * The bulk of the EDM training noise: exp(P_mean ± 2·P_std) ≈ [0.0273, 3.32], about 95% of the log-normal σ of the
 * fake-score loss (docs/algorithm.md §2.1, §2.4, §7).
 *
 * @since 0.1.0
 * @category constants
 */
export const TRAINING_SIGMA_RANGE: SigmaRange = { min: Math.exp(P_MEAN - 2 * P_STD), max: Math.exp(P_MEAN + 2 * P_STD) }

/**
 * The SiD generator-loss range [σ(0), σ(tmax/1000)] on the ρ-schedule (docs/algorithm.md §2.2, §8.1): [0.002, 24.4] at tmax 800.
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorSigmaRange = (tmax: number = TMAX): SigmaRange => ({
  min: sigmaFromTimeNumber(0),
  max: sigmaFromTimeNumber(tmax / 1000)
})

/**
 * σ log-uniform on a range (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const sigmaArbitrary = (range: SigmaRange = EDM_SIGMA_RANGE): FastCheck.Arbitrary<number> =>
  logUniformArbitrary(range.min, range.max)

/**
 * σ log-uniform across the whole EDM range [0.002, 80] (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const edmSigmaArbitrary: FastCheck.Arbitrary<number> = sigmaArbitrary(EDM_SIGMA_RANGE)

/**
 * σ log-uniform on the training range exp(P_mean ± 2·P_std) (docs/algorithm.md §2.1, §7).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const trainingSigmaArbitrary: FastCheck.Arbitrary<number> = sigmaArbitrary(TRAINING_SIGMA_RANGE)

/**
 * Ranges of {@link gaussianMixtureArbitrary}; every field optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface MixtureArbitraryOptions {
  /** Fewest components K; default 1. */
  readonly minComponents?: number
  /** Most components K; default 5. */
  readonly maxComponents?: number
  /** Smallest dimension d; default 1. */
  readonly minDim?: number
  /** Largest dimension d; default 3. */
  readonly maxDim?: number
  /** Means uniform in [−meanRange, meanRange] per coordinate; default 1.5. */
  readonly meanRange?: number
  /** Smallest per-coordinate component std; default 0.05 (variance 0.0025: well inside float32). */
  readonly minStd?: number
  /** Largest per-coordinate component std; default 1. */
  readonly maxStd?: number
  /** Smallest unnormalised weight, against a largest of 1; default 0.1 (so no weight is below 0.1/K). */
  readonly minRawWeight?: number
}

/**
 * Valid Gaussian mixtures with diagonal covariances (docs/algorithm.md §4): K components (default 1–5), dimension d (default
 * 1–3), means uniform in ±1.5, stds log-uniform in [0.05, 1] per coordinate, weights normalised from raw values in
 * [0.1, 1]. Every draw passes `gaussianMixtureProblems` (it goes through `makeGaussianMixture`).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const gaussianMixtureArbitrary = (options: MixtureArbitraryOptions = {}): FastCheck.Arbitrary<GaussianMixture> => {
  const meanRange = options.meanRange ?? 1.5
  const std = logUniformArbitrary(options.minStd ?? 0.05, options.maxStd ?? 1)
  return FastCheck.record({
    k: FastCheck.integer({ min: options.minComponents ?? 1, max: options.maxComponents ?? 5 }),
    d: FastCheck.integer({ min: options.minDim ?? 1, max: options.maxDim ?? 3 })
  }).chain(({ d, k }) => {
    const rows = <A>(arb: FastCheck.Arbitrary<A>) =>
      FastCheck.array(FastCheck.array(arb, { minLength: d, maxLength: d }), { minLength: k, maxLength: k })
    return FastCheck.record({
      raw: FastCheck.array(uniformArbitrary(options.minRawWeight ?? 0.1, 1), { minLength: k, maxLength: k }),
      means: rows(uniformArbitrary(-meanRange, meanRange)),
      stds: rows(std)
    }).map(({ means, raw, stds }) => {
      const total = raw.reduce((a, b) => a + b, 0)
      return makeGaussianMixture({
        weights: raw.map((w) => w / total),
        means,
        variances: stds.map((r) => r.map((s) => s * s))
      })
    })
  })
}

/**
 * A batch of points with one noise level per point (docs/algorithm.md §4: x = x_0 + σε).
 *
 * @since 0.1.0
 * @category models
 */
export interface NoisyPoints {
  /** [N][d] points. */
  readonly points: ReadonlyArray<ReadonlyArray<number>>
  /** [N] noise levels, one per point. */
  readonly sigmas: ReadonlyArray<number>
}

/**
 * Options of {@link noisyPointsArbitrary}.
 *
 * @since 0.1.0
 * @category models
 */
export interface NoisyPointsOptions {
  /** Fewest points; default 1. */
  readonly minPoints?: number
  /** Most points; default 32. */
  readonly maxPoints?: number
  /** Noise level of each point; default {@link edmSigmaArbitrary}. Use `FastCheck.constant(0)` for clean points. */
  readonly sigma?: FastCheck.Arbitrary<number>
  /** Points lie within ±spread standard deviations of a component, per coordinate; default 3. */
  readonly spread?: number
}

/**
 * Points near a mixture under noise (docs/algorithm.md §4): each point picks a component k and a σ, then
 * x_j = μ_kj + √(s_kj² + σ²)·z_j with z_j uniform in [−spread, spread], so it sits where p_σ has mass.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const noisyPointsArbitrary = (g: GaussianMixture, options: NoisyPointsOptions = {}): FastCheck.Arbitrary<NoisyPoints> => {
  const d = dimension(g)
  const spread = options.spread ?? 3
  const point = FastCheck.record({
    k: FastCheck.integer({ min: 0, max: numComponents(g) - 1 }),
    sigma: options.sigma ?? edmSigmaArbitrary,
    z: FastCheck.array(uniformArbitrary(-spread, spread), { minLength: d, maxLength: d })
  })
  return FastCheck.array(point, { minLength: options.minPoints ?? 1, maxLength: options.maxPoints ?? 32 }).map((ps) => ({
    points: ps.map(({ k, sigma, z }) =>
      z.map((zj, j) => (g.means[k]?.[j] ?? 0) + Math.sqrt((g.variances[k]?.[j] ?? 0) + sigma * sigma) * zj)),
    sigmas: ps.map((p) => p.sigma)
  }))
}

/**
 * A mixture together with points near it (docs/algorithm.md §4).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const mixtureWithPointsArbitrary = (
  mixture: MixtureArbitraryOptions = {},
  points: NoisyPointsOptions = {}
): FastCheck.Arbitrary<{ readonly mixture: GaussianMixture } & NoisyPoints> =>
  gaussianMixtureArbitrary(mixture).chain((g) =>
    noisyPointsArbitrary(g, points).map((p) => ({ mixture: g, points: p.points, sigmas: p.sigmas }))
  )

/**
 * A small random MLP network: its spec, the {@link Network} and a seed for `network.init(seed)` (docs/algorithm.md §12.3).
 *
 * @since 0.1.0
 * @category models
 */
export interface RandomMlp {
  readonly spec: MlpSpec
  readonly network: Network
  readonly seed: number
}

/**
 * Options of {@link mlpArbitrary}.
 *
 * @since 0.1.0
 * @category models
 */
export interface MlpArbitraryOptions {
  /** The data dimension; default drawn from 1–3. */
  readonly dim?: number
  /** Most hidden units per layer; default 16 (at least 2 are drawn). */
  readonly maxHidden?: number
  /** Most hidden layers; default 2 (at least 1). */
  readonly maxDepth?: number
  /** Most embedding frequencies K; default 4 (at least 1). */
  readonly maxFrequencies?: number
}

/**
 * Small random MLPs of the docs/algorithm.md §12.3 architecture (`mlpSpec` + `mlpNetwork`): width 2–16, depth 1–2, K 1–4,
 * output scale log-uniform in [0.1, 1], and a 32-bit seed from fast-check. No tensors are created until the caller
 * runs `network.init(seed)` (and then owns the parameters).
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const mlpArbitrary = (options: MlpArbitraryOptions = {}): FastCheck.Arbitrary<RandomMlp> =>
  FastCheck.record({
    dim: options.dim === undefined ? FastCheck.integer({ min: 1, max: 3 }) : FastCheck.constant(options.dim),
    hidden: FastCheck.integer({ min: 2, max: Math.max(2, options.maxHidden ?? 16) }),
    depth: FastCheck.integer({ min: 1, max: Math.max(1, options.maxDepth ?? 2) }),
    frequencies: FastCheck.integer({ min: 1, max: Math.max(1, options.maxFrequencies ?? 4) }),
    outputScale: logUniformArbitrary(0.1, 1),
    seed: FastCheck.integer({ min: 0, max: 0xffff_ffff })
  }).map(({ depth, dim, frequencies, hidden, outputScale, seed }) => {
    const spec = mlpSpec(dim, { hidden, depth, frequencies, outputScale })
    return { spec, network: mlpNetwork(spec), seed }
  })

/**
 * Every valid {@link DistillConfig}, derived from its Schema (`Arbitrary.make`): all branded fields within their rules,
 * including extreme values (tiny learning rates, huge step counts). For robustness tests of decoding and validation.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const distillConfigArbitrary: FastCheck.Arbitrary<DistillConfig> = Arbitrary.make(DistillConfig)

/**
 * Practical configs for small runs (docs/algorithm.md §9.2, §12.3): α in [0, 1.5], learning rates log-uniform in [1e-5, 1e-3],
 * batch 1–1024, steps 0–20000, σ_init in [0.5, 5], tmax in [100, 1000], β1 ∈ {0, 0.9}, EMA half-life 0–500 kimg,
 * rampup 0.05 or null, the rest at their defaults; built through `distillConfig`, so every draw is a decoded config.
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const practicalDistillConfigArbitrary: FastCheck.Arbitrary<DistillConfig> = FastCheck.record({
  alpha: uniformArbitrary(0, 1.5),
  tmax: FastCheck.integer({ min: 100, max: 1000 }),
  sigmaInit: uniformArbitrary(0.5, 5),
  generatorLr: logUniformArbitrary(1e-5, 1e-3),
  fakeLr: logUniformArbitrary(1e-5, 1e-3),
  batchSize: FastCheck.integer({ min: 1, max: 1024 }),
  steps: FastCheck.integer({ min: 0, max: 20_000 }),
  generatorBeta1: FastCheck.constantFrom(0, 0.9),
  generatorLossScale: logUniformArbitrary(1, 100),
  emaHalfLifeKimg: uniformArbitrary(0, 500),
  emaRampupRatio: FastCheck.constantFrom(0.05, null),
  seed: FastCheck.integer({ min: 0, max: 0xffff_ffff })
}).map((fields) => distillConfig(fields))
