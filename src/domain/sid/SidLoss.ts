/**
 * The SiD generator loss and its decomposition into the L¹ and L² terms.
 *
 * Spec: `sid.md` §4.1 (the loss exactly as SiD's `generator_loss`), §4.2 (L¹ = ‖δ‖², L² = δᵀ(f_φ − x_g),
 * L̃ = L² − α·L¹), §11 (stop-gradient for w, NaN masking).
 *
 * The caller builds the inputs inside its gradient closure: x_g = G_θ(z), x_t = x_g + σ·ε, y_r = f_φ(x_t, σ),
 * y_f = f_ψ(x_t, σ). The gradient then flows through x_g, y_r and y_f; only the normaliser w is stop-gradient.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { stopGradient } from "../nn/StopGradient.js"
import { keepRows, replaceNaN, rowMean, rowSum } from "../nn/Tensors.js"

/** Inputs of {@link sidGeneratorLoss} (spec §4.1). All tensors [N, ...] of one shape. */
export type SidLossInput = {
  /** Generator samples x_g = G_θ(σ_init·ε₀). */
  readonly xg: tf.Tensor
  /** Teacher prediction y_r = f_φ(x_t, σ). */
  readonly yReal: tf.Tensor
  /** Fake-score prediction y_f = f_ψ(x_t, σ). */
  readonly yFake: tf.Tensor
  /** α of L² − α·L¹ (spec §4.1: CLI default 1.2; AFHQ uses 1.0). Default 1.2. */
  readonly alpha?: number
  /** Loss scaling `lsg` (spec §4.1, `--lsg`); default 100. */
  readonly lossScale?: number
  /** Lower clip of the normaliser w (spec §4.1); default 1e-5. */
  readonly wMin?: number
  /** Use the per-sample normaliser w (default true); false sets w = 1 (the ablation of spec §10.3). */
  readonly normalize?: boolean
  /** Divisor of the row sum (spec §4.1, batch_gpu_total); defaults to N, the number of rows. */
  readonly batchSize?: number
}

/** Result of {@link sidGeneratorLoss} (spec §4.1). */
export type SidLossResult = {
  /** L_θ = Σ_rows perRow · lossScale / batchSize. */
  readonly loss: tf.Scalar
  /** Σ_CHW ℓ per row (ℓ includes the 1/w factor), 0 on dropped rows, [N]. */
  readonly perRow: tf.Tensor1D
  /** The normaliser w = sg(mean_CHW |x_g − y_r|) clipped at wMin, [N] (all ones when normalize is false). */
  readonly w: tf.Tensor1D
  /** float32 [N]: 1 where the row is kept, 0 where x_g, y_r or y_f has a NaN (dropped). */
  readonly mask: tf.Tensor1D
}

const checkShapes = (xg: tf.Tensor, yReal: tf.Tensor, yFake: tf.Tensor): void => {
  if (xg.rank < 1 || !tf.util.arraysEqual(xg.shape, yReal.shape) || !tf.util.arraysEqual(xg.shape, yFake.shape)) {
    throw new Error(`xg, yReal and yFake must share a shape [N, ...]; got [${xg.shape}], [${yReal.shape}], [${yFake.shape}]`)
  }
}

/**
 * The SiD generator loss exactly as spec §4.1:
 * w = sg(mean_CHW |x_g − y_r|).clip(min = wMin); ℓ = (y_r − y_f) ⊙ ((y_r − x_g) − α(y_r − y_f)) / w;
 * L_θ = Σ_rows Σ_CHW ℓ · lossScale / batchSize, with rows where x_g, y_r or y_f has a NaN dropped (NaNs replaced by 0
 * through `tf.where` first) and the divisor kept at the full batch size. Differentiable in x_g, y_r and y_f; w is not.
 */
export const sidGeneratorLoss = (input: SidLossInput): SidLossResult =>
  tf.tidy(() => {
    checkShapes(input.xg, input.yReal, input.yFake)
    const alpha = input.alpha ?? 1.2
    const batchSize = input.batchSize ?? (input.xg.shape[0] ?? 0)
    const keep = keepRows(input.xg, input.yReal, input.yFake)
    const xg = replaceNaN(input.xg)
    const yr = replaceNaN(input.yReal)
    const yf = replaceNaN(input.yFake)
    const n = xg.shape[0] ?? 0
    const w = (input.normalize ?? true)
      ? tf.maximum(stopGradient(rowMean(tf.abs(tf.sub(xg, yr)))), input.wMin ?? 1e-5) as tf.Tensor1D
      : tf.ones([n]) as tf.Tensor1D
    const delta = tf.sub(yr, yf)
    const elem = tf.mul(delta, tf.sub(tf.sub(yr, xg), tf.mul(delta, alpha)))
    const raw = rowSum(elem).div(w)
    const perRow = tf.where(keep, raw, tf.zerosLike(raw)) as tf.Tensor1D
    const loss = perRow.sum().mul((input.lossScale ?? 100) / batchSize) as tf.Scalar
    return { loss, perRow, w, mask: keep.cast("float32") as tf.Tensor1D }
  })

/** Per-row pieces of the SiD loss (spec §4.2), without w or loss scaling; 0 on rows with a NaN. */
export type SidLossTerms = {
  /** L¹ term ‖δ‖² = Σ_CHW (y_r − y_f)², [N]. */
  readonly l1: tf.Tensor1D
  /** L² term δᵀ(f_φ − x_g) = Σ_CHW (y_r − y_f)(y_r − x_g), [N]. */
  readonly l2: tf.Tensor1D
  /** δᵀ(f_ψ − x_g) = Σ_CHW (y_r − y_f)(y_f − x_g), [N]; zero in expectation when f_ψ is exact for p_θ (I3). */
  readonly fakeCross: tf.Tensor1D
  /** float32 [N]: 1 where the row is kept, 0 where x_g, y_r or y_f has a NaN. */
  readonly mask: tf.Tensor1D
}

/**
 * The decomposition of spec §4.2 per row: L¹ = ‖δ‖², L² = δᵀ(f_φ − x_g) and δᵀ(f_ψ − x_g), with δ = f_φ − f_ψ. Then
 * L̃ = L² − α·L¹ = (1 − α)·L¹ + δᵀ(f_ψ − x_g) is the per-row loss of {@link sidGeneratorLoss} at w = 1, lossScale = 1.
 */
export const sidLossTerms = (input: {
  readonly xg: tf.Tensor
  readonly yReal: tf.Tensor
  readonly yFake: tf.Tensor
}): SidLossTerms =>
  tf.tidy(() => {
    checkShapes(input.xg, input.yReal, input.yFake)
    const keep = keepRows(input.xg, input.yReal, input.yFake)
    const xg = replaceNaN(input.xg)
    const yr = replaceNaN(input.yReal)
    const yf = replaceNaN(input.yFake)
    const delta = tf.sub(yr, yf)
    const masked = (t: tf.Tensor1D) => tf.where(keep, t, tf.zerosLike(t)) as tf.Tensor1D
    return {
      l1: masked(rowSum(tf.square(delta))),
      l2: masked(rowSum(tf.mul(delta, tf.sub(yr, xg)))),
      fakeCross: masked(rowSum(tf.mul(delta, tf.sub(yf, xg)))),
      mask: keep.cast("float32") as tf.Tensor1D
    }
  })
