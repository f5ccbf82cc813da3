/**
 * Data-free SiD in a web page: the portable run layer (`layers/Distillation.ts`) for a page's parts, the mixture
 * teachers and metrics of 2-D distillation, and the generator's export in the format `sid-ts/browser` loads. Nothing
 * here imports Node; the Node composition (with SiDA's real data and `initGenerator` files) is
 * `src/layers/node/Distillation.ts`.
 *
 * @module
 */
import { Effect, Layer, Schema } from "effect"
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import * as GaussianMixture from "../domain/data/GaussianMixture.js"
import { encodeGeneratorFile } from "../domain/data/GeneratorFile.js"
import type { GeneratorProvenance } from "../domain/sid/OneStep.js"
import type { Optimizer } from "../domain/optim/Optimizer.js"
import type { Engine } from "../engine/Engine.js"
import * as Distillation from "../layers/Distillation.js"
import type { CheckpointStore } from "../services/CheckpointStore.js"
import { Generator as GeneratorTag } from "../services/Generator.js"
import * as MixtureMetrics from "../services/Metrics.js"
import type { Metrics } from "../services/Metrics.js"
import type { SidaSetupError } from "../services/RealData.js"
import { layerGaussianMixture, layerTrainedOnMixture, type MixtureFitOptions, type Teacher } from "../services/Teacher.js"

/**
 * A config asks for something a page cannot do: SiDA's real data or a generator file to start from (`initGenerator`).
 *
 * @since 0.2.0
 * @category errors
 */
export class BrowserRunUnsupported extends Schema.TaggedError<BrowserRunUnsupported>()("BrowserRunUnsupported", {
  setting: Schema.String
}) {
  override get message(): string {
    return `The browser run does not support ${this.setting}: it distils data-free (SiD, docs/algorithm.md §6). Turn it off in ` +
      `the config, or run it with the CLI (sid distill).`
  }
}

/**
 * The replaceable parts of a browser run.
 *
 * @since 0.2.0
 * @category models
 */
export interface BrowserRunParts<E = never> {
  readonly teacher: Layer.Layer<Teacher, E, Engine>
  readonly metrics: Layer.Layer<Metrics, never, Teacher | Engine>
  readonly checkpoints: Layer.Layer<CheckpointStore>
  /** The optimisers (default: `Distillation.defaultOptimizers`, as `sid distill`). */
  readonly optimizers?: { readonly generator: Optimizer; readonly fakeScore: Optimizer }
}

/**
 * The layer of a browser run: every service `distill` needs, from the config and the parts (`Distillation.layer`
 * with SiD's optimisers by default). Fails with {@link BrowserRunUnsupported} for SiDA (`adversarial`) and
 * `initGenerator`. Needs the engine (`engineLayer`).
 *
 * @since 0.2.0
 * @category layers
 */
export const layer = <E>(
  config: DistillConfig,
  parts: BrowserRunParts<E>
): Layer.Layer<Distillation.DistillServices, E | BrowserRunUnsupported | SidaSetupError, Engine> => {
  if (config.adversarial) return Layer.fail(new BrowserRunUnsupported({ setting: "SiDA (adversarial)" }))
  if (config.initGenerator !== null) return Layer.fail(new BrowserRunUnsupported({ setting: "initGenerator" }))
  return Distillation.layer(config, {
    teacher: parts.teacher,
    metrics: parts.metrics,
    checkpoints: parts.checkpoints,
    ...(parts.optimizers === undefined ? {} : { optimizers: parts.optimizers })
  })
}

/**
 * A mixture a page was given cannot be used (no modes, bad widths): the message lists every problem.
 *
 * @since 0.2.0
 * @category errors
 */
export class MixtureInvalid extends Schema.TaggedError<MixtureInvalid>()("MixtureInvalid", {
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `The mixture cannot be distilled: ${this.problems.join("; ")}. Place at least one mode (click on the canvas) ` +
      `or pick a preset.`
  }
}

/**
 * One mode of a drawn mixture: its centre, its standard deviation (isotropic) and its relative weight.
 *
 * @since 0.2.0
 * @category models
 */
export interface DrawnMode {
  readonly x: number
  readonly y: number
  readonly std: number
  readonly weight?: number
}

/**
 * The 2-D mixture of drawn modes (weights normalised), or {@link MixtureInvalid} listing what is wrong.
 *
 * @since 0.2.0
 * @category constructors
 */
export const mixtureOfModes = (
  modes: ReadonlyArray<DrawnMode>
): Effect.Effect<GaussianMixture.GaussianMixture, MixtureInvalid> =>
  Effect.suspend(() => {
    if (modes.length === 0) return Effect.fail(new MixtureInvalid({ problems: ["the mixture has no modes"] }))
    const total = modes.reduce((a, m) => a + (m.weight ?? 1), 0)
    const mixture: GaussianMixture.GaussianMixture = {
      weights: modes.map((m) => (m.weight ?? 1) / total),
      means: modes.map((m) => [m.x, m.y]),
      variances: modes.map((m) => [m.std * m.std, m.std * m.std])
    }
    const problems = GaussianMixture.gaussianMixtureProblems(mixture)
    return problems.length > 0 ? Effect.fail(new MixtureInvalid({ problems })) : Effect.succeed(mixture)
  })

/**
 * How the page's teacher is made from a mixture (docs/algorithm.md §4, §12).
 *
 * @since 0.2.0
 * @category models
 */
export type MixtureTeacherKind = "exact" | "dsm"

/**
 * The teacher of a mixture: `exact` (the analytic posterior mean; G and ψ start from an MLP regressed onto it, as
 * `gmm:<mixture>`) or `dsm` (an MLP trained in the page by denoising score matching on the mixture's samples, as
 * `gmm-dsm:<mixture>`). `fit` sets the MLP and its fit (the CLI's preset: `DISTILL_PRESETS.lowDimensional.teacherFit`).
 *
 * @since 0.2.0
 * @category layers
 */
export const mixtureTeacher = (
  mixture: GaussianMixture.GaussianMixture,
  kind: MixtureTeacherKind,
  fit: MixtureFitOptions & { readonly name?: string } = {}
): Layer.Layer<Teacher, never, Engine> =>
  kind === "exact" ? layerGaussianMixture(mixture, fit) : layerTrainedOnMixture(mixture, fit)

/**
 * Metrics against exact samples of the mixture for a page: Fréchet distance and the RBF-MMD² at bandwidth 0.1 (the
 * CLI's headline figures) on fewer samples than the CLI's, so that an evaluation takes a fraction of a second.
 *
 * @since 0.2.0
 * @category layers
 */
export const mixtureMetrics = (
  mixture: GaussianMixture.GaussianMixture,
  options: MixtureMetrics.MixtureMetricsOptions = {}
): Layer.Layer<Metrics, never, Engine> =>
  MixtureMetrics.layerGaussianMixture(mixture, { referenceSize: 5000, mmdSize: 2000, bandwidths: [0.1], ...options })

/**
 * The generator's EMA weights (or the live θ) as a generator file: the sid-ts generator format that
 * `loadOneStepGenerator` (`sid-ts/browser`) and `sid sample` read (docs/generator-format.md).
 *
 * @since 0.2.0
 * @category utils
 */
export const exportGenerator = (
  provenance: GeneratorProvenance = {},
  weights: "ema" | "live" = "ema"
): Effect.Effect<Uint8Array, never, GeneratorTag> =>
  Effect.map(GeneratorTag, (g) =>
    encodeGeneratorFile({
      network: g.network,
      params: weights === "ema" ? g.ema : g.weights.variables,
      sigmaInit: g.sigmaInit,
      sigmaData: g.sigmaData,
      provenance: { ...provenance, weights }
    }))
