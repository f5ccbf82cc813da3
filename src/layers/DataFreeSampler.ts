/**
 * The data-free sampler layer: seeded xoshiro128** streams, one per purpose (spec §3, §4.1), plus dropout-mask
 * seeds for train mode (spec §5.1) when asked for.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { type AugmentSettings, drawAugmentParams } from "../domain/Augment.js"
import { P_MEAN, P_STD, TMAX } from "../domain/Edm.js"
import { trainDropoutRate } from "../domain/Network.js"
import { makeStream, nextUint32, normals, type StreamState, uniforms } from "../domain/RandomStream.js"
import { generatorSigmaFromUniform, logNormalSigma } from "../domain/Schedule.js"
import { type Engine, withEngine } from "../services/Engine.js"
import { DataFreeSampler, type Draws, type SamplerState } from "../services/DataFreeSampler.js"
import { Teacher } from "../services/Teacher.js"

/** Sampler settings. */
export interface SamplerOptions {
  readonly seed: number
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** Upper end of the generator-loss time in thousandths (spec §4.1), default 800. */
  readonly tmax?: number
  /** Log-normal σ of the fake step (spec §1.1), defaults −1.2 and 1.2. */
  readonly pMean?: number
  readonly pStd?: number
  /** Classes of a class-conditional network (labels drawn uniformly); 0 or absent for an unconditional one. */
  readonly labelDim?: number
  /**
   * Draw a dropout-mask seed per step for train-mode dropout (spec §5.1: ψ in the fake step, G in the generator
   * step), from the streams `fake.dropout` and `generator.dropout`, which exist only then (default false; a sampler
   * without them saves and restores the same state as before dropout existed). Restoring a state saved without them
   * (a run without dropout, or from before it existed) starts them afresh from the seed.
   */
  readonly dropout?: boolean
  /**
   * Augmentation settings (spec §3; p > 0): the sampler then draws each batch's augmentation parameters from the
   * stream `augment`, which exists only then. Absent: no such stream (the state is as before augmentation existed).
   */
  readonly augment?: AugmentSettings
  /** Draw rows of a real dataset for SiDA (spec §9.1) from the stream `real`, which exists only then (default false). */
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

/** A pure-state sampler implementation; `layer` wraps it. Exported for programs that need one outside a layer. */
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
  const states = new Map<StreamName, StreamState>(names.map((s) => [s, makeStream(options.seed, s)]))
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

/** The data-free sampler for a seed and data shape. */
export const layer = (options: SamplerOptions): Layer.Layer<DataFreeSampler, never, Engine> =>
  withEngine(Layer.sync(DataFreeSampler, () => makeSampler(options)))

/**
 * The data-free sampler for the teacher's data shape and classes; with dropout seeds when the train-mode dropout rate
 * (`dropout`: the distillation's setting, null or absent for the architecture's own, spec §5.2) is above 0.
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
