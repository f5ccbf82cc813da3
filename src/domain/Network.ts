/**
 * A raw network architecture F as data plus pure functions: what the EDM preconditioning wraps (spec §1.3).
 *
 * Teacher, generator and fake score share one architecture (spec §2: θ ← φ, ψ ← φ), so an architecture is described
 * once, serialised into checkpoints as `{ kind, spec }`, and rebuilt from that description when a checkpoint loads.
 *
 * F runs in evaluation mode unless `apply` is given dropout masks (train mode, spec §5.1: G in the generator step, ψ in
 * the fake step; never the teacher, G_ema or G producing the fake step's samples).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs"
import type { DropoutMasks } from "./Dropout.js"
import { dhariwalUNetNetwork, dhariwalUNetSpec, type DhariwalUNetSpec } from "./edm/DhariwalUNet.js"
import { songUNetNetwork, songUNetSpec, type SongUNetSpec } from "./edm/SongUNet.js"
import { edmDenoise } from "./Preconditioning.js"
import { applyMlp, initMlp, mlpShapes, type MlpSpec } from "./Mlp.js"
import type { Parameters, ParameterShapes } from "./Parameters.js"
import type { SigmaLike } from "./Tensors.js"
import { applyUNet, initUNet, unetShapes, type UNetSpec } from "./UNet.js"

/** A JSON-serialisable description of an architecture: its kind and its spec. */
export interface NetworkDescription {
  readonly kind: string
  readonly spec: unknown
}

/** Options of one evaluation of F. */
export interface ApplyOptions {
  /**
   * Train mode: dropout at the architecture's dropout sites with this rate, masks from this seed (spec §5.1); absent:
   * evaluation mode. Architectures without dropout sites (the MLP) ignore it.
   */
  readonly dropout?: DropoutMasks
}

/** An architecture: shapes of its parameters, a seeded initialiser and F as a pure function of the parameters. */
export interface Network {
  readonly description: NetworkDescription
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** Number of classes of one-hot label conditioning (spec §1.3: D(x; σ, c)); 0 for an unconditional network. */
  readonly labelDim: number
  readonly shapes: ParameterShapes
  /** The architecture's own train-mode dropout rate (spec §5.2 `--dropout`, e.g. EDM's DDPM++ 0.13); absent: 0. */
  readonly dropout?: number
  /** Fresh parameters, deterministic in `seed`; the caller owns them. */
  readonly init: (seed: number) => Record<string, tf.Tensor>
  /**
   * F(c_in·x, c_noise, c) with the given parameters; `labels` are one-hot [N, labelDim] (absent: unconditional, or
   * the all-zero label of a conditional network). `options.dropout` runs it in train mode.
   */
  readonly apply: (
    params: Parameters,
    xIn: tf.Tensor,
    cNoise: tf.Tensor1D,
    labels?: tf.Tensor2D,
    options?: ApplyOptions
  ) => tf.Tensor
}

/**
 * The train-mode dropout rate of a network (spec §5.1–5.2): the distillation's setting, or when it is absent (null)
 * the architecture's own rate (0 when it has none).
 */
export const trainDropoutRate = (network: Network, setting?: number | null): number => setting ?? network.dropout ?? 0

/** The vector MLP of spec §10.5 as a {@link Network} (no dropout sites: train mode is evaluation mode). */
export const mlpNetwork = (spec: MlpSpec): Network => ({
  description: { kind: "mlp", spec },
  dataShape: [spec.dim],
  labelDim: 0,
  shapes: mlpShapes(spec),
  init: (seed) => initMlp(spec, seed),
  apply: (params, xIn, cNoise, labels) => {
    if (labels !== undefined) throw new Error("mlp networks are unconditional: labels given")
    return applyMlp(spec, params, xIn as tf.Tensor2D, cNoise)
  }
})

/** The small image UNet as a {@link Network} (NHWC data of shape [H, W, C]). */
export const unetNetwork = (spec: UNetSpec): Network => ({
  description: { kind: "unet", spec },
  dataShape: [spec.height, spec.width, spec.channels],
  labelDim: spec.labelDim,
  shapes: unetShapes(spec),
  dropout: spec.dropout,
  init: (seed) => initUNet(spec, seed),
  apply: (params, xIn, cNoise, labels, options = {}) =>
    applyUNet(
      spec,
      params,
      xIn as tf.Tensor4D,
      cNoise,
      labels,
      options.dropout === undefined ? {} : {
        dropoutSeed: options.dropout.seed,
        dropoutRate: options.dropout.rate,
        ...(options.dropout.rows === undefined ? {} : { dropoutRows: options.dropout.rows })
      }
    )
})

/**
 * D(x; σ, c) = c_skip·x + c_out·F(c_in·x, c_noise, c) for a network and its parameters (spec §1.3); `labels` one-hot
 * [N, labelDim] for a class-conditional network; `options.dropout` runs F in train mode (spec §5.1).
 */
export const denoiseWith = (
  network: Network,
  params: Parameters,
  x: tf.Tensor,
  sigma: SigmaLike,
  sigmaData: number,
  labels?: tf.Tensor2D,
  options?: ApplyOptions
): tf.Tensor => edmDenoise(x, sigma, (xIn, cNoise) => network.apply(params, xIn, cNoise, labels, options), sigmaData)

const isMlpSpec = (s: unknown): s is MlpSpec =>
  typeof s === "object" && s !== null &&
  ["dim", "hidden", "depth", "frequencies", "outputScale"].every(
    (k) => typeof (s as Record<string, unknown>)[k] === "number"
  )

/** The network kinds {@link networkFromDescription} rebuilds. */
export const NETWORK_KINDS: ReadonlyArray<string> = ["mlp", "unet", "songunet", "dhariwalunet"]

/**
 * Rebuilds an architecture from its description (as stored in a checkpoint manifest). Throws an Error naming the
 * kind when it is unknown or its spec is malformed.
 */
export const networkFromDescription = (description: NetworkDescription): Network => {
  switch (description.kind) {
    case "mlp":
      if (!isMlpSpec(description.spec)) throw new Error(`malformed "mlp" network spec: ${JSON.stringify(description.spec)}`)
      return mlpNetwork(description.spec)
    case "unet": {
      const spec = description.spec as UNetSpec
      if (typeof spec !== "object" || spec === null || !Array.isArray(spec.channelMult)) {
        throw new Error(`malformed "unet" network spec: ${JSON.stringify(description.spec)}`)
      }
      return unetNetwork(spec)
    }
    case "songunet": {
      const spec = description.spec as SongUNetSpec
      if (typeof spec !== "object" || spec === null || !Array.isArray(spec.channelMult)) {
        throw new Error(`malformed "songunet" network spec: ${JSON.stringify(description.spec)}`)
      }
      const { imgChannels, imgResolution, ...rest } = spec
      return songUNetNetwork(songUNetSpec(imgResolution, imgChannels, rest))
    }
    case "dhariwalunet": {
      const spec = description.spec as DhariwalUNetSpec
      if (typeof spec !== "object" || spec === null || !Array.isArray(spec.channelMult)) {
        throw new Error(`malformed "dhariwalunet" network spec: ${JSON.stringify(description.spec)}`)
      }
      const { imgChannels, imgResolution, ...rest } = spec
      return dhariwalUNetNetwork(dhariwalUNetSpec(imgResolution, imgChannels, rest))
    }
    default:
      throw new Error(`unknown network kind "${description.kind}" (known: ${NETWORK_KINDS.join(", ")})`)
  }
}
