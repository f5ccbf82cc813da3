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
  /** θ and its Adam state. */
  readonly weights: TrainableWeights
  /** θ_ema, by name. */
  readonly ema: Parameters
  /**
   * x_g = D(σ_init·z; σ_init, c) for standard-normal z [N, ...dataShape] (spec §2), with one-hot `labels` [N, labelDim]
   * for a class-conditional generator (`network.labelDim` > 0). With "live" the result is differentiable with respect
   * to θ. `options.dropout` runs the live G in train mode (spec §5.1: the generator step only); G_ema is always in
   * evaluation mode (an error to ask otherwise). Synchronous: call inside `tf.tidy` or a gradient closure.
   */
  readonly generate: (z: tf.Tensor, weights?: GeneratorWeights, labels?: tf.Tensor2D, options?: ApplyOptions) => tf.Tensor
  /** θ_ema ← β·θ_ema + (1−β)·θ (spec §5.1). */
  readonly updateEma: (beta: number) => void
  /** Overwrites θ_ema (from a checkpoint). */
  readonly restoreEma: (ema: Parameters) => void
}

/** The generator service. */
export class Generator extends Context.Tag("sid-ts/Generator")<Generator, GeneratorShape>() {}
