/**
 * Layers for the generator loss of a run.
 *
 * @module
 */
import { Layer } from "effect"
import type { DistillConfig } from "../domain/DistillConfig.js"
import { type GeneratorLoss, sidLoss } from "../domain/GeneratorLoss.js"
import { DistillationLoss } from "../services/DistillationLoss.js"

/** A run that uses `loss`. */
export const layer = (loss: GeneratorLoss): Layer.Layer<DistillationLoss> => Layer.succeed(DistillationLoss, loss)

/** The SiD loss with the config's α and generator loss scale (spec §4.1). */
export const layerFromConfig = (config: DistillConfig): Layer.Layer<DistillationLoss> =>
  layer(sidLoss({ alpha: config.alpha, lossScale: config.generatorLossScale }))
