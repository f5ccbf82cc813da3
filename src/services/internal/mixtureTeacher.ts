/**
 * Teachers of Gaussian mixtures (docs/algorithm.md §4, §12): the exact mixture (f_φ is the analytic posterior mean) and an
 * MLP trained in process on the mixture's samples by denoising score matching. Nothing here reads or writes files,
 * so these run in web pages as in Node. Reached through `services/Teacher.ts`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer, type Scope } from "effect"
import { SIGMA_DATA } from "../../domain/edm/Edm.js"
import * as GaussianMixture from "../../domain/data/GaussianMixture.js"
import { mlpSpec } from "../../domain/nn/Mlp.js"
import { type Network, mlpNetwork } from "../../domain/nn/Network.js"
import { normals, type StreamState, uniforms } from "../../domain/data/RandomStream.js"
import { type Engine, withEngine } from "../../engine/Engine.js"
import { fromWeights, Teacher, TeacherError, type TeacherShape } from "../Teacher.js"
import { fitDenoiserScoped } from "./denoiserFit.js"

/**
 * Mixture presets usable as `gmm:<name>`.
 *
 * @since 0.1.0
 * @category constants
 */
export const mixturePresets: Readonly<Record<string, () => GaussianMixture.GaussianMixture>> = {
  ring8: () => GaussianMixture.ring(),
  grid25: () => GaussianMixture.grid(),
  aniso6: () => GaussianMixture.anisotropic(),
  gauss1d: () => GaussianMixture.gaussian1d()
}

/**
 * Looks up a mixture preset by name.
 *
 * @since 0.1.0
 * @category utils
 */
export const mixturePreset = (name: string): Effect.Effect<GaussianMixture.GaussianMixture, TeacherError> => {
  const make = mixturePresets[name]
  return make === undefined
    ? Effect.fail(
      new TeacherError({
        teacher: `gmm:${name}`,
        reason: `unknown mixture preset "${name}"`,
        fix: `Use one of: ${Object.keys(mixturePresets).map((p) => `gmm:${p}`).join(", ")}.`
      })
    )
    : Effect.succeed(make())
}

/**
 * Settings of an in-process denoiser fit for a mixture teacher.
 *
 * @since 0.1.0
 * @category models
 */
export interface MixtureFitOptions {
  /** Optimisation steps (default 3000). */
  readonly steps?: number
  readonly batchSize?: number
  readonly learningRate?: number
  readonly seed?: number
  /** The MLP's hidden width and depth (default 128 × 4, docs/algorithm.md §12.3). */
  readonly hidden?: number
  readonly depth?: number
  /** Called every `reportEvery` steps (default 100) and after the last one with the step and the loss. */
  readonly onProgress?: (step: number, loss: number) => void
  readonly reportEvery?: number
}

const mixtureSampler = (mixture: GaussianMixture.GaussianMixture) => (stream: StreamState, batch: number) => {
  const d = GaussianMixture.dimension(mixture)
  const u = uniforms(stream, batch)
  const z = normals(u.state, batch * d)
  const x = tf.tidy(() => {
    const drawn = GaussianMixture.sample(mixture, tf.tensor2d(z.values, [batch, d]), tf.tensor1d(u.values))
    return drawn.x
  })
  return { x, state: z.state }
}

const fitOnMixture = (
  mixture: GaussianMixture.GaussianMixture,
  options: MixtureFitOptions,
  exact: boolean
): Effect.Effect<{ readonly network: Network; readonly params: Record<string, tf.Tensor> }, never, Scope.Scope | Engine> => {
  const network = mlpNetwork(
    mlpSpec(GaussianMixture.dimension(mixture), { hidden: options.hidden ?? 128, depth: options.depth ?? 4 })
  )
  return Effect.map(
    fitDenoiserScoped({
      network,
      sigmaData: SIGMA_DATA,
      steps: options.steps ?? 3000,
      batchSize: options.batchSize ?? 512,
      learningRate: options.learningRate ?? 1e-3,
      seed: options.seed ?? 0,
      sampleData: mixtureSampler(mixture),
      ...(exact ? { exactDenoiser: (x: tf.Tensor, s: tf.Tensor1D) => GaussianMixture.denoise(mixture, x, s) } : {}),
      ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
      ...(options.reportEvery === undefined ? {} : { reportEvery: options.reportEvery })
    }),
    (params) => ({ network, params })
  )
}

/**
 * The exact mixture teacher: f_φ is the analytic posterior mean (docs/algorithm.md §4). The generator and fake score start from
 * an MLP regressed onto it over log-normal σ (docs/algorithm.md §12.1).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerGaussianMixture = (
  mixture: GaussianMixture.GaussianMixture,
  options: MixtureFitOptions & { readonly name?: string } = {}
): Layer.Layer<Teacher, never, Engine> =>
  withEngine(Layer.scoped(
    Teacher,
    Effect.map(fitOnMixture(mixture, options, true), (weights): TeacherShape => ({
      name: options.name ?? "gmm (exact)",
      dataShape: [GaussianMixture.dimension(mixture)],
      sigmaData: SIGMA_DATA,
      denoise: (x, sigma) => GaussianMixture.denoise(mixture, x, sigma),
      weights
    }))
  ))

/**
 * A network teacher trained in process by EDM denoising score matching on samples of the mixture (docs/algorithm.md §12,
 * §12.3): the realistic path, where G and ψ start from the teacher's own weights.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTrainedOnMixture = (
  mixture: GaussianMixture.GaussianMixture,
  options: MixtureFitOptions & { readonly name?: string } = {}
): Layer.Layer<Teacher, never, Engine> =>
  withEngine(Layer.scoped(
    Teacher,
    Effect.map(
      fitOnMixture(mixture, options, false),
      (w) => fromWeights(options.name ?? "gmm (trained MLP)", w.network, w.params, SIGMA_DATA)
    )
  ))
