/**
 * The raw network F for vector data: an MLP with a sinusoidal σ embedding.
 *
 * F(c_in·x, c_noise) sees the scaled input, c_noise and sin/cos(2^{k/2}·c_noise) for k = 0..K−1, then `depth` hidden
 * SiLU layers of width `hidden`, then a linear output scaled at initialisation (docs/algorithm.md §12.3: 4×128 SiLU with K = 8
 * has 52,354 parameters for 2-D data; He-normal init, output layer ×0.1). EDM preconditioning is applied around it
 * by `EdmDenoiser`.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { Parameters } from "./Parameters.js"
import { normalTensor } from "../data/RandomStream.js"
import { dense } from "./Dense.js"

/**
 * Architecture of an {@link Mlp}.
 *
 * @since 0.1.0
 * @category models
 */
export interface MlpSpec {
  /** Data dimension d (input and output width). */
  readonly dim: number
  /** Width of every hidden layer. */
  readonly hidden: number
  /** Number of hidden layers. */
  readonly depth: number
  /** K: the embedding uses sin/cos(2^{k/2}·c_noise) for k = 0..K−1. */
  readonly frequencies: number
  /** Scale applied to the output layer's initial weights (docs/algorithm.md §12.3: 0.1). */
  readonly outputScale: number
}

/**
 * The architecture of docs/algorithm.md §12.3 for d-dimensional data: 4 hidden layers of 128, K = 8, output ×0.1.
 *
 * @since 0.1.0
 * @category utils
 */
export const mlpSpec = (dim: number, overrides: Partial<Omit<MlpSpec, "dim">> = {}): MlpSpec => ({
  dim,
  hidden: 128,
  depth: 4,
  frequencies: 8,
  outputScale: 0.1,
  ...overrides
})

const inputWidth = (spec: MlpSpec): number => spec.dim + 1 + 2 * spec.frequencies

/**
 * Names and shapes of the parameters of an MLP (`layers.{i}.weight` is [in, out], `layers.{i}.bias` is [out]).
 *
 * @since 0.1.0
 * @category utils
 */
export const mlpShapes = (spec: MlpSpec): Record<string, ReadonlyArray<number>> => {
  const widths = [inputWidth(spec), ...Array.from({ length: spec.depth }, () => spec.hidden), spec.dim]
  const shapes: Record<string, ReadonlyArray<number>> = {}
  for (let i = 0; i + 1 < widths.length; i++) {
    shapes[`layers.${i}.weight`] = [widths[i]!, widths[i + 1]!]
    shapes[`layers.${i}.bias`] = [widths[i + 1]!]
  }
  return shapes
}

/**
 * Fresh parameters: He-normal weights (std √(2/fan_in)), zero biases, output layer scaled by `outputScale`.
 * Deterministic in `seed`. The caller owns the returned tensors.
 *
 * @since 0.1.0
 * @category utils
 */
export const initMlp = (spec: MlpSpec, seed: number): Record<string, tf.Tensor> =>
  tf.tidy(() => {
    const shapes = mlpShapes(spec)
    const out: Record<string, tf.Tensor> = {}
    Object.entries(shapes).forEach(([name, shape]) => {
      if (name.endsWith(".bias")) {
        out[name] = tf.zeros(shape as Array<number>)
      } else {
        const fanIn = shape[0]!
        const isOutput = name === `layers.${spec.depth}.weight`
        const std = Math.sqrt(2 / fanIn) * (isOutput ? spec.outputScale : 1)
        out[name] = normalTensor(shape, seed, `mlp.${name}`, std)
      }
    })
    return out
  })

/**
 * The σ embedding [c_noise, sin(2^{k/2}c_noise), cos(2^{k/2}c_noise)]_k for c_noise of shape [N]: [N, 1 + 2K].
 *
 * @since 0.1.0
 * @category utils
 */
export const noiseEmbedding = (cNoise: tf.Tensor1D, frequencies: number): tf.Tensor2D =>
  tf.tidy(() => {
    const freqs = tf.tensor1d(Array.from({ length: frequencies }, (_, k) => Math.pow(2, k / 2)))
    const phase = tf.mul(cNoise.reshape([-1, 1]), freqs.reshape([1, -1]))
    return tf.concat([cNoise.reshape([-1, 1]), tf.sin(phase), tf.cos(phase)], 1) as tf.Tensor2D
  })

/**
 * The hidden layer whose activations stand in for an encoder's bottleneck in SiDA (docs/sida.md §3): the output of the
 * first ⌈depth/2⌉ hidden layers, i.e. index ⌈depth/2⌉ − 1.
 *
 * @since 0.2.0
 * @category utils
 */
export const mlpBottleneckLayer = (spec: MlpSpec): number => Math.max(0, Math.ceil(spec.depth / 2) - 1)

const runMlp = (
  spec: MlpSpec,
  params: Parameters,
  xIn: tf.Tensor2D,
  cNoise: tf.Tensor1D,
  want: "decoder" | "encoder" | "both"
): { readonly output?: tf.Tensor2D; readonly logits?: tf.Tensor2D } => {
  const bottleneck = mlpBottleneckLayer(spec)
  let logits: tf.Tensor2D | undefined
  let h: tf.Tensor2D = tf.concat([xIn, noiseEmbedding(cNoise, spec.frequencies)], 1)
  for (let i = 0; i <= spec.depth; i++) {
    const w = params[`layers.${i}.weight`] as tf.Tensor2D | undefined
    const b = params[`layers.${i}.bias`]
    if (w === undefined || b === undefined) throw new Error(`MLP parameter layers.${i} is missing`)
    h = dense(h, w, b, i < spec.depth ? "silu" : "linear")
    if (want !== "decoder" && i === bottleneck) {
      logits = tf.mean(h, 1, true) as tf.Tensor2D
      if (want === "encoder") return { logits }
    }
  }
  return logits === undefined ? { output: h } : { output: h, logits }
}

/**
 * F(x_in, c_noise): x_in [N, d] (already multiplied by c_in), c_noise [N] → [N, d].
 *
 * @since 0.1.0
 * @category utils
 */
export const applyMlp = (
  spec: MlpSpec,
  params: Parameters,
  xIn: tf.Tensor2D,
  cNoise: tf.Tensor1D
): tf.Tensor2D => tf.tidy(() => runMlp(spec, params, xIn, cNoise, "decoder").output!)

/**
 * The MLP's stand-in for SiDA's shared discriminator (docs/sida.md §3): the logits [N, 1] are the mean over units of
 * the hidden layer {@link mlpBottleneckLayer}, the analogue of an encoder bottleneck's channel mean. `"encoder"` stops
 * there; `"both"` also returns F exactly as {@link applyMlp} computes it.
 *
 * @since 0.2.0
 * @category utils
 */
export const applyMlpDiscriminator = (
  spec: MlpSpec,
  params: Parameters,
  xIn: tf.Tensor2D,
  cNoise: tf.Tensor1D,
  want: "encoder" | "both"
): { readonly output?: tf.Tensor2D; readonly logits: tf.Tensor2D } =>
  tf.tidy(() => {
    const r = runMlp(spec, params, xIn, cNoise, want)
    return r.output === undefined ? { logits: r.logits! } : { output: r.output, logits: r.logits! }
  })
