/**
 * The fake-score layer: f_ψ initialised from the teacher's weights (spec §2: ψ ← φ); with SiDA's discriminator view
 * (spec §9.1) when the architecture has one.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import type { Optimizer } from "../domain/Optimizer.js"
import {
  type ApplyOptions,
  denoiseWith,
  denoiseWithLogits,
  discriminatorLogitsWith,
  hasDiscriminator
} from "../domain/Network.js"
import type { SigmaLike } from "../domain/Tensors.js"
import type { Engine } from "../services/Engine.js"
import { FakeScore } from "../services/FakeScore.js"
import { Teacher } from "../services/Teacher.js"
import { makeTrainableWeights } from "./TrainableWeights.js"

/** A fake score whose ψ starts as a copy of the teacher's weights; its variables are disposed on release. */
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
