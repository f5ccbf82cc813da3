/**
 * Trainable weights: a network's parameters as variables together with their Adam state.
 *
 * The generator and the fake score each own one. They are plain objects handed out by scoped layers, which create
 * the variables on acquisition and dispose them on release.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import type { Optimizer, OptimizerState } from "../domain/Optimizer.js"
import type { Parameters } from "../domain/Parameters.js"

/** Statistics of one optimiser step. */
export interface StepStatistics {
  /** Global L2 norm of the gradient before sanitisation (NaN when it has non-finite entries). */
  readonly gradNorm: number
  /** Number of NaN/Inf gradient entries that were sanitised (spec §5.1). */
  readonly nonFinite: number
}

/** Options of {@link TrainableWeights.applyGradients}. */
export interface ApplyGradientsOptions {
  /** Clip every gradient entry by value to [−clipValue, clipValue] after sanitisation (PyTorch `clip_grad_value_`). */
  readonly clipValue?: number
  /**
   * Statistics the caller measures itself (with `gradientStatistics`, read in its own batched host read): returned as
   * given instead of being computed and read here. Honoured by weights whose optimiser state lives on the engine;
   * host-optimiser weights measure while they read each gradient anyway.
   */
  readonly statistics?: StepStatistics
}

/** Variables, their optimiser state and the optimiser's step count. */
export interface TrainableWeights {
  /** The parameters, by name. */
  readonly variables: Readonly<Record<string, tf.Variable>>
  /** The parameters in name order, for `tf.variableGrads`. */
  readonly list: ReadonlyArray<tf.Variable>
  /** The optimiser (Adam by default, spec §5.1). */
  readonly optimizer: Optimizer
  /**
   * Sanitises the gradients (spec §5.1) and applies one optimiser update. Gradients are keyed by variable name, as
   * `tf.variableGrads(f, list)` returns them; parameters without a gradient are left unchanged. With `clipValue`, every
   * sanitised entry is then clipped to [−clipValue, clipValue] (SiDA's fake score, spec §9.1); the statistics are of
   * the gradient as given.
   */
  readonly applyGradients: (grads: Parameters, options?: ApplyGradientsOptions) => StepStatistics
  /** The optimiser's slots and step count, for checkpoints (tensors are the live variables: read, don't dispose). */
  readonly optimizerState: () => OptimizerState
  /** Restores parameters, optimiser slots and step count (from a checkpoint). Names and shapes must match. */
  readonly restore: (state: { readonly params: Parameters; readonly optimizer: OptimizerState }) => void
}
