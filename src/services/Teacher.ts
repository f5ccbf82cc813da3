/**
 * The teacher: a frozen denoiser f_φ(x; σ) ≈ E[x₀ | x_σ = x] (docs/algorithm.md §2.3, §6). The service, its error,
 * teachers from weights and of Gaussian mixtures (exact, or an MLP fitted in process), and the teacher-file encoding;
 * portable (Node and web pages). Teachers read from files are in `node/Teacher.ts`, which re-exports this module.
 *
 * @module
 */
import { Context, Schema } from "effect"
import type { SigmaLike } from "../domain/nn/Tensors.js"
import type * as tf from "@tensorflow/tfjs"
import { denoiseWith, type Network } from "../domain/nn/Network.js"
import type { Parameters } from "../domain/nn/Parameters.js"
import { encodeSafetensors } from "../domain/data/Safetensors.js"
import { toNamedArrays } from "../domain/data/NamedTensors.js"

/**
 * An architecture and the weights the student networks start from (docs/algorithm.md §6: θ ← φ, ψ ← φ).
 *
 * @since 0.1.0
 * @category models
 */
export interface TeacherWeights {
  readonly network: Network
  readonly params: Parameters
}

/**
 * What a teacher provides.
 *
 * @since 0.1.0
 * @category models
 */
export interface TeacherShape {
  /** A short description, e.g. `gmm:ring8` or a checkpoint path. */
  readonly name: string
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** σ_data of the teacher's preconditioning (docs/algorithm.md §2.1). */
  readonly sigmaData: number
  /**
   * f_φ(x; σ, c): x is [N, ...dataShape], σ a number or [N], `labels` one-hot [N, labelDim] for a class-conditional
   * teacher (`weights.network.labelDim` > 0). The parameters are frozen but the output is differentiable with respect
   * to x, as the SiD generator loss needs (docs/algorithm.md §8.1). Synchronous: call it inside `tf.tidy` or a gradient closure.
   */
  readonly denoise: (x: tf.Tensor, sigma: SigmaLike, labels?: tf.Tensor2D) => tf.Tensor
  /** Weights to initialise the generator and the fake score from. */
  readonly weights: TeacherWeights
}

/**
 * The teacher service.
 *
 * @since 0.1.0
 * @category tags
 */
export class Teacher extends Context.Tag("sid-ts/Teacher")<Teacher, TeacherShape>() {}

/**
 * A teacher could not be built: a bad preset, an unreadable or mismatched checkpoint, a failed fit.
 *
 * @since 0.1.0
 * @category errors
 */
export class TeacherError extends Schema.TaggedError<TeacherError>()("TeacherError", {
  teacher: Schema.String,
  reason: Schema.String,
  fix: Schema.String
}) {
  override get message(): string {
    return `teacher ${this.teacher}: ${this.reason}. ${this.fix}`
  }
}

/*
 * Layers.
 *
 * Teacher layers: an exact Gaussian mixture, a network trained in process on mixture samples, or a network loaded
 * from a teacher file.
 */

/**
 * Format tag of teacher files.
 *
 * @since 0.1.0
 * @category constants
 */
export const TEACHER_FORMAT = "sid-ts-teacher-v1"

/**
 * A network teacher from fixed weights: f_φ = D with frozen parameters (differentiable in x).
 *
 * @since 0.1.0
 * @category constructors
 */
export const fromWeights = (
  name: string,
  network: Network,
  params: Parameters,
  sigmaData: number
): TeacherShape => ({
  name,
  dataShape: network.dataShape,
  sigmaData,
  denoise: (x, sigma, labels) => denoiseWith(network, params, x, sigma, sigmaData, labels),
  weights: { network, params }
})

/**
 * Teacher-file bytes: the weights as safetensors, the architecture and σ_data in its metadata.
 *
 * @since 0.1.0
 * @category utils
 */
export const encodeTeacherFile = (network: Network, params: Parameters, sigmaData: number): Uint8Array =>
  encodeSafetensors(toNamedArrays(params), {
    format: TEACHER_FORMAT,
    network: JSON.stringify(network.description),
    sigma_data: String(sigmaData)
  })

export * from "./internal/mixtureTeacher.js"

export * from "./internal/denoiserFit.js"
