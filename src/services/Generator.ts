/**
 * The one-step generator G_θ(z) = D_θ(σ_init·z; σ_init) and its EMA copy (spec §2).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context } from "effect"
import type { ApplyOptions, Network } from "../domain/Network.js"
import type { Parameters } from "../domain/Parameters.js"
import type { TrainableWeights } from "./TrainableWeights.js"

/** Which weights generate: the live θ (trained, differentiable) or the EMA θ_ema (for evaluation, spec §5.1). */
export type GeneratorWeights = "live" | "ema"

/**
 * Options of one generation: the network's train/evaluation options (of the first step), and the re-noise of a
 * few-step generator (docs/few-step.md).
 */
export interface GenerateOptions extends ApplyOptions {
  /**
   * The k − 1 standard-normal re-noise tensors ε₁ … ε_{k−1} of a k-step generator, each shaped like z (training passes
   * its sampler's draws); absent: drawn from the latent rows (`latentRenoise`, as a finished generator does).
   */
  readonly renoise?: ReadonlyArray<tf.Tensor>
}

/** What a generator provides. */
export interface GeneratorShape {
  /** The architecture (the teacher's, spec §2). */
  readonly network: Network
  /** The fixed input noise level σ_init (spec §2; 2.5 by default). */
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
   * x_g = D(σ_init·z; σ_init, c) for standard-normal z [N, ...dataShape] (spec §2), with one-hot `labels` [N, labelDim]
   * for a class-conditional generator (`network.labelDim` > 0). With "live" the result is differentiable with respect
   * to θ. `options.dropout` runs the live G in train mode (spec §5.1: the generator step only); G_ema is always in
   * evaluation mode (an error to ask otherwise). With {@link GeneratorShape.steps} k > 1, the k-step sample of
   * `domain/sid/FewStep` (re-noise from `options.renoise`, else from the latents). Synchronous: call inside `tf.tidy`
   * or a gradient closure.
   */
  readonly generate: (z: tf.Tensor, weights?: GeneratorWeights, labels?: tf.Tensor2D, options?: GenerateOptions) => tf.Tensor
  /** θ_ema ← β·θ_ema + (1−β)·θ (spec §5.1). */
  readonly updateEma: (beta: number) => void
  /** Overwrites θ_ema (from a checkpoint). */
  readonly restoreEma: (ema: Parameters) => void
}

/** The generator service. */
export class Generator extends Context.Tag("sid-ts/Generator")<Generator, GeneratorShape>() {}
