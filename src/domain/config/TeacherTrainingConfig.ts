/**
 * The teacher-training configuration: the small image UNet's size, the EDM loss and optimiser settings
 * (docs/algorithm.md §2.4), EMA (docs/algorithm.md §9.1 C) and the run's length and checkpoint interval (docs/algorithm.md §9.3), validated and branded, with
 * a pure decoder that lists every bad field in a {@link TeacherConfigError}.
 *
 * Every field is optional on input (a missing key takes its default, an explicit `undefined` is rejected, unknown keys
 * are rejected), and encoding writes every field, so encode/decode round-trips through JSON (checkpoint manifests and
 * `config.json` store the encoded form).
 *
 * @module
 */
import { Either, ParseResult, Schema } from "effect"
import { P_MEAN, P_STD, SIGMA_DATA } from "../edm/Edm.js"
import { ConfigIssue } from "./DistillConfig.js"
import { type UNetSpec, unetSpec } from "../nn/UNet.js"
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
  RampupRatio,
  RampupRatioRule,
  Seed,
  Steps
} from "./Units.js"

const withRule = (rule: string) => ({ message: () => rule })

const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value, exact: true })

/**
 * Rule of {@link Resolution}.
 *
 * @since 0.1.0
 * @category constants
 */
export const ResolutionRule = "must be 16, 28 or 32 (MNIST downsampled to 16×16, native 28×28, or padded to 32×32; issue 4 §1)"

/**
 * Image side of the MNIST training images: 16, 28 or 32.
 *
 * @since 0.1.0
 * @category schemas
 */
export const Resolution = Schema.Literal(16, 28, 32).annotations({
  identifier: "Resolution",
  message: () => ({ message: ResolutionRule, override: true })
})
/**
 * @see {@link Resolution}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Resolution = typeof Resolution.Type

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
 * @category schemas
 */
export const Width = Schema.Number.annotations(withRule(WidthRule)).pipe(
  Schema.int(withRule(WidthRule)),
  Schema.between(1, 1024, withRule(WidthRule)),
  Schema.brand("Width")
).annotations({ identifier: "Width" })
/**
 * @see {@link Width}
 *
 * @since 0.1.0
 * @category schemas
 */
export type Width = typeof Width.Type

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
 * @category schemas
 */
export const ChannelMult = Schema.Array(Width).pipe(
  Schema.minItems(1, withRule(ChannelMultRule)),
  Schema.maxItems(5, withRule(ChannelMultRule))
).annotations({ identifier: "ChannelMult", ...withRule(ChannelMultRule) })

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
 * @category schemas
 */
export const RampupKimg = Schema.Number.annotations(withRule(RampupKimgRule)).pipe(
  Schema.finite(withRule(RampupKimgRule)),
  Schema.greaterThanOrEqualTo(0, withRule(RampupKimgRule)),
  Schema.brand("RampupKimg")
).annotations({ identifier: "RampupKimg" })
/**
 * @see {@link RampupKimg}
 *
 * @since 0.1.0
 * @category schemas
 */
export type RampupKimg = typeof RampupKimg.Type

/**
 * Default values (docs/algorithm.md §2.1, §2.4; the UNet and run length sized for 2 CPU cores).
 *
 * @since 0.1.0
 * @category constants
 */
export const TEACHER_DEFAULTS = {
  /** Optimiser steps. */
  steps: 3000,
  /** Images per step. */
  batchSize: 32,
  /**
   * Adam learning rate (EDM: 1e-3, docs/algorithm.md §2.4; 2e-3 gave a lower loss at every point of a 1,500-step run of the default
   * 16×16 UNet than 1e-3, with no instability).
   */
  learningRate: 2e-3,
  /** Linear warm-up of the learning rate over this many kimg (EDM: 10,000; short here). */
  learningRateRampupKimg: 3.2,
  /** Adam β1, β2, ε (EDM teacher training: 0.9, 0.999, 1e-8; docs/algorithm.md §2.4). */
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
  /** EMA half-life in kimg (EDM: 500) with rampup ratio 0.05 (docs/algorithm.md §2.4, §9.1). */
  emaHalfLifeKimg: 10,
  emaRampupRatio: 0.05,
  /** σ_data, P_mean, P_std (docs/algorithm.md §2.1). */
  sigmaData: SIGMA_DATA,
  pMean: P_MEAN,
  pStd: P_STD,
  /** MNIST image side. */
  resolution: 16,
  /** Class-conditional UNet (labelDim 10) fed one-hot labels. */
  conditional: false,
  /** UNet size (docs/algorithm.md §2.3; `unetSpec` layout). */
  baseChannels: 32,
  channelMult: [1, 2, 2],
  blocksPerResolution: 1,
  groups: 8,
  /** Steps between checkpoints (docs/algorithm.md §9.3). */
  checkpointEvery: 500,
  seed: 0
} as const

/**
 * Teacher-training hyper-parameters (docs/algorithm.md §2.4, §9.1, §9.3), validated and branded. Construct with
 * {@link teacherTrainingConfig} or decode untrusted input with {@link decodeTeacherTrainingConfig}.
 *
 * @since 0.1.0
 * @category models
 */
export class TeacherTrainingConfig extends Schema.Class<TeacherTrainingConfig>("TeacherTrainingConfig")({
  /** Optimiser steps in total, counting resumed ones. */
  steps: withDefault(Steps, () => Steps.make(TEACHER_DEFAULTS.steps)),
  /** Images per step. */
  batchSize: withDefault(BatchSize, () => BatchSize.make(TEACHER_DEFAULTS.batchSize)),
  /** Adam learning rate after the warm-up (docs/algorithm.md §2.4). */
  learningRate: withDefault(LearningRate, () => LearningRate.make(TEACHER_DEFAULTS.learningRate)),
  /** Linear learning-rate warm-up, kimg (docs/algorithm.md §2.4 `lr_rampup_kimg`). */
  learningRateRampupKimg: withDefault(RampupKimg, () => RampupKimg.make(TEACHER_DEFAULTS.learningRateRampupKimg)),
  beta1: withDefault(AdamBeta, () => AdamBeta.make(TEACHER_DEFAULTS.beta1)),
  beta2: withDefault(AdamBeta, () => AdamBeta.make(TEACHER_DEFAULTS.beta2)),
  epsilon: withDefault(Epsilon, () => Epsilon.make(TEACHER_DEFAULTS.epsilon)),
  /** EMA half-life of the weights, kimg (docs/algorithm.md §9.1 C). */
  emaHalfLifeKimg: withDefault(HalfLifeKimg, () => HalfLifeKimg.make(TEACHER_DEFAULTS.emaHalfLifeKimg)),
  /** EMA rampup ratio, or null for none (docs/algorithm.md §9.1 C). */
  emaRampupRatio: withDefault(
    Schema.NullOr(RampupRatio).annotations({ message: () => RampupRatioRule }),
    () => RampupRatio.make(TEACHER_DEFAULTS.emaRampupRatio)
  ),
  sigmaData: withDefault(PositiveSigma, () => PositiveSigma.make(TEACHER_DEFAULTS.sigmaData)),
  /** ln σ ~ N(pMean, pStd²) (docs/algorithm.md §2.1, §2.4). */
  pMean: withDefault(LogNormalMean, () => LogNormalMean.make(TEACHER_DEFAULTS.pMean)),
  pStd: withDefault(LogNormalStd, () => LogNormalStd.make(TEACHER_DEFAULTS.pStd)),
  /** MNIST image side. */
  resolution: withDefault(Resolution, () => TEACHER_DEFAULTS.resolution),
  /** A class-conditional network (labelDim 10, one-hot labels; docs/algorithm.md §2.3). */
  conditional: withDefault(Schema.Boolean.annotations(withRule("must be true or false")), () => TEACHER_DEFAULTS.conditional),
  baseChannels: withDefault(Width, () => Width.make(TEACHER_DEFAULTS.baseChannels)),
  channelMult: withDefault(ChannelMult, () => TEACHER_DEFAULTS.channelMult.map((m) => Width.make(m))),
  blocksPerResolution: withDefault(Width, () => Width.make(TEACHER_DEFAULTS.blocksPerResolution)),
  /** GroupNorm groups; must divide every normalised channel count. */
  groups: withDefault(Width, () => Width.make(TEACHER_DEFAULTS.groups)),
  /** Steps between checkpoints (docs/algorithm.md §9.3). */
  checkpointEvery: withDefault(Interval, () => Interval.make(TEACHER_DEFAULTS.checkpointEvery)),
  seed: withDefault(Seed, () => Seed.make(TEACHER_DEFAULTS.seed))
}) {}

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
 * @since 0.1.0
 * @category errors
 */
export class TeacherConfigError extends Schema.TaggedError<TeacherConfigError>()("TeacherConfigError", {
  issues: Schema.Array(ConfigIssue)
}) {
  override get message(): string {
    const lines = this.issues.map((i) => `  ${i.field} = ${render(i.value)}: ${i.rule}`)
    return [
      `Invalid teacher-training config (${this.issues.length === 1 ? "1 setting" : `${this.issues.length} settings`}):`,
      ...lines,
      "Fix the values above (or leave a setting out to use its default) and run again."
    ].join("\n")
  }
}

const render = (value: unknown): string => {
  if (value === undefined) return "undefined"
  const json = JSON.stringify(value) ?? String(value)
  return json.length > 60 ? `${json.slice(0, 57)}...` : json
}

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown =>
  path.reduce<unknown>(
    (current, key) => (current !== null && typeof current === "object" ? (current as Record<PropertyKey, unknown>)[key] : undefined),
    input
  )

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
export const decodeTeacherTrainingConfig = (input: unknown): Either.Either<TeacherTrainingConfig, TeacherConfigError> =>
  Either.flatMap(
    Either.mapLeft(
      Schema.decodeUnknownEither(TeacherTrainingConfig, { errors: "all", onExcessProperty: "error" })(input),
      (error) => {
        const seen = new Set<string>()
        const issues: Array<ConfigIssue> = []
        for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
          const field = issue.path.length === 0 ? "(config)" : String(issue.path[0])
          if (seen.has(field)) continue
          seen.add(field)
          const rule = issue._tag === "Unexpected"
            ? `is not a teacher-training setting (known: ${TEACHER_CONFIG_KEYS.join(", ")})`
            : issue.path.length === 0
            ? "must be an object of settings, e.g. { \"steps\": 3000 }"
            : issue.message
          issues.push({ field, value: valueAt(input, issue.path.slice(0, 1)), rule })
        }
        return new TeacherConfigError({ issues })
      }
    ),
    (config) => {
      try {
        teacherUNetSpec(config)
        return Either.right(config)
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e)
        const field = /group/i.test(reason) ? "groups" : "channelMult"
        return Either.left(
          new TeacherConfigError({
            issues: [{ field, value: config[field], rule: `does not fit the UNet at resolution ${config.resolution}: ${reason}` }]
          })
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
 * A config from plain values (missing fields take their defaults); throws the {@link TeacherConfigError}.
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
