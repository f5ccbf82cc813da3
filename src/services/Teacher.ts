/**
 * The teacher: a frozen denoiser f_φ(x; σ) ≈ E[x₀ | x_σ = x] (docs/algorithm.md §2.3, §6).
 *
 * @module
 */
import { Context, Schema, Effect, Layer, type Scope } from "effect"
import type { SigmaLike } from "../domain/nn/Tensors.js"
import * as tf from "@tensorflow/tfjs"
import { readFile } from "node:fs/promises"
import { SIGMA_DATA } from "../domain/edm/Edm.js"
import * as GaussianMixture from "../domain/data/GaussianMixture.js"
import { mlpSpec } from "../domain/nn/Mlp.js"
import { denoiseWith, type LoadedDenoiser, type Network, mlpNetwork, networkFromDescription } from "../domain/nn/Network.js"
import { compareShapes, type Parameters, shapesMatch } from "../domain/nn/Parameters.js"
import { normals, type StreamState, uniforms } from "../domain/data/RandomStream.js"
import { decodeSafetensors, encodeSafetensors, type SafetensorsFile } from "../domain/data/Safetensors.js"
import { type Engine, withEngine, withEngineEffect } from "../engine/Engine.js"
import { writeFileAtomic } from "../platform/AtomicFile.js"
import { fitDenoiserScoped } from "./internal/denoiserFit.js"
import { fromNamedArrays, shapesWithPrefix, toNamedArrays } from "../domain/data/NamedTensors.js"

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

/**
 * Writes a teacher file atomically.
 *
 * @since 0.1.0
 * @category utils
 */
export const writeTeacherFile = (
  path: string,
  network: Network,
  params: Parameters,
  sigmaData: number
): Effect.Effect<void, TeacherError> =>
  writeFileAtomic(path, encodeTeacherFile(network, params, sigmaData)).pipe(
    Effect.mapError((e) =>
      new TeacherError({ teacher: path, reason: `could not write the teacher file (${e.message})`, fix: "Check the path and free disk space." })
    )
  )

/**
 * Reads and decodes a safetensors file, mapping an unreadable file and a malformed one to the caller's error
 * (`fix` is the advice for a malformed file).
 *
 * @since 0.1.0
 * @category utils
 */
export const readSafetensorsFile = <E>(
  path: string,
  fail: (reason: string, fix: string) => E,
  fix: string
): Effect.Effect<SafetensorsFile, E> =>
  Effect.tryPromise({
    try: () => readFile(path),
    catch: (e) => fail(`cannot read the file (${e instanceof Error ? e.message : String(e)})`, "Check the path.")
  }).pipe(
    Effect.flatMap((bytes) =>
      Effect.try({
        try: () => decodeSafetensors(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
        catch: (e) => fail(`not a valid safetensors file: ${e instanceof Error ? e.message : String(e)}`, fix)
      })
    )
  )

/**
 * Reads a teacher file (validating format, architecture and every tensor's name and shape); needs the engine.
 *
 * @since 0.1.0
 * @category utils
 */
export const readTeacherFile = (
  path: string
): Effect.Effect<
  LoadedDenoiser,
  TeacherError,
  Engine
> =>
  withEngineEffect(Effect.gen(function*() {
    const fail = (reason: string, fix: string) => new TeacherError({ teacher: path, reason, fix })
    const file = yield* readSafetensorsFile(path, fail, "Re-create the teacher file.")
    if (file.metadata["format"] !== TEACHER_FORMAT) {
      return yield* fail(
        `metadata format is ${JSON.stringify(file.metadata["format"])}, expected "${TEACHER_FORMAT}"`,
        "Pass a teacher file written by sid-ts (or `edm:<file>` for EDM weights)."
      )
    }
    const network = yield* Effect.try({
      try: () => networkFromDescription(JSON.parse(file.metadata["network"] ?? "null")),
      catch: (e) => fail(`bad architecture metadata: ${e instanceof Error ? e.message : String(e)}`, "Re-create the teacher file.")
    })
    const sigmaData = Number(file.metadata["sigma_data"])
    if (!(sigmaData > 0)) return yield* fail(`sigma_data metadata is ${file.metadata["sigma_data"]}`, "Re-create the teacher file.")
    const mismatch = compareShapes(network.shapes, shapesWithPrefix(file.tensors, ""))
    if (!shapesMatch(mismatch)) {
      return yield* fail(
        `weights do not fit the architecture: missing [${mismatch.missing.join(", ")}], unexpected [${
          mismatch.unexpected.join(", ")
        }], mis-shaped [${mismatch.misShaped.map((m) => `${m.name} ${JSON.stringify(m.actual)} ≠ ${JSON.stringify(m.expected)}`).join(", ")}]`,
        "Re-create the teacher file."
      )
    }
    return { network, params: fromNamedArrays(file.tensors), sigmaData }
  }))

/**
 * A network teacher loaded from a teacher file; its tensors are disposed on release.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerFile = (path: string): Layer.Layer<Teacher, TeacherError, Engine> =>
  Layer.scoped(
    Teacher,
    Effect.map(
      Effect.acquireRelease(readTeacherFile(path), (t) => Effect.sync(() => tf.dispose(Object.values(t.params)))),
      (t) => fromWeights(path, t.network, t.params, t.sigmaData)
    )
  )

export * from "./internal/edmTeacher.js"

export * from "./internal/teacherSpec.js"

export * from "./internal/denoiserFit.js"
