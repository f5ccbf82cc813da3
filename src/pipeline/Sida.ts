/**
 * What a run's config asks of augmentation and SiDA (spec §3, §9.1; docs/sida.md), as iteration settings, and the
 * checks that its services can honour it, run before anything is written.
 *
 * @module
 */
import { Effect } from "effect"
import { type AugmentSettings, sidAugmentSettings } from "../domain/sid/Augment.js"
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import { hasDiscriminator, type Network } from "../domain/nn/Network.js"
import { checkRealData } from "../services/RealData.js"
import { type RealDataShape, SidaSetupError } from "../services/RealData.js"
import type { AdversarialSettings } from "./Iteration.js"

/** The augmentation of a config: SiD's pipe at p = `config.augment` (spec §3), or none at p = 0. */
export const augmentSettingsOf = (config: DistillConfig): AugmentSettings | undefined =>
  config.augment > 0 ? sidAugmentSettings(config.augment) : undefined

/** SiDA's settings of a config (spec §9.1), or none when `config.adversarial` is off. */
export const adversarialSettingsOf = (config: DistillConfig): AdversarialSettings | undefined =>
  config.adversarial
    ? {
      discriminatorScale: config.lsd,
      generatorScale: config.lsgGan,
      schedule: {
        generatorWarmupImages: config.generatorWarmupKimg * 1000,
        adversarialWarmupImages: config.adversarialWarmupKimg * 1000
      },
      normalize: config.normalizer
    }
    : undefined

/**
 * The config-level SiDA check: the adversarial term needs a real-data source (`data`, or a RealData layer given in its
 * place: `realDataGiven`). Fails with a {@link SidaSetupError} naming the setting.
 */
export const checkSidaConfig = (config: DistillConfig, realDataGiven = false): Effect.Effect<void, SidaSetupError> =>
  config.adversarial && config.data === null && !realDataGiven
    ? Effect.fail(
      new SidaSetupError({
        setting: "adversarial",
        reason: "SiDA's discriminator needs real images, but no real-data source is set",
        fix: "Name one with --data mnist (config `data`), or provide a RealData layer"
      })
    )
    : Effect.void

/**
 * Checks that the services of a run can honour its augmentation and SiDA settings, before anything is written:
 * augmentation needs image data [H, W, C]; SiDA needs a real-data source that fits the teacher's data shape and
 * classes, and a network with discriminator logits. Fails with a {@link SidaSetupError} naming the mismatch.
 */
export const checkSidaSetup = (
  config: DistillConfig,
  network: Network,
  realData: RealDataShape | undefined
): Effect.Effect<void, SidaSetupError> =>
  Effect.gen(function*() {
    if (config.augment > 0 && network.dataShape.length !== 3) {
      return yield* new SidaSetupError({
        setting: "augment",
        reason: `augmentation transforms images [H, W, C], but the teacher's samples have shape [${network.dataShape}]`,
        fix: "Set --augment 0 for non-image data"
      })
    }
    if (!config.adversarial) return
    yield* checkSidaConfig(config, realData !== undefined)
    if (!hasDiscriminator(network)) {
      return yield* new SidaSetupError({
        setting: "adversarial",
        reason: `the network kind "${network.description.kind}" has no discriminator logits for SiDA`,
        fix: "Use a network with applyWithLogits and applyLogits (the small UNet, SongUNet, DhariwalUNet or the MLP)"
      })
    }
    if (realData === undefined) {
      return yield* new SidaSetupError({
        setting: "data",
        reason: `the config names ${config.data} but no RealData service was provided`,
        fix: "Build the run with Distillation.layer, or provide a RealData layer"
      })
    }
    yield* checkRealData(realData, network)
  })
