/**
 * Branded numeric schemas for the SiD hyper-parameters, each built by one helper, {@link brandedNumber}.
 *
 * Maths: `docs/algorithm.md` §2.1 (σ_data, P_mean, P_std), §6 (σ_init), §8.1 (α, tmax, lsg), §7 (ls), §9.1 (Adam, EMA),
 * §9.2 (values used by the reference runs), §12/§12.3 (toy settings), §14 (Adam ε in TF.js).
 *
 * Every schema refines `Schema.Number`, then brands (construct with `X.make(n)`, which throws on a bad literal, or
 * decode at a boundary). Each carries one `message` annotation, used by the type check and by every filter, stating
 * the rule and why it holds, so a failure reads `field = value: rule` once the path and value are prepended
 * (see `ConfigError` in `ConfigError.ts`). Each rule is also exported as a string (`AlphaRule`, …).
 *
 * @module
 */
import { Schema } from "effect"

/**
 * The bounds of a {@link brandedNumber}: each end inclusive unless said otherwise; absent ends are unbounded.
 *
 * @since 0.2.0
 * @category constants
 */
export interface NumberRule {
  /** Whole numbers only. */
  readonly int?: boolean
  readonly min?: number
  /** `min` itself is excluded (`> min`). */
  readonly minExclusive?: boolean
  readonly max?: number
  /** `max` itself is excluded (`< max`). */
  readonly maxExclusive?: boolean
}

/**
 * A finite `Schema.Number` refined by `bounds`, branded `brand` (also its identifier), with `rule` as the one message
 * of the type check and of every filter, and `description` as its description annotation.
 *
 * @example
 * const Alpha = brandedNumber("Alpha", { min: 0 }, "must be a finite number ≥ 0", "SiD's α")
 *
 * @since 0.2.0
 * @category utils
 */
export const brandedNumber = <B extends string>(
  brand: B,
  bounds: NumberRule,
  rule: string,
  description: string
): Schema.brand<Schema.Schema<number>, B> => {
  const message = { message: () => rule }
  let schema: Schema.Schema<number> = Schema.Number.annotations(message).pipe(Schema.finite(message))
  if (bounds.int === true) schema = schema.pipe(Schema.int(message))
  if (bounds.min !== undefined) {
    schema = schema.pipe(
      bounds.minExclusive === true ? Schema.greaterThan(bounds.min, message) : Schema.greaterThanOrEqualTo(bounds.min, message)
    )
  }
  if (bounds.max !== undefined) {
    schema = schema.pipe(
      bounds.maxExclusive === true ? Schema.lessThan(bounds.max, message) : Schema.lessThanOrEqualTo(bounds.max, message)
    )
  }
  return schema.pipe(Schema.brand(brand)).annotations({ identifier: brand, description })
}

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
 * @category utils
 */
export const Alpha = brandedNumber(
  "Alpha",
  { min: 0 },
  AlphaRule,
  "SiD's α (docs/algorithm.md §8.1, `--alpha`): finite, ≥ 0. Default 1.2; docs/algorithm.md §12.3 finds 1.0 best on the 2-D ring."
)
/**
 * @see {@link Alpha}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Tmax = brandedNumber(
  "Tmax",
  { min: 0, minExclusive: true, max: 1000 },
  TmaxRule,
  "Upper end of the generator-loss time in thousandths (docs/algorithm.md §8.1, `--tmax`): 0 < tmax ≤ 1000."
)
/**
 * @see {@link Tmax}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Sigma = brandedNumber(
  "Sigma",
  { min: 0 },
  SigmaRule,
  "A noise level σ ≥ 0, finite (docs/algorithm.md §2.1, §2.2: the schedule ends at t_N = 0)."
)
/**
 * @see {@link Sigma}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const PositiveSigma = brandedNumber(
  "PositiveSigma",
  { min: 0, minExclusive: true },
  PositiveSigmaRule,
  "A strictly positive, finite standard deviation such as σ_init or σ_data (docs/algorithm.md §2.1, §6)."
)
/**
 * @see {@link PositiveSigma}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const LogNormalMean = brandedNumber(
  "LogNormalMean",
  {},
  LogNormalMeanRule,
  "Mean of ln σ of the log-normal training noise, any finite number (docs/algorithm.md §2.1 `P_mean`, §7)."
)
/**
 * @see {@link LogNormalMean}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const LogNormalStd = brandedNumber(
  "LogNormalStd",
  { min: 0, minExclusive: true },
  LogNormalStdRule,
  "Standard deviation of ln σ of the log-normal training noise, finite and > 0 (docs/algorithm.md §2.1 `P_std`, §7)."
)
/**
 * @see {@link LogNormalStd}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const LearningRate = brandedNumber(
  "LearningRate",
  { min: 0, minExclusive: true, max: 1 },
  LearningRateRule,
  "Adam learning rate, 0 < lr ≤ 1 (docs/algorithm.md §9.1–9.2 `--lr`/`--glr`, docs/algorithm.md §12)."
)
/**
 * @see {@link LearningRate}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const BatchSize = brandedNumber(
  "BatchSize",
  { int: true, min: 1, max: MAX_BATCH_SIZE },
  BatchSizeRule,
  "Samples per iteration, an integer in [1, 65536] (docs/algorithm.md §9.2 `--batch`, §12)."
)
/**
 * @see {@link BatchSize}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Steps = brandedNumber(
  "Steps",
  { int: true, min: 0, max: Number.MAX_SAFE_INTEGER },
  StepsRule,
  "A count of iterations, a non-negative safe integer (docs/algorithm.md §9.1)."
)
/**
 * @see {@link Steps}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Seed = brandedNumber(
  "Seed",
  { int: true, min: 0, max: MAX_SEED },
  SeedRule,
  "Random seed, an unsigned 32-bit integer (docs/algorithm.md §9.1)."
)
/**
 * @see {@link Seed}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Probability = brandedNumber(
  "Probability",
  { min: 0, max: 1 },
  ProbabilityRule,
  "A probability in [0, 1], e.g. dropout or augmentation rate (docs/algorithm.md §13.4, §9.2)."
)
/**
 * @see {@link Probability}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const DropoutRate = brandedNumber(
  "DropoutRate",
  { min: 0, max: 1, maxExclusive: true },
  DropoutRateRule,
  "Train-mode dropout probability (docs/algorithm.md §9.2 `--dropout`): finite, 0 ≤ p < 1."
)
/**
 * @see {@link DropoutRate}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const HalfLifeKimg = brandedNumber(
  "HalfLifeKimg",
  { min: 0 },
  HalfLifeKimgRule,
  "EMA half-life in thousands of images, finite and ≥ 0 (docs/algorithm.md §9.1 `ema_halflife_kimg`)."
)
/**
 * @see {@link HalfLifeKimg}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const RampupRatio = brandedNumber(
  "RampupRatio",
  { min: 0 },
  RampupRatioRule,
  "EMA rampup ratio, finite and ≥ 0: h = min(h, ratio·cur_nimg) (docs/algorithm.md §9.1)."
)
/**
 * @see {@link RampupRatio}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const LossScale = brandedNumber(
  "LossScale",
  { min: 0, minExclusive: true },
  LossScaleRule,
  "A loss multiplier, finite and > 0 (docs/algorithm.md §7 `--ls`, §8.1 `--lsg`)."
)
/**
 * @see {@link LossScale}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const AdamBeta = brandedNumber(
  "AdamBeta",
  { min: 0, max: 1, maxExclusive: true },
  AdamBetaRule,
  "An Adam decay rate β ∈ [0, 1) (docs/algorithm.md §9.1)."
)
/**
 * @see {@link AdamBeta}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Epsilon = brandedNumber(
  "Epsilon",
  { min: 0, minExclusive: true },
  EpsilonRule,
  "Adam's ε, finite and > 0 (docs/algorithm.md §9.1, §14)."
)
/**
 * @see {@link Epsilon}
 *
 * @since 0.1.0
 * @category models
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
 * @category utils
 */
export const Interval = brandedNumber(
  "Interval",
  { int: true, min: 1, max: Number.MAX_SAFE_INTEGER },
  IntervalRule,
  "A number of iterations between two events, an integer ≥ 1 (docs/algorithm.md §9.3)."
)
/**
 * @see {@link Interval}
 *
 * @since 0.1.0
 * @category models
 */
export type Interval = typeof Interval.Type

/**
 * Rule of {@link AdversarialScale} (docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category constants
 */
export const AdversarialScaleRule =
  "must be a finite number ≥ 0 (a SiDA loss multiplier: lsd = 1 for the discriminator, lsg_gan = 0.01 for the generator's adversarial term; 0 switches the term off; docs/algorithm.md §13)"

/**
 * A multiplier of a SiDA loss term, finite and ≥ 0 (docs/algorithm.md §13 `--lsd`, `--lsg_gan`).
 *
 * @since 0.1.0
 * @category utils
 */
export const AdversarialScale = brandedNumber(
  "AdversarialScale",
  { min: 0 },
  AdversarialScaleRule,
  "A multiplier of a SiDA loss term, finite and ≥ 0 (docs/algorithm.md §13 `--lsd`, `--lsg_gan`)."
)
/**
 * @see {@link AdversarialScale}
 *
 * @since 0.1.0
 * @category models
 */
export type AdversarialScale = typeof AdversarialScale.Type

/**
 * Rule of {@link DecayKimg} (docs/algorithm.md §9.4).
 *
 * @since 0.2.0
 * @category constants
 */
export const DecayKimgRule =
  "must be a finite number ≥ 0 of thousands of images (0: constant learning rates, as SiD; else both rates fall as 1/√(images / ref) once ref images are seen; docs/algorithm.md §9.4)"

/**
 * The reference of the learning-rate decay in thousands of images, finite and ≥ 0; 0 is no decay (docs/algorithm.md §9.4).
 *
 * @since 0.2.0
 * @category utils
 */
export const DecayKimg = brandedNumber(
  "DecayKimg",
  { min: 0 },
  DecayKimgRule,
  "The reference of the learning-rate decay in thousands of images, finite and ≥ 0; 0 is no decay (docs/algorithm.md §9.4)."
)
/**
 * @see {@link DecayKimg}
 *
 * @since 0.2.0
 * @category models
 */
export type DecayKimg = typeof DecayKimg.Type

/**
 * Rule of {@link WarmupKimg} (docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category constants
 */
export const WarmupKimgRule =
  "must be a finite number ≥ 0 of thousands of images (a SiDA warm-up: G frozen for the first 100 kimg, the adversarial term from 200 kimg; 0: none; docs/algorithm.md §13)"

/**
 * A warm-up length in thousands of images, finite and ≥ 0 (docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category utils
 */
export const WarmupKimg = brandedNumber(
  "WarmupKimg",
  { min: 0 },
  WarmupKimgRule,
  "A warm-up length in thousands of images, finite and ≥ 0 (docs/algorithm.md §13)."
)
/**
 * @see {@link WarmupKimg}
 *
 * @since 0.1.0
 * @category models
 */
export type WarmupKimg = typeof WarmupKimg.Type

/**
 * Rule of {@link Width}.
 *
 * @since 0.1.0
 * @category constants
 */
export const WidthRule = "must be an integer in [1, 1024] (a channel count, multiplier or block count of the UNet; docs/algorithm.md §2.3)"

/**
 * A positive integer size of the UNet (channels, multipliers, blocks, groups), at most 1024 (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category utils
 */
export const Width = brandedNumber("Width", { int: true, min: 1, max: 1024 }, WidthRule, "a positive integer size of the UNet, at most 1024")
/**
 * @see {@link Width}
 *
 * @since 0.1.0
 * @category models
 */
export type Width = typeof Width.Type

/**
 * Rule of {@link RampupKimg}.
 *
 * @since 0.1.0
 * @category constants
 */
export const RampupKimgRule =
  "must be a finite number ≥ 0 of thousands of images (learning-rate warm-up; EDM uses 10,000 kimg, 0 disables it; docs/algorithm.md §2.4)"

/**
 * Length of the linear learning-rate warm-up in thousands of images (EDM's `lr_rampup_kimg`, docs/algorithm.md §2.4).
 *
 * @since 0.1.0
 * @category utils
 */
export const RampupKimg = brandedNumber(
  "RampupKimg",
  { min: 0 },
  RampupKimgRule,
  "length of the linear learning-rate warm-up, in thousands of images"
)
/**
 * @see {@link RampupKimg}
 *
 * @since 0.1.0
 * @category models
 */
export type RampupKimg = typeof RampupKimg.Type

/**
 * Rule of {@link GeneratorSteps} (docs/few-step.md).
 *
 * @since 0.2.0
 * @category constants
 */
export const GeneratorStepsRule =
  "must be an integer in 1..4 (k, the generator's steps on the σ ladder σ_init·(k − s)/k with re-noising between them; 1: the one-step generator; docs/few-step.md)"

/**
 * k, the number of generator steps (docs/few-step.md; SiDA's `--num_steps_train`): an integer in 1 … 4.
 *
 * @since 0.2.0
 * @category utils
 */
export const GeneratorSteps = brandedNumber(
  "GeneratorSteps",
  { int: true, min: 1, max: 4 },
  GeneratorStepsRule,
  "k, the number of generator steps (docs/few-step.md): an integer in 1 … 4."
)
/**
 * @see {@link GeneratorSteps}
 *
 * @since 0.2.0
 * @category models
 */
export type GeneratorSteps = typeof GeneratorSteps.Type
