/**
 * The composition behind `Distillation.layer` (portable and Node): the services of a run from a config and its parts,
 * with the two sources only Node can build (a named real-data source, a generator from an exported file) passed in.
 *
 * @module
 */
import { Effect, Layer } from "effect"
import type { DistillConfig } from "../../domain/config/DistillConfig.js"
import { augmentSettingsOf } from "../../domain/sid/Augment.js"
import type { Engine } from "../../engine/Engine.js"
import * as DataFreeSampler from "../../services/DataFreeSampler.js"
import { layerFromConfig as lossLayerFromConfig } from "../../services/DistillationLoss.js"
import * as FakeScore from "../../services/FakeScore.js"
import * as Generator from "../../services/Generator.js"
import { checkSidaConfig, type RealData, type RealDataSource, type SidaSetupError } from "../../services/RealData.js"
import type { Teacher } from "../../services/Teacher.js"
import { defaultOptimizers, type DistillationParts, type DistillServices } from "../Distillation.js"

/** What only some hosts can build: the real-data source a config names, and a generator from an exported file. */
export interface Sources<S> {
  readonly realData: (source: RealDataSource) => Layer.Layer<RealData, S, Teacher | Engine>
  readonly generatorFromExport: (
    path: string,
    options: Omit<Generator.GeneratorOptions, "initial">
  ) => Layer.Layer<Generator.Generator, S, Teacher | Engine>
}

export const compose = <E, M, S>(
  config: DistillConfig,
  parts: DistillationParts<E, M>,
  sources: Sources<S>
): Layer.Layer<DistillServices, E | M | S | SidaSetupError, Engine> => {
  const optimizers = parts.optimizers ?? defaultOptimizers(config)
  const augment = augmentSettingsOf(config)
  const realData: Layer.Layer<RealData, S, Teacher | Engine> | undefined = !config.adversarial
    ? undefined
    : parts.realData ?? (config.data === null ? undefined : sources.realData(config.data))
  const generatorOptions = {
    optimizer: optimizers.generator,
    sigmaInit: config.sigmaInit,
    emaInHost: config.lowMemory,
    steps: config.generatorSteps
  }
  const run = Layer.mergeAll(
    config.initGenerator === null
      ? Generator.layer(generatorOptions)
      : sources.generatorFromExport(config.initGenerator, generatorOptions),
    FakeScore.layer({ optimizer: optimizers.fakeScore }),
    parts.metrics,
    DataFreeSampler.layerForTeacher({
      seed: config.seed,
      tmax: config.tmax,
      pMean: config.pMean,
      pStd: config.pStd,
      dropout: config.dropout,
      generatorSteps: config.generatorSteps,
      ...(augment === undefined ? {} : { augment }),
      ...(config.adversarial ? { realData: true } : {})
    }),
    realData ?? Layer.empty
  ).pipe(
    Layer.provideMerge(parts.teacher),
    Layer.merge(parts.checkpoints),
    Layer.merge(parts.loss ?? lossLayerFromConfig(config))
  )
  return Layer.unwrapEffect(Effect.as(checkSidaConfig(config, parts.realData !== undefined), run))
}
