/**
 * Small shared tensor helpers for the SiD math core: per-sample broadcasting of σ, per-row reductions over all
 * non-batch dimensions ("sums over CHW", docs/algorithm.md §1 notation) and NaN-row handling (docs/algorithm.md §7, §8.1, §14).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/**
 * A noise level: one number for the whole batch, or a per-sample tensor of shape [N] (a scalar tensor also works).
 * docs/algorithm.md §2.3: σ is one value per sample, reshaped to [N,1,...,1] against the data.
 *
 * @since 0.1.0
 * @category models
 */
export type SigmaLike = number | tf.Tensor

/**
 * The axes 1..rank−1 of a tensor of the given rank: the "CHW" axes of docs/algorithm.md §7 and §8.1.
 *
 * @since 0.1.0
 * @category utils
 */
export const nonBatchAxes = (rank: number): Array<number> => Array.from({ length: Math.max(rank - 1, 0) }, (_, i) => i + 1)

/**
 * Turns a σ (number, scalar tensor or per-sample [N] tensor) into a tensor that broadcasts against `like`
 * ([N, ...]): a scalar stays a scalar, a vector [N] becomes [N,1,...,1] (docs/algorithm.md §2.3, "σ reshaped to [N,1,1,1]").
 * Throws when a vector's length is neither 1 nor N.
 *
 * @since 0.1.0
 * @category utils
 */
export const broadcastPerSample = (sigma: SigmaLike, like: tf.Tensor): tf.Tensor =>
  tf.tidy(() => {
    if (typeof sigma === "number") return tf.scalar(sigma)
    if (sigma.rank === 0) return sigma.clone()
    if (sigma.rank !== 1) throw new Error(`per-sample value must be a number, a scalar or a [N] vector; got shape [${sigma.shape}]`)
    const n = sigma.shape[0] ?? 0
    const rows = like.rank === 0 ? 1 : (like.shape[0] ?? 0)
    if (n !== 1 && n !== rows) throw new Error(`per-sample value has length ${n} but the batch has ${rows} rows`)
    return sigma.reshape([n, ...Array.from({ length: Math.max(like.rank - 1, 0) }, () => 1)])
  })

/**
 * σ as a tensor: a number becomes a scalar tensor, a tensor is cloned (docs/algorithm.md §2.3).
 *
 * @since 0.1.0
 * @category utils
 */
export const sigmaTensor = (sigma: SigmaLike): tf.Tensor =>
  typeof sigma === "number" ? tf.scalar(sigma) : tf.tidy(() => sigma.clone())

/**
 * Per-row sum over all non-batch axes: [N, ...] → [N] ("Σ_CHW", docs/algorithm.md §7, §8.1). A [N] input is returned as a copy.
 *
 * @since 0.1.0
 * @category utils
 */
export const rowSum = (x: tf.Tensor): tf.Tensor1D =>
  tf.tidy(() => (x.rank <= 1 ? x.clone() : x.sum(nonBatchAxes(x.rank))) as tf.Tensor1D)

/**
 * Per-row mean over all non-batch axes: [N, ...] → [N] ("mean_CHW", docs/algorithm.md §8.1 normaliser w).
 *
 * @since 0.1.0
 * @category utils
 */
export const rowMean = (x: tf.Tensor): tf.Tensor1D =>
  tf.tidy(() => (x.rank <= 1 ? x.clone() : x.mean(nonBatchAxes(x.rank))) as tf.Tensor1D)

/**
 * Per-row dot product Σ_CHW a ⊙ b: two [N, ...] tensors → [N] (docs/algorithm.md §8.2, uᵀv per sample).
 *
 * @since 0.1.0
 * @category utils
 */
export const rowDot = (a: tf.Tensor, b: tf.Tensor): tf.Tensor1D => tf.tidy(() => rowSum(tf.mul(a, b)))

/**
 * Boolean [N]: true where the row contains any NaN (docs/algorithm.md §7 "drop rows where y or ŷ contain any NaN", §14). Not for use on
 * a tensor inside a gradient closure when the result feeds the loss: use {@link keepRows} there.
 *
 * @since 0.1.0
 * @category utils
 */
export const rowHasNaN = (x: tf.Tensor): tf.Tensor1D =>
  tf.tidy(() => (x.rank <= 1 ? tf.isNaN(x) : tf.isNaN(x).any(nonBatchAxes(x.rank))) as tf.Tensor1D)

const keepRowsOp = tf.customGrad((...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const xs = inputs.filter((x): x is tf.Tensor => x instanceof tf.Tensor)
  const value = xs.map(rowHasNaN).reduce((a, b) => tf.logicalOr(a, b))
  return { value: tf.logicalNot(value), gradFunc: () => xs.map((x) => tf.zerosLike(x)) }
})

/**
 * Boolean [N]: true where no input has a NaN anywhere in the row, i.e. the rows a loss keeps (docs/algorithm.md §7, §8.1, §14).
 * Safe inside a gradient closure: TF.js has no gradients for the boolean ops (`Any`, `LogicalOr`, `LogicalNot`), so the
 * mask is one tape node whose gradient to every input is zero.
 *
 * @since 0.1.0
 * @category utils
 */
export const keepRows = (...xs: ReadonlyArray<tf.Tensor>): tf.Tensor1D => {
  if (xs.length === 0) throw new Error("keepRows needs at least one tensor")
  return keepRowsOp(...xs) as tf.Tensor1D
}

/**
 * `tf.where(condition, a, b)` without the broadcast copies: for a bool condition and two operands of its shape and one
 * dtype it runs the `Select` kernel directly, where `tf.where` first dispatches an `Identity` kernel for each of the
 * three (docs/engines.md §3.6); other shapes go through `tf.where`. The same values and the same gradient (the
 * `Select` kernel's).
 *
 * @since 0.2.0
 * @category utils
 */
export const select = (condition: tf.Tensor, a: tf.Tensor, b: tf.Tensor): tf.Tensor =>
  condition.dtype === "bool" && a.dtype === b.dtype && tf.util.arraysEqual(condition.shape, a.shape) &&
    tf.util.arraysEqual(a.shape, b.shape)
    ? (tf.engine().runKernel("Select", { condition, t: a, e: b }, {}) as tf.Tensor)
    : tf.where(condition, a, b)

const replaceNaNOp = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
  const [input, save] = args as [tf.Tensor, tf.GradSaveFunc]
  const nan = tf.isNaN(input)
  save([nan])
  return {
    value: select(nan, tf.zerosLike(input), input),
    gradFunc: (dy: tf.Tensor | Array<tf.Tensor>, saved: Array<tf.Tensor>) => {
      const g = Array.isArray(dy) ? dy[0]! : dy
      return select(saved[0]!, tf.zerosLike(g), g)
    }
  }
})

/**
 * Replaces NaN entries by 0 through `tf.where`, so that a later multiply by a 0 mask gives 0 (NaN·0 = NaN; docs/algorithm.md §14).
 * The gradient to the replaced entries is 0; elsewhere it is the identity: one tape node whose gradient is a single
 * {@link select} on the saved NaN mask (the stock `where` and `zerosLike` gradients would dispatch about nine kernels for the
 * same values, docs/engines.md §3.6).
 *
 * @since 0.1.0
 * @category utils
 */
export const replaceNaN = (x: tf.Tensor): tf.Tensor => replaceNaNOp(x)
