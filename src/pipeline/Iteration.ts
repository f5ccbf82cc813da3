/**
 * One SiD iteration: a fake-score update, then a generator update, then the EMA (docs/algorithm.md §9.1).
 *
 * Both updates are synchronous TF.js work inside `tf.tidy`; the caller runs the whole iteration in one `Effect.sync`
 * so it is never cut in half, and yields to the runtime between iterations. The iteration's host reads (losses,
 * gradient statistics, σ summaries) are deferred to one batched read at its end, plus one read of the generator step's
 * non-finite rows per pass (issue 16): {@link iterate} serves them synchronously, {@link iterateAsync} asynchronously
 * (required on the `webgpu` engine, where the caller runs it uninterruptibly instead).
 *
 * The generator update comes in two forms with the same gradient: {@link generatorUpdate} records one tape through
 * G, the teacher and the fake score; {@link generatorUpdateTwoStage} first takes ∂L/∂x_g through the teacher and the
 * fake score, then G's vector-Jacobian product from a second forward of G, so only one network's tape is alive at a
 * time (lower peak memory, one more G forward). `IterationSettings.twoStageGenerator` picks it.
 *
 * Train and evaluation mode (docs/algorithm.md §9.1): with `IterationSettings.dropout` > 0, ψ runs in train mode (dropout on) in
 * the fake step and G in the generator step, their masks seeded by the sampler's per-step dropout seeds. The teacher,
 * G producing the fake step's samples, ψ in the generator step and G_ema always run in evaluation mode.
 *
 * Row isolation (beyond docs/algorithm.md §8.1): a generator-step row whose x_g, y_r, y_f or loss is not finite is removed from the
 * step, which is recomputed on the other rows of the same draws (divisor still the batch size); only that row's
 * contribution is lost, not the update. The fake-score step keeps the reference's NaN-row masking (docs/algorithm.md §7).
 *
 * Augmentation and SiDA (docs/sida.md): with `IterationSettings.augment` the fake step's images pass through EDM's
 * augmentation pipe (docs/algorithm.md §13.4); with `IterationSettings.adversarial` the fake score doubles as a discriminator on real
 * images in the fake step, and the generator follows SiDA's warm-up and adversarial objective (docs/algorithm.md §13). Both are
 * compositions of the pure losses in `domain/sid/SidaLoss.ts`; without them an iteration is exactly plain SiD's.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Schema } from "effect"
import { augment, type AugmentSettings } from "../domain/sid/Augment.js"
import { emaBeta } from "../domain/optim/Ema.js"
import { denoisingLoss } from "../domain/edm/DenoisingLoss.js"
import { type GeneratorLoss, type GeneratorLossInput, nonFiniteRows } from "../domain/sid/SidLoss.js"
import type { ApplyOptions } from "../domain/nn/Network.js"
import { FAKE_GRADIENT_CLIP, sidaFakeScoreLoss, sidaGeneratorLoss, sidaPhase, type SidaSchedule } from "../domain/sid/SidaLoss.js"
import { broadcastPerSample } from "../domain/nn/Tensors.js"
import type { DataFreeSamplerShape, Draws } from "../services/DataFreeSampler.js"
import type { FakeScoreShape } from "../services/FakeScore.js"
import type { GenerateOptions, GeneratorShape } from "../services/Generator.js"
import type { RealDataShape } from "../services/RealData.js"
import type { TeacherShape } from "../services/Teacher.js"
import {
  type ApplyGradientsOptions,
  applyGradientsReads,
  type StepStatistics,
  type TrainableWeights
} from "../services/TrainableWeights.js"
import { cacheOnHost, type HostValues, read, type Reads, runAsync, runSync } from "./HostReads.js"

/**
 * The services an iteration works on.
 *
 * @since 0.1.0
 * @category models
 */
export interface IterationServices {
  readonly teacher: TeacherShape
  readonly generator: GeneratorShape
  readonly fakeScore: FakeScoreShape
  readonly sampler: DataFreeSamplerShape
  /** The generator loss (SiD by default, docs/algorithm.md §8.1). */
  readonly loss: GeneratorLoss
  /** Real images for SiDA's discriminator (docs/algorithm.md §13); needed only when `IterationSettings.adversarial` is set. */
  readonly realData?: RealDataShape
}

/**
 * SiDA's settings of an iteration (docs/algorithm.md §13; docs/sida.md).
 *
 * @since 0.1.0
 * @category models
 */
export interface AdversarialSettings {
  /** lsd: multiplier of the discriminator loss in the fake step. */
  readonly discriminatorScale: number
  /** lsg_gan: multiplier of the generator's adversarial term. */
  readonly generatorScale: number
  /** When G starts to update and when its adversarial term starts. */
  readonly schedule: SidaSchedule
  /** The SiD normaliser w in the adversarial term (the run's `normalizer`); default true. */
  readonly normalize?: boolean
}

/**
 * The hyper-parameters an iteration needs (the generator loss carries its own: α, scale, normaliser).
 *
 * @since 0.1.0
 * @category models
 */
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
   * Train-mode dropout rate in [0, 1) of ψ in the fake step and G in the generator step (docs/algorithm.md §9.1–9.2); absent or 0:
   * evaluation mode throughout. Needs a sampler that draws dropout seeds.
   */
  readonly dropout?: number
  /**
   * EDM's augmentation of the fake step's images (docs/algorithm.md §13.4; docs/sida.md §2), p > 0; absent: none. Needs a sampler
   * with augmentation (its `augmentation` draws); labels reach ψ when its network takes them (`augmentDim` > 0).
   */
  readonly augment?: AugmentSettings
  /** SiDA (docs/algorithm.md §13): the fake score doubles as a discriminator on real images; absent: plain SiD. */
  readonly adversarial?: AdversarialSettings
}

/**
 * The train-mode options of a step (docs/algorithm.md §9.1): dropout at the settings' rate with the step's seed, or none. Throws
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

/**
 * Summary statistics of a batch of σ (reports and the run log carry it).
 *
 * @since 0.1.0
 * @category models
 */
export const SigmaSummary = Schema.Struct({ min: Schema.Number, median: Schema.Number, max: Schema.Number })
/**
 * @see {@link SigmaSummary}
 *
 * @since 0.1.0
 * @category models
 */
export type SigmaSummary = typeof SigmaSummary.Type

/**
 * What one iteration measured.
 *
 * @since 0.1.0
 * @category models
 */
export interface IterationResult {
  readonly fakeLoss: number
  readonly generatorLoss: number
  readonly fakeGrad: StepStatistics
  readonly generatorGrad: StepStatistics
  readonly fakeSigma: SigmaSummary
  readonly generatorSigma: SigmaSummary
  /**
   * Rows removed from the generator step because x_g, y_r, y_f or the row's loss was not finite (NaN or ±Inf); equal
   * to the batch size when the generator update was skipped.
   */
  readonly droppedRows: number
  readonly emaBeta: number
  /** SiDA: the discriminator part of the fake loss (lsd included). */
  readonly discriminatorLoss?: number
  /** SiDA: the weighted adversarial part of the generator loss (0 before its start). */
  readonly adversarialLoss?: number
  /** SiDA: G was still warming up (frozen): its step's draws were taken but no update was computed. */
  readonly generatorFrozen?: boolean
}

const summarise = (sigma: ArrayLike<number>): SigmaSummary => {
  const v = Float64Array.from(sigma).sort()
  return { min: v[0] ?? NaN, median: v[Math.floor(v.length / 2)] ?? NaN, max: v[v.length - 1] ?? NaN }
}

/** A step's result whose host values are still on the engine: the tensors to read (owned), and what they make. */
interface Deferred<A> {
  readonly tensors: ReadonlyArray<tf.Tensor>
  readonly finish: (values: HostValues) => A
}

const now = <A>(value: A): Deferred<A> => ({ tensors: [], finish: () => value })

/** Reads two deferred results in one request and disposes their tensors. */
function* settle<A, B>(a: Deferred<A>, b: Deferred<B>): Reads<readonly [A, B]> {
  try {
    const values = yield* read([...a.tensors, ...b.tensors])
    return [a.finish(values.slice(0, a.tensors.length)), b.finish(values.slice(a.tensors.length))] as const
  } finally {
    tf.dispose([...a.tensors, ...b.tensors])
  }
}

function* settleOne<A>(steps: Reads<Deferred<A>>): Reads<A> {
  const d = yield* steps
  return (yield* settle(d, now(undefined)))[0]
}

/**
 * Applies `grads` (keyed by variable name) to `weights`, measuring the step's statistics on the engine for a later read
 * (`gradientStatistics` over the same gradients in the same order, as `applyGradients` itself measures them).
 * Host-optimiser weights measure while they read each gradient, so theirs are known at once.
 */
function* applyDeferred(
  weights: TrainableWeights,
  grads: tf.NamedTensorMap,
  options: ApplyGradientsOptions
): Reads<Deferred<StepStatistics>> {
  return yield* applyGradientsReads(weights, grads, options)
}

const drawnTensors = (d: Draws): Array<tf.Tensor> => [
  d.z,
  d.sigma,
  d.noise,
  ...(d.labels === undefined ? [] : [d.labels]),
  ...(d.renoise ?? [])
]

/**
 * G's options for a step's draws: the train mode, and the draws' re-noise for a few-step generator (docs/few-step.md).
 * Throws when G takes k > 1 steps but the sampler drew no re-noise (the run's streams must supply it).
 */
const generation = (s: IterationServices, draws: Draws, train: ApplyOptions | undefined): GenerateOptions | undefined => {
  const steps = s.generator.steps ?? 1
  if (steps === 1) return train
  if (draws.renoise === undefined) {
    throw new Error(
      `a ${steps}-step generator needs a sampler that draws its re-noise (DataFreeSampler option \`generatorSteps: ${steps}\`)`
    )
  }
  return { ...train, renoise: draws.renoise }
}

/** Images augmented for ψ (docs/algorithm.md §13.4): the augmented batch and ψ's options with its labels when ψ takes them. */
interface AugmentedInput {
  readonly images: tf.Tensor
  readonly options: ApplyOptions | undefined
}

/**
 * The fake step's view of a batch (docs/algorithm.md §13.4): augmented with the sampler's next parameters when augmentation is on
 * (labels passed to ψ when its network takes them, docs/algorithm.md §15, item 11), else the batch itself. New tensors.
 */
const augmentedInput = (
  s: IterationServices,
  settings: IterationSettings,
  images: tf.Tensor,
  train: ApplyOptions | undefined
): AugmentedInput => {
  if (settings.augment === undefined) return { images: tf.clone(images), options: train }
  if (s.sampler.augmentation === undefined) {
    throw new Error("augmentation needs a sampler that draws augmentation parameters (DataFreeSampler option `augment`)")
  }
  const params = s.sampler.augmentation(images.shape[0] ?? 0)
  const out = augment(images, params, settings.augment)
  if ((s.fakeScore.network.augmentDim ?? 0) === 0) {
    out.labels.dispose()
    return { images: out.images, options: train }
  }
  return { images: out.images, options: { ...train, augmentLabels: out.labels } }
}

const disposeInput = (input: AugmentedInput): void => {
  input.images.dispose()
  input.options?.augmentLabels?.dispose()
}

/** Train-mode options of ψ's second pass in a SiDA fake step (the real images): its own dropout masks. */
const secondPass = (train: ApplyOptions | undefined): ApplyOptions | undefined =>
  train?.dropout === undefined ? train : { ...train, dropout: { ...train.dropout, seed: (train.dropout.seed + 0x9e3779b9) >>> 0 } }

/**
 * What a fake-score update measured.
 *
 * @since 0.1.0
 * @category models
 */
export interface FakeUpdateResult {
  /** The whole loss ψ descended (DSM, plus the discriminator term under SiDA). */
  readonly loss: number
  readonly stats: StepStatistics
  readonly sigma: SigmaSummary
  /** SiDA: the discriminator term (lsd included). */
  readonly discriminatorLoss?: number
}

/**
 * The fake-score update (docs/algorithm.md §7): ψ (in train mode when dropout is on) learns to denoise detached generator samples,
 * made by G in evaluation mode, at log-normal σ; augmented by EDM's pipe when `settings.augment` is set. Under SiDA
 * (`settings.adversarial`, docs/algorithm.md §13) ψ also learns to tell real images (the real-data service's rows the sampler
 * draws, augmented independently) from the generator's, at the same σ and noise: the discriminator term is added to the
 * DSM loss, and ψ's gradients are clipped by value at 1 after sanitisation. Real images reach only ψ.
 *
 * @since 0.1.0
 * @category utils
 */
export const fakeScoreUpdate = (s: IterationServices, settings: IterationSettings): FakeUpdateResult =>
  runSync(settleOne(fakeScoreStep(s, settings)))

/** {@link fakeScoreUpdate} with its host reads deferred. */
function* fakeScoreStep(s: IterationServices, settings: IterationSettings): Reads<Deferred<FakeUpdateResult>> {
  const n = settings.batchSize
  const draws = s.sampler.fakeStep(n)
  const train = trainMode(settings, draws)
  const adversarial = settings.adversarial
  const owned: Array<tf.Tensor> = [...drawnTensors(draws)]
  const inputs: Array<AugmentedInput> = []
  try {
    const real = adversarial === undefined ? undefined : realRows(s, n)
    if (real !== undefined) owned.push(real.images, ...(real.labels === undefined ? [] : [real.labels]))
    const xg = tf.tidy(() => s.generator.generate(draws.z, "live", draws.labels, generation(s, draws, undefined)))
    owned.push(xg)
    const fake = augmentedInput(s, settings, xg, train)
    inputs.push(fake)
    const realInput = real === undefined ? undefined : augmentedInput(s, settings, real.images, secondPass(train))
    if (realInput !== undefined) inputs.push(realInput)
    let discriminator: tf.Scalar | undefined
    const { grads, value } = tf.tidy(() => {
      const noise = tf.mul(draws.noise, broadcastPerSample(draws.sigma, fake.images))
      return tf.variableGrads(() => {
        const xt = tf.add(fake.images, noise)
        if (adversarial === undefined || realInput === undefined) {
          return denoisingLoss({
            y: fake.images,
            yHat: s.fakeScore.denoise(xt, draws.sigma, draws.labels, fake.options),
            sigma: draws.sigma,
            lossScale: settings.fakeLossScale,
            sigmaData: s.fakeScore.sigmaData
          }).loss
        }
        const { denoiseWithLogits, logits } = s.fakeScore
        if (denoiseWithLogits === undefined || logits === undefined) {
          throw new Error(`SiDA needs a fake score with discriminator logits (network kind "${s.fakeScore.network.description.kind}")`)
        }
        const pass = denoiseWithLogits(xt, draws.sigma, draws.labels, fake.options)
        const r = sidaFakeScoreLoss({
          y: fake.images,
          yHat: pass.denoised,
          fakeLogits: pass.logits,
          realLogits: logits(tf.add(realInput.images, noise), draws.sigma, real?.labels, realInput.options),
          sigma: draws.sigma,
          lossScale: settings.fakeLossScale,
          discriminatorScale: adversarial.discriminatorScale,
          batchSize: n,
          sigmaData: s.fakeScore.sigmaData
        })
        discriminator = tf.keep(r.discriminator)
        return r.loss
      }, [...s.fakeScore.weights.list])
    })
    let stats: Deferred<StepStatistics>
    try {
      stats = yield* applyDeferred(s.fakeScore.weights, grads, adversarial === undefined ? {} : { clipValue: FAKE_GRADIENT_CLIP })
    } catch (error) {
      tf.dispose([value, ...(discriminator === undefined ? [] : [discriminator])])
      throw error
    } finally {
      tf.dispose(Object.values(grads))
    }
    const own = [value, draws.sigma.clone(), ...(discriminator === undefined ? [] : [discriminator])]
    return {
      tensors: [...own, ...stats.tensors],
      finish: (v) => ({
        loss: v[0]![0]!,
        stats: stats.finish(v.slice(own.length)),
        sigma: summarise(v[1]!),
        ...(discriminator === undefined ? {} : { discriminatorLoss: v[2]![0]! })
      })
    }
  } finally {
    inputs.forEach(disposeInput)
    tf.dispose(owned)
  }
}

/** SiDA's real batch: rows drawn by the sampler's `real` stream, with one-hot labels for a conditional ψ. */
const realRows = (s: IterationServices, n: number) => {
  const real = s.realData
  if (real === undefined) throw new Error("SiDA needs real images: provide the RealData service (config `data`)")
  if (s.sampler.realIndices === undefined) {
    throw new Error("SiDA needs a sampler that draws real-data rows (DataFreeSampler option `realData`)")
  }
  return real.rows(s.sampler.realIndices(n, real.size), { labels: s.fakeScore.network.labelDim > 0 })
}

/**
 * What a generator update measured.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneratorUpdateResult {
  /** The loss of the rows kept (dropped rows count in its divisor, docs/algorithm.md §8.1); 0 when every row was dropped. */
  readonly loss: number
  /** Statistics of the optimiser step; gradNorm and nonFinite 0 when every row was dropped and no step was taken. */
  readonly stats: StepStatistics
  /** σ of the whole batch as drawn. */
  readonly sigma: SigmaSummary
  /**
   * Rows removed from the step because x_g, y_r, y_f or the row's loss was not finite (see {@link generatorUpdate});
   * equal to the batch size when the update was skipped.
   */
  readonly dropped: number
  /** SiDA: the weighted adversarial part of the loss, when the objective read the fake logits. */
  readonly adversarialLoss?: number
  /** SiDA: G was frozen (warm-up); nothing was computed. */
  readonly frozen?: boolean
}

/** Some rows of a generator step's draws (all of them, or the kept rows), with their train-mode options. */
interface StepRows {
  readonly draws: Draws
  readonly train: ApplyOptions | undefined
}

/** What a completed generator pass hands back: ∂L/∂θ, L, and SiDA's adversarial part of L. New tensors. */
interface PassResult {
  readonly grads: tf.NamedTensorMap
  readonly value: tf.Scalar
  readonly adversarial?: tf.Scalar
}

/** A generator pass whose non-finite rows are known before it is completed. */
interface PendingPass {
  /** bool [rows]: true where the row is not finite (`nonFiniteRows`); the caller reads and disposes it. */
  readonly bad: tf.Tensor1D
  /** Completes the pass: the loss and ∂L/∂θ, new tensors the caller owns. */
  readonly finish: () => PassResult
  /** Releases the pass without completing it. */
  readonly discard: () => void
}

/**
 * What the generator minimises in a step: a generator loss, and whether it reads the fake score's discriminator
 * logits at x_t (SiDA's adversarial phase, docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneratorObjective {
  readonly loss: GeneratorLoss
  readonly logits: boolean
}

/** The generator loss at x_g (docs/algorithm.md §8.1): x_t = x_g + σ·ε, then the teacher and the fake score at x_t. */
const generatorLossAt = (s: IterationServices, objective: GeneratorObjective, draws: Draws, xg: tf.Tensor, batchSize: number) => {
  const xt = tf.add(xg, tf.mul(draws.noise, broadcastPerSample(draws.sigma, xg)))
  const yReal = s.teacher.denoise(xt, draws.sigma, draws.labels)
  let input: GeneratorLossInput
  if (objective.logits) {
    if (s.fakeScore.denoiseWithLogits === undefined) throw new Error("the adversarial term needs a fake score with discriminator logits")
    const f = s.fakeScore.denoiseWithLogits(xt, draws.sigma, draws.labels)
    input = { xg, yReal, yFake: f.denoised, fakeLogits: f.logits, batchSize }
  } else {
    input = { xg, yReal, yFake: s.fakeScore.denoise(xt, draws.sigma, draws.labels), batchSize }
  }
  const result = objective.loss.compute(input)
  const adversarial = result.terms?.["adversarial"]
  return {
    loss: result.loss,
    bad: tf.keep(nonFiniteRows(input, result)),
    ...(adversarial === undefined ? {} : { adversarial: tf.keep(adversarial.clone()) })
  }
}

type Pass = (s: IterationServices, objective: GeneratorObjective, rows: StepRows, batchSize: number) => PendingPass

/** The fused pass: one tape through G, the teacher and the fake score. */
const fusedPass: Pass = (s, objective, rows, batchSize) => {
  let bad: tf.Tensor1D | undefined
  let adversarial: tf.Scalar | undefined
  const { grads, value } = tf.tidy(() =>
    tf.variableGrads(() => {
      const xg = s.generator.generate(rows.draws.z, "live", rows.draws.labels, generation(s, rows.draws, rows.train))
      const r = generatorLossAt(s, objective, rows.draws, xg, batchSize)
      bad = r.bad
      adversarial = r.adversarial
      return r.loss
    }, [...s.generator.weights.list])
  )
  return {
    bad: bad!,
    finish: () => ({ grads, value, ...(adversarial === undefined ? {} : { adversarial }) }),
    discard: () => tf.dispose([value, ...Object.values(grads), ...(adversarial === undefined ? [] : [adversarial])])
  }
}

/**
 * The two-stage pass: stage 1 (∂L/∂x_g through the teacher and the fake score, x_g from a forward of G without a
 * tape) runs at once; stage 2 (G's vector-Jacobian product) only when the pass is completed.
 */
const twoStagePass: Pass = (s, objective, rows, batchSize) => {
  const { draws, train } = rows
  const xg = tf.tidy(() => s.generator.generate(draws.z, "live", draws.labels, generation(s, draws, train)))
  let bad: tf.Tensor1D | undefined
  let adversarial: tf.Scalar | undefined
  const { value, grad } = tf.tidy(() =>
    tf.valueAndGrad((x: tf.Tensor) => {
      const r = generatorLossAt(s, objective, draws, x, batchSize)
      bad = r.bad
      adversarial = r.adversarial
      return r.loss
    })(xg)
  )
  tf.dispose(xg)
  return {
    bad: bad!,
    finish: () => {
      const { grads, value: inner } = tf.tidy(() =>
        tf.variableGrads(
          () => tf.sum(tf.mul(s.generator.generate(draws.z, "live", draws.labels, generation(s, draws, train)), grad)) as tf.Scalar,
          [...s.generator.weights.list]
        )
      )
      tf.dispose([grad, inner])
      return { grads, value: value as tf.Scalar, ...(adversarial === undefined ? {} : { adversarial }) }
    },
    discard: () => tf.dispose([value, grad, ...(adversarial === undefined ? [] : [adversarial])])
  }
}

/** The rows `kept` (indices into the whole batch of `of` rows) of the draws, and the train mode for them. */
const keptRows = (draws: Draws, train: ApplyOptions | undefined, kept: ReadonlyArray<number>, of: number): StepRows => {
  const subset = tf.tidy(() => {
    const index = tf.tensor1d(Int32Array.from(kept), "int32")
    return {
      z: tf.gather(draws.z, index),
      sigma: tf.gather(draws.sigma, index) as tf.Tensor1D,
      noise: tf.gather(draws.noise, index),
      ...(draws.labels === undefined ? {} : { labels: tf.gather(draws.labels, index) as tf.Tensor2D }),
      ...(draws.renoise === undefined ? {} : { renoise: draws.renoise.map((e) => tf.gather(e, index)) })
    }
  })
  return {
    draws: subset,
    train: train?.dropout === undefined ? train : { ...train, dropout: { ...train.dropout, rows: { of, indices: kept } } }
  }
}

/**
 * A generator update with row isolation at ∂L/∂θ (beyond the reference, which drops NaN rows from the loss value
 * only, docs/algorithm.md §8.1): a pass over the whole batch; if any row is not finite (`nonFiniteRows`: a NaN or ±Inf in x_g, y_r,
 * y_f or the row's loss, read from the host in one read), the pass is discarded and redone on the rows still kept,
 * gathered from the same draws (z, σ, ε, labels; dropout masks as those rows had them in the whole batch) with the
 * divisor kept at the batch size, until a pass has no such row. The kept rows' contributions to L and ∂L/∂θ are then
 * those of the whole batch; no randomness is drawn beyond the step's draws, so the streams advance as without drops.
 * When every row is dropped, no optimiser step is taken (θ, its optimiser state and step count unchanged), and the
 * reported loss is 0.
 */
function* isolatedUpdate(
  s: IterationServices,
  settings: IterationSettings,
  pass: Pass,
  objective: GeneratorObjective
): Reads<Deferred<GeneratorUpdateResult>> {
  const n = settings.batchSize
  const draws = s.sampler.generatorStep(n)
  const train = trainMode(settings, draws)
  let kept: ReadonlyArray<number> = Array.from({ length: n }, (_, i) => i)
  let subset: StepRows | undefined
  let result: PassResult | undefined
  try {
    while (kept.length > 0 && result === undefined) {
      const pending = pass(s, objective, subset ?? { draws, train }, n)
      let bad: ArrayLike<number>
      try {
        bad = (yield* read([pending.bad]))[0]!
      } catch (error) {
        pending.discard()
        throw error
      } finally {
        pending.bad.dispose()
      }
      if (Array.from(bad).every((b) => b === 0)) {
        result = pending.finish()
      } else {
        pending.discard()
        kept = kept.filter((_, i) => bad[i] === 0)
        if (subset !== undefined) tf.dispose(drawnTensors(subset.draws))
        subset = kept.length > 0 ? keptRows(draws, train, kept, n) : undefined
      }
    }
  } catch (error) {
    tf.dispose(drawnTensors(draws))
    throw error
  } finally {
    if (subset !== undefined) tf.dispose(drawnTensors(subset.draws))
  }
  const sigma = draws.sigma.clone()
  tf.dispose(drawnTensors(draws))
  const dropped = n - kept.length
  if (result === undefined) {
    return {
      tensors: [sigma],
      finish: ([v]) => ({
        loss: 0,
        stats: { gradNorm: 0, nonFinite: 0 },
        sigma: summarise(v!),
        dropped,
        ...(objective.logits ? { adversarialLoss: 0 } : {})
      })
    }
  }
  const adversarial = result.adversarial
  let stats: Deferred<StepStatistics>
  try {
    stats = yield* applyDeferred(s.generator.weights, result.grads, {})
  } catch (error) {
    tf.dispose([sigma, result.value, ...(adversarial === undefined ? [] : [adversarial])])
    throw error
  } finally {
    tf.dispose(Object.values(result.grads))
  }
  const own = [result.value, sigma, ...(adversarial === undefined ? [] : [adversarial])]
  return {
    tensors: [...own, ...stats.tensors],
    finish: (v) => ({
      loss: v[0]![0]!,
      stats: stats.finish(v.slice(own.length)),
      sigma: summarise(v[1]!),
      dropped,
      ...(objective.logits ? { adversarialLoss: adversarial === undefined ? 0 : v[2]![0]! } : {})
    })
  }
}

/**
 * The generator's objective in an iteration that starts with `imagesSeen` images seen: the run's loss (SiD by
 * default); under SiDA (docs/algorithm.md §13) frozen while G warms up (undefined), then the run's loss alone, then
 * ½·loss + ½·adversarial term once that phase starts.
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorObjective = (
  s: IterationServices,
  settings: IterationSettings,
  imagesSeen: number
): GeneratorObjective | undefined => {
  const adversarial = settings.adversarial
  if (adversarial === undefined) return { loss: s.loss, logits: false }
  const phase = sidaPhase(imagesSeen, adversarial.schedule)
  if (!phase.updateGenerator) return undefined
  return {
    loss: sidaGeneratorLoss(s.loss, {
      lossScale: adversarial.generatorScale,
      sidWeight: phase.sidWeight,
      adversarialWeight: phase.adversarialWeight,
      ...(adversarial.normalize === undefined ? {} : { normalize: adversarial.normalize })
    }),
    logits: phase.adversarial
  }
}

/**
 * The generator update (docs/algorithm.md §8.1): the generator loss (SiD by default, or `objective`) at x_t = G_θ(z) + σ·ε with σ
 * from the ρ-map; the gradient flows through the teacher and the fake score into x_t but only θ is updated. G runs in
 * train mode when dropout is on; the teacher and ψ in evaluation mode. One tape through all three networks. A row with
 * a NaN or ±Inf in x_g, y_r, y_f (or the fake logits) or its loss is removed from the step and the step recomputed
 * without it (divisor still the batch size), so it costs only its own contribution, not the whole update (the module
 * docs; `dropped` counts such rows). The first pass's backward over the whole batch is computed before its rows are
 * judged, and discarded when one is not finite.
 *
 * @since 0.1.0
 * @category utils
 */
export const generatorUpdate = (
  s: IterationServices,
  settings: IterationSettings,
  objective: GeneratorObjective = { loss: s.loss, logits: false }
): GeneratorUpdateResult => runSync(settleOne(isolatedUpdate(s, settings, fusedPass, objective)))

/**
 * The generator update of {@link generatorUpdate} (docs/algorithm.md §8.1) with its backward pass in two stages: (1) x_g = G_θ(z)
 * without a tape, then g = ∂L/∂x_g through the teacher and the fake score; (2) ∂L/∂θ = ∂⟨G_θ(z), g⟩/∂θ, the
 * vector-Jacobian product of G at z, from a second forward of G_θ with the same inputs (and the same dropout masks),
 * so it is the same x_g. The chain rule makes the gradient the fused one's (up to float32 summation order); only one
 * network's tape is alive at a time instead of three, for one more forward of G. Non-finite rows are removed as in
 * {@link generatorUpdate}, judged after stage 1, so a batch with such a row skips the whole-batch stage 2.
 * @since 0.1.0
 * @category utils
 */
export const generatorUpdateTwoStage = (
  s: IterationServices,
  settings: IterationSettings,
  objective: GeneratorObjective = { loss: s.loss, logits: false }
): GeneratorUpdateResult => runSync(settleOne(isolatedUpdate(s, settings, twoStagePass, objective)))

/**
 * A generator step while G is frozen (SiDA's warm-up, docs/algorithm.md §13): the step's draws are taken, so every stream is
 * where it would be after an update, but nothing is computed and θ is unchanged.
 */
const frozenGeneratorStep = (s: IterationServices, settings: IterationSettings): Deferred<GeneratorUpdateResult> => {
  const draws = s.sampler.generatorStep(settings.batchSize)
  const sigma = draws.sigma.clone()
  tf.dispose(drawnTensors(draws))
  return {
    tensors: [sigma],
    finish: ([v]) => ({ loss: 0, stats: { gradNorm: 0, nonFinite: 0 }, sigma: summarise(v!), dropped: 0, frozen: true })
  }
}

/**
 * One full iteration (docs/algorithm.md §9.1): fake update, generator update, EMA with the ramp-up rule; under SiDA (docs/algorithm.md §13)
 * the discriminator term in the fake update, and G's warm-up and adversarial phase decided by `imagesSeen` (the
 * images seen before this iteration, cur_nimg).
 *
 * @since 0.1.0
 * @category utils
 */
export const iterate = (s: IterationServices, settings: IterationSettings, imagesSeen: number): IterationResult =>
  runSync(iteration(s, settings, imagesSeen))

/**
 * {@link iterate} with asynchronous host reads (one batched read at the end, and one per generator pass for its
 * non-finite rows): for engines that cannot read synchronously (`webgpu`). Run it uninterruptibly: it must not be
 * cut in half.
 *
 * @since 0.2.0
 * @category utils
 */
export const iterateAsync = (s: IterationServices, settings: IterationSettings, imagesSeen: number): Promise<IterationResult> =>
  runAsync(iteration(s, settings, imagesSeen))

function* iteration(s: IterationServices, settings: IterationSettings, imagesSeen: number): Reads<IterationResult> {
  const fakeStep = yield* fakeScoreStep(s, settings)
  let genStep: Deferred<GeneratorUpdateResult> | undefined
  let beta: number
  try {
    const objective = generatorObjective(s, settings, imagesSeen)
    genStep = objective === undefined
      ? frozenGeneratorStep(s, settings)
      : yield* isolatedUpdate(s, settings, settings.twoStageGenerator === true ? twoStagePass : fusedPass, objective)
    beta = emaBeta({ halfLifeKimg: settings.emaHalfLifeKimg, rampupRatio: settings.emaRampupRatio }, settings.batchSize, imagesSeen)
    if (s.generator.emaInHost === true) yield* cacheOnHost(s.generator.weights.list)
    s.generator.updateEma(beta)
  } catch (error) {
    tf.dispose([...fakeStep.tensors, ...(genStep?.tensors ?? [])])
    throw error
  }
  const [fake, gen] = yield* settle(fakeStep, genStep)
  return {
    fakeLoss: fake.loss,
    generatorLoss: gen.loss,
    fakeGrad: fake.stats,
    generatorGrad: gen.stats,
    fakeSigma: fake.sigma,
    generatorSigma: gen.sigma,
    droppedRows: gen.dropped,
    emaBeta: beta,
    ...(fake.discriminatorLoss === undefined ? {} : { discriminatorLoss: fake.discriminatorLoss }),
    ...(settings.adversarial === undefined ? {} : { adversarialLoss: gen.adversarialLoss ?? 0 }),
    ...(gen.frozen === true ? { generatorFrozen: true } : {})
  }
}
