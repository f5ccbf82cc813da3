/**
 * The layer of a distillation run on Node: the portable `layers/Distillation.ts` (re-exported) with the sources read
 * from files, the real-data source a config names (`data: "mnist"`, `RealData.layerForTeacher`) and SiD²A's
 * `initGenerator` (`Generator.layerFromExport`).
 *
 * @module
 */
import type { Layer } from "effect"
import type { DistillConfig } from "../../domain/config/DistillConfig.js"
import type { Engine } from "../../engine/Engine.js"
import type { DatasetError } from "../../services/Dataset.js"
import { layerFromExport } from "../../services/node/Generator.js"
import { layerForTeacher as realDataForTeacher, type SidaSetupError } from "../../services/node/RealData.js"
import type { TeacherError } from "../../services/Teacher.js"
import type { DistillationParts, DistillServices } from "../Distillation.js"
import { compose } from "../internal/distillation.js"

export * from "../Distillation.js"

/**
 * The layer of a run (the portable `Distillation.layer`), building SiDA's real data from `config.data` when
 * `parts.realData` is not given and SiD²A's generator from `config.initGenerator`'s file.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <E = TeacherError, M = never>(
  config: DistillConfig,
  parts: DistillationParts<E, M>
): Layer.Layer<DistillServices, E | M | SidaSetupError | DatasetError, Engine> =>
  compose(config, parts, { realData: realDataForTeacher, generatorFromExport: layerFromExport })
