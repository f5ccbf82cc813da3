/**
 * One SiD iteration: a fake-score update, then a generator update, then the EMA (spec §5.1).
 *
 * Both updates are synchronous TF.js work inside `tf.tidy`; the caller runs the whole iteration in one `Effect.sync`
 * so it is never cut in half, and yields to the runtime between iterations.
 *
 * The generator update comes in two forms with the same gradient: {@link generatorUpdate} records one tape through
 * G, the teacher and the fake score; {@link generatorUpdateTwoStage} first takes ∂L/∂x_g through the teacher and the
 * fake score, then G's vector-Jacobian product from a second forward of G, so only one network's tape is alive at a
 * time (lower peak memory, one more G forward). `IterationSettings.twoStageGenerator` picks it.
 *
 * Train and evaluation mode (spec §5.1): with `IterationSettings.dropout` > 0, ψ runs in train mode (dropout on) in
 * the fake step and G in the generator step, their masks seeded by the sampler's per-step dropout seeds. The teacher,
 * G producing the fake step's samples, ψ in the generator step and G_ema always run in evaluation mode.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { emaBeta } from "../domain/Ema.js"
import { fakeScoreLoss } from "../domain/FakeScoreLoss.js"
import type { GeneratorLoss } from "../domain/GeneratorLoss.js"
import type { ApplyOptions } from "../domain/Network.js"
import { broadcastPerSample } from "../domain/Tensors.js"
import type { DataFreeSamplerShape, Draws } from "../services/DataFreeSampler.js"
import type { FakeScoreShape } from "../services/FakeScore.js"
import type { GeneratorShape } from "../services/Generator.js"
import type { TeacherShape } from "../services/Teacher.js"
import type { StepStatistics } from "../services/TrainableWeights.js"

/** The services an iteration works on. */
export interface IterationServices {
  readonly teacher: TeacherShape
  readonly generator: GeneratorShape
  readonly fakeScore: FakeScoreShape
  readonly sampler: DataFreeSamplerShape
  /** The generator loss (SiD by default, spec §4.1). */
  readonly loss: GeneratorLoss
}

/** The hyper-parameters an iteration needs (the generator loss carries its own: α, scale, normaliser). */
export interface IterationSettings {
  readonly batchSize: number
  readonly fakeLossScale: number
  readonly emaHalfLifeKimg: number
  readonly emaRampupRatio: number | null
  /**
   * Run the generator update in two stages ({@link generatorUpdateTwoStage}: same gradient, lower peak memory, one
   * more G forward); default false ({@link generatorUpdate}).
   */
  readonly twoStageGenerator?: boolean
  /**
   * Train-mode dropout rate in [0, 1) of ψ in the fake step and G in the generator step (spec §5.1–5.2); absent or 0:
   * evaluation mode throughout. Needs a sampler that draws dropout seeds.
   */
  readonly dropout?: number
}

/**
 * The train-mode options of a step (spec §5.1): dropout at the settings' rate with the step's seed, or none. Throws
 * (after releasing the draws) when dropout is on but the sampler drew no seed.
 */
const trainMode = (settings: IterationSettings, draws: Draws): ApplyOptions | undefined => {
  const rate = settings.dropout ?? 0
  if (rate === 0) return undefined
  if (draws.dropoutSeed === undefined) {
    tf.dispose(drawnTensors(draws))
    throw new Error(
      `train-mode dropout ${rate} needs a sampler that draws dropout seeds (DataFreeSampler option \`dropout\`)`
    )
  }
  return { dropout: { rate, seed: draws.dropoutSeed } }
}

/** Summary statistics of a batch of σ. */
export interface SigmaSummary {
  readonly min: number
  readonly median: number
  readonly max: number
}

/** What one iteration measured. */
export interface IterationResult {
  readonly fakeLoss: number
  readonly generatorLoss: number
  readonly fakeGrad: StepStatistics
  readonly generatorGrad: StepStatistics
  readonly fakeSigma: SigmaSummary
  readonly generatorSigma: SigmaSummary
  /** Rows dropped for NaN in the generator loss. */
  readonly droppedRows: number
  readonly emaBeta: number
}

const summarise = (sigma: tf.Tensor1D): SigmaSummary => {
  const v = Float64Array.from(sigma.dataSync()).sort()
  return { min: v[0] ?? NaN, median: v[Math.floor(v.length / 2)] ?? NaN, max: v[v.length - 1] ?? NaN }
}

const drawnTensors = (d: Draws): Array<tf.Tensor> =>
  d.labels === undefined ? [d.z, d.sigma, d.noise] : [d.z, d.sigma, d.noise, d.labels]

/**
 * The fake-score update (spec §3): ψ (in train mode when dropout is on) learns to denoise detached generator samples,
 * made by G in evaluation mode, at log-normal σ.
 */
export const fakeScoreUpdate = (s: IterationServices, settings: IterationSettings) => {
  const draws = s.sampler.fakeStep(settings.batchSize)
  const train = trainMode(settings, draws)
  const xg = tf.tidy(() => s.generator.generate(draws.z, "live", draws.labels))
  const { grads, value } = tf.tidy(() => {
    const xt = tf.add(xg, tf.mul(draws.noise, broadcastPerSample(draws.sigma, xg)))
    return tf.variableGrads(
      () =>
        fakeScoreLoss({
          y: xg,
          yHat: s.fakeScore.denoise(xt, draws.sigma, draws.labels, train),
          sigma: draws.sigma,
          lossScale: settings.fakeLossScale,
          sigmaData: s.fakeScore.sigmaData
        }).loss,
      [...s.fakeScore.weights.list]
    )
  })
  const stats = s.fakeScore.weights.applyGradients(grads)
  const loss = value.dataSync()[0]!
  const sigma = summarise(draws.sigma)
  tf.dispose([xg, value, ...drawnTensors(draws), ...Object.values(grads)])
  return { loss, stats, sigma }
}

/** What a generator update measured. */
export interface GeneratorUpdateResult {
  readonly loss: number
  readonly stats: StepStatistics
  readonly sigma: SigmaSummary
  /** Rows dropped for NaN (spec §4.1). */
  readonly dropped: number
}

/**
 * The generator update (spec §4.1): the generator loss (SiD by default) at x_t = G_θ(z) + σ·ε with σ from the ρ-map;
 * the gradient flows through the teacher and the fake score into x_t but only θ is updated. G runs in train mode
 * when dropout is on; the teacher and ψ in evaluation mode. One tape through all three networks.
 */
export const generatorUpdate = (s: IterationServices, settings: IterationSettings): GeneratorUpdateResult => {
  const draws = s.sampler.generatorStep(settings.batchSize)
  const train = trainMode(settings, draws)
  let dropped = 0
  const { grads, value } = tf.tidy(() =>
    tf.variableGrads(() => {
      const xg = s.generator.generate(draws.z, "live", draws.labels, train)
      const result = generatorLossAt(s, draws, xg)
      dropped = settings.batchSize - result.mask.sum().dataSync()[0]!
      return result.loss
    }, [...s.generator.weights.list])
  )
  const stats = s.generator.weights.applyGradients(grads)
  const loss = value.dataSync()[0]!
  const sigma = summarise(draws.sigma)
  tf.dispose([value, ...drawnTensors(draws), ...Object.values(grads)])
  return { loss, stats, sigma, dropped }
}

/** The generator loss at x_g (spec §4.1): x_t = x_g + σ·ε, then the teacher and the fake score at x_t. */
const generatorLossAt = (s: IterationServices, draws: Draws, xg: tf.Tensor) => {
  const xt = tf.add(xg, tf.mul(draws.noise, broadcastPerSample(draws.sigma, xg)))
  return s.loss.compute({
    xg,
    yReal: s.teacher.denoise(xt, draws.sigma, draws.labels),
    yFake: s.fakeScore.denoise(xt, draws.sigma, draws.labels)
  })
}

/**
 * The generator update of {@link generatorUpdate} (spec §4.1) with its backward pass in two stages: (1) x_g = G_θ(z)
 * without a tape, then g = ∂L/∂x_g through the teacher and the fake score; (2) ∂L/∂θ = ∂⟨G_θ(z), g⟩/∂θ, the
 * vector-Jacobian product of G at z, from a second forward of G_θ with the same inputs (and the same dropout masks),
 * so it is the same x_g. The chain rule makes the gradient the fused one's (up to float32 summation order); only one
 * network's tape is alive at a time instead of three, for one more forward of G.
 */
export const generatorUpdateTwoStage = (s: IterationServices, settings: IterationSettings): GeneratorUpdateResult => {
  const draws = s.sampler.generatorStep(settings.batchSize)
  const train = trainMode(settings, draws)
  const xg = tf.tidy(() => s.generator.generate(draws.z, "live", draws.labels, train))
  let dropped = 0
  const { value, grad } = tf.tidy(() =>
    tf.valueAndGrad((x: tf.Tensor) => {
      const result = generatorLossAt(s, draws, x)
      dropped = settings.batchSize - result.mask.sum().dataSync()[0]!
      return result.loss
    })(xg)
  )
  tf.dispose(xg)
  const { grads, value: inner } = tf.tidy(() =>
    tf.variableGrads(
      () => tf.sum(tf.mul(s.generator.generate(draws.z, "live", draws.labels, train), grad)) as tf.Scalar,
      [...s.generator.weights.list]
    )
  )
  tf.dispose([grad, inner])
  const stats = s.generator.weights.applyGradients(grads)
  const loss = value.dataSync()[0]!
  const sigma = summarise(draws.sigma)
  tf.dispose([value, ...drawnTensors(draws), ...Object.values(grads)])
  return { loss, stats, sigma, dropped }
}

/** One full iteration (spec §5.1): fake update, generator update, EMA with the ramp-up rule. */
export const iterate = (s: IterationServices, settings: IterationSettings, imagesSeen: number): IterationResult => {
  const fake = fakeScoreUpdate(s, settings)
  const gen = settings.twoStageGenerator === true ? generatorUpdateTwoStage(s, settings) : generatorUpdate(s, settings)
  const beta = emaBeta({ halfLifeKimg: settings.emaHalfLifeKimg, rampupRatio: settings.emaRampupRatio }, settings.batchSize, imagesSeen)
  s.generator.updateEma(beta)
  return {
    fakeLoss: fake.loss,
    generatorLoss: gen.loss,
    fakeGrad: fake.stats,
    generatorGrad: gen.stats,
    fakeSigma: fake.sigma,
    generatorSigma: gen.sigma,
    droppedRows: gen.dropped,
    emaBeta: beta
  }
}
