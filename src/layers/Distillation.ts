/**
 * Every service a distillation run needs, composed from a config: the teacher, a generator and a fake score
 * initialised from it, the data-free sampler, metrics and a checkpoint store.
 *
 * Replace any part by passing a different layer; the rest is built around it.
 *
 * @module
 */
import { Layer } from "effect"
import type { DistillConfig } from "../domain/DistillConfig.js"
import { adam, type Optimizer } from "../domain/Optimizer.js"
import type { DistillServices } from "../pipeline/Distill.js"
import type { CheckpointStore } from "../services/CheckpointStore.js"
import type { Metrics } from "../services/Metrics.js"
import type { Teacher, TeacherError } from "../services/Teacher.js"
import type { DistillationLoss } from "../services/DistillationLoss.js"
import * as DataFreeSampler from "./DataFreeSampler.js"
import * as DistillationLossLayers from "./DistillationLoss.js"
import * as FakeScore from "./FakeScore.js"
import * as Generator from "./Generator.js"

/** The replaceable parts of a run (E: what building the teacher can fail with; M: the metrics). */
export interface DistillationParts<E, M = never> {
  readonly teacher: Layer.Layer<Teacher, E>
  /** Metrics, built with the teacher at hand (an image reference matches the teacher's resolution). */
  readonly metrics: Layer.Layer<Metrics, M, Teacher>
  readonly checkpoints: Layer.Layer<CheckpointStore>
  /** The generator loss (default: SiD with the config's α and loss scale, spec §4.1). */
  readonly loss?: Layer.Layer<DistillationLoss>
  /** The optimisers of the generator and the fake score (default: {@link defaultOptimizers}). */
  readonly optimizers?: { readonly generator: Optimizer; readonly fakeScore: Optimizer }
}

/** SiD's optimisers (spec §5.1): Adam with β₁ = generatorBeta1 (0) for θ and 0 for ψ, the config's β₂, ε and rates. */
export const defaultOptimizers = (config: DistillConfig): { readonly generator: Optimizer; readonly fakeScore: Optimizer } => ({
  generator: adam({ learningRate: config.generatorLr, beta1: config.generatorBeta1, beta2: config.beta2, epsilon: config.epsilon }),
  fakeScore: adam({ learningRate: config.fakeLr, beta1: 0, beta2: config.beta2, epsilon: config.epsilon })
})

/** The layer of a run: generator and fake score from the teacher, with the config's optimisers and sampler seed. */
export const layer = <E = TeacherError, M = never>(
  config: DistillConfig,
  parts: DistillationParts<E, M>
): Layer.Layer<DistillServices, E | M> => {
  const optimizers = parts.optimizers ?? defaultOptimizers(config)
  return Layer.mergeAll(
    Generator.layer({ optimizer: optimizers.generator, sigmaInit: config.sigmaInit }),
    FakeScore.layer({ optimizer: optimizers.fakeScore }),
    parts.metrics,
    DataFreeSampler.layerForTeacher({ seed: config.seed, tmax: config.tmax, pMean: config.pMean, pStd: config.pStd })
  ).pipe(
    Layer.provideMerge(parts.teacher),
    Layer.merge(parts.checkpoints),
    Layer.merge(parts.loss ?? DistillationLossLayers.layerFromConfig(config))
  )
}
