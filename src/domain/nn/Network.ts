/**
 * A raw network architecture F as data plus pure functions: what the EDM preconditioning wraps (docs/algorithm.md §2.3).
 *
 * Teacher, generator and fake score share one architecture (docs/algorithm.md §6: θ ← φ, ψ ← φ), so an architecture is described
 * once, serialised into checkpoints as `{ kind, spec }`, and rebuilt from that description when a checkpoint loads.
 *
 * F runs in evaluation mode unless `apply` is given dropout masks (train mode, docs/algorithm.md §9.1: G in the generator step, ψ in
 * the fake step; never the teacher, G_ema or G producing the fake step's samples).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { DropoutMasks } from "./Dropout.js"
import { dhariwalUNetNetwork, dhariwalUNetSpec, type DhariwalUNetSpec } from "../edm/DhariwalUNet.js"
import { songUNetNetwork, songUNetSpec, type SongUNetSpec } from "../edm/SongUNet.js"
import { edmDenoise, edmDenoiseWith, edmNetworkInputs } from "../edm/Preconditioning.js"
import { applyMlp, applyMlpDiscriminator, initMlp, mlpShapes, type MlpSpec } from "./Mlp.js"
import type { Parameters, ParameterShapes } from "./Parameters.js"
import type { SigmaLike } from "./Tensors.js"
import { applyUNet, applyUNetDiscriminator, type ApplyUNetOptions, initUNet, unetShapes, type UNetSpec } from "./UNet.js"

/**
 * A JSON-serialisable description of an architecture: its kind and its spec (checkpoints and reports store it; its
 * schema is `NetworkDescription` in `domain/config/Records.ts`).
 *
 * @since 0.1.0
 * @category models
 */
export interface NetworkDescription {
  readonly kind: string
  readonly spec: unknown
}

/**
 * Options of one evaluation of F.
 *
 * @since 0.1.0
 * @category models
 */
export interface ApplyOptions {
  /**
   * Train mode: dropout at the architecture's dropout sites with this rate, masks from this seed (docs/algorithm.md §9.1); absent:
   * evaluation mode. Architectures without dropout sites (the MLP) ignore it.
   */
  readonly dropout?: DropoutMasks
  /**
   * EDM's augmentation labels [N, augmentDim] (docs/algorithm.md §13.4, §2.3; docs/sida.md §2), for a network with `augmentDim` > 0.
   * Absent: the zero vector (docs/algorithm.md §15, item 11). A network without augment conditioning throws when given them.
   */
  readonly augmentLabels?: tf.Tensor2D
}

/**
 * F and SiDA's discriminator logits from one pass of a network (docs/algorithm.md §13, docs/sida.md §3).
 *
 * @since 0.1.0
 * @category models
 */
export interface OutputWithLogits {
  readonly output: tf.Tensor
  readonly logits: tf.Tensor
}

/**
 * An architecture: shapes of its parameters, a seeded initialiser and F as a pure function of the parameters.
 *
 * @since 0.1.0
 * @category models
 */
export interface Network {
  readonly description: NetworkDescription
  /** Shape of one sample, without the batch axis. */
  readonly dataShape: ReadonlyArray<number>
  /** Number of classes of one-hot label conditioning (docs/algorithm.md §2.3: D(x; σ, c)); 0 for an unconditional network. */
  readonly labelDim: number
  /**
   * Width of the augmentation labels F is conditioned on (EDM's `augment_dim`: 9 for networks trained with
   * augmentation, docs/algorithm.md §2.3); absent or 0: none (augmented data then reaches F without its labels, docs/sida.md §2).
   */
  readonly augmentDim?: number
  readonly shapes: ParameterShapes
  /** The architecture's own train-mode dropout rate (docs/algorithm.md §9.2 `--dropout`, e.g. EDM's DDPM++ 0.13); absent: 0. */
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
  /**
   * `apply` that also returns SiDA's discriminator logits from the same pass (docs/algorithm.md §13): the channel mean of the
   * encoder's bottleneck feature map (docs/sida.md §3); F is exactly `apply`'s. Absent: the architecture cannot serve
   * as SiDA's discriminator.
   */
  readonly applyWithLogits?: (
    params: Parameters,
    xIn: tf.Tensor,
    cNoise: tf.Tensor1D,
    labels?: tf.Tensor2D,
    options?: ApplyOptions
  ) => OutputWithLogits
  /** The logits of {@link Network.applyWithLogits} alone, from the encoder only (no decoder is run). */
  readonly applyLogits?: (
    params: Parameters,
    xIn: tf.Tensor,
    cNoise: tf.Tensor1D,
    labels?: tf.Tensor2D,
    options?: ApplyOptions
  ) => tf.Tensor
}

/**
 * A denoiser as stored in a file: its architecture, its weights by name, and the data scale σ_data its
 * preconditioning uses.
 *
 * @since 0.2.0
 * @category models
 */
export interface LoadedDenoiser {
  readonly network: Network
  readonly params: Record<string, tf.Tensor>
  readonly sigmaData: number
}

/**
 * The train-mode dropout rate of a network (docs/algorithm.md §9.1–9.2): the distillation's setting, or when it is absent (null)
 * the architecture's own rate (0 when it has none).
 *
 * @since 0.1.0
 * @category utils
 */
export const trainDropoutRate = (network: Network, setting?: number | null): number => setting ?? network.dropout ?? 0

const refuseLabels = (kind: string, labels: tf.Tensor2D | undefined, options: ApplyOptions): void => {
  if (labels !== undefined) throw new Error(`${kind} networks are unconditional: labels given`)
  if (options.augmentLabels !== undefined) throw new Error(`${kind} networks take no augmentation labels`)
}

/**
 * The vector MLP of docs/algorithm.md §12.3 as a {@link Network} (no dropout sites: train mode is evaluation mode). Its SiDA
 * logits [N, 1] are the mean of a middle hidden layer, the stand-in for an encoder bottleneck (docs/sida.md §3).
 *
 * @since 0.1.0
 * @category utils
 */
export const mlpNetwork = (spec: MlpSpec): Network => ({
  description: { kind: "mlp", spec },
  dataShape: [spec.dim],
  labelDim: 0,
  shapes: mlpShapes(spec),
  init: (seed) => initMlp(spec, seed),
  apply: (params, xIn, cNoise, labels, options = {}) => {
    refuseLabels("mlp", labels, options)
    return applyMlp(spec, params, xIn as tf.Tensor2D, cNoise)
  },
  applyWithLogits: (params, xIn, cNoise, labels, options = {}) => {
    refuseLabels("mlp", labels, options)
    const r = applyMlpDiscriminator(spec, params, xIn as tf.Tensor2D, cNoise, "both")
    return { output: r.output!, logits: r.logits }
  },
  applyLogits: (params, xIn, cNoise, labels, options = {}) => {
    refuseLabels("mlp", labels, options)
    return applyMlpDiscriminator(spec, params, xIn as tf.Tensor2D, cNoise, "encoder").logits
  }
})

const unetOptions = (options: ApplyOptions): ApplyUNetOptions => {
  if (options.augmentLabels !== undefined) throw new Error("unet networks take no augmentation labels (augmentDim 0)")
  return options.dropout === undefined ? {} : {
    dropoutSeed: options.dropout.seed,
    dropoutRate: options.dropout.rate,
    ...(options.dropout.rows === undefined ? {} : { dropoutRows: options.dropout.rows })
  }
}

/**
 * The small image UNet as a {@link Network} (NHWC data of shape [H, W, C]); no augment conditioning. Its SiDA logits
 * are the channel mean of the lowest-resolution encoder output (docs/algorithm.md §13, docs/sida.md §3).
 *
 * @since 0.1.0
 * @category utils
 */
export const unetNetwork = (spec: UNetSpec): Network => ({
  description: { kind: "unet", spec },
  dataShape: [spec.height, spec.width, spec.channels],
  labelDim: spec.labelDim,
  shapes: unetShapes(spec),
  dropout: spec.dropout,
  init: (seed) => initUNet(spec, seed),
  apply: (params, xIn, cNoise, labels, options = {}) =>
    applyUNet(spec, params, xIn as tf.Tensor4D, cNoise, labels, unetOptions(options)),
  applyWithLogits: (params, xIn, cNoise, labels, options = {}) => {
    const r = applyUNetDiscriminator(spec, params, xIn as tf.Tensor4D, cNoise, labels, unetOptions(options), "both")
    return { output: r.output!, logits: r.logits }
  },
  applyLogits: (params, xIn, cNoise, labels, options = {}) =>
    applyUNetDiscriminator(spec, params, xIn as tf.Tensor4D, cNoise, labels, unetOptions(options), "encoder").logits
})

/**
 * D(x; σ, c) = c_skip·x + c_out·F(c_in·x, c_noise, c) for a network and its parameters (docs/algorithm.md §2.3); `labels` one-hot
 * [N, labelDim] for a class-conditional network; `options.dropout` runs F in train mode (docs/algorithm.md §9.1).
 *
 * @since 0.1.0
 * @category utils
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

/** The architecture cannot serve as SiDA's discriminator (no `applyWithLogits` / `applyLogits`). */
const noDiscriminator = (network: Network): Error =>
  new Error(`network kind "${network.description.kind}" has no discriminator logits (SiDA, docs/algorithm.md §13)`)

/**
 * D(x; σ, c) as {@link denoiseWith} computes it, and SiDA's discriminator logits from the same pass of F (docs/algorithm.md §13):
 * the fake score's `(ŷ, logit_fake)`. Throws when the network has no `applyWithLogits`.
 *
 * @since 0.1.0
 * @category utils
 */
export const denoiseWithLogits = (
  network: Network,
  params: Parameters,
  x: tf.Tensor,
  sigma: SigmaLike,
  sigmaData: number,
  labels?: tf.Tensor2D,
  options?: ApplyOptions
): { readonly denoised: tf.Tensor; readonly logits: tf.Tensor } => {
  const withLogits = network.applyWithLogits
  if (withLogits === undefined) throw noDiscriminator(network)
  const r = edmDenoiseWith(x, sigma, (xIn, cNoise) => {
    const out = withLogits(params, xIn, cNoise, labels, options)
    return { output: out.output, extra: out.logits }
  }, sigmaData)
  return { denoised: r.denoised, logits: r.extra }
}

/**
 * SiDA's discriminator logits of x at σ (docs/algorithm.md §13: `logit_real`): the encoder alone, fed c_in·x and c_noise as the
 * preconditioning would. Throws when the network has no `applyLogits`.
 *
 * @since 0.1.0
 * @category utils
 */
export const discriminatorLogitsWith = (
  network: Network,
  params: Parameters,
  x: tf.Tensor,
  sigma: SigmaLike,
  sigmaData: number,
  labels?: tf.Tensor2D,
  options?: ApplyOptions
): tf.Tensor => {
  const logits = network.applyLogits
  if (logits === undefined) throw noDiscriminator(network)
  return tf.tidy(() => {
    const inputs = edmNetworkInputs(x, sigma, sigmaData)
    return logits(params, inputs.xIn, inputs.cNoise, labels, options)
  })
}

/**
 * Whether a network can serve as SiDA's discriminator (docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category utils
 */
export const hasDiscriminator = (network: Network): boolean =>
  network.applyWithLogits !== undefined && network.applyLogits !== undefined

const isMlpSpec = (s: unknown): s is MlpSpec =>
  typeof s === "object" && s !== null &&
  ["dim", "hidden", "depth", "frequencies", "outputScale"].every(
    (k) => typeof (s as Record<string, unknown>)[k] === "number"
  )

/**
 * The network kinds {@link networkFromDescription} rebuilds.
 *
 * @since 0.1.0
 * @category constants
 */
export const NETWORK_KINDS: ReadonlyArray<string> = ["mlp", "unet", "songunet", "dhariwalunet"]

/**
 * Rebuilds an architecture from its description (as stored in a checkpoint manifest). Throws an Error naming the
 * kind when it is unknown or its spec is malformed.
 *
 * @since 0.1.0
 * @category utils
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
