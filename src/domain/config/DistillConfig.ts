/**
 * The SiD distillation configuration: every hyper-parameter of the training loop, validated and branded, with
 * docs/algorithm.md's defaults, plus a pure decoder that turns bad input into a readable {@link ConfigError}.
 *
 * Maths: `docs/algorithm.md` §9.1 (training loop, Adam, EMA), §9.2 (hyper-parameters of the reference runs and the
 * `sid_train.py` CLI defaults), §2.1/§6/§8.1 (EDM constants, σ_init, α, tmax), §12/§12.3 (the 2-D toy), §14 (Adam ε).
 *
 * Defaults are the toy (2-D ring) settings of docs/algorithm.md §12.3 where the toy and the image runs differ: learning rates 3e-4
 * (image runs: 1e-5, ImageNet 4e-6, AFHQv2 5e-6), batch 512 (image runs: 256 on CIFAR-10, 512 on FFHQ/AFHQv2, 8192
 * on ImageNet). Everything else is SiD's own default. Every field is optional on input
 * (`Schema.optionalWith(..., { default, exact: true })`): a missing key takes its default, an explicit `undefined`
 * is rejected, and encoding always writes every field, so encode/decode round-trips (JSON included).
 *
 * @module
 */
import { Either, Schema } from "effect"
import { ConfigError, decodeConfig } from "./ConfigError.js"
import { defaultsOf, fieldsOf, setting, type SettingTable } from "./Setting.js"
import { P_MEAN, P_STD, SIGMA_INIT, TMAX } from "../edm/Edm.js"
import {
  AdamBeta,
  AdversarialScale,
  Alpha,
  BatchSize,
  DecayKimg,
  GeneratorSteps,
  DropoutRate,
  DropoutRateRule,
  Epsilon,
  HalfLifeKimg,
  Interval,
  LearningRate,
  LogNormalMean,
  LogNormalStd,
  LossScale,
  PositiveSigma,
  Probability,
  RampupRatio,
  RampupRatioRule,
  Seed,
  Steps,
  Tmax,
  WarmupKimg
} from "./Units.js"

const LowMemoryRule = "must be true or false (host-memory optimiser state and EMA, two-stage generator backward)"

/**
 * Rule of {@link GeneratorLossName}.
 *
 * @since 0.1.0
 * @category constants
 */
export const GeneratorLossNameRule =
  "must be one of sid (L² − α·L¹, docs/algorithm.md §8.1), dmd (the Diff-Instruct/DMD direction, docs/algorithm.md §8.4), l1 or l2 (one term alone, docs/algorithm.md §8.2)"

/**
 * The generator losses a run can use (docs/algorithm.md §8.1, §8.2, §8.4).
 *
 * @since 0.1.0
 * @category models
 */
export const GeneratorLossName = Schema.Literal("sid", "dmd", "l1", "l2").annotations({
  message: () => ({ message: GeneratorLossNameRule, override: true })
})
/**
 * @see {@link GeneratorLossName}
 *
 * @since 0.1.0
 * @category models
 */
export type GeneratorLossName = typeof GeneratorLossName.Type

const NormalizerRule = "must be true or false (the per-sample normaliser w of the generator loss; docs/algorithm.md §8.1, §12)"

const AdversarialRule = "must be true or false (SiDA: the fake score doubles as a discriminator on real images; docs/algorithm.md §13)"

/**
 * Rule of {@link RealDataName}.
 *
 * @since 0.1.0
 * @category constants
 */
export const RealDataNameRule =
  "must be null (no real data: SiD is data-free) or mnist (the MNIST training split, for SiDA's discriminator; docs/algorithm.md §13)"

/**
 * The real-data sources a config can name (docs/algorithm.md §13); null: none.
 *
 * @since 0.1.0
 * @category models
 */
export const RealDataName = Schema.NullOr(Schema.Literal("mnist")).annotations({
  message: () => ({ message: RealDataNameRule, override: true })
})
/**
 * @see {@link RealDataName}
 *
 * @since 0.1.0
 * @category models
 */
export type RealDataName = typeof RealDataName.Type

const InitGeneratorRule =
  "must be null (G starts from the teacher, docs/algorithm.md §6) or the path of a run directory or an exported generator file (SiD²A, docs/algorithm.md §13)"

/**
 * Every setting of a distillation run, in one table: its schema (the rule), its default, its flag and a one-line
 * description. {@link DistillConfig}'s fields, {@link DISTILL_DEFAULTS}, {@link DISTILL_FLAGS} and the flags and help
 * of `sid distill` are all built from it.
 *
 * Defaults are the toy (2-D ring) settings of docs/algorithm.md §12.3 where the toy and the image runs differ
 * (learning rates 3e-4, batch 512; the image runs use 1e-5 and 256–8192, docs/algorithm.md §9.2); everything else is
 * SiD's own default (docs/algorithm.md §2.1 EDM constants, §6 σ_init, §7–§8.1 losses, §9.1–9.2 CLI defaults, §13 SiDA).
 *
 * @since 0.2.0
 * @category constants
 */
export const DISTILL_SETTINGS = {
  alpha: setting(Alpha, 1.2, "alpha", "α of the SiD loss L² − α·L¹ (docs/algorithm.md §8.1)"),
  tmax: setting(Tmax, TMAX, "tmax", "upper end of the generator-loss time t ~ U(0, tmax/1000), in thousandths"),
  sigmaInit: setting(PositiveSigma, SIGMA_INIT, "sigma-init", "σ_init, the noise level of the one-step generator's input"),
  pMean: setting(LogNormalMean, P_MEAN, "p-mean", "mean of ln σ in the fake-score loss (EDM's P_mean)"),
  pStd: setting(LogNormalStd, P_STD, "p-std", "standard deviation of ln σ in the fake-score loss (EDM's P_std)"),
  generatorLr: setting(LearningRate, 3e-4, "glr", "generator Adam learning rate (image runs: 1e-5)"),
  fakeLr: setting(LearningRate, 3e-4, "lr", "fake-score Adam learning rate (image runs: 1e-5)"),
  lrDecayKimg: setting(
    DecayKimg,
    0,
    "lr-decay",
    "learning-rate decay, in thousands of images: both rates fall as 1/√(images / this) once that many are seen " +
      "(EDM2's schedule, docs/algorithm.md §9.4); 0: constant rates, as SiD"
  ),
  batchSize: setting(BatchSize, 512, "batch", "generator samples per iteration", { placeholder: "<n>" }),
  steps: setting(Steps, 20_000, "steps", "SiD iterations in total, counting resumed ones", { placeholder: "<n>" }),
  generatorBeta1: setting(AdamBeta, 0, "g-beta1", "generator Adam β1 (the fake score's is 0)"),
  beta2: setting(AdamBeta, 0.999, "beta2", "Adam β2 of both optimisers"),
  epsilon: setting(Epsilon, 1e-8, "epsilon", "Adam ε of both optimisers"),
  generatorLossScale: setting(LossScale, 100, "lsg", "generator loss multiplier"),
  fakeLossScale: setting(LossScale, 1, "ls", "fake-score loss multiplier"),
  emaHalfLifeKimg: setting(HalfLifeKimg, 500, "ema-half-life", "EMA half-life of the generator, in thousands of samples"),
  emaRampupRatio: setting(
    Schema.NullOr(RampupRatio).annotations({ message: () => RampupRatioRule }),
    0.05,
    "ema-rampup",
    "EMA rampup ratio (half-life ≤ ratio × samples seen); null: no rampup"
  ),
  evalEvery: setting(Interval, 1_000, "eval-every", "evaluate the EMA generator every N iterations", { placeholder: "<n>" }),
  checkpointEvery: setting(Interval, 5_000, "checkpoint-every", "write a checkpoint every N iterations", { placeholder: "<n>" }),
  seed: setting(Seed, 0, "seed", "random seed of every stream of the run", { placeholder: "<n>" }),
  lowMemory: setting(
    Schema.Boolean.annotations({ message: () => LowMemoryRule }),
    false,
    "low-memory",
    "Adam's moments and the EMA generator in host memory, two-stage generator backward (same updates, lower peak " +
      "engine memory; a run may resume either way)"
  ),
  dropout: setting(
    Schema.NullOr(DropoutRate).annotations({ message: () => DropoutRateRule }),
    null,
    "dropout",
    "train-mode dropout of G (generator step) and ψ (fake step); null: the teacher network's own rate",
    { input: "number" }
  ),
  loss: setting(GeneratorLossName, "sid", "loss", "generator loss: sid, dmd (no network Jacobians), l1 or l2 (one term alone)", {
    placeholder: "<name>"
  }),
  normalizer: setting(
    Schema.Boolean.annotations({ message: () => NormalizerRule }),
    true,
    "normalizer",
    "the per-sample normaliser w = sg(mean|x_g − f_φ|) of the generator loss (--no-normalizer: w = 1)"
  ),
  augment: setting(
    Probability,
    0,
    "augment",
    "probability p of EDM's augmentation (flips, scaling, rotation, translation) of the fake step's images " +
      "(SiD: 0.12 CIFAR-10, 0.15 FFHQ/AFHQ; 0 off)"
  ),
  adversarial: setting(
    Schema.Boolean.annotations({ message: () => AdversarialRule }),
    false,
    "adversarial",
    "SiDA: the fake score doubles as a discriminator on real images (needs --data)"
  ),
  data: setting(RealDataName, null, "data", "real images for SiDA's discriminator: mnist, or null (none)", {
    input: "text",
    placeholder: "<name>"
  }),
  lsd: setting(AdversarialScale, 1, "lsd", "SiDA: discriminator loss multiplier"),
  lsgGan: setting(AdversarialScale, 0.01, "lsg-gan", "SiDA: multiplier of the generator's adversarial term"),
  generatorWarmupKimg: setting(WarmupKimg, 100, "g-warmup", "SiDA: thousands of images before G's first update"),
  adversarialWarmupKimg: setting(
    WarmupKimg,
    200,
    "gan-warmup",
    "SiDA: thousands of images before the generator's adversarial term starts"
  ),
  initGenerator: setting(
    Schema.NullOr(Schema.String.pipe(Schema.minLength(1))).annotations({ message: () => InitGeneratorRule }),
    null,
    "init-generator",
    "SiD²A: start G from a distilled generator (a run directory or an exported generator file); null: from the teacher",
    { input: "text", placeholder: "<path>" }
  ),
  generatorSteps: setting(
    GeneratorSteps,
    1,
    "generator-steps",
    "k, the generator's steps: G applied k times on the σ ladder σ_init·(k − s)/k with re-noising between steps, " +
      "trained on the final output (1: one-step; docs/few-step.md)",
    { placeholder: "<k>" }
  )
} as const satisfies SettingTable

/**
 * The default values, as plain values (read from {@link DISTILL_SETTINGS}). {@link DistillConfig.defaults} is the same
 * as a decoded instance.
 *
 * @since 0.1.0
 * @category constants
 */
export const DISTILL_DEFAULTS = defaultsOf(DISTILL_SETTINGS)

/**
 * Settings of the in-process network fit of a mixture teacher (`gmm:`, `gmm-dsm:`), which G and ψ start from.
 *
 * @since 0.1.0
 * @category models
 */
export interface TeacherFitSettings {
  /** Optimisation steps of the fit. */
  readonly steps: number
  /** Width of the MLP's hidden layers. */
  readonly hidden: number
  /** Number of hidden layers. */
  readonly depth: number
}

/**
 * A preset: defaults for one kind of teacher, layered under a `--config` file and the flags.
 *
 * @since 0.1.0
 * @category models
 */
export interface DistillPreset {
  /** Which teachers it is for and where its values come from. */
  readonly description: string
  /** Config settings that differ from {@link DISTILL_DEFAULTS} (encoded form: plain numbers and booleans). */
  readonly config: Partial<typeof DISTILL_DEFAULTS>
  /** The in-process network fit of mixture teachers (absent: the teacher is not fitted in process). */
  readonly teacherFit?: TeacherFitSettings
}

/**
 * Distillation defaults by kind of teacher, in one table (issue 18.1): what was measured to work, layered by
 * `sid distill` under a `--config` file and the flags (each value can be overridden by its flag). The library's own
 * defaults stay {@link DISTILL_DEFAULTS}.
 *
 * - `lowDimensional`: mixture teachers (`gmm:`, `gmm-dsm:`) and any teacher of vector data: α 1.2, no per-sample
 *   normaliser (over two coordinates mean|x_g − f_φ| is noise, docs/algorithm.md §12), tmax 600, batch 1024 (examples/gmm-2d.ts),
 *   lr 1e-3 for both networks (per iteration the fastest of 3e-4…4e-3 on the ring) decaying as 1/√images after
 *   2,048 kimg (at constant rates 20,000-iteration runs fell apart late on two of the three mixtures; docs/presets-2d.md),
 *   the fitted MLP 4 × 128 (smaller
 *   ones were slower per second of compute) and 3000 fit steps (a `gmm-dsm:` teacher is that MLP); measured on
 *   ring8, grid25 and aniso6 (docs/presets-2d.md).
 * - `images`: image teachers (EDM networks, sid-ts UNet teacher files): the paper's settings (docs/algorithm.md §9.2, CIFAR-10:
 *   lr 1e-5 for both networks, batch 256, α 1.2, tmax 800, EMA half-life 0.5 Mimg, the normaliser w).
 *
 * @since 0.1.0
 * @category constants
 */
export const DISTILL_PRESETS = {
  lowDimensional: {
    description: "mixture teachers and other low-dimensional (vector) data; measured on ring8, grid25 and aniso6 (docs/presets-2d.md)",
    config: {
      alpha: 1.2,
      tmax: 600,
      normalizer: false,
      batchSize: 1024,
      generatorLr: 1e-3,
      fakeLr: 1e-3,
      lrDecayKimg: 2048,
      emaHalfLifeKimg: 500
    },
    teacherFit: { steps: 3000, hidden: 128, depth: 4 }
  },
  images: {
    description: "image teachers (EDM networks, UNet teacher files): the paper's CIFAR-10 settings, docs/algorithm.md §9.2",
    config: {
      alpha: 1.2,
      tmax: 800,
      normalizer: true,
      batchSize: 256,
      generatorLr: 1e-5,
      fakeLr: 1e-5,
      emaHalfLifeKimg: 500
    }
  }
} as const satisfies Record<string, DistillPreset>

/**
 * The kinds of teacher that choose a preset: `lowDimensional` (vector data) or `images` (see {@link DISTILL_PRESETS}).
 *
 * @since 0.1.0
 * @category models
 */
export type TeacherKind = keyof typeof DISTILL_PRESETS

/**
 * The teacher-kind names of {@link DISTILL_PRESETS}, in table order.
 *
 * @since 0.1.0
 * @category constants
 */
export const TEACHER_KINDS: ReadonlyArray<TeacherKind> = Object.keys(DISTILL_PRESETS) as Array<TeacherKind>

/**
 * The preset of a kind of teacher (issue 18.1).
 *
 * @since 0.1.0
 * @category utils
 */
export const distillPreset = (kind: TeacherKind): DistillPreset => DISTILL_PRESETS[kind]

const presetValue = (value: unknown): string =>
  typeof value === "number" ? (value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential() : String(value)) : String(value)

/**
 * A preset as the flags that would set it — `--alpha 1.2 --tmax 600 --no-normalizer …`, plus the teacher fit — so a
 * reader sees both the values and how to override each.
 *
 * @since 0.1.0
 * @category utils
 */
export const describePreset = (kind: TeacherKind): string => {
  const preset = distillPreset(kind)
  const flags = (Object.entries(preset.config) as Array<[keyof typeof DISTILL_DEFAULTS, unknown]>).map(([key, value]) => {
    const flag = DISTILL_FLAGS[key].flag
    if (typeof value === "boolean") return value ? `--${flag}` : `--no-${flag}`
    return `--${flag} ${presetValue(value)}`
  })
  const fit = preset.teacherFit
  const fitFlags = fit === undefined
    ? []
    : [`--teacher-fit-steps ${fit.steps}`, `--teacher-hidden ${fit.hidden}`, `--teacher-depth ${fit.depth}`]
  return [...flags, ...fitFlags].join(" ")
}

/**
 * SiD distillation hyper-parameters (docs/algorithm.md §9.1–9.2, §14), validated and branded. Construct with
 * `DistillConfig.make({ alpha: Alpha.make(1) })` (missing fields take {@link DISTILL_DEFAULTS}) or decode untrusted
 * input with {@link decodeDistillConfig}.
 * @since 0.1.0
 * @category models
 */
export class DistillConfig extends Schema.Class<DistillConfig>("DistillConfig")(fieldsOf(DISTILL_SETTINGS)) {
  /** The configuration with every default (docs/algorithm.md §9.2, §12.3). */
  static get defaults(): DistillConfig {
    return DistillConfig.make({})
  }
}

/**
 * How a setting appears on the command line: its flag and a one-line description (defaults and rules come from the schema).
 *
 * @since 0.1.0
 * @category models
 */
export interface SettingFlag {
  /** The flag's name without dashes (kebab-case); a boolean setting whose default is true is switched off by `--no-<flag>`. */
  readonly flag: string
  readonly description: string
}

/**
 * The command-line face of every {@link DistillConfig} setting (read from {@link DISTILL_SETTINGS}).
 *
 * @since 0.1.0
 * @category constants
 */
export const DISTILL_FLAGS: { readonly [K in keyof typeof DISTILL_SETTINGS]: SettingFlag } = DISTILL_SETTINGS

/**
 * The settings that do not change a run's trajectory: how long it runs, how often it is evaluated and checkpointed,
 * and where the optimiser state lives (`lowMemory`: the same updates, docs/algorithm.md §9.1). A resumed run may change these and
 * nothing else.
 *
 * @since 0.1.0
 * @category constants
 */
export const RUN_ONLY_SETTINGS: ReadonlyArray<keyof typeof DistillConfig.fields> = [
  "steps",
  "evalEvery",
  "checkpointEvery",
  "lowMemory"
]

/**
 * The keys of {@link DistillConfig} (docs/algorithm.md §9.2), in declaration order.
 *
 * @since 0.1.0
 * @category constants
 */
export const DISTILL_CONFIG_KEYS: ReadonlyArray<string> = Object.keys(DistillConfig.fields)

export { ConfigError, ConfigIssue } from "./ConfigError.js"

/**
 * Decodes untrusted input (a parsed config file, CLI flags, an environment map) into a {@link DistillConfig}
 * (docs/algorithm.md §9.2). Pure: returns `Either.right(config)` or `Either.left(ConfigError)` listing every bad setting.
 * Unknown keys are rejected, so a misspelt setting is not silently replaced by its default.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeDistillConfig: (input: unknown) => Either.Either<DistillConfig, ConfigError> = decodeConfig(
  DistillConfig,
  "distillation config"
)

/**
 * {@link DistillConfig} to and from a JSON string (docs/algorithm.md §9.2), for config files and checkpoints.
 *
 * @since 0.1.0
 * @category models
 */
export const DistillConfigFromJson = Schema.parseJson(DistillConfig)

/**
 * Decodes a JSON text into a {@link DistillConfig} (docs/algorithm.md §9.2); malformed JSON is a {@link ConfigError} on the
 * field `(json)`. See {@link decodeDistillConfig}.
 * @since 0.1.0
 * @category utils
 */
export const decodeDistillConfigJson = (text: string): Either.Either<DistillConfig, ConfigError> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    return Either.left(
      new ConfigError({ config: "distillation config", issues: [{ field: "(json)", value: text, rule: `must be valid JSON (${reason})` }] })
    )
  }
  return decodeDistillConfig(parsed)
}

/**
 * Encodes a {@link DistillConfig} to a plain object with every field (docs/algorithm.md §9.2); inverse of the decoder.
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeDistillConfig = (config: DistillConfig): typeof DistillConfig.Encoded =>
  Schema.encodeSync(DistillConfig)(config)

/**
 * A config from plain values (missing fields take their defaults, docs/algorithm.md §9.2/§12.3), for code that builds one
 * directly: `distillConfig({ steps: 2000, alpha: 1 })`. Throws the {@link ConfigError} on a bad value.
 * @since 0.1.0
 * @category utils
 */
export const distillConfig = (input: Partial<typeof DistillConfig.Encoded> = {}): DistillConfig =>
  Either.getOrThrowWith(decodeDistillConfig(input), (e) => e)
