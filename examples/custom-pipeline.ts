/**
 * Compose your own pipeline: a teacher that is just a function, and a loss of your own, plugged into the standard
 * distillation stream. Everything else (generator, fake score, sampler, metrics, checkpoints) is the library's.
 *
 * Run: `npx tsx examples/custom-pipeline.ts [--steps 600]`
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, Stream } from "effect"
import { distillConfig } from "../src/domain/config/DistillConfig.js"
import { makeGaussianMixture } from "../src/domain/data/GaussianMixture.js"
import { dmdLoss, type GeneratorLoss, sidLoss } from "../src/domain/sid/SidLoss.js"
import { mlpSpec } from "../src/domain/nn/Mlp.js"
import { mlpNetwork } from "../src/domain/nn/Network.js"
import * as CheckpointStore from "../src/services/node/CheckpointStore.js"
import * as Distillation from "../src/layers/node/Distillation.js"
import * as DistillationLoss from "../src/services/DistillationLoss.js"
import * as Engine from "../src/engine/node/Engine.js"
import * as Metrics from "../src/services/node/Metrics.js"
import { distill, StepReport } from "../src/pipeline/Distill.js"
import { Teacher } from "../src/services/node/Teacher.js"

// --- user code starts here ---------------------------------------------------------------------------------------
// 1. A teacher that is a closure: the exact denoiser of x₀ = (±a, ±a) + s·η (four equal modes), per coordinate
//    E[x₀|x] = (s²·x + σ²·a·tanh(a·x/(s² + σ²))) / (s² + σ²).
const [a, s] = [0.45, 0.1]
const fourCorners = (x: tf.Tensor, sigma: number | tf.Tensor) =>
  tf.tidy(() => {
    const v = typeof sigma === "number" ? tf.scalar(sigma * sigma) : tf.square(sigma).reshape([-1, 1])
    const total = tf.add(v, s * s)
    return tf.div(tf.add(tf.mul(x, s * s), tf.mul(v, tf.mul(tf.tanh(tf.div(tf.mul(x, a), total)), a))), total)
  })
const network = mlpNetwork(mlpSpec(2, { hidden: 64, depth: 3 }))
const myTeacher = Layer.scoped(
  Teacher,
  Effect.acquireRelease(Effect.sync(() => network.init(1)), (p) => Effect.sync(() => tf.dispose(Object.values(p)))).pipe(
    Effect.map((params) => Teacher.of({ name: "four corners", dataShape: [2], sigmaData: 0.5, denoise: fourCorners, weights: { network, params } }))
  )
)

// 2. A loss of my own: half SiD (α = 1), half the DMD direction.
const sid = sidLoss({ alpha: 1 })
const dmd = dmdLoss()
const myLoss: GeneratorLoss = {
  name: "sid+dmd",
  description: "½ SiD(α = 1) + ½ DMD",
  compute: (input) =>
    tf.tidy(() => {
      const [x, y] = [sid.compute(input), dmd.compute(input)]
      return { loss: tf.add(x.loss, y.loss).div(2), perRow: tf.add(x.perRow, y.perRow).div(2) as tf.Tensor1D, mask: x.mask }
    })
}

// 3. The standard stream with my parts.
export const runCustomPipeline = (steps: number) => {
  const config = distillConfig({ steps, batchSize: 256, evalEvery: steps, generatorLr: 1e-3, fakeLr: 1e-3, emaHalfLifeKimg: 10 })
  const corners = makeGaussianMixture({ weights: [0.25, 0.25, 0.25, 0.25], means: [[a, a], [a, -a], [-a, a], [-a, -a]], variances: Array(4).fill([s * s, s * s]) })
  const services = Distillation.layer(config, {
    teacher: myTeacher,
    metrics: Metrics.layerGaussianMixture(corners, { referenceSize: 4000, mmdSize: 1000 }),
    checkpoints: CheckpointStore.layerMemory,
    loss: DistillationLoss.layer(myLoss)
  })
  return distill(config, { evalSamples: 4000 }).pipe(Stream.runCollect, Effect.provide(Layer.provide(services, Engine.layerConfig)))
}
// --- user code ends here -----------------------------------------------------------------------------------------

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--steps")
  Effect.runPromise(runCustomPipeline(i > 0 ? Number(process.argv[i + 1]) : 600)).then((reports) => {
    for (const r of reports) if (r.evaluation !== undefined) console.log(`step ${r.step}: FD ${r.evaluation.frechetDistance.toExponential(2)}, modes ${r.evaluation.modesCovered}/4`)
    const last = Array.from(reports).filter((r): r is StepReport => r instanceof StepReport).at(-1)
    console.log(`loss "${myLoss.description}", last generator loss ${last?.generatorLoss.toFixed(4)}`)
  }, (e) => {
    console.error(String(e))
    process.exit(1)
  })
}
