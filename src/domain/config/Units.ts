/**
 * Branded numeric schemas for the SiD hyper-parameters.
 *
 * Maths: `docs/algorithm.md` §2.1 (σ_data, P_mean, P_std), §6 (σ_init), §8.1 (α, tmax, lsg), §7 (ls), §9.1 (Adam, EMA),
 * §9.2 (values used by the reference runs), §12/§12.3 (toy settings), §14 (Adam ε in TF.js).
 *
 * Every schema refines `Schema.Number`, then brands (construct with `X.make(n)`, which throws on a bad literal, or
 * decode at a boundary). Each carries one `message` annotation, used by the type check and by every filter, stating
 * the rule and why it holds, so a failure reads `field = value: rule` once the path and value are prepended
 * (see `ConfigError` in `DistillConfig.ts`). Each rule is also exported as a string (`AlphaRule`, …).
 *
 * @module
 */
import { Schema } from "effect"

const withRule = (rule: string) => ({ message: () => rule })

const finiteNumber = (rule: string) =>
  Schema.Number.annotations(withRule(rule)).pipe(Schema.finite(withRule(rule)))

const integer = (rule: string) => finiteNumber(rule).pipe(Schema.int(withRule(rule)))

/**
 * Rule of {@link Alpha} (docs/algorithm.md §8.1–8.2).
 *
 * @since 0.1.0
 * @category constants
 */
export const AlphaRule =
  "must be a finite number ≥ 0 (SiD's α weights the −α·(y_r − y_f) term of the generator loss; the reference runs use 1.2, and 1.0 on AFHQv2; docs/algorithm.md §8.1–8.2)"

/**
 * SiD's α (docs/algorithm.md §8.1, `--alpha`): finite, ≥ 0. Default 1.2; docs/algorithm.md §12.3 finds 1.0 best on the 2-D ring.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Alpha = finiteNumber(AlphaRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(AlphaRule)),
  Schema.brand("Alpha")
).annotations({ identifier: "Alpha" })
/**
 * @see {@link Alpha}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Alpha = typeof Alpha.Type

/**
 * Rule of {@link Tmax} (docs/algorithm.md §8.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const TmaxRule =
  "must be in (0, 1000] (the generator loss draws t ~ U(0, tmax/1000) on the ρ-schedule; SiD uses 800, i.e. σ ≤ 24.4; docs/algorithm.md §8.1, §15, item 2)"

/**
 * Upper end of the generator-loss time in thousandths (docs/algorithm.md §8.1, `--tmax`): 0 < tmax ≤ 1000.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Tmax = finiteNumber(TmaxRule).pipe(
  Schema.greaterThan(0, withRule(TmaxRule)),
  Schema.lessThanOrEqualTo(1000, withRule(TmaxRule)),
  Schema.brand("Tmax")
).annotations({ identifier: "Tmax" })
/**
 * @see {@link Tmax}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Tmax = typeof Tmax.Type

/**
 * Rule of {@link Sigma} (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const SigmaRule = "must be a finite noise level σ ≥ 0 (docs/algorithm.md §2.1)"

/**
 * A noise level σ ≥ 0, finite (docs/algorithm.md §2.1, §2.2: the schedule ends at t_N = 0).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Sigma = finiteNumber(SigmaRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(SigmaRule)),
  Schema.brand("Sigma")
).annotations({ identifier: "Sigma" })
/**
 * @see {@link Sigma}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Sigma = typeof Sigma.Type

/**
 * Rule of {@link PositiveSigma} (docs/algorithm.md §2.1, §6).
 *
 * @since 0.1.0
 * @category constants
 */
export const PositiveSigmaRule =
  "must be a finite number > 0 (a standard deviation: σ_init = 2.5 scales the generator's input noise, σ_data = 0.5 the EDM preconditioning; docs/algorithm.md §2.1, §6)"

/**
 * A strictly positive, finite standard deviation such as σ_init or σ_data (docs/algorithm.md §2.1, §6).
 *
 * @since 0.1.0
 * @category schemas
 */
export const PositiveSigma = finiteNumber(PositiveSigmaRule).pipe(
  Schema.greaterThan(0, withRule(PositiveSigmaRule)),
  Schema.brand("PositiveSigma")
).annotations({ identifier: "PositiveSigma" })
/**
 * @see {@link PositiveSigma}
 *
 * @since 0.1.0
 * @category schemas
 */
export type PositiveSigma = typeof PositiveSigma.Type

/**
 * Rule of {@link LogNormalMean} (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const LogNormalMeanRule = "must be a finite number (the mean of ln σ for the fake-score loss, P_mean = −1.2; docs/algorithm.md §2.1, §7)"

/**
 * Mean of ln σ of the log-normal training noise, any finite number (docs/algorithm.md §2.1 `P_mean`, §7).
 *
 * @since 0.1.0
 * @category schemas
 */
export const LogNormalMean = finiteNumber(LogNormalMeanRule).pipe(Schema.brand("LogNormalMean")).annotations({
  identifier: "LogNormalMean"
})
/**
 * @see {@link LogNormalMean}
 *
 * @since 0.1.0
 * @category schemas
 */
export type LogNormalMean = typeof LogNormalMean.Type

/**
 * Rule of {@link LogNormalStd} (docs/algorithm.md §2.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const LogNormalStdRule =
  "must be a finite number > 0 (the standard deviation of ln σ for the fake-score loss, P_std = 1.2; docs/algorithm.md §2.1, §7)"

/**
 * Standard deviation of ln σ of the log-normal training noise, finite and > 0 (docs/algorithm.md §2.1 `P_std`, §7).
 *
 * @since 0.1.0
 * @category schemas
 */
export const LogNormalStd = finiteNumber(LogNormalStdRule).pipe(
  Schema.greaterThan(0, withRule(LogNormalStdRule)),
  Schema.brand("LogNormalStd")
).annotations({ identifier: "LogNormalStd" })
/**
 * @see {@link LogNormalStd}
 *
 * @since 0.1.0
 * @category schemas
 */
export type LogNormalStd = typeof LogNormalStd.Type

/**
 * Rule of {@link LearningRate} (docs/algorithm.md §9.2, §12).
 *
 * @since 0.1.0
 * @category constants
 */
export const LearningRateRule =
  "must be in (0, 1] (Adam step size: 1e-4..1e-3 for small MLPs, 3e-4 on the 2-D ring, 1e-5 for image UNets; docs/algorithm.md §9.2, §12, §12.3)"

/**
 * Adam learning rate, 0 < lr ≤ 1 (docs/algorithm.md §9.1–9.2 `--lr`/`--glr`, docs/algorithm.md §12).
 *
 * @since 0.1.0
 * @category schemas
 */
export const LearningRate = finiteNumber(LearningRateRule).pipe(
  Schema.greaterThan(0, withRule(LearningRateRule)),
  Schema.lessThanOrEqualTo(1, withRule(LearningRateRule)),
  Schema.brand("LearningRate")
).annotations({ identifier: "LearningRate" })
/**
 * @see {@link LearningRate}
 *
 * @since 0.1.0
 * @category schemas
 */
export type LearningRate = typeof LearningRate.Type

/**
 * Largest accepted batch size (a sanity bound; ImageNet runs use 8192, docs/algorithm.md §9.2).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_BATCH_SIZE = 65536

/**
 * Rule of {@link BatchSize} (docs/algorithm.md §9.2, §12).
 *
 * @since 0.1.0
 * @category constants
 */
export const BatchSizeRule =
  `must be an integer in [1, ${MAX_BATCH_SIZE}] (samples per iteration: 256–1024 for the 2-D toys, 256–8192 for images; docs/algorithm.md §9.2, §12)`

/**
 * Samples per iteration, an integer in [1, 65536] (docs/algorithm.md §9.2 `--batch`, §12).
 *
 * @since 0.1.0
 * @category schemas
 */
export const BatchSize = integer(BatchSizeRule).pipe(
  Schema.between(1, MAX_BATCH_SIZE, withRule(BatchSizeRule)),
  Schema.brand("BatchSize")
).annotations({ identifier: "BatchSize" })
/**
 * @see {@link BatchSize}
 *
 * @since 0.1.0
 * @category schemas
 */
export type BatchSize = typeof BatchSize.Type

/**
 * Rule of {@link Steps} (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const StepsRule = "must be an integer ≥ 0 (number of SiD iterations, each one fake step and one generator step; docs/algorithm.md §9.1)"

/**
 * A count of iterations, a non-negative safe integer (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Steps = integer(StepsRule).pipe(
  Schema.between(0, Number.MAX_SAFE_INTEGER, withRule(StepsRule)),
  Schema.brand("Steps")
).annotations({ identifier: "Steps" })
/**
 * @see {@link Steps}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Steps = typeof Steps.Type

/**
 * Largest seed: seeds are unsigned 32-bit integers (docs/algorithm.md §9.1 reduces seeds mod 2³¹ per rank).
 *
 * @since 0.1.0
 * @category constants
 */
export const MAX_SEED = 0xffff_ffff

/**
 * Rule of {@link Seed} (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const SeedRule = `must be an integer in [0, ${MAX_SEED}] (an unsigned 32-bit seed; docs/algorithm.md §9.1)`

/**
 * Random seed, an unsigned 32-bit integer (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Seed = integer(SeedRule).pipe(Schema.between(0, MAX_SEED, withRule(SeedRule)), Schema.brand("Seed"))
  .annotations({ identifier: "Seed" })
/**
 * @see {@link Seed}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Seed = typeof Seed.Type

/**
 * Rule of {@link Probability} (docs/algorithm.md §7, §9.2).
 *
 * @since 0.1.0
 * @category constants
 */
export const ProbabilityRule = "must be a probability in [0, 1] (e.g. dropout or augmentation rate; docs/algorithm.md §13.4, §9.2)"

/**
 * A probability in [0, 1], e.g. dropout or augmentation rate (docs/algorithm.md §13.4, §9.2).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Probability = finiteNumber(ProbabilityRule).pipe(
  Schema.between(0, 1, withRule(ProbabilityRule)),
  Schema.brand("Probability")
).annotations({ identifier: "Probability" })
/**
 * @see {@link Probability}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Probability = typeof Probability.Type

/**
 * Rule of {@link DropoutRate} (docs/algorithm.md §9.1–9.2).
 *
 * @since 0.1.0
 * @category constants
 */
export const DropoutRateRule =
  "must be in [0, 1) (the train-mode dropout probability of G in the generator step and ψ in the fake step; SiD uses 0.13 on CIFAR-10, 0.10 on ImageNet, 0.05 on FFHQ/AFHQv2; docs/algorithm.md §9.1, §9.2)"

/**
 * Train-mode dropout probability (docs/algorithm.md §9.2 `--dropout`): finite, 0 ≤ p < 1.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DropoutRate = finiteNumber(DropoutRateRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(DropoutRateRule)),
  Schema.lessThan(1, withRule(DropoutRateRule)),
  Schema.brand("DropoutRate")
).annotations({ identifier: "DropoutRate" })
/**
 * @see {@link DropoutRate}
 *
 * @since 0.1.0
 * @category schemas
 */
export type DropoutRate = typeof DropoutRate.Type

/**
 * Rule of {@link HalfLifeKimg} (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const HalfLifeKimgRule =
  "must be a finite number ≥ 0 of thousands of images (EMA half-life; SiD's --ema 0.5 Mimg is 500 kimg, 0 disables averaging; docs/algorithm.md §9.1, §9.2)"

/**
 * EMA half-life in thousands of images, finite and ≥ 0 (docs/algorithm.md §9.1 `ema_halflife_kimg`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const HalfLifeKimg = finiteNumber(HalfLifeKimgRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(HalfLifeKimgRule)),
  Schema.brand("HalfLifeKimg")
).annotations({ identifier: "HalfLifeKimg" })
/**
 * @see {@link HalfLifeKimg}
 *
 * @since 0.1.0
 * @category schemas
 */
export type HalfLifeKimg = typeof HalfLifeKimg.Type

/**
 * Rule of {@link RampupRatio} (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const RampupRatioRule =
  "must be a finite number ≥ 0, or null to disable the rampup (EMA half-life ≤ ratio × images seen; SiD uses 0.05; docs/algorithm.md §9.1)"

/**
 * EMA rampup ratio, finite and ≥ 0: h = min(h, ratio·cur_nimg) (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category schemas
 */
export const RampupRatio = finiteNumber(RampupRatioRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(RampupRatioRule)),
  Schema.brand("RampupRatio")
).annotations({ identifier: "RampupRatio" })
/**
 * @see {@link RampupRatio}
 *
 * @since 0.1.0
 * @category schemas
 */
export type RampupRatio = typeof RampupRatio.Type

/**
 * Rule of {@link LossScale} (docs/algorithm.md §7, §8.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const LossScaleRule =
  "must be a finite number > 0 (loss multiplier: lsg = 100 for the generator, ls = 1 for the fake score; docs/algorithm.md §7, §8.1)"

/**
 * A loss multiplier, finite and > 0 (docs/algorithm.md §7 `--ls`, §8.1 `--lsg`).
 *
 * @since 0.1.0
 * @category schemas
 */
export const LossScale = finiteNumber(LossScaleRule).pipe(
  Schema.greaterThan(0, withRule(LossScaleRule)),
  Schema.brand("LossScale")
).annotations({ identifier: "LossScale" })
/**
 * @see {@link LossScale}
 *
 * @since 0.1.0
 * @category schemas
 */
export type LossScale = typeof LossScale.Type

/**
 * Rule of {@link AdamBeta} (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category constants
 */
export const AdamBetaRule =
  "must be in [0, 1) (an Adam moment decay: SiD uses β1 = 0 (0.9 for G on FFHQ) and β2 = 0.999; docs/algorithm.md §9.1, §9.2)"

/**
 * An Adam decay rate β ∈ [0, 1) (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category schemas
 */
export const AdamBeta = finiteNumber(AdamBetaRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(AdamBetaRule)),
  Schema.lessThan(1, withRule(AdamBetaRule)),
  Schema.brand("AdamBeta")
).annotations({ identifier: "AdamBeta" })
/**
 * @see {@link AdamBeta}
 *
 * @since 0.1.0
 * @category schemas
 */
export type AdamBeta = typeof AdamBeta.Type

/**
 * Rule of {@link Epsilon} (docs/algorithm.md §9.1, §14).
 *
 * @since 0.1.0
 * @category constants
 */
export const EpsilonRule =
  "must be a finite number > 0 (Adam's ε: 1e-8 as in SiD fp32, 1e-6 to mimic fp16; pass it explicitly in TF.js; docs/algorithm.md §9.1, §14)"

/**
 * Adam's ε, finite and > 0 (docs/algorithm.md §9.1, §14).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Epsilon = finiteNumber(EpsilonRule).pipe(
  Schema.greaterThan(0, withRule(EpsilonRule)),
  Schema.brand("Epsilon")
).annotations({ identifier: "Epsilon" })
/**
 * @see {@link Epsilon}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Epsilon = typeof Epsilon.Type

/**
 * Rule of {@link Interval} (docs/algorithm.md §9.3).
 *
 * @since 0.1.0
 * @category constants
 */
export const IntervalRule = "must be an integer ≥ 1 (iterations between evaluations or checkpoints; docs/algorithm.md §9.3)"

/**
 * A number of iterations between two events, an integer ≥ 1 (docs/algorithm.md §9.3).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Interval = integer(IntervalRule).pipe(
  Schema.between(1, Number.MAX_SAFE_INTEGER, withRule(IntervalRule)),
  Schema.brand("Interval")
).annotations({ identifier: "Interval" })
/**
 * @see {@link Interval}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Interval = typeof Interval.Type

/**
 * Rule of {@link AdversarialScale} (docs/algorithm.md §13).
 *
 * @since 0.2.0
 * @category constants
 */
export const AdversarialScaleRule =
  "must be a finite number ≥ 0 (a SiDA loss multiplier: lsd = 1 for the discriminator, lsg_gan = 0.01 for the generator's adversarial term; 0 switches the term off; docs/algorithm.md §13)"

/**
 * A multiplier of a SiDA loss term, finite and ≥ 0 (docs/algorithm.md §13 `--lsd`, `--lsg_gan`).
 *
 * @since 0.2.0
 * @category schemas
 */
export const AdversarialScale = finiteNumber(AdversarialScaleRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(AdversarialScaleRule)),
  Schema.brand("AdversarialScale")
).annotations({ identifier: "AdversarialScale" })
/**
 * @see {@link AdversarialScale}
 *
 * @since 0.2.0
 * @category schemas
 */
export type AdversarialScale = typeof AdversarialScale.Type

/**
 * Rule of {@link WarmupKimg} (docs/algorithm.md §13).
 *
 * @since 0.2.0
 * @category constants
 */
export const WarmupKimgRule =
  "must be a finite number ≥ 0 of thousands of images (a SiDA warm-up: G frozen for the first 100 kimg, the adversarial term from 200 kimg; 0: none; docs/algorithm.md §13)"

/**
 * A warm-up length in thousands of images, finite and ≥ 0 (docs/algorithm.md §13).
 *
 * @since 0.2.0
 * @category schemas
 */
export const WarmupKimg = finiteNumber(WarmupKimgRule).pipe(
  Schema.greaterThanOrEqualTo(0, withRule(WarmupKimgRule)),
  Schema.brand("WarmupKimg")
).annotations({ identifier: "WarmupKimg" })
/**
 * @see {@link WarmupKimg}
 *
 * @since 0.2.0
 * @category schemas
 */
export type WarmupKimg = typeof WarmupKimg.Type
