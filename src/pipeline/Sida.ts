/**
 * What a run's config asks of SiDA (docs/algorithm.md §13; docs/sida.md), as iteration settings. The checks that a run's services
 * can honour it are `checkSidaConfig` / `checkSidaSetup` in `services/RealData.ts`; the augmentation settings are
 * `augmentSettingsOf` in `domain/sid/Augment.ts`.
 *
 * @module
 */
import type { DistillConfig } from "../domain/config/DistillConfig.js"
import type { AdversarialSettings } from "./Iteration.js"

/**
 * SiDA's settings of a config (docs/algorithm.md §13), or none when `config.adversarial` is off.
 *
 * @since 0.2.0
 * @category utils
 */
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
