/**
 * Fitting a preconditioned denoiser D = c_skip·x + c_out·F in process, by EDM's loss (docs/algorithm.md §2.4).
 *
 * {@link denoiserStep} is one training step on a batch of clean samples: log-normal σ (P_mean, P_std), noise, the loss
 * λ(σ)‖D − target‖² (docs/algorithm.md §2.4), one optimiser update of the trainable weights and one EMA update. Its random numbers
 * come from explicit stream states that it returns advanced, so a caller that stores them resumes exactly. Both
 * {@link fitDenoiserScoped} (mixture teachers) and the MNIST teacher training stream are loops over it.
 *
 * Two targets: the clean sample x₀ (denoising score matching on samples — how real teachers are trained), or an
 * exact denoiser's value at x_σ (regression onto an analytic teacher, docs/algorithm.md §12.1).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, type Scope } from "effect"
import { P_MEAN, P_STD } from "../../domain/edm/Edm.js"
import { emaUpdate } from "../../domain/optim/Ema.js"
import { denoisingLoss } from "../../domain/edm/DenoisingLoss.js"
import { denoiseWith, type Network } from "../../domain/nn/Network.js"
import { adam } from "../../domain/optim/Optimizer.js"
import { cloneParameters } from "../../domain/nn/Parameters.js"
import { makeStream, normals, type StreamState } from "../../domain/data/RandomStream.js"
import { logNormalSigma } from "../../domain/edm/Schedule.js"
import type { Engine } from "../../engine/Engine.js"
import type { TrainableWeights } from "../TrainableWeights.js"
import { yieldToEventLoop } from "../../engine/EventLoop.js"
import { applyGradientsReads, makeTrainableWeights } from "../TrainableWeights.js"
import { read, type Reads, runReads, runSync } from "../../domain/data/HostReads.js"

/**
 * The random-stream states a denoiser step draws from: the standard normals behind σ, and the noise ε (docs/algorithm.md §2.4).
 *
 * @since 0.1.0
 * @category models
 */
export interface DenoiserStreams {
  readonly sigma: StreamState
  readonly noise: StreamState
}

/**
 * Inputs of one {@link denoiserStep}.
 *
 * @since 0.1.0
 * @category models
 */
export interface DenoiserStepInput {
  readonly network: Network
  readonly weights: TrainableWeights
  /** The EMA of the weights; its tensors are replaced (the old ones disposed) by the updated average. */
  readonly ema: Record<string, tf.Tensor>
  /** EMA decay β of this step: ema ← β·ema + (1 − β)·θ (docs/algorithm.md §9.1 C). */
  readonly emaBeta: number
  /** Clean samples x₀ [batch, ...dataShape]; the caller keeps ownership. */
  readonly x0: tf.Tensor
  /** One-hot class labels [batch, labelDim] of a class-conditional network (docs/algorithm.md §2.3); the caller keeps ownership. */
  readonly labels?: tf.Tensor2D
  readonly streams: DenoiserStreams
  readonly sigmaData: number
  /** Mean and standard deviation of ln σ (docs/algorithm.md §2.1; defaults P_MEAN, P_STD). */
  readonly pMean?: number
  readonly pStd?: number
  /** When given, the regression target at (x_σ, σ) instead of x₀ (an exact denoiser). */
  readonly exactDenoiser?: (x: tf.Tensor, sigma: tf.Tensor1D) => tf.Tensor
}

/**
 * What one {@link denoiserStep} measured, and the advanced streams.
 *
 * @since 0.1.0
 * @category models
 */
export interface DenoiserStepResult {
  /** The EDM loss Σ_CHW λ(σ)(D − y)² averaged over the batch (docs/algorithm.md §2.4), before the update. */
  readonly loss: number
  /** Global L2 norm of the gradient before sanitisation. */
  readonly gradNorm: number
  /** NaN/Inf gradient entries sanitised (docs/algorithm.md §9.1). */
  readonly nonFinite: number
  readonly streams: DenoiserStreams
}

/**
 * One EDM training step (docs/algorithm.md §2.4): σ = exp(n·P_std + P_mean), x_σ = x₀ + σ·ε, loss λ(σ)‖D(x_σ; σ, c) − y‖² with
 * y = x₀ (or the exact denoiser's value), one optimiser update of `weights`, then ema ← β·ema + (1 − β)·θ. Leaves no
 * tensors behind beyond the replaced EMA.
 *
 * @since 0.1.0
 * @category utils
 */
export const denoiserStep = (input: DenoiserStepInput): DenoiserStepResult => runSync(denoiserStepReads(input))

/**
 * {@link denoiserStep} as a {@link Reads} computation: the loss and the gradient statistics are read in one request
 * after the update and the EMA (one read per step on an engine that reads asynchronously, e.g. with `runAsync` or
 * `runReads`). The same values as {@link denoiserStep}.
 *
 * @since 0.2.0
 * @category utils
 */
export function* denoiserStepReads(input: DenoiserStepInput): Reads<DenoiserStepResult> {
  const { network, weights, x0 } = input
  const batch = x0.shape[0] ?? 0
  const perSample = network.dataShape.reduce((a, b) => a * b, 1)
  const s = normals(input.streams.sigma, batch)
  const e = normals(input.streams.noise, batch * perSample)
  const { grads, value } = tf.tidy(() => {
    const sigma = logNormalSigma(tf.tensor1d(s.values), {
      pMean: input.pMean ?? P_MEAN,
      pStd: input.pStd ?? P_STD
    }) as tf.Tensor1D
    const noise = tf.tensor(e.values, x0.shape)
    const xt = tf.add(x0, tf.mul(noise, sigma.reshape([-1, ...network.dataShape.map(() => 1)])))
    const target = input.exactDenoiser === undefined ? x0 : input.exactDenoiser(xt, sigma)
    return tf.variableGrads(
      () =>
        denoisingLoss({
          y: target,
          yHat: denoiseWith(network, weights.variables, xt, sigma, input.sigmaData, input.labels),
          sigma,
          sigmaData: input.sigmaData
        }).loss,
      [...weights.list]
    )
  })
  const owned: Array<tf.Tensor> = [value, ...Object.values(grads)]
  try {
    const pending = yield* applyGradientsReads(weights, grads)
    owned.push(...pending.tensors)
    tf.dispose(Object.values(grads))
    tf.tidy(() => {
      const next = emaUpdate(input.ema, weights.variables, input.emaBeta)
      for (const [n, t] of Object.entries(input.ema)) {
        t.dispose()
        input.ema[n] = tf.keep(next[n]!)
      }
    })
    const values = yield* read([value, ...pending.tensors])
    const stats = pending.finish(values.slice(1))
    return { loss: values[0]![0]!, gradNorm: stats.gradNorm, nonFinite: stats.nonFinite, streams: { sigma: s.state, noise: e.state } }
  } finally {
    tf.dispose(owned)
  }
}

/**
 * Settings of a denoiser fit.
 *
 * @since 0.1.0
 * @category models
 */
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

/**
 * Fits the network by {@link denoiserStep} with Adam(0.9, 0.999) and returns its EMA weights, owned by the caller's
 * scope (disposed when it closes, also when the fit is interrupted or fails). The EMA decay ramps up as
 * min(emaDecay, (1 + step)/(10 + step)). The optimiser and its state are released as soon as the fit ends. The loop
 * gives the event loop a turn between steps ({@link yieldToEventLoop}), so an interruption — from another fiber or
 * from a signal handler such as Ctrl-C's — ends it before the next step starts.
 *
 * @since 0.1.0
 * @category utils
 */
export const fitDenoiserScoped = (
  options: DenoiserFitOptions
): Effect.Effect<Record<string, tf.Tensor>, never, Scope.Scope | Engine> =>
  Effect.gen(function*() {
    const { network } = options
    const ema = yield* Effect.acquireRelease(
      Effect.sync(() => network.init(options.seed)),
      (e) => Effect.sync(() => tf.dispose(Object.values(e)))
    )
    yield* Effect.scoped(fitLoop(options, ema))
    return ema
  })

/**
 * {@link fitDenoiserScoped} returning tensors the caller owns and must dispose. Interruptible between steps like it;
 * prefer {@link fitDenoiserScoped}, which cannot lose the result to an interruption that lands as the fit returns.
 *
 * @since 0.1.0
 * @category utils
 */
export const fitDenoiser = (options: DenoiserFitOptions): Effect.Effect<Record<string, tf.Tensor>, never, Engine> =>
  Effect.scoped(Effect.map(fitDenoiserScoped(options), cloneParameters))

/** The fit's steps: trainable weights initialised from `ema` (which holds the initial weights) and updated in place. */
const fitLoop = (options: DenoiserFitOptions, ema: Record<string, tf.Tensor>): Effect.Effect<void, never, Scope.Scope | Engine> =>
  Effect.gen(function*() {
    const { network } = options
    const weights = yield* makeTrainableWeights(
      ema,
      adam({ learningRate: options.learningRate, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 })
    )
    let data = makeStream(options.seed, "fit.data")
    let streams: DenoiserStreams = { sigma: makeStream(options.seed, "fit.sigma"), noise: makeStream(options.seed, "fit.noise") }
    const decay = options.emaDecay ?? 0.999
    for (let step = 0; step < options.steps; step++) {
      const loss = yield* Effect.uninterruptible(Effect.promise(async () => {
        const drawn = options.sampleData(data, options.batchSize)
        data = drawn.state
        try {
          const r = await runReads(denoiserStepReads({
            network,
            weights,
            ema,
            emaBeta: Math.min(decay, (1 + step) / (10 + step)),
            x0: drawn.x,
            streams,
            sigmaData: options.sigmaData,
            ...(options.exactDenoiser === undefined ? {} : { exactDenoiser: options.exactDenoiser })
          }))
          streams = r.streams
          return r.loss
        } finally {
          drawn.x.dispose()
        }
      }))
      if (options.onProgress !== undefined && (step % (options.reportEvery ?? 100) === 0 || step === options.steps - 1)) {
        options.onProgress(step, loss)
      }
      yield* yieldToEventLoop
    }
  })
