/**
 * SiDA, adversarial Score identity Distillation (docs/algorithm.md §13; docs/sida.md): the fake score f_ψ doubles as a
 * discriminator whose logits are the channel mean of its encoder's bottleneck, trained on real images against the
 * generator's, and the generator gets a non-saturating GAN term beside the SiD loss. Pure loss functions and the
 * warm-up schedule; the pipeline (`pipeline/Iteration.ts`) composes them, and a user can compose them by hand.
 *
 * Conventions, as in the official code:
 * - BCE is `BCEWithLogitsLoss`: a mean over the batch (kept rows) and every logit position, so each term is one scalar
 *   per batch. BCE(l, 1) = softplus(−l), BCE(l, 0) = softplus(l).
 * - Discriminator: L_D = Σ_rows λ(σ_i)·(BCE(l_real, 1) + BCE(l_fake, 0))/2 · lsd / B, at the σ and noise of the DSM
 *   term, which it is added to before the one backward pass of the fake step.
 * - Generator: L_gan = Σ_rows C·H·W · BCE(clamp(l_fake(x_t), ±10), 1) / w_i · lsg_gan / B, with w the SiD normaliser;
 *   once the adversarial phase starts, the generator minimises ½·L_SiD + ½·L_gan, before it L_SiD alone.
 * - Schedule: G takes no optimiser step while the images seen before the iteration are ≤ its warm-up; the adversarial
 *   term is off while they are ≤ the GAN warm-up (official: 100 kimg and 200 kimg, compared with `>`). A warm-up of 0
 *   is no warm-up.
 * - ψ's gradients are clipped by value at 1 (after the NaN/Inf sanitisation) whenever SiDA is on.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SIGMA_DATA } from "../edm/Edm.js"
import { denoisingLoss } from "../edm/DenoisingLoss.js"
import type { GeneratorLoss, GeneratorLossInput, GeneratorLossResult } from "./SidLoss.js"
import { lossWeight } from "../edm/Preconditioning.js"
import { stopGradient } from "../nn/StopGradient.js"
import { keepRows, nonBatchAxes, replaceNaN, rowMean, select, type SigmaLike } from "../nn/Tensors.js"

/**
 * The clamp of the generator's logits before its BCE (official: `y_D.clamp(-10, 10)`).
 *
 * @since 0.2.0
 * @category constants
 */
export const LOGIT_CLAMP = 10

/**
 * ψ's gradient clip by value while SiDA is on (official: `clip_grad_value_(fake_score, 1)`).
 *
 * @since 0.2.0
 * @category constants
 */
export const FAKE_GRADIENT_CLIP = 1

/**
 * Binary cross-entropy with logits against a constant target, averaged over the kept rows and every logit position
 * (PyTorch's `BCEWithLogitsLoss` on those rows): BCE(l, 1) = softplus(−l), BCE(l, 0) = softplus(l). `keep` is bool [N]
 * (default: every row); NaN logits of dropped rows do not reach the value or the gradient. 0 when no row is kept.
 *
 * @since 0.2.0
 * @category utils
 */
export const bceWithLogits = (logits: tf.Tensor, target: 0 | 1, keep?: tf.Tensor1D): tf.Scalar =>
  tf.tidy(() => {
    const n = logits.shape[0] ?? 1
    const clean = replaceNaN(logits)
    const bce = tf.softplus(target === 1 ? tf.neg(clean) : clean)
    const perRow = logits.rank <= 1 ? bce : tf.mean(bce, nonBatchAxes(logits.rank))
    const kept = keep ?? (tf.ones([n], "bool") as tf.Tensor1D)
    const masked = select(kept, perRow, tf.zerosLike(perRow))
    return tf.div(tf.sum(masked), tf.maximum(tf.sum(tf.cast(kept, "float32")), 1)) as tf.Scalar
  })

/**
 * Inputs of {@link discriminatorLoss} (docs/algorithm.md §13).
 *
 * @since 0.2.0
 * @category models
 */
export interface DiscriminatorLossInput {
  /** f_ψ's logits on noised real images, [N, ...]. */
  readonly realLogits: tf.Tensor
  /** f_ψ's logits on noised generator samples, from the pass that gave ŷ, [N, ...]. */
  readonly fakeLogits: tf.Tensor
  /** The σ both were noised at, [N] (or one number). */
  readonly sigma: SigmaLike
  /** Rows kept (bool [N]); default: rows without a NaN in either logits. */
  readonly keep?: tf.Tensor1D
  /** lsd (official `--lsd`, default 1). */
  readonly lossScale?: number
  /** Divisor of the row sum (the batch size); default N. */
  readonly batchSize?: number
  readonly sigmaData?: number
}

/**
 * Result of {@link discriminatorLoss}.
 *
 * @since 0.2.0
 * @category models
 */
export interface DiscriminatorLossResult {
  /** Σ_kept λ(σ_i)·(bceReal + bceFake)/2 · lsd / B. */
  readonly loss: tf.Scalar
  /** BCE(l_real, 1) over the kept rows. */
  readonly bceReal: tf.Scalar
  /** BCE(l_fake, 0) over the kept rows. */
  readonly bceFake: tf.Scalar
}

/**
 * The discriminator loss of the shared fake score (docs/algorithm.md §13): λ(σ)-weighted mean of the real and fake BCE terms,
 * L_D = Σ_kept λ(σ_i)·(BCE(l_real, 1) + BCE(l_fake, 0))/2 · lsd / B.
 *
 * @since 0.2.0
 * @category utils
 */
export const discriminatorLoss = (input: DiscriminatorLossInput): DiscriminatorLossResult =>
  tf.tidy(() => {
    const n = input.realLogits.shape[0] ?? 1
    if ((input.fakeLogits.shape[0] ?? 1) !== n) {
      throw new Error(`real and fake logits need the same rows; got [${input.realLogits.shape}] and [${input.fakeLogits.shape}]`)
    }
    const keep = input.keep ?? keepRows(input.realLogits, input.fakeLogits)
    const bceReal = bceWithLogits(input.realLogits, 1, keep)
    const bceFake = bceWithLogits(input.fakeLogits, 0, keep)
    const sigmaData = input.sigmaData ?? SIGMA_DATA
    const weight = typeof input.sigma === "number"
      ? tf.fill([n], (input.sigma ** 2 + sigmaData ** 2) / (input.sigma * sigmaData) ** 2)
      : tf.broadcastTo(lossWeight(input.sigma.reshape([-1]), sigmaData), [n])
    const keptWeight = tf.sum(select(keep, weight, tf.zerosLike(weight)))
    const loss = tf.mul(keptWeight, tf.add(bceReal, bceFake).div(2)).mul((input.lossScale ?? 1) / (input.batchSize ?? n))
    return { loss: loss as tf.Scalar, bceReal, bceFake }
  })

/**
 * Inputs of {@link sidaFakeScoreLoss}: the DSM inputs of docs/algorithm.md §7 plus both logits.
 *
 * @since 0.2.0
 * @category models
 */
export interface SidaFakeScoreLossInput {
  /** Clean targets y = x_g (augmented when augmentation is on), detached. */
  readonly y: tf.Tensor
  /** ŷ = f_ψ(y + σ·ε), from the pass that gave `fakeLogits`. */
  readonly yHat: tf.Tensor
  readonly fakeLogits: tf.Tensor
  /** f_ψ's logits at real images noised with the same σ and ε. */
  readonly realLogits: tf.Tensor
  readonly sigma: SigmaLike
  /** ls (docs/algorithm.md §7). */
  readonly lossScale?: number
  /** lsd (docs/algorithm.md §13). */
  readonly discriminatorScale?: number
  readonly batchSize?: number
  readonly sigmaData?: number
}

/**
 * Result of {@link sidaFakeScoreLoss}.
 *
 * @since 0.2.0
 * @category models
 */
export interface SidaFakeScoreLossResult {
  /** DSM + discriminator: what ψ's one backward pass differentiates. */
  readonly loss: tf.Scalar
  readonly dsm: tf.Scalar
  readonly discriminator: tf.Scalar
  /** float32 [N]: 1 where the row is kept (no NaN in y, ŷ or either logits). */
  readonly mask: tf.Tensor1D
}

/**
 * The fake step's loss under SiDA (docs/algorithm.md §13): docs/algorithm.md §7's DSM loss plus {@link discriminatorLoss}, rows with a NaN in
 * y, ŷ or either logits dropped from both (divisor kept at the batch size). With lsd = 0 the discriminator term is 0
 * and its gradient vanishes, leaving the DSM gradient as in plain SiD.
 *
 * @since 0.2.0
 * @category utils
 */
export const sidaFakeScoreLoss = (input: SidaFakeScoreLossInput): SidaFakeScoreLossResult =>
  tf.tidy(() => {
    const keep = keepRows(input.y, input.yHat, input.fakeLogits, input.realLogits)
    const batchSize = input.batchSize ?? (input.y.shape[0] ?? 1)
    const dsm = denoisingLoss({
      y: input.y,
      yHat: input.yHat,
      sigma: input.sigma,
      keep,
      batchSize,
      ...(input.lossScale === undefined ? {} : { lossScale: input.lossScale }),
      ...(input.sigmaData === undefined ? {} : { sigmaData: input.sigmaData })
    })
    const d = discriminatorLoss({
      realLogits: input.realLogits,
      fakeLogits: input.fakeLogits,
      sigma: input.sigma,
      keep,
      lossScale: input.discriminatorScale ?? 1,
      batchSize,
      ...(input.sigmaData === undefined ? {} : { sigmaData: input.sigmaData })
    })
    return { loss: tf.add(dsm.loss, d.loss) as tf.Scalar, dsm: dsm.loss, discriminator: d.loss, mask: dsm.mask }
  })

/**
 * Inputs of {@link adversarialGeneratorLoss} (docs/algorithm.md §13).
 *
 * @since 0.2.0
 * @category models
 */
export interface AdversarialGeneratorLossInput {
  /** x_g = G_θ(z), with its graph. */
  readonly xg: tf.Tensor
  /** The teacher's y_r at x_t (for the normaliser w). */
  readonly yReal: tf.Tensor
  /** f_ψ's logits at x_t, from the pass that gave y_f. */
  readonly fakeLogits: tf.Tensor
  /** Rows kept (bool [N]); default: rows without a NaN in x_g, y_r or the logits. */
  readonly keep?: tf.Tensor1D
  /** lsg_gan (official `--lsg_gan`, default 0.01). */
  readonly lossScale?: number
  readonly batchSize?: number
  /** Use the SiD normaliser w (default true); false: w = 1. */
  readonly normalize?: boolean
  /** Lower clip of w; default 1e-5. */
  readonly wMin?: number
}

/**
 * The generator's adversarial term (docs/algorithm.md §13): per kept row C·H·W·BCE(clamp(l_fake, ±10), 1)/w_i, summed, × lsg_gan
 * / B. BCE is one scalar over the kept rows and positions; w = sg(mean|x_g − y_r|) ∨ wMin is the SiD normaliser. The
 * gradient reaches x_g through f_ψ's encoder (its parameters are not updated in this step) and none through w.
 *
 * @since 0.2.0
 * @category utils
 */
export const adversarialGeneratorLoss = (
  input: AdversarialGeneratorLossInput
): { readonly loss: tf.Scalar; readonly perRow: tf.Tensor1D } =>
  tf.tidy(() => {
    const n = input.xg.shape[0] ?? 1
    const keep = input.keep ?? keepRows(input.xg, input.yReal, input.fakeLogits)
    const elements = input.xg.size / n
    const bce = bceWithLogits(tf.clipByValue(replaceNaN(input.fakeLogits), -LOGIT_CLAMP, LOGIT_CLAMP), 1, keep)
    const w = (input.normalize ?? true)
      ? tf.maximum(stopGradient(rowMean(tf.abs(tf.sub(replaceNaN(input.xg), replaceNaN(input.yReal))))), input.wMin ?? 1e-5)
      : tf.ones([n])
    const raw = tf.div(tf.mul(bce, elements), w)
    const perRow = select(keep, raw, tf.zerosLike(raw)) as tf.Tensor1D
    const loss = tf.sum(perRow).mul((input.lossScale ?? 0.01) / (input.batchSize ?? n)) as tf.Scalar
    return { loss, perRow }
  })

/**
 * The warm-up schedule of SiDA (docs/algorithm.md §13), in images seen.
 *
 * @since 0.2.0
 * @category models
 */
export interface SidaSchedule {
  /** G takes no optimiser step while the images seen before the iteration are ≤ this (official 100,000); 0: none. */
  readonly generatorWarmupImages: number
  /** The adversarial term is off while the images seen are ≤ this (official 200,000); 0: on from the start. */
  readonly adversarialWarmupImages: number
}

/**
 * Where an iteration stands in the {@link SidaSchedule}.
 *
 * @since 0.2.0
 * @category models
 */
export interface SidaPhase {
  /** G takes an optimiser step in this iteration. */
  readonly updateGenerator: boolean
  /** The adversarial term is in G's loss. */
  readonly adversarial: boolean
  /** Weight of the SiD loss in G's objective: 1, then ½ once the adversarial term is on. */
  readonly sidWeight: number
  /** Weight of the adversarial term: 0, then ½. */
  readonly adversarialWeight: number
}

const past = (imagesSeen: number, warmup: number): boolean => warmup <= 0 || imagesSeen > warmup

/**
 * The phase of the iteration that starts with `imagesSeen` images seen (cur_nimg before the iteration).
 *
 * @since 0.2.0
 * @category utils
 */
export const sidaPhase = (imagesSeen: number, schedule: SidaSchedule): SidaPhase => {
  const adversarial = past(imagesSeen, schedule.adversarialWarmupImages)
  return {
    updateGenerator: past(imagesSeen, schedule.generatorWarmupImages),
    adversarial,
    sidWeight: adversarial ? 0.5 : 1,
    adversarialWeight: adversarial ? 0.5 : 0
  }
}

/**
 * Settings of {@link sidaGeneratorLoss}.
 *
 * @since 0.2.0
 * @category models
 */
export interface SidaGeneratorLossOptions {
  /** lsg_gan (default 0.01). */
  readonly lossScale?: number
  /** Weight of the base (SiD) loss (1 before the adversarial phase, ½ in it). */
  readonly sidWeight: number
  /** Weight of the adversarial term (0 before its phase, ½ in it); 0 ignores the logits. */
  readonly adversarialWeight: number
  readonly normalize?: boolean
  readonly wMin?: number
}

/**
 * A generator loss with SiDA's adversarial term (docs/algorithm.md §13): sidWeight·base + adversarialWeight·L_gan, where L_gan is
 * {@link adversarialGeneratorLoss} at the input's `fakeLogits` (required when adversarialWeight > 0). `terms` holds both
 * weighted parts; `perRow` the weighted sum of the two per-row values, each before its loss scale (for row isolation);
 * `mask` the rows both keep.
 *
 * @since 0.2.0
 * @category utils
 */
export const sidaGeneratorLoss = (base: GeneratorLoss, options: SidaGeneratorLossOptions): GeneratorLoss => ({
  name: `${base.name}+adversarial`,
  description: `${options.sidWeight}·[${base.description}] + ${options.adversarialWeight}·SiDA adversarial term ` +
    `(docs/algorithm.md §13), lsg_gan ${options.lossScale ?? 0.01}`,
  compute: (input: GeneratorLossInput): GeneratorLossResult =>
    tf.tidy(() => {
      const b = base.compute(input)
      const batchSize = input.batchSize ?? (input.xg.shape[0] ?? 1)
      const sid = tf.mul(b.loss, options.sidWeight) as tf.Scalar
      if (options.adversarialWeight === 0) {
        return { loss: sid, perRow: b.perRow, mask: b.mask, terms: { sid, adversarial: tf.scalar(0) } }
      }
      if (input.fakeLogits === undefined) throw new Error("the adversarial term needs the fake score's logits (fakeLogits)")
      const gan = adversarialGeneratorLoss({
        xg: input.xg,
        yReal: input.yReal,
        fakeLogits: input.fakeLogits,
        batchSize,
        ...(options.lossScale === undefined ? {} : { lossScale: options.lossScale }),
        ...(options.normalize === undefined ? {} : { normalize: options.normalize }),
        ...(options.wMin === undefined ? {} : { wMin: options.wMin })
      })
      const adversarial = tf.mul(gan.loss, options.adversarialWeight) as tf.Scalar
      const perRow = tf.add(tf.mul(b.perRow, options.sidWeight), tf.mul(gan.perRow, options.adversarialWeight)) as tf.Tensor1D
      const logitsKept = tf.cast(keepRows(input.fakeLogits), "float32")
      return {
        loss: tf.add(sid, adversarial) as tf.Scalar,
        perRow,
        mask: tf.mul(b.mask, logitsKept) as tf.Tensor1D,
        terms: { sid, adversarial }
      }
    })
})
