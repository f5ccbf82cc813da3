/**
 * The generator loss a distillation run uses: SiD by default (docs/algorithm.md §8.1), or any other {@link GeneratorLoss} — the
 * L¹ or L² term alone, the DMD direction, or a user's own — swapped in through a layer.
 *
 * @module
 */
import { Context, Layer } from "effect"
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import { dmdLoss, type GeneratorLoss, l1Loss, l2Loss, sidLoss } from "../domain/sid/SidLoss.js"

/**
 * The generator-loss service.
 *
 * @since 0.1.0
 * @category tags
 */
export class DistillationLoss extends Context.Tag("sid-ts/DistillationLoss")<DistillationLoss, GeneratorLoss>() {}

/*
 * Layers.
 *
 * Layers for the generator loss of a run.
 */

/**
 * A run that uses `loss`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (loss: GeneratorLoss): Layer.Layer<DistillationLoss> => Layer.succeed(DistillationLoss, loss)

/**
 * The generator loss a config names (`config.loss`: SiD with its α, docs/algorithm.md §8.1; the DMD direction, docs/algorithm.md §8.4; or the L¹ /
 * L² term alone, docs/algorithm.md §8.2), with the config's loss scale and normaliser.
 *
 * @since 0.1.0
 * @category utils
 */
export const lossFromConfig = (config: DistillConfig): GeneratorLoss => {
  const options = { lossScale: config.generatorLossScale, normalize: config.normalizer }
  switch (config.loss) {
    case "sid":
      return sidLoss({ ...options, alpha: config.alpha })
    case "dmd":
      return dmdLoss(options)
    case "l1":
      return l1Loss(options)
    case "l2":
      return l2Loss(options)
  }
}

/**
 * The generator loss the config names ({@link lossFromConfig}).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFromConfig = (config: DistillConfig): Layer.Layer<DistillationLoss> => layer(lossFromConfig(config))
