/**
 * The SiD generator loss and its decomposition into the L¹ and L² terms.
 *
 * Maths: `docs/algorithm.md` §8.1 (the loss exactly as SiD's `generator_loss`), §8.2 (L¹ = ‖δ‖², L² = δᵀ(f_φ − x_g),
 * L̃ = L² − α·L¹), §14 (stop-gradient for w, NaN masking).
 *
 * The caller builds the inputs inside its gradient closure: x_g = G_θ(z), x_t = x_g + σ·ε, y_r = f_φ(x_t, σ),
 * y_f = f_ψ(x_t, σ). The gradient then flows through x_g, y_r and y_f; only the normaliser w is stop-gradient.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { stopGradient } from "../nn/StopGradient.js"
import { keepRows, nonBatchAxes, replaceNaN, rowMean, rowSum, select } from "../nn/Tensors.js"

/**
 * Inputs of {@link sidGeneratorLoss} (docs/algorithm.md §8.1). All tensors [N, ...] of one shape.
 *
 * @since 0.1.0
 * @category models
 */
export type SidLossInput = {
  /** Generator samples x_g = G_θ(σ_init·ε₀). */
  readonly xg: tf.Tensor
  /** Teacher prediction y_r = f_φ(x_t, σ). */
  readonly yReal: tf.Tensor
  /** Fake-score prediction y_f = f_ψ(x_t, σ). */
  readonly yFake: tf.Tensor
  /** α of L² − α·L¹ (docs/algorithm.md §8.1: CLI default 1.2; AFHQ uses 1.0). Default 1.2. */
  readonly alpha?: number
  /** Loss scaling `lsg` (docs/algorithm.md §8.1, `--lsg`); default 100. */
  readonly lossScale?: number
  /** Lower clip of the normaliser w (docs/algorithm.md §8.1); default 1e-5. */
  readonly wMin?: number
  /** Use the per-sample normaliser w (default true); false sets w = 1 (the ablation of docs/algorithm.md §12). */
  readonly normalize?: boolean
  /** Divisor of the row sum (docs/algorithm.md §8.1, batch_gpu_total); defaults to N, the number of rows. */
  readonly batchSize?: number
}

/**
 * Result of {@link sidGeneratorLoss} (docs/algorithm.md §8.1).
 *
 * @since 0.1.0
 * @category models
 */
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

type Prepared = {
  readonly xg: tf.Tensor
  readonly yr: tf.Tensor
  readonly yf: tf.Tensor
  readonly keep: tf.Tensor1D
  /** w shaped [N, 1, ..., 1] against the data. */
  readonly w: tf.Tensor
}

/** NaN-free inputs, the kept-row mask and the normaliser w of docs/algorithm.md §8.1 (call inside a tidy). */
const prepare = (input: GeneratorLossInput, options: GeneratorLossOptions): Prepared => {
  checkShapes(input.xg, input.yReal, input.yFake)
  const keep = keepRows(input.xg, input.yReal, input.yFake)
  const xg = replaceNaN(input.xg)
  const yr = replaceNaN(input.yReal)
  const yf = replaceNaN(input.yFake)
  const n = xg.shape[0] ?? 0
  const w1 = (options.normalize ?? true)
    ? tf.maximum(stopGradient(rowMean(tf.abs(tf.sub(xg, yr)))), options.wMin ?? 1e-5)
    : tf.ones([n])
  return { xg, yr, yf, keep, w: w1.reshape([n, ...Array.from({ length: xg.rank - 1 }, () => 1)]) }
}

/** Masks the per-row values and scales their sum (docs/algorithm.md §8.1: dropped rows count in the divisor). */
const finish = (input: GeneratorLossInput, options: GeneratorLossOptions, p: Prepared, raw: tf.Tensor1D): GeneratorLossResult => {
  const perRow = select(p.keep, raw, tf.zerosLike(raw)) as tf.Tensor1D
  const batchSize = input.batchSize ?? (input.xg.shape[0] ?? 0)
  const loss = perRow.sum().mul((options.lossScale ?? 100) / batchSize) as tf.Scalar
  return { loss, perRow, mask: p.keep.cast("float32") as tf.Tensor1D }
}

/**
 * The SiD generator loss exactly as docs/algorithm.md §8.1:
 * w = sg(mean_CHW |x_g − y_r|).clip(min = wMin); ℓ = (y_r − y_f) ⊙ ((y_r − x_g) − α(y_r − y_f)) / w;
 * L_θ = Σ_rows Σ_CHW ℓ · lossScale / batchSize, with rows where x_g, y_r or y_f has a NaN dropped (NaNs replaced by 0
 * through `tf.where` first) and the divisor kept at the full batch size. Differentiable in x_g, y_r and y_f; w is not.
 *
 * @since 0.1.0
 * @category utils
 */
export const sidGeneratorLoss = (input: SidLossInput): SidLossResult =>
  tf.tidy(() => {
    const p = prepare(input, input)
    const delta = tf.sub(p.yr, p.yf)
    const raw = rowSum(tf.mul(delta, tf.sub(tf.sub(p.yr, p.xg), tf.mul(delta, input.alpha ?? 1.2))).div(p.w))
    return { ...finish(input, input, p, raw), w: p.w.reshape([p.w.shape[0] ?? 0]) as tf.Tensor1D }
  })

/**
 * Per-row pieces of the SiD loss (docs/algorithm.md §8.2), without w or loss scaling; 0 on rows with a NaN.
 *
 * @since 0.1.0
 * @category models
 */
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
 * The decomposition of docs/algorithm.md §8.2 per row: L¹ = ‖δ‖², L² = δᵀ(f_φ − x_g) and δᵀ(f_ψ − x_g), with δ = f_φ − f_ψ. Then
 * L̃ = L² − α·L¹ = (1 − α)·L¹ + δᵀ(f_ψ − x_g) is the per-row loss of {@link sidGeneratorLoss} at w = 1, lossScale = 1.
 *
 * @since 0.1.0
 * @category utils
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
    const masked = (t: tf.Tensor1D) => select(keep, t, tf.zerosLike(t)) as tf.Tensor1D
    return {
      l1: masked(rowSum(tf.square(delta))),
      l2: masked(rowSum(tf.mul(delta, tf.sub(yr, xg)))),
      fakeCross: masked(rowSum(tf.mul(delta, tf.sub(yf, xg)))),
      mask: keep.cast("float32") as tf.Tensor1D
    }
  })

/*
 * Swappable generator losses: SiD (docs/algorithm.md §8.1), its two terms L¹ and L² (docs/algorithm.md §8.2) and the DMD / Diff-Instruct
 * direction (docs/algorithm.md §8.4), each a plain value `{ name, description, compute }`.
 *
 * Every variant takes the same inputs as {@link sidGeneratorLoss}: x_g = G_θ(z), y_r = f_φ(x_t, σ), y_f = f_ψ(x_t, σ),
 * built by the caller inside its gradient closure, and shares its conventions: per-sample normaliser
 * w = sg(mean_CHW |x_g − y_r|) clipped at wMin (or w = 1 when `normalize` is false), rows with a NaN in x_g, y_r or y_f
 * dropped (value and gradient 0, divisor kept), and L = Σ_rows perRow · lossScale / batchSize. That masking is the
 * reference's (docs/algorithm.md §8.1) and acts on the loss only: the networks' backward passes still carry 0·NaN from a dropped
 * row into ∂L/∂θ. {@link nonFiniteRows} names the rows a pipeline removes from the whole step to isolate them there.
 *
 * The SiD-style variants differentiate through y_r and y_f (the networks' input-Jacobians, docs/algorithm.md §8.3). The DMD variant
 * stop-gradients both, so its gradient with respect to x_g is (y_f − y_r)/w per element and nothing reaches the networks.
 *
 */
/**
 * Inputs of a {@link GeneratorLoss} (docs/algorithm.md §8.1): all tensors [N, ...] of one shape.
 *
 * @since 0.1.0
 * @category models
 */
export type GeneratorLossInput = {
  /** Generator samples x_g = G_θ(σ_init·ε₀). */
  readonly xg: tf.Tensor
  /** Teacher prediction y_r = f_φ(x_t, σ). */
  readonly yReal: tf.Tensor
  /** Fake-score prediction y_f = f_ψ(x_t, σ). */
  readonly yFake: tf.Tensor
  /** Divisor of the row sum (docs/algorithm.md §8.1, batch_gpu_total); defaults to N, the number of rows. */
  readonly batchSize?: number
  /**
   * SiDA's discriminator logits of the fake score at x_t, from the same pass as y_f (docs/algorithm.md §13); only losses with an
   * adversarial term read them.
   */
  readonly fakeLogits?: tf.Tensor
}

/**
 * Output of a {@link GeneratorLoss} (docs/algorithm.md §8.1).
 *
 * @since 0.1.0
 * @category models
 */
export type GeneratorLossResult = {
  /** Σ_rows perRow · lossScale / batchSize, a scalar to differentiate. */
  readonly loss: tf.Scalar
  /** The per-row loss (1/w included), 0 on dropped rows, [N]. */
  readonly perRow: tf.Tensor1D
  /** float32 [N]: 1 where the row is kept, 0 where x_g, y_r or y_f has a NaN. */
  readonly mask: tf.Tensor1D
  /** The weighted terms of a composite loss, by name, summing to `loss` (SiDA: `sid` and `adversarial`). */
  readonly terms?: Readonly<Record<string, tf.Scalar>>
}

/**
 * A generator loss as data plus a pure function (docs/algorithm.md §8.1, §8.2, §8.4), so that a pipeline can swap SiD for one of
 * its terms or for DMD. `compute` runs in its own `tf.tidy` and returns new tensors the caller owns.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneratorLoss {
  /** Short identifier: "sid", "l1", "l2" or "dmd". */
  readonly name: string
  /** One line saying what the loss is, with its settings. */
  readonly description: string
  readonly compute: (input: GeneratorLossInput) => GeneratorLossResult
}

/**
 * Settings shared by every variant (docs/algorithm.md §8.1).
 *
 * @since 0.1.0
 * @category models
 */
export type GeneratorLossOptions = {
  /** Loss scaling (docs/algorithm.md §8.1 `--lsg`); default 100. */
  readonly lossScale?: number
  /** Use the per-sample normaliser w (default true); false sets w = 1 (docs/algorithm.md §12 ablation). */
  readonly normalize?: boolean
  /** Lower clip of w (docs/algorithm.md §8.1); default 1e-5. */
  readonly wMin?: number
}

/**
 * Settings of {@link sidLoss} (docs/algorithm.md §8.1).
 *
 * @since 0.1.0
 * @category models
 */
export type SidLossOptions = GeneratorLossOptions & {
  /** α of L² − α·L¹ (docs/algorithm.md §8.1: 1.2 by default, 1.0 on AFHQv2). */
  readonly alpha: number
}

const settings = (options: GeneratorLossOptions): string =>
  `lossScale ${options.lossScale ?? 100}, ${(options.normalize ?? true) ? `w = sg(mean|x_g − y_r|) ∨ ${options.wMin ?? 1e-5}` : "w = 1"}`

/**
 * The rows of a generator step that must leave it entirely (row isolation at ∂L/∂θ, beyond the reference): boolean
 * [N], true where x_g, y_r, y_f (or SiDA's fake logits) has a NaN or ±Inf anywhere in the row, or where the row's
 * loss is not finite. The loss itself drops only NaN rows and only from its value (docs/algorithm.md §8.1); their gradient still
 * passes 0·NaN through the networks' backward passes into every parameter, so a pipeline recomputes the step without
 * these rows. Inside a gradient closure the result is off the loss's path and is not differentiated.
 *
 * @since 0.1.0
 * @category utils
 */
export const nonFiniteRows = (input: GeneratorLossInput, result: GeneratorLossResult): tf.Tensor1D =>
  tf.tidy(() => {
    const rowBad = (x: tf.Tensor): tf.Tensor => {
      const bad = tf.logicalNot(tf.isFinite(x))
      return x.rank <= 1 ? bad : tf.any(bad, nonBatchAxes(x.rank))
    }
    const inputs = [input.xg, input.yReal, input.yFake, result.perRow, ...(input.fakeLogits === undefined ? [] : [input.fakeLogits])]
    return inputs.map(rowBad).reduce((a, b) => tf.logicalOr(a, b)) as tf.Tensor1D
  })

/**
 * The SiD loss L̃ = L² − α·L¹ (docs/algorithm.md §8.1), delegating to {@link sidGeneratorLoss}: per row
 * Σ_CHW (y_r − y_f) ⊙ ((y_r − x_g) − α(y_r − y_f)) / w, gradient through x_g, y_r and y_f.
 *
 * @since 0.1.0
 * @category utils
 */
export const sidLoss = (options: SidLossOptions): GeneratorLoss => ({
  name: "sid",
  description: `SiD L² − α·L¹ (docs/algorithm.md §8.1), α ${options.alpha}, ${settings(options)}`,
  compute: (input) =>
    tf.tidy(() => {
      const r = sidGeneratorLoss({
        xg: input.xg,
        yReal: input.yReal,
        yFake: input.yFake,
        alpha: options.alpha,
        lossScale: options.lossScale ?? 100,
        normalize: options.normalize ?? true,
        wMin: options.wMin ?? 1e-5,
        ...(input.batchSize === undefined ? {} : { batchSize: input.batchSize })
      })
      return { loss: r.loss, perRow: r.perRow, mask: r.mask }
    })
})

/**
 * The L¹ term alone (docs/algorithm.md §8.2, the naive plug-in): per row ‖δ‖²/w = Σ_CHW (y_r − y_f)² / w, gradient through y_r and
 * y_f (the Jacobians of both networks). Same normaliser, NaN handling and scaling as {@link sidLoss}.
 *
 * @since 0.1.0
 * @category utils
 */
export const l1Loss = (options: GeneratorLossOptions = {}): GeneratorLoss => ({
  name: "l1",
  description: `L¹ = ‖f_φ − f_ψ‖² (docs/algorithm.md §8.2), ${settings(options)}`,
  compute: (input) =>
    tf.tidy(() => {
      const p = prepare(input, options)
      return finish(input, options, p, rowSum(tf.square(tf.sub(p.yr, p.yf)).div(p.w)))
    })
})

/**
 * The L² term alone (docs/algorithm.md §8.2): per row δᵀ(f_φ − x_g)/w = Σ_CHW (y_r − y_f)(y_r − x_g) / w, i.e. the SiD loss at α = 0.
 * Same normaliser, NaN handling and scaling as {@link sidLoss}.
 *
 * @since 0.1.0
 * @category utils
 */
export const l2Loss = (options: GeneratorLossOptions = {}): GeneratorLoss => ({
  name: "l2",
  description: `L² = (f_φ − f_ψ)ᵀ(f_φ − x_g) (docs/algorithm.md §8.2), ${settings(options)}`,
  compute: (input) =>
    tf.tidy(() => {
      const p = prepare(input, options)
      return finish(input, options, p, rowSum(tf.mul(tf.sub(p.yr, p.yf), tf.sub(p.yr, p.xg)).div(p.w)))
    })
})

/**
 * The DMD / Diff-Instruct generator loss (docs/algorithm.md §8.4): with g = sg((y_f − y_r)/w) per element, the per-row value is
 * DMD2's surrogate ½‖x_g − sg(x_g − g)‖² = ½‖g‖², and its gradient with respect to x_g is exactly g, with no gradient
 * to y_r or y_f (no network Jacobians). It is computed as ½‖g‖² + Σ_CHW (x_g − sg(x_g)) ⊙ g: the second term is exactly
 * 0 in value and carries the gradient g exactly in float32 (x_g − (x_g − g) would round). Rows with a NaN are dropped
 * like SiD's; L = Σ_rows perRow · lossScale / batchSize (DMD2 itself uses a mean over all elements, docs/algorithm.md §8.4).
 *
 * @since 0.1.0
 * @category utils
 */
export const dmdLoss = (options: GeneratorLossOptions = {}): GeneratorLoss => ({
  name: "dmd",
  description: `DMD / Diff-Instruct ½‖x_g − sg(x_g − (f_ψ − f_φ)/w)‖² (docs/algorithm.md §8.4), ${settings(options)}`,
  compute: (input) =>
    tf.tidy(() => {
      const p = prepare(input, options)
      const g = stopGradient(tf.sub(p.yf, p.yr).div(p.w))
      const carrier = tf.mul(tf.sub(p.xg, stopGradient(p.xg)), g)
      return finish(input, options, p, rowSum(tf.add(tf.mul(tf.square(g), 0.5), carrier)))
    })
})
