/**
 * The three identities SiD builds on, as evaluable per-sample terms (docs/algorithm.md §5):
 * (I1) Tweedie: D = x + σ²·∇ln p(x), ∇ln p(x) = (D − x)/σ² (EDM: a_t = 1);
 * (I2) score projection: E[u(x_t)ᵀ∇ln p_θ(x_t)] = E[u(x_t)ᵀ(x_g − x_t)/σ²];
 * (I3) denoiser form: E[u(x_t)ᵀ f*(x_t)] = E[u(x_t)ᵀ x_g],
 * with x_g ~ p_θ and x_t = x_g + σε. I2 and I3 hold in expectation: compare the per-sample lhs and rhs with
 * `MonteCarlo.pairedDifference`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { broadcastPerSample, rowDot, type SigmaLike } from "../nn/Tensors.js"

/**
 * Per-sample left- and right-hand sides of an identity in expectation, each [N] (docs/algorithm.md §5).
 *
 * @since 0.1.0
 * @category models
 */
export type IdentityTerms = {
  readonly lhs: tf.Tensor1D
  readonly rhs: tf.Tensor1D
}

/**
 * (I1) Tweedie, score → denoiser: D(x;σ) = x + σ²·∇ln p_σ(x) (docs/algorithm.md §5, §4). σ: number or [N].
 *
 * @since 0.1.0
 * @category utils
 */
export const tweedieDenoiser = (x: tf.Tensor, score: tf.Tensor, sigma: SigmaLike): tf.Tensor =>
  tf.tidy(() => tf.add(x, tf.mul(tf.square(broadcastPerSample(sigma, x)), score)))

/**
 * (I1) Tweedie, denoiser → score: ∇ln p_σ(x) = (D(x;σ) − x)/σ² (docs/algorithm.md §5, §4). σ: number or [N].
 *
 * @since 0.1.0
 * @category utils
 */
export const tweedieScore = (x: tf.Tensor, denoised: tf.Tensor, sigma: SigmaLike): tf.Tensor =>
  tf.tidy(() => tf.sub(denoised, x).div(tf.square(broadcastPerSample(sigma, x))))

/**
 * (I2) Score projection terms (docs/algorithm.md §5): lhs_i = u(x_t,i)ᵀ∇ln p_θ(x_t,i), rhs_i = u(x_t,i)ᵀ(x_g,i − x_t,i)/σ_i².
 * `u` is u evaluated at x_t, `score` the noised score of p_θ at x_t; all [N, ...]; σ a number or [N].
 *
 * @since 0.1.0
 * @category utils
 */
export const scoreProjectionTerms = (args: {
  readonly u: tf.Tensor
  readonly score: tf.Tensor
  readonly xg: tf.Tensor
  readonly xt: tf.Tensor
  readonly sigma: SigmaLike
}): IdentityTerms =>
  tf.tidy(() => ({
    lhs: rowDot(args.u, args.score),
    rhs: rowDot(args.u, tf.sub(args.xg, args.xt).div(tf.square(broadcastPerSample(args.sigma, args.xt))))
  }))

/**
 * (I3) Denoiser-form terms (docs/algorithm.md §5): lhs_i = u(x_t,i)ᵀ f*(x_t,i), rhs_i = u(x_t,i)ᵀ x_g,i, where f* = E_θ[x_g | x_t] is
 * the exact (fake) denoiser for p_θ evaluated at x_t. All [N, ...].
 *
 * @since 0.1.0
 * @category utils
 */
export const denoiserIdentityTerms = (args: {
  readonly u: tf.Tensor
  readonly denoised: tf.Tensor
  readonly xg: tf.Tensor
}): IdentityTerms =>
  tf.tidy(() => ({ lhs: rowDot(args.u, args.denoised), rhs: rowDot(args.u, args.xg) }))
