/**
 * The data-free sampler layer: seeded xoshiro128** streams, one per purpose (spec §3, §4.1).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Layer } from "effect"
import { P_MEAN, P_STD, TMAX } from "../domain/Edm.js"
import { makeStream, normals, type StreamState, uniforms } from "../domain/RandomStream.js"
import { generatorSigmaFromUniform, logNormalSigma } from "../domain/Schedule.js"
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
}

const STREAMS = ["fake.z", "fake.sigma", "fake.noise", "generator.z", "generator.t", "generator.noise", "eval.z"] as const
type StreamName = (typeof STREAMS)[number]

/** A pure-state sampler implementation; `layer` wraps it. Exported for programs that need one outside a layer. */
export const makeSampler = (options: SamplerOptions) => {
  const states = new Map<StreamName, StreamState>(STREAMS.map((s) => [s, makeStream(options.seed, s)]))
  const perSample = options.dataShape.reduce((a, b) => a * b, 1)
  const draw = (name: StreamName, n: number, kind: "normal" | "uniform"): Float32Array => {
    const r = (kind === "normal" ? normals : uniforms)(states.get(name)!, n)
    states.set(name, r.state)
    return r.values
  }
  const image = (name: StreamName, batch: number): tf.Tensor =>
    tf.tensor(draw(name, batch * perSample, "normal"), [batch, ...options.dataShape])
  return DataFreeSampler.of({
    fakeStep: (batch): Draws =>
      tf.tidy(() => ({
        z: image("fake.z", batch),
        sigma: logNormalSigma(tf.tensor1d(draw("fake.sigma", batch, "normal")), {
          pMean: options.pMean ?? P_MEAN,
          pStd: options.pStd ?? P_STD
        }) as tf.Tensor1D,
        noise: image("fake.noise", batch)
      })),
    generatorStep: (batch): Draws =>
      tf.tidy(() => ({
        z: image("generator.z", batch),
        sigma: generatorSigmaFromUniform(tf.tensor1d(draw("generator.t", batch, "uniform")), options.tmax ?? TMAX) as tf.Tensor1D,
        noise: image("generator.noise", batch)
      })),
    latents: (batch) => image("eval.z", batch),
    state: (): SamplerState => Object.fromEntries(states.entries()),
    restore: (state) => {
      for (const name of STREAMS) {
        const s = state[name]
        if (s === undefined) throw new Error(`sampler state has no stream "${name}"`)
        states.set(name, s)
      }
    }
  })
}

/** The data-free sampler for a seed and data shape. */
export const layer = (options: SamplerOptions): Layer.Layer<DataFreeSampler> =>
  Layer.sync(DataFreeSampler, () => makeSampler(options))

/** The data-free sampler for the teacher's data shape. */
export const layerForTeacher = (options: Omit<SamplerOptions, "dataShape">): Layer.Layer<DataFreeSampler, never, Teacher> =>
  Layer.effect(DataFreeSampler, Effect.map(Teacher, (t) => makeSampler({ ...options, dataShape: t.dataShape })))
