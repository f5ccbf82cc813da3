/**
 * EDM's denoising loss (denoising score matching with the weight λ(σ)): what trains the fake score f_ψ on generator
 * samples, and a teacher on data.
 *
 * Maths: `docs/algorithm.md` §7 (SID_EDMLoss.__call__: per element λ(σ)(ŷ − y)², NaN rows dropped with the divisor kept,
 * Σ_rows Σ_CHW · ls / batch), §2.4 (λ(σ), λ·c_out² = 1), §14 (NaN masking with `tf.where`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { SIGMA_DATA } from "./Edm.js"
import { lossWeight } from "./Preconditioning.js"
import { broadcastPerSample, keepRows, replaceNaN, rowSum, select, type SigmaLike } from "../nn/Tensors.js"

/**
 * Inputs of {@link denoisingLoss} (docs/algorithm.md §7).
 *
 * @since 0.2.0
 * @category models
 */
export type DenoisingLossInput = {
  /** Clean targets y = x_g (detached by the caller), [N, ...]. */
  readonly y: tf.Tensor
  /** Fake-network predictions ŷ = f_ψ(y + σ·n, σ), [N, ...]. */
  readonly yHat: tf.Tensor
  /** Per-sample σ [N] (or one number for all rows). */
  readonly sigma: SigmaLike
  /** Loss scaling `ls` (docs/algorithm.md §7, `--ls`); default 1. */
  readonly lossScale?: number
  /** Divisor of the row sum (docs/algorithm.md §7, batch_gpu_total); defaults to N, the number of rows. */
  readonly batchSize?: number
  /** σ_d of λ(σ); default SIGMA_DATA. */
  readonly sigmaData?: number
  /**
   * The rows to keep (bool [N]), in place of the default (rows without a NaN in y or ŷ): the caller's mask must drop
   * those too. SiDA also drops rows whose logits have a NaN (docs/algorithm.md §13, `keepRows(y, ŷ, logits…)`). Inside a gradient
   * closure build it with `keepRows`, whose gradient is defined (zero).
   */
  readonly keep?: tf.Tensor1D
}

/**
 * Result of {@link denoisingLoss} (docs/algorithm.md §7).
 *
 * @since 0.2.0
 * @category models
 */
export type DenoisingLossResult = {
  /** Σ_rows perRow · lossScale / batchSize. */
  readonly loss: tf.Scalar
  /** Σ_CHW λ(σ)(ŷ − y)² per row, 0 on dropped rows, [N]. */
  readonly perRow: tf.Tensor1D
  /** float32 [N]: 1 where the row is kept, 0 where y or ŷ has a NaN (dropped). */
  readonly mask: tf.Tensor1D
}

/**
 * EDM denoising score-matching loss of the fake score, exactly as docs/algorithm.md §7: per element λ(σ)(ŷ − y)², summed over all
 * non-batch dims per row; rows where y or ŷ has any NaN are dropped (NaNs replaced by 0 through `tf.where` first), and
 * the sum over rows is multiplied by lossScale / batchSize, the divisor staying the full batch size.
 *
 * @since 0.2.0
 * @category utils
 */
export const denoisingLoss = (input: DenoisingLossInput): DenoisingLossResult =>
  tf.tidy(() => {
    const { y, yHat } = input
    if (y.rank < 1 || !tf.util.arraysEqual(y.shape, yHat.shape)) {
      throw new Error(`y and yHat must have the same shape [N, ...]; got [${y.shape}] and [${yHat.shape}]`)
    }
    const batchSize = input.batchSize ?? (y.shape[0] ?? 0)
    const keep = input.keep ?? keepRows(y, yHat)
    const weight = typeof input.sigma === "number"
      ? tf.scalar((input.sigma ** 2 + (input.sigmaData ?? SIGMA_DATA) ** 2) / (input.sigma * (input.sigmaData ?? SIGMA_DATA)) ** 2)
      : broadcastPerSample(lossWeight(input.sigma, input.sigmaData ?? SIGMA_DATA), y)
    const sq = tf.mul(weight, tf.squaredDifference(replaceNaN(yHat), replaceNaN(y)))
    const raw = rowSum(sq)
    const perRow = select(keep, raw, tf.zerosLike(raw)) as tf.Tensor1D
    const loss = perRow.sum().mul((input.lossScale ?? 1) / batchSize) as tf.Scalar
    return { loss, perRow, mask: keep.cast("float32") as tf.Tensor1D }
  })

/**
 * @deprecated since 0.2.0: {@link denoisingLoss}.
 * @since 0.1.0
 * @category utils
 */
export const fakeScoreLoss = denoisingLoss
