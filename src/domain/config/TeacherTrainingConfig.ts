/**
 * The teacher-training configuration (issue 4 §2): the small image UNet's size, the EDM loss and optimiser settings
 * (docs/algorithm.md §2.4), EMA (docs/algorithm.md §9.1 C) and the run's length and checkpoint interval (docs/algorithm.md §9.3), validated and branded, with
 * a pure decoder that lists every bad field in a {@link ConfigError}.
 *
 * Every field is optional on input (a missing key takes its default, an explicit `undefined` is rejected, unknown keys
 * are rejected), and encoding writes every field, so encode/decode round-trips through JSON (checkpoint manifests and
 * `config.json` store the encoded form).
 *
 * @module
 */
import { Either, Schema } from "effect"
import { P_MEAN, P_STD, SIGMA_DATA } from "../edm/Edm.js"
import { type UNetSpec, unetSpec } from "../nn/UNet.js"
import { ConfigError, decodeConfig } from "./ConfigError.js"
import { defaultsOf, fieldsOf, setting, type SettingTable } from "./Setting.js"
import {
  AdamBeta,
  BatchSize,
  Epsilon,
  HalfLifeKimg,
  Interval,
  LearningRate,
  LogNormalMean,
  LogNormalStd,
  PositiveSigma,
  RampupKimg,
  RampupRatio,
  RampupRatioRule,
  Seed,
  Steps,
  Width
} from "./Units.js"

export { RampupKimg, RampupKimgRule, Width, WidthRule } from "./Units.js"

const withRule = (rule: string) => ({ message: () => rule })

/**
 * Rule of {@link Resolution}.
 *
 * @since 0.1.0
 * @category constants
 */
export const ResolutionRule = "must be 16, 28 or 32 (MNIST downsampled to 16×16, native 28×28, or padded to 32×32; issue 4 §1)"

/**
 * Image side of the MNIST training images: 16, 28 or 32 (issue 4 §1).
 *
 * @since 0.1.0
 * @category models
 */
export const Resolution = Schema.Literal(16, 28, 32).annotations({
  identifier: "Resolution",
  message: () => ({ message: ResolutionRule, override: true })
})
/**
 * @see {@link Resolution}
 *
 * @since 0.1.0
 * @category models
 */
export type Resolution = typeof Resolution.Type

/**
 * Rule of {@link ChannelMult}.
 *
 * @since 0.1.0
 * @category constants
 */
export const ChannelMultRule = "must be a list of 1 to 5 integers in [1, 1024] (channel multiplier per resolution; docs/algorithm.md §2.3)"

/**
 * Channel multipliers per resolution, highest resolution first (1 to 5 levels; docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category models
 */
export const ChannelMult = Schema.Array(Width).pipe(
  Schema.minItems(1, withRule(ChannelMultRule)),
  Schema.maxItems(5, withRule(ChannelMultRule))
).annotations({ identifier: "ChannelMult", ...withRule(ChannelMultRule) })

/**
 * Every setting of a teacher-training run, in one table: schema (the rule), default, flag and a one-line description
 * (docs/algorithm.md §2.1, §2.4; the UNet and the run length sized for 2 CPU cores). {@link TeacherTrainingConfig}'s
 * fields, {@link TEACHER_DEFAULTS} and the flags and help of `sid teacher train` are built from it.
 * @since 0.2.0
 * @category constants
 */
export const TEACHER_SETTINGS = {
  steps: setting(Steps, 3000, "steps", "optimiser steps in total, counting resumed ones", { placeholder: "<n>" }),
  batchSize: setting(BatchSize, 32, "batch", "images per step", { placeholder: "<n>" }),
  learningRate: setting(
    LearningRate,
    2e-3,
    "lr",
    "Adam learning rate after the warm-up (EDM: 1e-3; 2e-3 trained the default UNet faster, with no instability)"
  ),
  learningRateRampupKimg: setting(
    RampupKimg,
    3.2,
    "lr-rampup",
    "linear learning-rate warm-up, in thousands of images (EDM: 10,000; short here)"
  ),
  beta1: setting(AdamBeta, 0.9, "beta1", "Adam β1 (EDM teacher training: 0.9)"),
  beta2: setting(AdamBeta, 0.999, "beta2", "Adam β2"),
  epsilon: setting(Epsilon, 1e-8, "epsilon", "Adam ε"),
  emaHalfLifeKimg: setting(HalfLifeKimg, 10, "ema-half-life", "EMA half-life of the weights, in thousands of images (EDM: 500)"),
  emaRampupRatio: setting(
    Schema.NullOr(RampupRatio).annotations({ message: () => RampupRatioRule }),
    0.05,
    "ema-rampup",
    "EMA rampup ratio (half-life ≤ ratio × images seen); null: no rampup"
  ),
  sigmaData: setting(PositiveSigma, SIGMA_DATA, "sigma-data", "σ_data of the EDM preconditioning"),
  pMean: setting(LogNormalMean, P_MEAN, "p-mean", "mean of ln σ of the training noise (EDM's P_mean)"),
  pStd: setting(LogNormalStd, P_STD, "p-std", "standard deviation of ln σ of the training noise (EDM's P_std)"),
  resolution: setting(Resolution, 16, "resolution", "MNIST image side: 16 (downsampled), 28 (native) or 32 (padded)"),
  conditional: setting(
    Schema.Boolean.annotations(withRule("must be true or false")),
    false,
    "conditional",
    "a class-conditional UNet (labelDim 10) fed one-hot digit labels"
  ),
  baseChannels: setting(Width, 32, "base-channels", "UNet base channels", { placeholder: "<n>" }),
  channelMult: setting(ChannelMult, [1, 2, 2], "channel-mult", "UNet channel multipliers per resolution, highest first"),
  blocksPerResolution: setting(Width, 1, "blocks", "residual blocks per resolution", { placeholder: "<n>" }),
  groups: setting(Width, 8, "groups", "GroupNorm groups; must divide every normalised channel count", { placeholder: "<n>" }),
  checkpointEvery: setting(Interval, 500, "checkpoint-every", "write a checkpoint and the teacher file every N steps", {
    placeholder: "<n>"
  }),
  seed: setting(Seed, 0, "seed", "random seed", { placeholder: "<n>" })
} as const satisfies SettingTable

/**
 * Default values, as plain values (read from {@link TEACHER_SETTINGS}).
 *
 * @since 0.1.0
 * @category constants
 */
export const TEACHER_DEFAULTS = defaultsOf(TEACHER_SETTINGS)

/**
 * Teacher-training hyper-parameters (issue 4 §2; docs/algorithm.md §2.4, §9.1, §9.3), validated and branded. Construct with
 * {@link teacherTrainingConfig} or decode untrusted input with {@link decodeTeacherTrainingConfig}.
 * @since 0.1.0
 * @category models
 */
export class TeacherTrainingConfig extends Schema.Class<TeacherTrainingConfig>("TeacherTrainingConfig")(
  fieldsOf(TEACHER_SETTINGS)
) {}

/**
 * The keys of {@link TeacherTrainingConfig}, in declaration order.
 *
 * @since 0.1.0
 * @category constants
 */
export const TEACHER_CONFIG_KEYS: ReadonlyArray<string> = Object.keys(TeacherTrainingConfig.fields)

/**
 * A teacher-training config that failed validation: one issue per field (field, value given, rule).
 *
 * @deprecated Every config fails with the one {@link ConfigError}; this alias goes in the next minor version.
 * @since 0.1.0
 * @category utils
 */
export const TeacherConfigError = ConfigError
/**
 * @deprecated See {@link ConfigError}.
 *
 * @since 0.1.0
 * @category models
 */
export type TeacherConfigError = ConfigError

const TEACHER_CONFIG = "teacher-training config"

/**
 * A {@link ConfigError} of a teacher-training config, from its issues (for checks made after decoding).
 *
 * @since 0.2.0
 * @category utils
 */
export const teacherConfigError = (issues: ConfigError["issues"]): ConfigError => new ConfigError({ config: TEACHER_CONFIG, issues })

const decodeFields = decodeConfig(TeacherTrainingConfig, TEACHER_CONFIG)

/**
 * The UNet of a config (docs/algorithm.md §2.3): 1 channel at `resolution`², labelDim 10 when conditional. Throws when inconsistent.
 *
 * @since 0.1.0
 * @category utils
 */
export const teacherUNetSpec = (config: TeacherTrainingConfig): UNetSpec =>
  unetSpec([config.resolution, config.resolution, 1], {
    baseChannels: config.baseChannels,
    channelMult: [...config.channelMult],
    blocksPerResolution: config.blocksPerResolution,
    groups: config.groups,
    labelDim: config.conditional ? 10 : 0
  })

/**
 * Decodes untrusted input (a config file, CLI flags, a checkpoint manifest's config) into a
 * {@link TeacherTrainingConfig}; pure. Every bad field is listed, unknown keys are rejected, and a UNet that does not
 * fit the resolution (e.g. 28 is not divisible by 2³ with four levels) or the group count is an issue on `channelMult`
 * / `groups`.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeTeacherTrainingConfig = (input: unknown): Either.Either<TeacherTrainingConfig, ConfigError> =>
  Either.flatMap(
    decodeFields(input),
    (config) => {
      try {
        teacherUNetSpec(config)
        return Either.right(config)
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e)
        const field = /group/i.test(reason) ? "groups" : "channelMult"
        return Either.left(
          teacherConfigError([{ field, value: config[field], rule: `does not fit the UNet at resolution ${config.resolution}: ${reason}` }])
        )
      }
    }
  )

/**
 * Encodes a config to a plain object with every field (inverse of the decoder).
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeTeacherTrainingConfig = (config: TeacherTrainingConfig): typeof TeacherTrainingConfig.Encoded =>
  Schema.encodeSync(TeacherTrainingConfig)(config)

/**
 * A config from plain values (missing fields take their defaults); throws the {@link ConfigError}.
 *
 * @since 0.1.0
 * @category utils
 */
export const teacherTrainingConfig = (input: Partial<typeof TeacherTrainingConfig.Encoded> = {}): TeacherTrainingConfig =>
  Either.getOrThrowWith(decodeTeacherTrainingConfig(input), (e) => e)

/**
 * Learning rate at a step taken after `imagesSeen` images: lr·min(1, imagesSeen / (rampup·1000)) (EDM's linear
 * warm-up, docs/algorithm.md §2.4), never below lr·batch/(rampup·1000) so that the first step moves.
 *
 * @since 0.1.0
 * @category utils
 */
export const learningRateAt = (config: TeacherTrainingConfig, imagesSeen: number): number =>
  config.learningRateRampupKimg === 0
    ? config.learningRate
    : config.learningRate *
      Math.min(1, Math.max(imagesSeen + config.batchSize, config.batchSize) / (config.learningRateRampupKimg * 1000))
