/**
 * The data-free sampler: every random draw distillation needs, from seeded, splittable streams (docs/algorithm.md §7, §8.1).
 *
 * No real data is involved in SiD: the generator's latents, the noise levels and the diffusion noise are all the
 * randomness it uses. Each purpose has its own stream so that resuming from a checkpoint continues every stream
 * exactly where it stopped. Optional streams exist only when a run needs them: dropout seeds, augmentation (docs/algorithm.md §13.4)
 * and, for SiDA (docs/algorithm.md §13), the rows of the real images its discriminator sees (the images themselves come from the
 * `RealData` service; the sampler only chooses them), and a few-step generator's re-noise (docs/few-step.md).
 *
 * @module
 */
import { Context, Schema, Effect, Layer } from "effect"
import * as tf from "@tensorflow/tfjs"
import { type AugmentSettings, drawAugmentParams, type AugmentParams } from "../domain/sid/Augment.js"
import { P_MEAN, P_STD, TMAX } from "../domain/edm/Edm.js"
import { trainDropoutRate } from "../domain/nn/Network.js"
import { makeStream, nextUint32, normals, type StreamState as StreamStateWords, uniforms } from "../domain/data/RandomStream.js"
import { StreamState } from "../domain/config/Records.js"
import { generatorSigmaFromUniform, logNormalSigma } from "../domain/edm/Schedule.js"
import { type Engine, withEngine } from "../engine/Engine.js"
import { Teacher } from "./Teacher.js"

/**
 * One batch of draws: latents z, per-sample noise levels σ and diffusion noise ε.
 *
 * @since 0.1.0
 * @category models
 */
export interface Draws {
  /** Standard-normal generator latents, [N, ...dataShape]. */
  readonly z: tf.Tensor
  /** Noise levels, [N]. */
  readonly sigma: tf.Tensor1D
  /** Standard-normal diffusion noise, [N, ...dataShape]. */
  readonly noise: tf.Tensor
  /** One-hot class labels [N, labelDim], uniform over classes, for class-conditional networks; absent otherwise. */
  readonly labels?: tf.Tensor2D
  /**
   * Seed of this step's dropout masks (a uint32 from the step's own stream) for train-mode dropout (docs/algorithm.md §9.1); absent
   * when the sampler draws none.
   */
  readonly dropoutSeed?: number
  /**
   * The k − 1 standard-normal re-noise tensors [N, ...dataShape] of a k-step generator (docs/few-step.md), from the
   * stream `fake.renoise` or `generator.renoise`; absent when the sampler was built for a one-step generator. (A
   * mutable array type so that draws remain a `tf.TensorContainer`.)
   */
  readonly renoise?: Array<tf.Tensor>
}

/**
 * The serialisable state of all the sampler's streams (four uint32 words each).
 *
 * @since 0.1.0
 * @category models
 */
export const SamplerState = Schema.Record({ key: Schema.String, value: StreamState })
/**
 * The serialisable state of all the sampler's streams.
 *
 * @since 0.1.0
 * @category models
 */
export type SamplerState = typeof SamplerState.Type

/**
 * What a data-free sampler provides. Draw methods advance the streams; the caller owns (disposes) the tensors.
 *
 * @since 0.1.0
 * @category models
 */
export interface DataFreeSamplerShape {
  /** Draws for the fake-score step: σ log-normal(P_mean, P_std) (docs/algorithm.md §7). */
  readonly fakeStep: (batch: number) => Draws
  /** Draws for the generator step: t ~ U(0, tmax/1000) mapped through the ρ-schedule (docs/algorithm.md §8.1). */
  readonly generatorStep: (batch: number) => Draws
  /** Standard-normal latents for evaluation, from their own stream. */
  readonly latents: (batch: number) => tf.Tensor
  /**
   * One batch's augmentation parameters (docs/algorithm.md §13.4, docs/sida.md §2) from the stream `augment`; present only on a
   * sampler built with augmentation (p > 0), so a run without it keeps exactly its former streams.
   */
  readonly augmentation?: (batch: number) => AugmentParams
  /**
   * Rows of a real dataset of `size` images for SiDA's discriminator (docs/algorithm.md §13), uniform with replacement, from the
   * stream `real`; present only on a sampler built for real data.
   */
  readonly realIndices?: (batch: number, size: number) => Int32Array
  /** The current state of every stream. */
  readonly state: () => SamplerState
  /** Continues from a saved state. */
  readonly restore: (state: SamplerState) => void
}

/**
 * The data-free sampler service.
 *
 * @since 0.1.0
 * @category tags
 */
export class DataFreeSampler extends Context.Tag("sid-ts/DataFreeSampler")<DataFreeSampler, DataFreeSamplerShape>() {}

/*
 * Layers.
 *
 * The data-free sampler layer: seeded xoshiro128** streams, one per purpose (docs/algorithm.md §7, §8.1), plus dropout-mask
 * seeds for train mode (docs/algorithm.md §9.1) when asked for.
 */

/**
 * Sampler settings.
 *
 * @since 0.1.0
 * @category models
 */
export interface SamplerOptions {
  readonly seed: number
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** Upper end of the generator-loss time in thousandths (docs/algorithm.md §8.1), default 800. */
  readonly tmax?: number
  /** Log-normal σ of the fake step (docs/algorithm.md §2.1), defaults −1.2 and 1.2. */
  readonly pMean?: number
  readonly pStd?: number
  /** Classes of a class-conditional network (labels drawn uniformly); 0 or absent for an unconditional one. */
  readonly labelDim?: number
  /**
   * Draw a dropout-mask seed per step for train-mode dropout (docs/algorithm.md §9.1: ψ in the fake step, G in the generator
   * step), from the streams `fake.dropout` and `generator.dropout`, which exist only then (default false; a sampler
   * without them saves and restores the same state as before dropout existed). Restoring a state saved without them
   * (a run without dropout, or from before it existed) starts them afresh from the seed.
   */
  readonly dropout?: boolean
  /**
   * Augmentation settings (docs/algorithm.md §13.4; p > 0): the sampler then draws each batch's augmentation parameters from the
   * stream `augment`, which exists only then. Absent: no such stream (the state is as before augmentation existed).
   */
  readonly augment?: AugmentSettings
  /** Draw rows of a real dataset for SiDA (docs/algorithm.md §13) from the stream `real`, which exists only then (default false). */
  readonly realData?: boolean
  /**
   * k, the generator's steps (docs/few-step.md): for k > 1 each step's draws carry k − 1 re-noise tensors from the
   * streams `fake.renoise` and `generator.renoise`, which exist only then (default 1: none, the state as before).
   */
  readonly generatorSteps?: number
}

const STREAMS = ["fake.z", "fake.sigma", "fake.noise", "generator.z", "generator.t", "generator.noise", "eval.z"] as const
const LABEL_STREAMS = ["fake.label", "generator.label"] as const
const DROPOUT_STREAMS = ["fake.dropout", "generator.dropout"] as const
const RENOISE_STREAMS = ["fake.renoise", "generator.renoise"] as const
type StreamName =
  | (typeof STREAMS)[number]
  | (typeof LABEL_STREAMS)[number]
  | (typeof DROPOUT_STREAMS)[number]
  | (typeof RENOISE_STREAMS)[number]
  | "augment"
  | "real"

/** One-hot rows for class indices drawn as ⌊u·K⌋ from uniforms u ∈ [0, 1). */
const oneHotFromUniforms = (u: Float32Array, classes: number): tf.Tensor2D =>
  tf.oneHot(tf.tensor1d(Int32Array.from(u, (v) => Math.min(classes - 1, Math.floor(v * classes))), "int32"), classes)
    .toFloat() as tf.Tensor2D

/**
 * A pure-state sampler implementation; `layer` wraps it. Exported for programs that need one outside a layer.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeSampler = (options: SamplerOptions) => {
  const labelDim = options.labelDim ?? 0
  const withDropout = options.dropout === true
  const steps = options.generatorSteps ?? 1
  if (!(Number.isInteger(steps) && steps >= 1)) throw new Error(`generatorSteps must be an integer ≥ 1, got ${steps}`)
  const names: ReadonlyArray<StreamName> = [
    ...STREAMS,
    ...(labelDim > 0 ? LABEL_STREAMS : []),
    ...(withDropout ? DROPOUT_STREAMS : []),
    ...(steps > 1 ? RENOISE_STREAMS : []),
    ...(options.augment === undefined ? [] : ["augment" as const]),
    ...(options.realData === true ? ["real" as const] : [])
  ]
  const states = new Map<StreamName, StreamStateWords>(names.map((s) => [s, makeStream(options.seed, s)]))
  const perSample = options.dataShape.reduce((a, b) => a * b, 1)
  const draw = (name: StreamName, n: number, kind: "normal" | "uniform"): Float32Array => {
    const r = (kind === "normal" ? normals : uniforms)(states.get(name)!, n)
    states.set(name, r.state)
    return r.values
  }
  const image = (name: StreamName, batch: number): tf.Tensor =>
    tf.tensor(draw(name, batch * perSample, "normal"), [batch, ...options.dataShape])
  const labels = (name: StreamName, batch: number): { readonly labels?: tf.Tensor2D } =>
    labelDim > 0 ? { labels: oneHotFromUniforms(draw(name, batch, "uniform"), labelDim) } : {}
  const dropoutSeed = (name: StreamName): { readonly dropoutSeed?: number } => {
    if (!withDropout) return {}
    const r = nextUint32(states.get(name)!, 1)
    states.set(name, r.state)
    return { dropoutSeed: r.values[0]! }
  }
  const renoise = (name: StreamName, batch: number): { readonly renoise?: Array<tf.Tensor> } =>
    steps > 1 ? { renoise: Array.from({ length: steps - 1 }, () => image(name, batch)) } : {}
  return DataFreeSampler.of({
    fakeStep: (batch): Draws =>
      tf.tidy(() => ({
        z: image("fake.z", batch),
        sigma: logNormalSigma(tf.tensor1d(draw("fake.sigma", batch, "normal")), {
          pMean: options.pMean ?? P_MEAN,
          pStd: options.pStd ?? P_STD
        }) as tf.Tensor1D,
        noise: image("fake.noise", batch),
        ...labels("fake.label", batch),
        ...dropoutSeed("fake.dropout"),
        ...renoise("fake.renoise", batch)
      })),
    generatorStep: (batch): Draws =>
      tf.tidy(() => ({
        z: image("generator.z", batch),
        sigma: generatorSigmaFromUniform(tf.tensor1d(draw("generator.t", batch, "uniform")), options.tmax ?? TMAX) as tf.Tensor1D,
        noise: image("generator.noise", batch),
        ...labels("generator.label", batch),
        ...dropoutSeed("generator.dropout"),
        ...renoise("generator.renoise", batch)
      })),
    latents: (batch) => image("eval.z", batch),
    ...(options.augment === undefined ? {} : {
      augmentation: (batch: number) => {
        const r = drawAugmentParams(states.get("augment")!, batch, options.augment!)
        states.set("augment", r.state)
        return r.params
      }
    }),
    ...(options.realData === true ? {
      realIndices: (batch: number, size: number) => {
        if (!(Number.isInteger(size) && size > 0)) throw new Error(`realIndices: dataset size must be a positive integer; got ${size}`)
        const u = draw("real", batch, "uniform")
        return Int32Array.from(u, (v) => Math.min(size - 1, Math.floor(v * size)))
      }
    } : {}),
    state: (): SamplerState => Object.fromEntries(states.entries()),
    restore: (state) => {
      for (const name of names) {
        if (state[name] === undefined && !(DROPOUT_STREAMS as ReadonlyArray<StreamName>).includes(name)) {
          throw new Error(`sampler state has no stream "${name}"`)
        }
      }
      for (const name of names) states.set(name, state[name] ?? makeStream(options.seed, name))
    }
  })
}

/**
 * The data-free sampler for a seed and data shape.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: SamplerOptions): Layer.Layer<DataFreeSampler, never, Engine> =>
  withEngine(Layer.sync(DataFreeSampler, () => makeSampler(options)))

/**
 * The data-free sampler for the teacher's data shape and classes; with dropout seeds when the train-mode dropout rate
 * (`dropout`: the distillation's setting, null or absent for the architecture's own, docs/algorithm.md §9.2) is above 0.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerForTeacher = (
  options: Omit<SamplerOptions, "dataShape" | "labelDim" | "dropout"> & { readonly dropout?: number | null }
): Layer.Layer<DataFreeSampler, never, Teacher | Engine> =>
  withEngine(Layer.effect(
    DataFreeSampler,
    Effect.map(Teacher, (t) => {
      const { dropout, ...rest } = options
      return makeSampler({
        ...rest,
        dataShape: t.dataShape,
        labelDim: t.weights.network.labelDim,
        dropout: trainDropoutRate(t.weights.network, dropout) > 0
      })
    })
  ))
