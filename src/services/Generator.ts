/**
 * The one-step generator G_θ(z) = D_θ(σ_init·z; σ_init) and its EMA copy (docs/algorithm.md §6). Portable; exporting,
 * loading and starting from generator files is in `node/Generator.ts`, which re-exports this module.
 *
 * @module
 */
import { Context, Effect, Layer } from "effect"
import type { Parameters } from "../domain/nn/Parameters.js"
import * as tf from "@tensorflow/tfjs"
import type { Optimizer } from "../domain/optim/Optimizer.js"
import { SIGMA_INIT } from "../domain/edm/Edm.js"
import { emaUpdate } from "../domain/optim/Ema.js"
import { type ApplyOptions, type Network } from "../domain/nn/Network.js"
import { generateWith } from "../domain/sid/FewStep.js"
import type { Engine } from "../engine/Engine.js"
import { Teacher } from "./Teacher.js"
import { makeTrainableWeights, type TrainableWeights } from "./TrainableWeights.js"

/**
 * Which weights generate: the live θ (trained, differentiable) or the EMA θ_ema (for evaluation, docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category models
 */
export type GeneratorWeights = "live" | "ema"

/**
 * Options of one generation: the network's train/evaluation options (of the first step), and the re-noise of a
 * few-step generator (docs/few-step.md).
 *
 * @since 0.2.0
 * @category models
 */
export interface GenerateOptions extends ApplyOptions {
  /**
   * The k − 1 standard-normal re-noise tensors ε₁ … ε_{k−1} of a k-step generator, each shaped like z (training passes
   * its sampler's draws); absent: drawn from the latent rows (`latentRenoise`, as a finished generator does).
   */
  readonly renoise?: ReadonlyArray<tf.Tensor>
}

/**
 * What a generator provides.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneratorShape {
  /** The architecture (the teacher's, docs/algorithm.md §6). */
  readonly network: Network
  /** The fixed input noise level σ_init (docs/algorithm.md §6; 2.5 by default). */
  readonly sigmaInit: number
  /** σ_data of the preconditioning. */
  readonly sigmaData: number
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** k, the generator's steps (docs/few-step.md); 1 for the one-step generator. Absent: 1. */
  readonly steps?: number
  /** θ and its Adam state. */
  readonly weights: TrainableWeights
  /** θ_ema, by name. */
  readonly ema: Parameters
  /**
   * x_g = D(σ_init·z; σ_init, c) for standard-normal z [N, ...dataShape] (docs/algorithm.md §6), with one-hot `labels` [N, labelDim]
   * for a class-conditional generator (`network.labelDim` > 0). With "live" the result is differentiable with respect
   * to θ. `options.dropout` runs the live G in train mode (docs/algorithm.md §9.1: the generator step only); G_ema is always in
   * evaluation mode (an error to ask otherwise). With {@link GeneratorShape.steps} k > 1, the k-step sample of
   * `domain/sid/FewStep` (re-noise from `options.renoise`, else from the latents). Synchronous: call inside `tf.tidy`
   * or a gradient closure.
   */
  readonly generate: (z: tf.Tensor, weights?: GeneratorWeights, labels?: tf.Tensor2D, options?: GenerateOptions) => tf.Tensor
  /** θ_ema ← β·θ_ema + (1−β)·θ (docs/algorithm.md §9.1). */
  readonly updateEma: (beta: number) => void
  /**
   * θ_ema lives in host memory (`GeneratorOptions.emaInHost`): `updateEma` then reads θ synchronously, so on an
   * engine that reads only asynchronously the caller has the engine keep θ's host copies first (`cacheOnHost`).
   */
  readonly emaInHost?: boolean
  /** Overwrites θ_ema (from a checkpoint). */
  readonly restoreEma: (ema: Parameters) => void
}

/**
 * The generator service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Generator extends Context.Tag("sid-ts/Generator")<Generator, GeneratorShape>() {}

/*
 * Layers.
 *
 * The generator layer: G_θ initialised from the teacher's weights (docs/algorithm.md §6: θ ← φ, θ_ema ← φ). θ_ema lives in engine
 * variables, or, with `emaInHost`, in host memory (for networks too large for the wasm heap).
 */

/**
 * Generator settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface GeneratorOptions {
  /** σ_init (docs/algorithm.md §6), default 2.5. */
  readonly sigmaInit?: number
  /** The generator's optimiser (docs/algorithm.md §9.1: Adam, β = (0, 0.999), ε = 1e-8). */
  readonly optimizer: Optimizer
  /**
   * Keep θ_ema in host memory (`Float32Array`s outside the engine; default false). The EMA update (docs/algorithm.md §9.1) then
   * runs one parameter at a time in float32, bit-identical to the tensor update; `ema` and `generate(z, "ema")`
   * materialise it as tensors on demand, kept until the next `updateEma`/`restoreEma` or release.
   */
  readonly emaInHost?: boolean
  /**
   * θ and θ_ema start as copies of these (names and shapes of the teacher's network) instead of the teacher's weights:
   * SiD²A starts from a distilled generator (docs/algorithm.md §13). The caller keeps ownership. Default: the teacher's (docs/algorithm.md §6).
   */
  readonly initial?: Parameters
  /** k, the generator's steps (docs/few-step.md); default 1, the one-step generator. */
  readonly steps?: number
}

/** θ_ema in engine variables: updated by one tensor EMA step over all parameters. */
const engineEma = (params: Parameters) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      tf.tidy(() => Object.fromEntries(Object.keys(params).sort().map((n) => [n, tf.variable(params[n]!, false)])))
    ),
    (vars) => Effect.sync(() => tf.dispose(Object.values(vars)))
  ).pipe(
    Effect.map((ema) => ({
      tensors: (): Parameters => ema,
      update: (live: Parameters, beta: number) =>
        tf.tidy(() => {
          const next = emaUpdate(ema, live, beta)
          for (const [n, v] of Object.entries(ema)) v.assign(next[n]!)
        }),
      restore: (source: Parameters) =>
        tf.tidy(() => {
          for (const [n, v] of Object.entries(ema)) {
            const s = source[n]
            if (s === undefined || !tf.util.arraysEqual(s.shape, v.shape)) {
              throw new Error(`EMA tensor "${n}" is missing or mis-shaped`)
            }
            v.assign(s)
          }
        })
    }))
  )

/** θ_ema in host memory: per-parameter float32 update (the ops of `emaUpdate`), tensors materialised on demand. */
const hostEma = (params: Parameters) => {
  const names = Object.keys(params).sort()
  // Read asynchronously: every engine can (webgpu only so).
  return Effect.flatMap(
    Effect.promise(() => Promise.all(names.map((n) => params[n]!.data()))),
    (values) => hostEmaOf(params, names, Object.fromEntries(names.map((n, i) => [n, Float32Array.from(values[i]!)])))
  )
}

const hostEmaOf = (params: Parameters, names: ReadonlyArray<string>, host: Record<string, Float32Array>) => {
  let cache: Record<string, tf.Tensor> | undefined
  const drop = () => {
    if (cache !== undefined) tf.dispose(Object.values(cache))
    cache = undefined
  }
  return Effect.acquireRelease(Effect.void, () => Effect.sync(drop)).pipe(
    Effect.as({
      tensors: (): Parameters => {
        if (cache === undefined) {
          cache = Object.fromEntries(names.map((n) => [n, tf.keep(tf.tensor(host[n]!.slice(), params[n]!.shape, "float32"))]))
        }
        return cache
      },
      update: (live: Parameters, beta: number) => {
        drop()
        const f = Math.fround
        const b = f(beta)
        const c = f(1 - beta)
        for (const n of names) {
          const p = live[n]
          if (p === undefined) throw new Error(`EMA has parameter "${n}" that the network does not`)
          const x = p.dataSync()
          const e = host[n]!
          for (let i = 0; i < e.length; i++) e[i] = f(e[i]! * b) + f(x[i]! * c)
        }
      },
      restore: (source: Parameters) => {
        for (const n of names) {
          const s = source[n]
          if (s === undefined || !tf.util.arraysEqual(s.shape, params[n]!.shape)) {
            throw new Error(`EMA tensor "${n}" is missing or mis-shaped`)
          }
        }
        drop()
        for (const n of names) host[n]!.set(source[n]!.dataSync() as Float32Array)
      }
    })
  )
}

/**
 * A generator whose θ and θ_ema start as copies of the teacher's weights (or of `options.initial`); all variables
 * disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: GeneratorOptions): Layer.Layer<Generator, never, Teacher | Engine> =>
  Layer.scoped(
    Generator,
    Effect.gen(function*() {
      const teacher = yield* Teacher
      const { network } = teacher.weights
      const params = options.initial ?? teacher.weights.params
      const weights = yield* makeTrainableWeights(params, options.optimizer)
      const ema = yield* (options.emaInHost === true ? hostEma(params) : engineEma(params))
      const sigmaInit = options.sigmaInit ?? SIGMA_INIT
      const steps = options.steps ?? 1
      return Generator.of({
        network,
        sigmaInit,
        sigmaData: teacher.sigmaData,
        dataShape: teacher.dataShape,
        steps,
        weights,
        get ema() {
          return ema.tensors()
        },
        generate: (z, which = "live", labels, options) => {
          if (which === "ema" && options?.dropout !== undefined) {
            throw new Error("G_ema runs in evaluation mode only (docs/algorithm.md §9.1): no dropout for generate(z, \"ema\")")
          }
          return tf.tidy(() =>
            generateWith(
              network,
              which === "live" ? weights.variables : ema.tensors(),
              z,
              { sigmaInit, sigmaData: teacher.sigmaData, steps },
              labels,
              options,
              options?.renoise
            )
          )
        },
        updateEma: (beta) => ema.update(weights.variables, beta),
        emaInHost: options.emaInHost === true,
        restoreEma: (source) => ema.restore(source)
      } satisfies GeneratorShape)
    })
  )

