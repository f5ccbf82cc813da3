/**
 * Fitting a preconditioned denoiser D = c_skip·x + c_out·F in process, by EDM's loss (spec §1.4).
 *
 * Two targets: the clean sample x₀ (denoising score matching on samples — how real teachers are trained), or an
 * exact denoiser's value at x_σ (regression onto an analytic teacher, spec §10.3 step 1). σ is log-normal
 * (P_mean, P_std), the loss is λ(σ)‖D − target‖² (spec §1.4), the optimiser Adam(0.9, 0.999), and the returned weights
 * are an EMA of the iterates. The loop yields to the runtime between steps, so it is interruptible.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { P_MEAN, P_STD } from "../domain/Edm.js"
import { emaUpdate } from "../domain/Ema.js"
import { fakeScoreLoss } from "../domain/FakeScoreLoss.js"
import { denoiseWith, type Network } from "../domain/Network.js"
import { cloneParameters } from "../domain/Parameters.js"
import { adam } from "../domain/Optimizer.js"
import { makeStream, normals, type StreamState } from "../domain/RandomStream.js"
import { logNormalSigma } from "../domain/Schedule.js"
import { makeTrainableWeights } from "./TrainableWeights.js"

/** Settings of a denoiser fit. */
export interface DenoiserFitOptions {
  readonly network: Network
  readonly sigmaData: number
  readonly steps: number
  readonly batchSize: number
  readonly learningRate: number
  readonly seed: number
  /** EMA decay per step of the returned weights (default 0.999). */
  readonly emaDecay?: number
  /** Draws a batch of clean samples x₀ [batch, ...dataShape] from the stream given; returns the next stream state. */
  readonly sampleData: (stream: StreamState, batch: number) => { readonly x: tf.Tensor; readonly state: StreamState }
  /** When given, the regression target at (x_σ, σ) instead of x₀ (an exact denoiser). */
  readonly exactDenoiser?: (x: tf.Tensor, sigma: tf.Tensor1D) => tf.Tensor
  /** Called every `reportEvery` steps with the step and the loss. */
  readonly onProgress?: (step: number, loss: number) => void
  readonly reportEvery?: number
}

/** Fits the network and returns its EMA weights (tensors the caller owns). */
export const fitDenoiser = (options: DenoiserFitOptions): Effect.Effect<Record<string, tf.Tensor>> =>
  Effect.scoped(
    Effect.gen(function*() {
      const { network } = options
      const init = network.init(options.seed)
      const weights = yield* makeTrainableWeights(
        init,
        adam({ learningRate: options.learningRate, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 })
      )
      tf.dispose(Object.values(init))
      const ema = yield* Effect.acquireRelease(
        Effect.sync(() => cloneParameters(weights.variables)),
        (e) => Effect.sync(() => tf.dispose(Object.values(e)))
      )
      let data = makeStream(options.seed, "fit.data")
      let sigmaStream = makeStream(options.seed, "fit.sigma")
      let noiseStream = makeStream(options.seed, "fit.noise")
      const perSample = network.dataShape.reduce((a, b) => a * b, 1)
      const decay = options.emaDecay ?? 0.999
      for (let step = 0; step < options.steps; step++) {
        const loss = yield* Effect.sync(() => {
          const drawn = options.sampleData(data, options.batchSize)
          data = drawn.state
          const s = normals(sigmaStream, options.batchSize)
          sigmaStream = s.state
          const e = normals(noiseStream, options.batchSize * perSample)
          noiseStream = e.state
          const x0 = drawn.x
          const { grads, value } = tf.tidy(() => {
            const sigma = logNormalSigma(tf.tensor1d(s.values), { pMean: P_MEAN, pStd: P_STD }) as tf.Tensor1D
            const noise = tf.tensor(e.values, x0.shape)
            const xt = tf.add(x0, tf.mul(noise, sigma.reshape([-1, ...network.dataShape.map(() => 1)])))
            const target = options.exactDenoiser === undefined ? x0 : options.exactDenoiser(xt, sigma)
            return tf.variableGrads(
              () =>
                fakeScoreLoss({
                  y: target,
                  yHat: denoiseWith(network, weights.variables, xt, sigma, options.sigmaData),
                  sigma,
                  sigmaData: options.sigmaData
                }).loss,
              [...weights.list]
            )
          })
          weights.applyGradients(grads)
          const beta = Math.min(decay, (1 + step) / (10 + step))
          tf.tidy(() => {
            const next = emaUpdate(ema, weights.variables, beta)
            for (const [n, t] of Object.entries(ema)) {
              t.dispose()
              ema[n] = tf.keep(next[n]!)
            }
          })
          const lossValue = value.dataSync()[0]!
          tf.dispose([x0, value, ...Object.values(grads)])
          return lossValue
        })
        if (options.onProgress !== undefined && (step % (options.reportEvery ?? 100) === 0 || step === options.steps - 1)) {
          options.onProgress(step, loss)
        }
        yield* Effect.yieldNow()
      }
      return cloneParameters(ema)
    })
  )
