/**
 * Every service a distillation run needs, composed from a config: the teacher, a generator and a fake score
 * initialised from it, the data-free sampler, metrics and a checkpoint store.
 *
 * Replace any part by passing a different layer; the rest is built around it.
 *
 * With `config.lowMemory` the default optimisers keep Adam's moments in host memory (`adamHost`) and the generator
 * keeps θ_ema in host memory (`emaInHost`); the pipeline then also runs the two-stage generator backward. Checkpoints
 * are the same either way (host state is materialised as tensors for them), so a run may resume in the other mode.
 * When the run's train-mode dropout (`config.dropout`, or the architecture's own rate) is above 0, the sampler draws
 * dropout seeds from two extra streams, saved in checkpoints with the others (docs/algorithm.md §9.1). Likewise augmentation
 * (`config.augment` > 0, docs/algorithm.md §13.4) adds the stream `augment`, and SiDA (`config.adversarial`, docs/algorithm.md §13) the stream
 * `real` and the real-data service; SiDA without a real-data source fails with a `SidaSetupError` when the layer is
 * built, before anything is written. With `config.initGenerator` (SiD²A) G and G_ema start from that distilled
 * generator (`Generator.layerFromExport`), checked against the teacher and σ_init when the layer is built.
 *
 * This module is portable (web pages too): SiDA's real data comes from `parts.realData` and `initGenerator` is not
 * read here. `node/Distillation.ts` (re-exporting this module) builds the real-data source a config names
 * (`data: "mnist"`) and reads `initGenerator`'s file.
 *
 * @module
 */
import { Layer } from "effect"
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import type { AdamConfig } from "../domain/optim/Adam.js"
import { inverseSqrtDecay, withLearningRateSchedule } from "../domain/optim/LearningRateSchedule.js"
import { adam, adamHost, type Optimizer } from "../domain/optim/Optimizer.js"
import { type RealData, SidaSetupError } from "../services/RealData.js"
import type { CheckpointStore } from "../services/CheckpointStore.js"
import type { Engine } from "../engine/Engine.js"
import type { Metrics } from "../services/Metrics.js"
import type { Teacher, TeacherError } from "../services/Teacher.js"
import type { DistillationLoss } from "../services/DistillationLoss.js"
import type { DataFreeSampler as DataFreeSamplerTag } from "../services/DataFreeSampler.js"
import type { FakeScore as FakeScoreTag } from "../services/FakeScore.js"
import type { Generator as GeneratorTag } from "../services/Generator.js"
import { compose } from "./internal/distillation.js"

/**
 * The services a distillation run needs.
 *
 * @since 0.1.0
 * @category models
 */
export type DistillServices =
  | Teacher
  | GeneratorTag
  | FakeScoreTag
  | DataFreeSamplerTag
  | DistillationLoss
  | CheckpointStore
  | Metrics

/**
 * The replaceable parts of a run (E: what building the teacher can fail with; M: the metrics). The teacher and the
 * metrics may need the {@link Engine} (the library's own layers do); the run's layer needs it anyway.
 *
 * @since 0.1.0
 * @category models
 */
export interface DistillationParts<E, M = never> {
  readonly teacher: Layer.Layer<Teacher, E, Engine>
  /** Metrics, built with the teacher at hand (an image reference matches the teacher's resolution). */
  readonly metrics: Layer.Layer<Metrics, M, Teacher | Engine>
  readonly checkpoints: Layer.Layer<CheckpointStore>
  /** The generator loss (default: SiD with the config's α and loss scale, docs/algorithm.md §8.1). */
  readonly loss?: Layer.Layer<DistillationLoss>
  /**
   * The optimisers of the generator and the fake score (default: {@link defaultOptimizers}). Used as given, also with
   * `config.lowMemory` (pass host optimisers, e.g. `adamHost`, to keep their state outside the engine).
   */
  readonly optimizers?: { readonly generator: Optimizer; readonly fakeScore: Optimizer }
  /**
   * The real images of SiDA's discriminator (docs/algorithm.md §13), in place of the source `config.data` names (default: that
   * source, built for the teacher by `RealData.layerForTeacher`; none when `config.adversarial` is off).
   */
  readonly realData?: Layer.Layer<RealData, never, Teacher>
}

/**
 * SiD's optimisers (docs/algorithm.md §9.1): Adam with β₁ = generatorBeta1 (0) for θ and 0 for ψ, the config's β₂, ε and rates
 * (decaying as 1/√images after `lrDecayKimg` when that is positive, docs/algorithm.md §9.4);
 * with `config.lowMemory`, the same Adam with its moments in host memory (`adamHost`, bit-identical updates).
 *
 * @since 0.1.0
 * @category utils
 */
export const defaultOptimizers = (config: DistillConfig): { readonly generator: Optimizer; readonly fakeScore: Optimizer } => {
  const adamOf = config.lowMemory ? adamHost : adam
  const decayed = (adamConfig: AdamConfig): Optimizer =>
    config.lrDecayKimg > 0
      ? withLearningRateSchedule(
        adamOf,
        adamConfig,
        inverseSqrtDecay(config.lrDecayKimg * 1000, config.batchSize),
        `lr / √(images / ${config.lrDecayKimg} kimg) after ${config.lrDecayKimg} kimg`
      )
      : adamOf(adamConfig)
  return {
    generator: decayed({ learningRate: config.generatorLr, beta1: config.generatorBeta1, beta2: config.beta2, epsilon: config.epsilon }),
    fakeScore: decayed({ learningRate: config.fakeLr, beta1: 0, beta2: config.beta2, epsilon: config.epsilon })
  }
}

/**
 * The layer of a run: generator and fake score from the teacher, with the config's optimisers and sampler seed (and,
 * with `config.lowMemory`, θ_ema and the default optimisers' state in host memory). It needs the {@link Engine}: every
 * service here owns tensors, so provide one (`Layer.provide(Distillation.layer(...), Engine.layer("wasm"))`, or
 * `Engine.layerActive` inside a program that already runs one) — without it the program does not compile.
 *
 * Portable: SiDA's real images come from `parts.realData` only, and a config with `initGenerator` fails with a
 * {@link SidaSetupError}; the Node layer of the same name (`sid-ts/layers`) also builds those from files.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = TeacherError, M = never>(
  config: DistillConfig,
  parts: DistillationParts<E, M>
): Layer.Layer<DistillServices, E | M | SidaSetupError, Engine> =>
  compose(config, parts, {
    realData: (source) =>
      Layer.fail(
        new SidaSetupError({
          setting: "data",
          reason: `the real-data source "${source}" is read from files, which this layer does not do`,
          fix: "Provide a RealData layer (parts.realData), or build the run with the Node Distillation.layer (sid-ts/layers)"
        })
      ),
    generatorFromExport: (path) =>
      Layer.fail(
        new SidaSetupError({
          setting: "initGenerator",
          reason: `starting the generator from ${path} reads a file, which this layer does not do`,
          fix: "Build the run with the Node Distillation.layer (sid-ts/layers), or leave initGenerator unset"
        })
      )
  })
