/**
 * EDM network configurations: the keyword arguments of EDMPrecond (NVlabs/edm `training/networks.py`), as stored in
 * the `config` metadata of EDM safetensors files, parsed into a SongUNet or DhariwalUNet spec (docs/algorithm.md §2.3, §2.5).
 *
 * Keys are EDM's own (snake_case): EDMPrecond's `img_resolution`, `img_channels`, `label_dim`, `use_fp16`,
 * `sigma_min`, `sigma_max`, `sigma_data`, `model_type` (default "DhariwalUNet", as in EDMPrecond), plus the model's
 * keyword arguments. Missing model arguments take EDM's defaults; an unknown key is an error (PyTorch would reject it).
 *
 * @module
 */
import type { Network } from "../nn/Network.js"
import type { ParameterShapes } from "../nn/Parameters.js"
import { SIGMA_DATA } from "./Edm.js"
import {
  dhariwalUNetEntries,
  dhariwalUNetNetwork,
  dhariwalUNetShapes,
  dhariwalUNetSpec,
  type DhariwalUNetSpec
} from "./DhariwalUNet.js"
import type { TensorEntry } from "./Blocks.js"
import { songUNetEntries, songUNetNetwork, songUNetShapes, songUNetSpec, type SongUNetSpec } from "./SongUNet.js"

/**
 * An EDM architecture: a SongUNet or a DhariwalUNet with its spec (the `{ kind, spec }` of a network description).
 *
 * @since 0.1.0
 * @category models
 */
export type EdmArchitecture =
  | { readonly kind: "songunet"; readonly spec: SongUNetSpec }
  | { readonly kind: "dhariwalunet"; readonly spec: DhariwalUNetSpec }

/**
 * A parsed EDMPrecond configuration.
 *
 * @since 0.1.0
 * @category models
 */
export interface EdmConfig {
  readonly architecture: EdmArchitecture
  /** σ_data of the preconditioning (default 0.5, docs/algorithm.md §2.1). */
  readonly sigmaData: number
  readonly sigmaMin: number
  readonly sigmaMax: number
  /** Recorded only: sid-ts always runs float32. */
  readonly useFp16: boolean
}

const PRECOND_KEYS = ["img_resolution", "img_channels", "label_dim", "use_fp16", "sigma_min", "sigma_max", "sigma_data", "model_type"]
const COMMON_KEYS = [
  "augment_dim",
  "model_channels",
  "channel_mult",
  "channel_mult_emb",
  "num_blocks",
  "attn_resolutions",
  "dropout",
  "label_dropout"
]
const SONG_KEYS = ["embedding_type", "channel_mult_noise", "encoder_type", "decoder_type", "resample_filter"]

const fail = (message: string): never => {
  throw new Error(`EDM config: ${message}`)
}

const numberAt = (c: Readonly<Record<string, unknown>>, key: string): number | undefined => {
  const v = c[key]
  if (v === undefined) return undefined
  if (typeof v !== "number") return fail(`${key} must be a number; got ${JSON.stringify(v)}`)
  return v
}

const numbersAt = (c: Readonly<Record<string, unknown>>, key: string): ReadonlyArray<number> | undefined => {
  const v = c[key]
  if (v === undefined) return undefined
  if (!Array.isArray(v) || !v.every((x) => typeof x === "number")) {
    return fail(`${key} must be a list of numbers; got ${JSON.stringify(v)}`)
  }
  return v as ReadonlyArray<number>
}

const stringAt = (c: Readonly<Record<string, unknown>>, key: string): string | undefined => {
  const v = c[key]
  if (v === undefined) return undefined
  if (typeof v !== "string") return fail(`${key} must be a string; got ${JSON.stringify(v)}`)
  return v
}

type Defined<A> = { [K in keyof A]?: Exclude<A[K], undefined> }

const defined = <A extends Record<string, unknown>>(a: A): Defined<A> =>
  Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)) as Defined<A>

/**
 * Parses EDMPrecond keyword arguments (a JSON string or an object) into an architecture and the preconditioning
 * constants. Throws an Error naming the offending key for an unknown model type, an unknown key, a value of the wrong
 * type, or an architecture the spec constructors reject.
 *
 * @since 0.1.0
 * @category utils
 */
export const parseEdmConfig = (config: string | Readonly<Record<string, unknown>>): EdmConfig => {
  let c: Readonly<Record<string, unknown>>
  if (typeof config === "string") {
    let parsed: unknown
    try {
      parsed = JSON.parse(config)
    } catch (e) {
      return fail(`not valid JSON: ${String(e)}`)
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return fail("not a JSON object")
    c = parsed as Record<string, unknown>
  } else {
    c = config
  }
  const modelType = stringAt(c, "model_type") ?? "DhariwalUNet"
  if (modelType !== "SongUNet" && modelType !== "DhariwalUNet") {
    return fail(`model_type "${modelType}" is not supported (known: SongUNet, DhariwalUNet)`)
  }
  const allowed = new Set([...PRECOND_KEYS, ...COMMON_KEYS, ...(modelType === "SongUNet" ? SONG_KEYS : [])])
  const unknown = Object.keys(c).filter((k) => !allowed.has(k))
  if (unknown.length > 0) return fail(`unknown keys for ${modelType}: ${unknown.join(", ")}`)
  const resolution = numberAt(c, "img_resolution") ?? fail("img_resolution is required")
  const channels = numberAt(c, "img_channels") ?? fail("img_channels is required")
  const common = defined({
    labelDim: numberAt(c, "label_dim"),
    augmentDim: numberAt(c, "augment_dim"),
    modelChannels: numberAt(c, "model_channels"),
    channelMult: numbersAt(c, "channel_mult"),
    channelMultEmb: numberAt(c, "channel_mult_emb"),
    numBlocks: numberAt(c, "num_blocks"),
    attnResolutions: numbersAt(c, "attn_resolutions"),
    dropout: numberAt(c, "dropout")
  })
  numberAt(c, "label_dropout")
  const useFp16 = c["use_fp16"] ?? false
  if (typeof useFp16 !== "boolean") return fail(`use_fp16 must be a boolean; got ${JSON.stringify(useFp16)}`)
  const architecture: EdmArchitecture = modelType === "SongUNet"
    ? {
      kind: "songunet",
      spec: songUNetSpec(resolution, channels, {
        ...common,
        ...defined({
          embeddingType: stringAt(c, "embedding_type") as SongUNetSpec["embeddingType"] | undefined,
          channelMultNoise: numberAt(c, "channel_mult_noise"),
          encoderType: stringAt(c, "encoder_type") as SongUNetSpec["encoderType"] | undefined,
          decoderType: stringAt(c, "decoder_type") as SongUNetSpec["decoderType"] | undefined,
          resampleFilter: numbersAt(c, "resample_filter")
        })
      })
    }
    : { kind: "dhariwalunet", spec: dhariwalUNetSpec(resolution, channels, common) }
  return {
    architecture,
    sigmaData: numberAt(c, "sigma_data") ?? SIGMA_DATA,
    sigmaMin: numberAt(c, "sigma_min") ?? 0,
    sigmaMax: numberAt(c, "sigma_max") ?? Infinity,
    useFp16
  }
}

/**
 * The network of an EDM architecture (kinds "songunet" / "dhariwalunet").
 *
 * @since 0.1.0
 * @category utils
 */
export const edmNetwork = (architecture: EdmArchitecture): Network =>
  architecture.kind === "songunet" ? songUNetNetwork(architecture.spec) : dhariwalUNetNetwork(architecture.spec)

/**
 * Parameter shapes (TF.js layouts, names without `model.`) of an EDM architecture, in `state_dict()` order.
 *
 * @since 0.1.0
 * @category utils
 */
export const edmShapes = (architecture: EdmArchitecture): ParameterShapes =>
  architecture.kind === "songunet" ? songUNetShapes(architecture.spec) : dhariwalUNetShapes(architecture.spec)

/**
 * State-dict entries (EDM shapes and initialisers) of an EDM architecture, in `state_dict()` order.
 *
 * @since 0.1.0
 * @category utils
 */
export const edmEntries = (architecture: EdmArchitecture): ReadonlyArray<TensorEntry> =>
  architecture.kind === "songunet" ? songUNetEntries(architecture.spec) : dhariwalUNetEntries(architecture.spec)

/**
 * Options of {@link edmConfigFromArchitecture}.
 *
 * @since 0.1.0
 * @category models
 */
export interface EdmConfigOptions {
  /** σ_data of the preconditioning (default 0.5, docs/algorithm.md §2.1). */
  readonly sigmaData?: number
  /** EDMPrecond's `sigma_min`; omitted (EDM default 0) when not given. */
  readonly sigmaMin?: number
  /** EDMPrecond's `sigma_max`; omitted (EDM default ∞) when not given or not finite. */
  readonly sigmaMax?: number
}

/**
 * The EDMPrecond keyword arguments of an architecture (docs/algorithm.md §2.3, §2.5): the inverse of {@link parseEdmConfig}, so
 * `parseEdmConfig(edmConfigFromArchitecture(a)).architecture` equals `a`. Every model keyword argument is written out
 * (none is left to EDM's defaults), `use_fp16` is false (sid-ts runs float32), and the result is JSON-serialisable.
 *
 * @since 0.1.0
 * @category utils
 */
export const edmConfigFromArchitecture = (
  architecture: EdmArchitecture,
  options: EdmConfigOptions = {}
): Readonly<Record<string, unknown>> => {
  const s = architecture.spec
  const precond: Record<string, unknown> = {
    img_resolution: s.imgResolution,
    img_channels: s.imgChannels,
    label_dim: s.labelDim,
    use_fp16: false,
    sigma_data: options.sigmaData ?? SIGMA_DATA,
    model_type: architecture.kind === "songunet" ? "SongUNet" : "DhariwalUNet"
  }
  if (options.sigmaMin !== undefined) precond["sigma_min"] = options.sigmaMin
  if (options.sigmaMax !== undefined && Number.isFinite(options.sigmaMax)) precond["sigma_max"] = options.sigmaMax
  const common = {
    augment_dim: s.augmentDim,
    model_channels: s.modelChannels,
    channel_mult: [...s.channelMult],
    channel_mult_emb: s.channelMultEmb,
    num_blocks: s.numBlocks,
    attn_resolutions: [...s.attnResolutions],
    dropout: s.dropout
  }
  if (architecture.kind === "dhariwalunet") return { ...precond, ...common }
  const song = architecture.spec
  return {
    ...precond,
    ...common,
    embedding_type: song.embeddingType,
    channel_mult_noise: song.channelMultNoise,
    encoder_type: song.encoderType,
    decoder_type: song.decoderType,
    resample_filter: [...song.resampleFilter]
  }
}
