/**
 * The teacher: a frozen denoiser f_φ(x; σ) ≈ E[x₀ | x_σ = x] (spec §1.3, §2).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import { Context, Schema } from "effect"
import type { Network } from "../domain/Network.js"
import type { Parameters } from "../domain/Parameters.js"
import type { SigmaLike } from "../domain/Tensors.js"

/** An architecture and the weights the student networks start from (spec §2: θ ← φ, ψ ← φ). */
export interface TeacherWeights {
  readonly network: Network
  readonly params: Parameters
}

/** What a teacher provides. */
export interface TeacherShape {
  /** A short description, e.g. `gmm:ring8` or a checkpoint path. */
  readonly name: string
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** σ_data of the teacher's preconditioning (spec §1.1). */
  readonly sigmaData: number
  /**
   * f_φ(x; σ, c): x is [N, ...dataShape], σ a number or [N], `labels` one-hot [N, labelDim] for a class-conditional
   * teacher (`weights.network.labelDim` > 0). The parameters are frozen but the output is differentiable with respect
   * to x, as the SiD generator loss needs (spec §4.1). Synchronous: call it inside `tf.tidy` or a gradient closure.
   */
  readonly denoise: (x: tf.Tensor, sigma: SigmaLike, labels?: tf.Tensor2D) => tf.Tensor
  /** Weights to initialise the generator and the fake score from. */
  readonly weights: TeacherWeights
}

/** The teacher service. */
export class Teacher extends Context.Tag("sid-ts/Teacher")<Teacher, TeacherShape>() {}

/** A teacher could not be built: a bad preset, an unreadable or mismatched checkpoint, a failed fit. */
export class TeacherError extends Schema.TaggedError<TeacherError>()("TeacherError", {
  teacher: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `teacher ${this.teacher}: ${this.reason}. ${this.fix}`
  }
}
