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
import { Either, ParseResult, Schema } from "effect"
import { P_MEAN, P_STD, SIGMA_INIT, TMAX } from "../edm/Edm.js"
import {
  AdamBeta,
  AdversarialScale,
  Alpha,
  BatchSize,
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

const withDefault = <S extends Schema.Schema.Any>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { default: value, exact: true })

/**
 * The default values (docs/algorithm.md §9.2 CLI defaults, §2.1 EDM constants, §12.3 toy settings), as plain numbers.
 * {@link DistillConfig.defaults} is the same as a decoded instance.
 *
 * @since 0.1.0
 * @category constants
 */
export const DISTILL_DEFAULTS = {
  /** docs/algorithm.md §8.1, §9.2: `--alpha 1.2` (1.0 on AFHQv2; docs/algorithm.md §12.3: 1.0 was best on the ring). */
  alpha: 1.2,
  /** docs/algorithm.md §8.1: `--tmax 800`. */
  tmax: TMAX,
  /** docs/algorithm.md §6: `--init_sigma 2.5`. */
  sigmaInit: SIGMA_INIT,
  /** docs/algorithm.md §2.1: P_mean = −1.2. */
  pMean: P_MEAN,
  /** docs/algorithm.md §2.1: P_std = 1.2. */
  pStd: P_STD,
  /** docs/algorithm.md §12.3: 3e-4 on the ring (docs/algorithm.md §12: 1e-4..1e-3 for small MLPs; image runs 1e-5, docs/algorithm.md §9.2). */
  generatorLr: 3e-4,
  /** docs/algorithm.md §12.3: 3e-4 on the ring (image runs 1e-5, docs/algorithm.md §9.2). */
  fakeLr: 3e-4,
  /** docs/algorithm.md §12.3: 512 (image runs 256–8192, docs/algorithm.md §9.2; `sid_train.py` default 512). */
  batchSize: 512,
  /** docs/algorithm.md §12.3: the ring was evaluated between 10k and 20k iterations. */
  steps: 20_000,
  /** docs/algorithm.md §9.1: `--g_beta1 0` (0.9 on FFHQ). The fake-score optimiser always uses β1 = 0. */
  generatorBeta1: 0,
  /** docs/algorithm.md §9.1: β2 = 0.999 for both optimisers. */
  beta2: 0.999,
  /** docs/algorithm.md §9.1, §14: ε = 1e-8 (fp32), passed explicitly to TF.js Adam. */
  epsilon: 1e-8,
  /** docs/algorithm.md §8.1: `--lsg 100`. */
  generatorLossScale: 100,
  /** docs/algorithm.md §7: `--ls 1`. */
  fakeLossScale: 1,
  /** docs/algorithm.md §9.1–9.2: `--ema 0.5` Mimg, i.e. `ema_halflife_kimg` = 500. */
  emaHalfLifeKimg: 500,
  /** docs/algorithm.md §9.1: rampup ratio 0.05 (null disables the rampup). */
  emaRampupRatio: 0.05,
  /** Iterations between metric evaluations (docs/algorithm.md §9.3 evaluates G_ema periodically; toy choice). */
  evalEvery: 1_000,
  /** Iterations between training-state checkpoints (docs/algorithm.md §9.3; toy choice). */
  checkpointEvery: 5_000,
  /** docs/algorithm.md §9.1: the seed. */
  seed: 0,
  /**
   * Keep Adam's moments and θ_ema in host memory and run the generator's backward pass in two stages (same update,
   * docs/algorithm.md §8.1/§9.1; lower peak engine memory, for networks such as EDM's 56M-parameter DDPM++ on the wasm heap).
   */
  lowMemory: false,
  /**
   * docs/algorithm.md §9.1–9.2: train-mode dropout of G (generator step) and ψ (fake step); null = the network's own rate (0 for the
   * small UNet and the MLP, EDM's `dropout` for an EDM teacher, e.g. 0.13 for CIFAR-10 DDPM++).
   */
  dropout: null,
  /** docs/algorithm.md §8.1: the SiD loss (docs/algorithm.md §8.2 the L¹/L² terms alone, docs/algorithm.md §8.4 the DMD direction). */
  loss: "sid",
  /** docs/algorithm.md §8.1: the per-sample normaliser w = sg(mean|x_g − f_φ|) (false: w = 1, the ablation of docs/algorithm.md §12). */
  normalizer: true,
  /** docs/algorithm.md §13.4: probability p of EDM's augmentation pipe in the fake step (SiD's image runs 0.12–0.15; 0: off). */
  augment: 0,
  /** docs/algorithm.md §13: SiDA, the fake score doubling as a discriminator on real images (false: plain SiD, data-free). */
  adversarial: false,
  /** docs/algorithm.md §13: the real images SiDA's discriminator sees (null: none; "mnist": the MNIST training split). */
  data: null,
  /** docs/algorithm.md §13: `--lsd`, the discriminator loss multiplier. */
  lsd: 1,
  /** docs/algorithm.md §13: `--lsg_gan`, the multiplier of the generator's adversarial term. */
  lsgGan: 0.01,
  /** docs/algorithm.md §13: G takes no optimiser step for its first 100 kimg (the fake score warms up). */
  generatorWarmupKimg: 100,
  /** docs/algorithm.md §13: the generator's adversarial term starts after 200 kimg. */
  adversarialWarmupKimg: 200,
  /**
   * docs/algorithm.md §13 (SiD²A): start G and G_ema from a distilled generator (a run directory's newest checkpoint or an
   * exported generator file) instead of the teacher's weights; null: from the teacher (docs/algorithm.md §6).
   */
  initGenerator: null
} as const

/**
 * Settings of the in-process network fit of a mixture teacher (`gmm:`, `gmm-dsm:`), which G and ψ start from.
 *
 * @since 0.2.0
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
 * @since 0.2.0
 * @category models
 */
export interface DistillPreset {
  /** Which teachers it is for and where its values come from. */
  readonly description: string
  /** Config settings that differ from {@link DISTILL_DEFAULTS} (encoded form: plain numbers and booleans). */
  readonly config: { readonly [K in keyof typeof DISTILL_DEFAULTS]?: (typeof DISTILL_DEFAULTS)[K] extends boolean ? boolean : number | null }
  /** The in-process network fit of mixture teachers (absent: the teacher is not fitted in process). */
  readonly teacherFit?: TeacherFitSettings
}

/**
 * Distillation defaults by kind of teacher, in one table: what was measured to work, layered by
 * `sid distill` under a `--config` file and the flags (each value can be overridden by its flag). The library's own
 * defaults stay {@link DISTILL_DEFAULTS}.
 *
 * - `lowDimensional`: mixture teachers (`gmm:`, `gmm-dsm:`) and any teacher of vector data: α 1.2, no per-sample
 *   normaliser (over two coordinates mean|x_g − f_φ| is noise, docs/algorithm.md §12), tmax 600, batch 1024 (examples/gmm-2d.ts),
 *   lr 1e-3 for both networks (per iteration the fastest of 3e-4…4e-3 on the ring), the fitted MLP 4 × 128 (smaller
 *   ones were slower per second of compute) and 3000 fit steps (a `gmm-dsm:` teacher is that MLP); measured on
 *   ring8, grid25 and aniso6 (docs/presets-2d.md).
 * - `images`: image teachers (EDM networks, sid-ts UNet teacher files): the paper's settings (docs/algorithm.md §9.2, CIFAR-10:
 *   lr 1e-5 for both networks, batch 256, α 1.2, tmax 800, EMA half-life 0.5 Mimg, the normaliser w).
 *
 * @since 0.2.0
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
 * @since 0.2.0
 * @category models
 */
export type TeacherKind = keyof typeof DISTILL_PRESETS

/**
 * The teacher-kind names of {@link DISTILL_PRESETS}, in table order.
 *
 * @since 0.2.0
 * @category constants
 */
export const TEACHER_KINDS: ReadonlyArray<TeacherKind> = Object.keys(DISTILL_PRESETS) as Array<TeacherKind>

/**
 * The preset of a kind of teacher.
 *
 * @since 0.2.0
 * @category utils
 */
export const distillPreset = (kind: TeacherKind): DistillPreset => DISTILL_PRESETS[kind]

const presetValue = (value: unknown): string =>
  typeof value === "number" ? (value !== 0 && Math.abs(value) < 1e-3 ? value.toExponential() : String(value)) : String(value)

/**
 * A preset as the flags that would set it — `--alpha 1.2 --tmax 600 --no-normalizer …`, plus the teacher fit — so a
 * reader sees both the values and how to override each.
 *
 * @since 0.2.0
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
 * @category schemas
 */
export const GeneratorLossName = Schema.Literal("sid", "dmd", "l1", "l2").annotations({
  message: () => ({ message: GeneratorLossNameRule, override: true })
})
/**
 * @see {@link GeneratorLossName}
 *
 * @since 0.1.0
 * @category schemas
 */
export type GeneratorLossName = typeof GeneratorLossName.Type

const NormalizerRule = "must be true or false (the per-sample normaliser w of the generator loss; docs/algorithm.md §8.1, §12)"

const AdversarialRule = "must be true or false (SiDA: the fake score doubles as a discriminator on real images; docs/algorithm.md §13)"

/**
 * Rule of {@link RealDataName}.
 *
 * @since 0.2.0
 * @category constants
 */
export const RealDataNameRule =
  "must be null (no real data: SiD is data-free) or mnist (the MNIST training split, for SiDA's discriminator; docs/algorithm.md §13)"

/**
 * The real-data sources a config can name (docs/algorithm.md §13); null: none.
 *
 * @since 0.2.0
 * @category schemas
 */
export const RealDataName = Schema.NullOr(Schema.Literal("mnist")).annotations({
  message: () => ({ message: RealDataNameRule, override: true })
})
/**
 * @see {@link RealDataName}
 *
 * @since 0.2.0
 * @category schemas
 */
export type RealDataName = typeof RealDataName.Type

const InitGeneratorRule =
  "must be null (G starts from the teacher, docs/algorithm.md §6) or the path of a run directory or an exported generator file (SiD²A, docs/algorithm.md §13)"

/**
 * SiD distillation hyper-parameters (docs/algorithm.md §9.1–9.2, §14), validated and branded. Construct with
 * `DistillConfig.make({ alpha: Alpha.make(1) })` (missing fields take {@link DISTILL_DEFAULTS}) or decode untrusted
 * input with {@link decodeDistillConfig}.
 *
 * @since 0.1.0
 * @category models
 */
export class DistillConfig extends Schema.Class<DistillConfig>("DistillConfig")({
  /** SiD's α (docs/algorithm.md §8.1). */
  alpha: withDefault(Alpha, () => Alpha.make(DISTILL_DEFAULTS.alpha)),
  /** Generator-loss time bound in thousandths, t ~ U(0, tmax/1000) (docs/algorithm.md §8.1). */
  tmax: withDefault(Tmax, () => Tmax.make(DISTILL_DEFAULTS.tmax)),
  /** The generator's fixed input noise level σ_init (docs/algorithm.md §6). */
  sigmaInit: withDefault(PositiveSigma, () => PositiveSigma.make(DISTILL_DEFAULTS.sigmaInit)),
  /** Mean of ln σ in the fake-score loss (docs/algorithm.md §2.1, §7). */
  pMean: withDefault(LogNormalMean, () => LogNormalMean.make(DISTILL_DEFAULTS.pMean)),
  /** Standard deviation of ln σ in the fake-score loss (docs/algorithm.md §2.1, §7). */
  pStd: withDefault(LogNormalStd, () => LogNormalStd.make(DISTILL_DEFAULTS.pStd)),
  /** Generator Adam learning rate (docs/algorithm.md §9.1 `--glr`; toy 3e-4, images 1e-5). */
  generatorLr: withDefault(LearningRate, () => LearningRate.make(DISTILL_DEFAULTS.generatorLr)),
  /** Fake-score Adam learning rate (docs/algorithm.md §9.1 `--lr`; toy 3e-4, images 1e-5). */
  fakeLr: withDefault(LearningRate, () => LearningRate.make(DISTILL_DEFAULTS.fakeLr)),
  /** Samples per iteration (docs/algorithm.md §9.1–9.2). */
  batchSize: withDefault(BatchSize, () => BatchSize.make(DISTILL_DEFAULTS.batchSize)),
  /** Number of iterations, each one fake step then one generator step (docs/algorithm.md §9.1). */
  steps: withDefault(Steps, () => Steps.make(DISTILL_DEFAULTS.steps)),
  /** Generator Adam β1 (docs/algorithm.md §9.1 `--g_beta1`); the fake-score optimiser's β1 is fixed at 0. */
  generatorBeta1: withDefault(AdamBeta, () => AdamBeta.make(DISTILL_DEFAULTS.generatorBeta1)),
  /** Adam β2 of both optimisers (docs/algorithm.md §9.1). */
  beta2: withDefault(AdamBeta, () => AdamBeta.make(DISTILL_DEFAULTS.beta2)),
  /** Adam ε of both optimisers (docs/algorithm.md §9.1, §14). */
  epsilon: withDefault(Epsilon, () => Epsilon.make(DISTILL_DEFAULTS.epsilon)),
  /** Generator loss multiplier lsg (docs/algorithm.md §8.1). */
  generatorLossScale: withDefault(LossScale, () => LossScale.make(DISTILL_DEFAULTS.generatorLossScale)),
  /** Fake-score loss multiplier ls (docs/algorithm.md §7). */
  fakeLossScale: withDefault(LossScale, () => LossScale.make(DISTILL_DEFAULTS.fakeLossScale)),
  /** EMA half-life of the generator weights in kimg (docs/algorithm.md §9.1). */
  emaHalfLifeKimg: withDefault(HalfLifeKimg, () => HalfLifeKimg.make(DISTILL_DEFAULTS.emaHalfLifeKimg)),
  /** EMA rampup ratio, or null for no rampup (docs/algorithm.md §9.1). */
  emaRampupRatio: withDefault(
    Schema.NullOr(RampupRatio).annotations({ message: () => RampupRatioRule }),
    () => RampupRatio.make(DISTILL_DEFAULTS.emaRampupRatio)
  ),
  /** Iterations between metric evaluations of G_ema (docs/algorithm.md §9.3). */
  evalEvery: withDefault(Interval, () => Interval.make(DISTILL_DEFAULTS.evalEvery)),
  /** Iterations between training-state checkpoints (docs/algorithm.md §9.3). */
  checkpointEvery: withDefault(Interval, () => Interval.make(DISTILL_DEFAULTS.checkpointEvery)),
  /** Random seed (docs/algorithm.md §9.1). */
  seed: withDefault(Seed, () => Seed.make(DISTILL_DEFAULTS.seed)),
  /**
   * Low-memory mode (not a hyper-parameter: the updates are those of docs/algorithm.md §7–§9.1): Adam's moments and θ_ema in host
   * memory, and the generator's backward pass in two stages (∂L/∂x_g first, then G's vector-Jacobian product).
   */
  lowMemory: withDefault(
    Schema.Boolean.annotations({ message: () => LowMemoryRule }),
    () => DISTILL_DEFAULTS.lowMemory
  ),
  /**
   * Train-mode dropout probability of G in the generator step and ψ in the fake step (docs/algorithm.md §9.1–9.2 `--dropout`);
   * null (the default): the architecture's own rate. The teacher, G making the fake step's samples and G_ema never
   * use dropout.
   */
  dropout: withDefault(
    Schema.NullOr(DropoutRate).annotations({ message: () => DropoutRateRule }),
    () => DISTILL_DEFAULTS.dropout
  ),
  /** The generator loss (docs/algorithm.md §8.1; §8.2 one term alone; §8.4 the DMD direction). */
  loss: withDefault(GeneratorLossName, () => DISTILL_DEFAULTS.loss),
  /** The per-sample normaliser w of the generator loss (docs/algorithm.md §8.1); false gives w = 1 (docs/algorithm.md §12). */
  normalizer: withDefault(
    Schema.Boolean.annotations({ message: () => NormalizerRule }),
    () => DISTILL_DEFAULTS.normalizer
  ),
  /** Probability p of EDM's augmentation pipe in the fake step (docs/algorithm.md §13.4; docs/sida.md §2); 0: off. */
  augment: withDefault(Probability, () => Probability.make(DISTILL_DEFAULTS.augment)),
  /** SiDA (docs/algorithm.md §13; docs/sida.md): the fake score doubles as a discriminator on real images from `data`. */
  adversarial: withDefault(
    Schema.Boolean.annotations({ message: () => AdversarialRule }),
    () => DISTILL_DEFAULTS.adversarial
  ),
  /** The real images of SiDA's discriminator (docs/algorithm.md §13); null: none (SiD needs none). */
  data: withDefault(RealDataName, () => DISTILL_DEFAULTS.data),
  /** Discriminator loss multiplier lsd (docs/algorithm.md §13). */
  lsd: withDefault(AdversarialScale, () => AdversarialScale.make(DISTILL_DEFAULTS.lsd)),
  /** Multiplier lsg_gan of the generator's adversarial term (docs/algorithm.md §13). */
  lsgGan: withDefault(AdversarialScale, () => AdversarialScale.make(DISTILL_DEFAULTS.lsgGan)),
  /** SiDA: G takes no optimiser step while the images seen are at most this many thousand (docs/algorithm.md §13). */
  generatorWarmupKimg: withDefault(WarmupKimg, () => WarmupKimg.make(DISTILL_DEFAULTS.generatorWarmupKimg)),
  /** SiDA: the generator's adversarial term is off while the images seen are at most this many thousand (docs/algorithm.md §13). */
  adversarialWarmupKimg: withDefault(WarmupKimg, () => WarmupKimg.make(DISTILL_DEFAULTS.adversarialWarmupKimg)),
  /**
   * SiD²A (docs/algorithm.md §13; docs/sida.md §1): G and G_ema start from this distilled generator (a run directory's newest
   * checkpoint, EMA weights, or an exported generator file); null: from the teacher (docs/algorithm.md §6). ψ always starts from
   * the teacher.
   */
  initGenerator: withDefault(
    Schema.NullOr(Schema.String.pipe(Schema.minLength(1))).annotations({ message: () => InitGeneratorRule }),
    () => DISTILL_DEFAULTS.initGenerator
  )
}) {
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
 * The command-line face of every {@link DistillConfig} setting, in one table beside the defaults: `sid distill`
 * builds its flags and help from it, and errors name the flag of a bad setting.
 *
 * @since 0.1.0
 * @category constants
 */
export const DISTILL_FLAGS: { readonly [K in keyof typeof DISTILL_DEFAULTS]: SettingFlag } = {
  alpha: { flag: "alpha", description: "α of the SiD loss L² − α·L¹ (docs/algorithm.md §8.1)" },
  tmax: { flag: "tmax", description: "upper end of the generator-loss time t ~ U(0, tmax/1000), in thousandths" },
  sigmaInit: { flag: "sigma-init", description: "σ_init, the noise level of the one-step generator's input (docs/algorithm.md §6)" },
  pMean: { flag: "p-mean", description: "mean of ln σ in the fake-score loss (EDM's P_mean)" },
  pStd: { flag: "p-std", description: "standard deviation of ln σ in the fake-score loss (EDM's P_std)" },
  generatorLr: { flag: "glr", description: "generator Adam learning rate" },
  fakeLr: { flag: "lr", description: "fake-score Adam learning rate" },
  batchSize: { flag: "batch", description: "generator samples per iteration" },
  steps: { flag: "steps", description: "SiD iterations in total, counting resumed ones" },
  generatorBeta1: { flag: "g-beta1", description: "generator Adam β1 (the fake score's is 0)" },
  beta2: { flag: "beta2", description: "Adam β2 of both optimisers" },
  epsilon: { flag: "epsilon", description: "Adam ε of both optimisers" },
  generatorLossScale: { flag: "lsg", description: "generator loss multiplier" },
  fakeLossScale: { flag: "ls", description: "fake-score loss multiplier" },
  emaHalfLifeKimg: { flag: "ema-half-life", description: "EMA half-life of the generator, in thousands of samples" },
  emaRampupRatio: { flag: "ema-rampup", description: "EMA rampup ratio (half-life ≤ ratio × samples seen)" },
  evalEvery: { flag: "eval-every", description: "evaluate the EMA generator every N iterations" },
  checkpointEvery: { flag: "checkpoint-every", description: "write a checkpoint every N iterations" },
  seed: { flag: "seed", description: "random seed of every stream of the run" },
  lowMemory: {
    flag: "low-memory",
    description: "Adam's moments and the EMA generator in host memory, two-stage generator backward (same updates, " +
      "lower peak engine memory; a run may resume either way)"
  },
  dropout: {
    flag: "dropout",
    description: "train-mode dropout of G (generator step) and ψ (fake step); default: the teacher network's own rate"
  },
  loss: { flag: "loss", description: "generator loss: sid, dmd (no network Jacobians), l1 or l2 (one term alone)" },
  normalizer: { flag: "normalizer", description: "the per-sample normaliser w = sg(mean|x_g − f_φ|) (--no-normalizer: w = 1)" },
  augment: {
    flag: "augment",
    description: "probability p of EDM's augmentation (flips, scaling, rotation, translation) of the fake step's images " +
      "(SiD: 0.12 CIFAR-10, 0.15 FFHQ/AFHQ; 0 off)"
  },
  adversarial: {
    flag: "adversarial",
    description: "SiDA: the fake score doubles as a discriminator on real images (needs --data)"
  },
  data: { flag: "data", description: "real images for SiDA's discriminator: mnist, or null (none)" },
  lsd: { flag: "lsd", description: "SiDA: discriminator loss multiplier" },
  lsgGan: { flag: "lsg-gan", description: "SiDA: multiplier of the generator's adversarial term" },
  generatorWarmupKimg: { flag: "g-warmup", description: "SiDA: thousands of images before G's first update" },
  adversarialWarmupKimg: {
    flag: "gan-warmup",
    description: "SiDA: thousands of images before the generator's adversarial term starts"
  },
  initGenerator: {
    flag: "init-generator",
    description: "SiD²A: start G from a distilled generator (a run directory or an exported generator file) instead of the teacher"
  }
}

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

/**
 * One rejected setting (docs/algorithm.md §9.2): the field's dotted path, the value given, and the rule it broke.
 *
 * @since 0.1.0
 * @category schemas
 */
export const ConfigIssue = Schema.Struct({
  field: Schema.String,
  value: Schema.Unknown,
  rule: Schema.String
})
/**
 * @see {@link ConfigIssue}
 *
 * @since 0.1.0
 * @category schemas
 */
export type ConfigIssue = typeof ConfigIssue.Type

const renderValue = (value: unknown): string => {
  if (value === undefined) return "undefined"
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value)
  try {
    const json = JSON.stringify(value)
    return json.length > 60 ? `${json.slice(0, 57)}...` : json
  } catch {
    return String(value)
  }
}

/**
 * A configuration that failed validation (docs/algorithm.md §9.2). Each issue names the field, the value given and the rule;
 * `message` lists them one per line (`alpha = -1: must be a finite number ≥ 0 (...)`) and says how to fix them.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  issues: Schema.Array(ConfigIssue)
}) {
  override get message(): string {
    const lines = this.issues.map((issue) => `  ${issue.field} = ${renderValue(issue.value)}: ${issue.rule}`)
    const count = this.issues.length === 1 ? "1 setting" : `${this.issues.length} settings`
    return [
      `Invalid distillation config (${count}):`,
      ...lines,
      "Fix the values above (or leave a setting out to use its default, docs/algorithm.md §9.2/§12.3) and run again."
    ].join("\n")
  }
}

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let current: unknown = input
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined
    current = (current as Record<PropertyKey, unknown>)[key]
  }
  return current
}

const unexpectedRule = `is not a DistillConfig setting (known settings: ${DISTILL_CONFIG_KEYS.join(", ")}); check its spelling`

/**
 * Converts a Schema `ParseError` from decoding `input` into a {@link ConfigError} (docs/algorithm.md §9.2), with one issue per
 * failing path (ParseResult's `ArrayFormatter`), the offending value looked up in `input`.
 *
 * @since 0.1.0
 * @category utils
 */
export const configErrorFromParseError = (error: ParseResult.ParseError, input: unknown): ConfigError => {
  const seen = new Set<string>()
  const issues: Array<ConfigIssue> = []
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const field = issue.path.length === 0 ? "(config)" : issue.path.map(String).join(".")
    if (seen.has(field)) continue
    seen.add(field)
    const rule = issue._tag === "Unexpected"
      ? unexpectedRule
      : issue.path.length === 0
      ? "must be an object of settings, e.g. { \"alpha\": 1, \"steps\": 10000 }"
      : issue.message
    issues.push({ field, value: valueAt(input, issue.path), rule })
  }
  return new ConfigError({ issues })
}

/**
 * Decodes untrusted input (a parsed config file, CLI flags, an environment map) into a {@link DistillConfig}
 * (docs/algorithm.md §9.2). Pure: returns `Either.right(config)` or `Either.left(ConfigError)` listing every bad setting.
 * Unknown keys are rejected, so a misspelt setting is not silently replaced by its default.
 *
 * @since 0.1.0
 * @category utils
 */
export const decodeDistillConfig = (input: unknown): Either.Either<DistillConfig, ConfigError> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(DistillConfig, { errors: "all", onExcessProperty: "error" })(input),
    (error) => configErrorFromParseError(error, input)
  )

/**
 * {@link DistillConfig} to and from a JSON string (docs/algorithm.md §9.2), for config files and checkpoints.
 *
 * @since 0.1.0
 * @category schemas
 */
export const DistillConfigFromJson = Schema.parseJson(DistillConfig)

/**
 * Decodes a JSON text into a {@link DistillConfig} (docs/algorithm.md §9.2); malformed JSON is a {@link ConfigError} on the
 * field `(json)`. See {@link decodeDistillConfig}.
 *
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
      new ConfigError({ issues: [{ field: "(json)", value: text, rule: `must be valid JSON (${reason})` }] })
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
 *
 * @since 0.1.0
 * @category utils
 */
export const distillConfig = (input: Partial<typeof DistillConfig.Encoded> = {}): DistillConfig =>
  Either.getOrThrowWith(decodeDistillConfig(input), (e) => e)
