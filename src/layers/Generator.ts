/**
 * The generator layer: G_θ initialised from the teacher's weights (spec §2: θ ← φ, θ_ema ← φ).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import type { Optimizer } from "../domain/Optimizer.js"
import { SIGMA_INIT } from "../domain/Edm.js"
import { emaUpdate } from "../domain/Ema.js"
import { denoiseWith } from "../domain/Network.js"
import { Generator, type GeneratorShape } from "../services/Generator.js"
import { Teacher } from "../services/Teacher.js"
import { makeTrainableWeights } from "./TrainableWeights.js"

/** Generator settings. */
export interface GeneratorOptions {
  /** σ_init (spec §2), default 2.5. */
  readonly sigmaInit?: number
  /** The generator's optimiser (spec §5.1: Adam, β = (0, 0.999), ε = 1e-8). */
  readonly optimizer: Optimizer
}

/** A generator whose θ and θ_ema start as copies of the teacher's weights; all variables disposed on release. */
export const layer = (options: GeneratorOptions): Layer.Layer<Generator, never, Teacher> =>
  Layer.scoped(
    Generator,
    Effect.gen(function*() {
      const teacher = yield* Teacher
      const { network, params } = teacher.weights
      const weights = yield* makeTrainableWeights(params, options.optimizer)
      const ema = yield* Effect.acquireRelease(
        Effect.sync(() =>
          tf.tidy(() => Object.fromEntries(Object.keys(params).sort().map((n) => [n, tf.variable(params[n]!, false)])))
        ),
        (vars) => Effect.sync(() => tf.dispose(Object.values(vars)))
      )
      const sigmaInit = options.sigmaInit ?? SIGMA_INIT
      return Generator.of({
        network,
        sigmaInit,
        sigmaData: teacher.sigmaData,
        dataShape: teacher.dataShape,
        weights,
        ema,
        generate: (z, which = "live", labels) =>
          tf.tidy(() =>
            denoiseWith(
              network,
              which === "live" ? weights.variables : ema,
              tf.mul(z, sigmaInit),
              sigmaInit,
              teacher.sigmaData,
              labels
            )
          ),
        updateEma: (beta) =>
          tf.tidy(() => {
            const next = emaUpdate(ema, weights.variables, beta)
            for (const [n, v] of Object.entries(ema)) v.assign(next[n]!)
          }),
        restoreEma: (source) =>
          tf.tidy(() => {
            for (const [n, v] of Object.entries(ema)) {
              const s = source[n]
              if (s === undefined || !tf.util.arraysEqual(s.shape, v.shape)) {
                throw new Error(`EMA tensor "${n}" is missing or mis-shaped`)
              }
              v.assign(s)
            }
          })
      } satisfies GeneratorShape)
    })
  )
