/**
 * The services of one SiD iteration for a benchmark: a freshly initialised network as the teacher (timing needs no
 * trained one), generator and fake score from its weights with SiD's default Adam (on engine tensors, or with its
 * moments in host memory: `adamHost`), the data-free sampler and the SiD loss, plus the default iteration settings for
 * a batch size.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Layer, type Scope } from "effect"
import { DISTILL_DEFAULTS } from "../src/domain/config/DistillConfig.js"
import { sidLoss } from "../src/domain/sid/SidLoss.js"
import type { Network } from "../src/domain/nn/Network.js"
import { adam, adamHost } from "../src/domain/optim/Optimizer.js"
import * as DataFreeSampler from "../src/services/DataFreeSampler.js"
import * as FakeScoreLayers from "../src/services/FakeScore.js"
import * as GeneratorLayers from "../src/services/node/Generator.js"
import * as TeacherLayers from "../src/services/node/Teacher.js"
import { fakeScoreUpdate, generatorUpdate, type IterationServices, type IterationSettings } from "../src/pipeline/Iteration.js"
import { SIGMA_DATA } from "../src/domain/edm/Edm.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import { emaBeta } from "../src/domain/optim/Ema.js"
import type { Engine } from "../src/engine/node/Engine.js"
import { FakeScore } from "../src/services/FakeScore.js"
import { Generator } from "../src/services/node/Generator.js"
import { Teacher } from "../src/services/node/Teacher.js"

/**
 * Where the optimisers keep Adam's moments and the generator its θ_ema: engine tensors (the default) or host memory
 * (`adamHost`, `emaInHost`).
 */
export type OptimizerState = "engine" | "host"

/**
 * Services (released with the scope) and settings for SiD iterations of `network` at `batch`; with `dropout` > 0, ψ and
 * G run in train mode at that rate (docs/algorithm.md §9.1), the sampler drawing the mask seeds.
 */
export const benchServices = (
  name: string,
  network: Network,
  sigmaData: number,
  batch: number,
  optimizerState: OptimizerState = "engine",
  dropout = 0
): Effect.Effect<
  { readonly services: IterationServices; readonly settings: IterationSettings; readonly parameters: number },
  never,
  Scope.Scope | Engine
> =>
  Effect.gen(function*() {
    const params = yield* Effect.acquireRelease(
      Effect.sync(() => network.init(1)),
      (p) => Effect.sync(() => tf.dispose(Object.values(p)))
    )
    const teacherLayer = Layer.succeed(Teacher, TeacherLayers.fromWeights(name, network, params, sigmaData))
    const optimizer = (optimizerState === "host" ? adamHost : adam)({
      learningRate: DISTILL_DEFAULTS.generatorLr,
      beta1: 0,
      beta2: DISTILL_DEFAULTS.beta2,
      epsilon: DISTILL_DEFAULTS.epsilon
    })
    const ctx = yield* Layer.build(
      Layer.mergeAll(
        GeneratorLayers.layer({ optimizer, emaInHost: optimizerState === "host" }),
        FakeScoreLayers.layer({ optimizer })
      ).pipe(
        Layer.provideMerge(teacherLayer)
      )
    )
    return {
      services: {
        teacher: Context.get(ctx, Teacher),
        generator: Context.get(ctx, Generator),
        fakeScore: Context.get(ctx, FakeScore),
        sampler: DataFreeSampler.makeSampler({ seed: 0, dataShape: network.dataShape, dropout: dropout > 0 }),
        loss: sidLoss({ alpha: DISTILL_DEFAULTS.alpha, lossScale: DISTILL_DEFAULTS.generatorLossScale })
      },
      settings: {
        batchSize: batch,
        fakeLossScale: DISTILL_DEFAULTS.fakeLossScale,
        emaHalfLifeKimg: DISTILL_DEFAULTS.emaHalfLifeKimg,
        emaRampupRatio: DISTILL_DEFAULTS.emaRampupRatio,
        dropout
      },
      parameters: Object.values(params).reduce((a, p) => a + p.size, 0)
    }
  })

/** One timed SiD iteration's wall and CPU (`process.cpuUsage`, all threads) milliseconds. */
export interface IterationTiming {
  readonly wall: number
  readonly cpu: number
}

const cpuMs = (): number => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/**
 * `warmup` then `iterations` timed SiD iterations (fake step, generator step, EMA) of the 2-D MLP (4 × 128) at `batch`
 * on the engine at hand, on fresh services: each timed iteration's wall and CPU time, every iteration's losses (fake,
 * generator) in order, and the change of `tf.memory().numTensors` over the timed ones.
 */
export const timedMlpIterations = (batch: number, warmup: number, iterations: number) =>
  Effect.gen(function*() {
    const { services, settings } = yield* benchServices("mlp", mlpNetwork(mlpSpec(2)), SIGMA_DATA, batch)
    const s = { ...settings, batchSize: batch }
    let seen = 0
    const losses: Array<number> = []
    const one = (): IterationTiming => {
      const c0 = cpuMs()
      const t0 = performance.now()
      const fake = fakeScoreUpdate(services, s)
      const gen = generatorUpdate(services, s)
      services.generator.updateEma(emaBeta({ halfLifeKimg: s.emaHalfLifeKimg, rampupRatio: s.emaRampupRatio }, batch, seen))
      seen += batch
      losses.push(fake.loss, gen.loss)
      return { wall: performance.now() - t0, cpu: cpuMs() - c0 }
    }
    for (let i = 0; i < warmup; i++) one()
    const before = tf.memory().numTensors
    const runs = Array.from({ length: iterations }, one)
    return { runs, losses, drift: tf.memory().numTensors - before }
  })
