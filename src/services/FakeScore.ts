/**
 * The fake score f_ψ: a denoiser trained on the generator's samples, tracking E_θ[x_g | x_t] (docs/algorithm.md §7, §5).
 *
 * @module
 */
import { Context, Effect, Layer } from "effect"
import type { SigmaLike } from "../domain/nn/Tensors.js"
import * as tf from "@tensorflow/tfjs"
import type { Optimizer } from "../domain/optim/Optimizer.js"
import { type ApplyOptions, denoiseWith, denoiseWithLogits, discriminatorLogitsWith, hasDiscriminator, type Network } from "../domain/nn/Network.js"
import type { Engine } from "../engine/Engine.js"
import { Teacher } from "./Teacher.js"
import { makeTrainableWeights, type TrainableWeights } from "./TrainableWeights.js"

/**
 * What a fake score provides.
 *
 * @since 0.1.0
 * @category models
 */
export interface FakeScoreShape {
  /** The architecture (the teacher's, docs/algorithm.md §6). */
  readonly network: Network
  /** σ_data of the preconditioning. */
  readonly sigmaData: number
  /** ψ and its Adam state. */
  readonly weights: TrainableWeights
  /**
   * f_ψ(x; σ, c) with the current ψ (`labels` one-hot for a class-conditional network): differentiable in x and in ψ.
   * `options.dropout` runs it in train mode (docs/algorithm.md §9.1: the fake step only). Synchronous: call inside `tf.tidy` or a
   * gradient closure.
   */
  readonly denoise: (x: tf.Tensor, sigma: SigmaLike, labels?: tf.Tensor2D, options?: ApplyOptions) => tf.Tensor
  /**
   * SiDA (docs/algorithm.md §13): f_ψ(x; σ, c) as `denoise` computes it and the discriminator logits of the same pass (the channel
   * mean of the encoder's bottleneck). Present when the architecture has them (`Network.applyWithLogits`).
   */
  readonly denoiseWithLogits?: (
    x: tf.Tensor,
    sigma: SigmaLike,
    labels?: tf.Tensor2D,
    options?: ApplyOptions
  ) => { readonly denoised: tf.Tensor; readonly logits: tf.Tensor }
  /** SiDA (docs/algorithm.md §13): the discriminator logits alone (the encoder only), e.g. of noised real images. */
  readonly logits?: (x: tf.Tensor, sigma: SigmaLike, labels?: tf.Tensor2D, options?: ApplyOptions) => tf.Tensor
}

/**
 * The fake-score service.
 *
 * @since 0.1.0
 * @category tags
 */
export class FakeScore extends Context.Tag("sid-ts/FakeScore")<FakeScore, FakeScoreShape>() {}

/*
 * Layers.
 *
 * The fake-score layer: f_ψ initialised from the teacher's weights (docs/algorithm.md §6: ψ ← φ); with SiDA's discriminator view
 * (docs/algorithm.md §13) when the architecture has one.
 */

/**
 * A fake score whose ψ starts as a copy of the teacher's weights; its variables are disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: { readonly optimizer: Optimizer }): Layer.Layer<FakeScore, never, Teacher | Engine> =>
  Layer.scoped(
    FakeScore,
    Effect.gen(function*() {
      const teacher = yield* Teacher
      const { network, params } = teacher.weights
      const weights = yield* makeTrainableWeights(params, options.optimizer)
      return FakeScore.of({
        network,
        sigmaData: teacher.sigmaData,
        weights,
        denoise: (x, sigma, labels, options) =>
          tf.tidy(() => denoiseWith(network, weights.variables, x, sigma, teacher.sigmaData, labels, options)),
        ...(hasDiscriminator(network)
          ? {
            denoiseWithLogits: (x: tf.Tensor, sigma: SigmaLike, labels?: tf.Tensor2D, options?: ApplyOptions) =>
              tf.tidy(() => denoiseWithLogits(network, weights.variables, x, sigma, teacher.sigmaData, labels, options)),
            logits: (x: tf.Tensor, sigma: SigmaLike, labels?: tf.Tensor2D, options?: ApplyOptions) =>
              tf.tidy(() => discriminatorLogitsWith(network, weights.variables, x, sigma, teacher.sigmaData, labels, options))
          }
          : {})
      })
    })
  )
