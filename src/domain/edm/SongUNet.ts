/**
 * EDM's SongUNet (DDPM++ / NCSN++, NVlabs/edm `training/networks.py` class `SongUNet`) as a pure function of
 * parameters named by its `state_dict()` names, on NHWC tensors (docs/algorithm.md §2.3 backbones: DDPM++ for CIFAR/FFHQ/AFHQ).
 *
 * Mapping: noise embedding (positional with endpoint, or Fourier), halves swapped to [sin, cos]; + map_label(labels ·
 * √label_dim); + map_augment(augment labels); SiLU(map_layer0); SiLU(map_layer1). Encoder per level: a 3×3 conv at the
 * top level, else a down block (plus the `skip` encoder's aux_down/aux_skip or the `residual` encoder's fused
 * aux_residual, whose sum with x is divided by √2); then `numBlocks` blocks, attention where the resolution is listed.
 * Decoder per level from the lowest: in0 (attention) and in1 at the lowest level, else an up block; `numBlocks + 1`
 * blocks each fed the concatenation with the next skip (attention in the last one where listed); at level 0 (and at
 * every level for the `skip` decoder) aux_norm → SiLU → aux_conv summed into the output (aux_up upsamples it).
 * Blocks: one head, skip_scale √½, ε 1e-6, resample_proj, no adaptive scale. Dropout (EDM's, before each block's
 * conv1) runs only in train mode, when `apply` is given dropout masks (docs/algorithm.md §9.1).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import type { Network } from "../nn/Network.js"
import type { Parameters, ParameterShapes } from "../nn/Parameters.js"
import {
  applyConv,
  applyGroupNorm,
  applyLinear,
  applyNoiseEmbedding,
  applyUNetBlock,
  bottleneckLogits,
  checkEdmInputs,
  checkGroupNorms,
  type ConvModule,
  convModule,
  type EdmApplyOptions,
  type EdmLabels,
  type EdmModule,
  edmInputs,
  type EncoderDecoderOutput,
  type FourierModule,
  type GroupNormModule,
  groupNormModule,
  initEntries,
  type InitSpec,
  type LinearModule,
  linearModule,
  moduleEntries,
  type PositionalModule,
  silu,
  type TensorEntry,
  type UNetBlockModule
} from "./Blocks.js"
import { paramShapeFromEdm } from "./StateDict.js"

/**
 * SongUNet's constructor arguments (EDM names in camelCase); input and output channels are both `imgChannels`.
 *
 * @since 0.1.0
 * @category models
 */
export interface SongUNetSpec {
  readonly imgResolution: number
  readonly imgChannels: number
  readonly labelDim: number
  readonly augmentDim: number
  readonly modelChannels: number
  readonly channelMult: ReadonlyArray<number>
  readonly channelMultEmb: number
  readonly numBlocks: number
  readonly attnResolutions: ReadonlyArray<number>
  /** Dropout rate of the UNet blocks in train mode (docs/algorithm.md §9.1–9.2); evaluation mode has none. */
  readonly dropout: number
  readonly embeddingType: "positional" | "fourier"
  readonly channelMultNoise: number
  readonly encoderType: "standard" | "skip" | "residual"
  readonly decoderType: "standard" | "skip"
  readonly resampleFilter: ReadonlyArray<number>
}

/**
 * EDM's SongUNet defaults (DDPM++ at 128 channels, `[1,2,2,2]`, 4 blocks, attention at 16).
 *
 * @since 0.1.0
 * @category constants
 */
export const SONG_UNET_DEFAULTS: Omit<SongUNetSpec, "imgResolution" | "imgChannels"> = {
  labelDim: 0,
  augmentDim: 0,
  modelChannels: 128,
  channelMult: [1, 2, 2, 2],
  channelMultEmb: 4,
  numBlocks: 4,
  attnResolutions: [16],
  dropout: 0.1,
  embeddingType: "positional",
  channelMultNoise: 1,
  encoderType: "standard",
  decoderType: "standard",
  resampleFilter: [1, 1]
}

/**
 * The modules of a SongUNet by state-dict name (without `model.`), in registration order.
 *
 * @since 0.1.0
 * @category models
 */
export interface SongUNetLayout {
  readonly mapNoise: PositionalModule | FourierModule
  readonly mapLabel: LinearModule | undefined
  readonly mapAugment: LinearModule | undefined
  readonly mapLayer0: LinearModule
  readonly mapLayer1: LinearModule
  readonly enc: ReadonlyArray<readonly [string, EdmModule]>
  readonly dec: ReadonlyArray<readonly [string, EdmModule]>
}

const isPositiveInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1
const isNonNegativeInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0

/**
 * The module layout of a SongUNet, following EDM's constructor.
 *
 * @since 0.1.0
 * @category utils
 */
export const songUNetLayout = (spec: SongUNetSpec): SongUNetLayout => {
  const mc = spec.modelChannels
  const embChannels = mc * spec.channelMultEmb
  const noiseChannels = mc * spec.channelMultNoise
  const init: InitSpec = { mode: "xavier_uniform", weight: 1, bias: 0 }
  const initZero: InitSpec = { mode: "xavier_uniform", weight: 1e-5, bias: 0 }
  const initAttn: InitSpec = { mode: "xavier_uniform", weight: Math.sqrt(0.2), bias: 0 }
  const block = (
    inChannels: number,
    outChannels: number,
    opts: { readonly up?: boolean; readonly down?: boolean; readonly attention?: boolean } = {}
  ): UNetBlockModule => ({
    kind: "block",
    inChannels,
    outChannels,
    embChannels,
    up: opts.up ?? false,
    down: opts.down ?? false,
    numHeads: opts.attention === true ? 1 : 0,
    skipScale: Math.sqrt(0.5),
    eps: 1e-6,
    resampleFilter: spec.resampleFilter,
    resampleProj: true,
    adaptiveScale: false,
    init,
    initZero,
    initAttn
  })
  const filter = { resampleFilter: spec.resampleFilter }
  const enc: Array<readonly [string, EdmModule]> = []
  let cout = spec.imgChannels
  let caux = spec.imgChannels
  spec.channelMult.forEach((mult, level) => {
    const res = spec.imgResolution >> level
    const at = `enc.${res}x${res}`
    if (level === 0) {
      const cin = cout
      cout = mc
      enc.push([`${at}_conv`, convModule(cin, cout, 3, init)])
    } else {
      enc.push([`${at}_down`, block(cout, cout, { down: true })])
      if (spec.encoderType === "skip") {
        enc.push([`${at}_aux_down`, convModule(caux, caux, 0, init, { down: true, ...filter })])
        enc.push([`${at}_aux_skip`, convModule(caux, cout, 1, init)])
      }
      if (spec.encoderType === "residual") {
        enc.push([`${at}_aux_residual`, convModule(caux, cout, 3, init, { down: true, fusedResample: true, ...filter })])
        caux = cout
      }
    }
    for (let idx = 0; idx < spec.numBlocks; idx++) {
      const cin = cout
      cout = mc * mult
      enc.push([`${at}_block${idx}`, block(cin, cout, { attention: spec.attnResolutions.includes(res) })])
    }
  })
  const skips = enc.filter(([name]) => !name.includes("aux")).map(([, m]) =>
    (m as UNetBlockModule | ConvModule).outChannels
  )
  const dec: Array<readonly [string, EdmModule]> = []
  const levels = spec.channelMult.length
  for (let level = levels - 1; level >= 0; level--) {
    const mult = spec.channelMult[level]!
    const res = spec.imgResolution >> level
    const at = `dec.${res}x${res}`
    if (level === levels - 1) {
      dec.push([`${at}_in0`, block(cout, cout, { attention: true })])
      dec.push([`${at}_in1`, block(cout, cout)])
    } else {
      dec.push([`${at}_up`, block(cout, cout, { up: true })])
    }
    for (let idx = 0; idx <= spec.numBlocks; idx++) {
      const cin = cout + skips.pop()!
      cout = mc * mult
      const attention = idx === spec.numBlocks && spec.attnResolutions.includes(res)
      dec.push([`${at}_block${idx}`, block(cin, cout, { attention })])
    }
    if (spec.decoderType === "skip" || level === 0) {
      if (spec.decoderType === "skip" && level < levels - 1) {
        dec.push([`${at}_aux_up`, convModule(spec.imgChannels, spec.imgChannels, 0, init, { up: true, ...filter })])
      }
      dec.push([`${at}_aux_norm`, groupNormModule(cout, 1e-6)])
      dec.push([`${at}_aux_conv`, convModule(cout, spec.imgChannels, 3, initZero)])
    }
  }
  return {
    mapNoise: spec.embeddingType === "positional"
      ? { kind: "positional", channels: noiseChannels, endpoint: true }
      : { kind: "fourier", channels: noiseChannels },
    mapLabel: spec.labelDim > 0 ? linearModule(spec.labelDim, noiseChannels, true, init) : undefined,
    mapAugment: spec.augmentDim > 0 ? linearModule(spec.augmentDim, noiseChannels, false, init) : undefined,
    mapLayer0: linearModule(noiseChannels, embChannels, true, init),
    mapLayer1: linearModule(embChannels, embChannels, true, init),
    enc,
    dec
  }
}

/**
 * A checked SongUNet spec: the EDM defaults overridden by `overrides`. Throws when a field is out of range, the
 * resolution is not divisible by 2^(levels−1), an embedding width is odd, or a GroupNorm cannot split its channels.
 *
 * @since 0.1.0
 * @category utils
 */
export const songUNetSpec = (
  imgResolution: number,
  imgChannels: number,
  overrides: Partial<Omit<SongUNetSpec, "imgResolution" | "imgChannels">> = {}
): SongUNetSpec => {
  const spec: SongUNetSpec = { ...SONG_UNET_DEFAULTS, imgResolution, imgChannels, ...overrides }
  for (const key of ["imgResolution", "imgChannels", "modelChannels", "channelMultEmb", "channelMultNoise"] as const) {
    if (!isPositiveInt(spec[key])) throw new Error(`songUNetSpec: ${key} must be a positive integer; got ${spec[key]}`)
  }
  for (const key of ["labelDim", "augmentDim", "numBlocks"] as const) {
    if (!isNonNegativeInt(spec[key])) throw new Error(`songUNetSpec: ${key} must be a non-negative integer; got ${spec[key]}`)
  }
  if (spec.channelMult.length < 1 || !spec.channelMult.every(isPositiveInt)) {
    throw new Error(`songUNetSpec: channelMult must be a non-empty list of positive integers; got [${spec.channelMult}]`)
  }
  if (!spec.attnResolutions.every(isPositiveInt)) {
    throw new Error(`songUNetSpec: attnResolutions must be positive integers; got [${spec.attnResolutions}]`)
  }
  if (spec.resampleFilter.length < 1 || !spec.resampleFilter.every((v) => Number.isFinite(v)) ||
    spec.resampleFilter.reduce((a, b) => a + b, 0) === 0) {
    throw new Error(`songUNetSpec: resampleFilter must be finite taps with a non-zero sum; got [${spec.resampleFilter}]`)
  }
  if (!["positional", "fourier"].includes(spec.embeddingType)) {
    throw new Error(`songUNetSpec: embeddingType must be "positional" or "fourier"; got ${spec.embeddingType}`)
  }
  if (!["standard", "skip", "residual"].includes(spec.encoderType)) {
    throw new Error(`songUNetSpec: encoderType must be "standard", "skip" or "residual"; got ${spec.encoderType}`)
  }
  if (!["standard", "skip"].includes(spec.decoderType)) {
    throw new Error(`songUNetSpec: decoderType must be "standard" or "skip"; got ${spec.decoderType}`)
  }
  if (!(spec.dropout >= 0 && spec.dropout < 1)) throw new Error(`songUNetSpec: dropout must be in [0, 1); got ${spec.dropout}`)
  if ((spec.modelChannels * spec.channelMultNoise) % 2 !== 0) {
    throw new Error(`songUNetSpec: the noise embedding width modelChannels·channelMultNoise must be even`)
  }
  const factor = 2 ** (spec.channelMult.length - 1)
  if (spec.imgResolution % factor !== 0) {
    throw new Error(`songUNetSpec: ${spec.channelMult.length} levels need a resolution divisible by ${factor}; got ${spec.imgResolution}`)
  }
  const layout = songUNetLayout(spec)
  checkGroupNorms("songUNetSpec", [...layout.enc, ...layout.dec])
  return spec
}

/**
 * The state-dict entries of a SongUNet (names without `model.`), in `state_dict()` order, with EDM shapes.
 *
 * @since 0.1.0
 * @category utils
 */
export const songUNetEntries = (spec: SongUNetSpec): ReadonlyArray<TensorEntry> => {
  const l = songUNetLayout(spec)
  const mapping: Array<readonly [string, EdmModule | undefined]> = [
    ["map_noise", l.mapNoise],
    ["map_label", l.mapLabel],
    ["map_augment", l.mapAugment],
    ["map_layer0", l.mapLayer0],
    ["map_layer1", l.mapLayer1]
  ]
  return [...mapping, ...l.enc, ...l.dec].flatMap(([name, m]) => (m === undefined ? [] : moduleEntries(name, m)))
}

/**
 * Parameter shapes (TF.js layouts) of a SongUNet by state-dict name without `model.`, in `state_dict()` order.
 *
 * @since 0.1.0
 * @category utils
 */
export const songUNetShapes = (spec: SongUNetSpec): ParameterShapes =>
  Object.fromEntries(songUNetEntries(spec).map((e) => [e.name, paramShapeFromEdm(e.edmShape)]))

/**
 * Fresh SongUNet parameters with EDM's initialisers, deterministic in `seed`; the caller owns them.
 *
 * @since 0.1.0
 * @category utils
 */
export const initSongUNet = (spec: SongUNetSpec, seed: number): Record<string, tf.Tensor> =>
  initEntries(songUNetEntries(spec), seed)

const runSongUNet = (
  spec: SongUNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels,
  options: EdmApplyOptions,
  want: "decoder" | "encoder" | "both"
): { readonly output?: tf.Tensor4D; readonly logits?: tf.Tensor4D } => {
  checkEdmInputs("applySongUNet", spec, xIn, cNoise, labels)
  const n = xIn.shape[0]
  const l = songUNetLayout(spec)
  const raw = applyNoiseEmbedding(params, "map_noise", l.mapNoise, cNoise)
  const [cosHalf, sinHalf] = tf.split(raw, 2, 1)
  let emb = tf.concat([sinHalf!, cosHalf!], 1) as tf.Tensor2D
  if (l.mapLabel !== undefined) {
    const c = labels.classLabels ?? tf.zeros([n, spec.labelDim])
    emb = tf.add(emb, applyLinear(params, "map_label", l.mapLabel, tf.mul(c, Math.sqrt(spec.labelDim)) as tf.Tensor2D))
  }
  if (l.mapAugment !== undefined && labels.augmentLabels !== undefined) {
    emb = tf.add(emb, applyLinear(params, "map_augment", l.mapAugment, labels.augmentLabels))
  }
  emb = silu(applyLinear(params, "map_layer0", l.mapLayer0, emb)) as tf.Tensor2D
  emb = silu(applyLinear(params, "map_layer1", l.mapLayer1, emb)) as tf.Tensor2D

  const skips: Array<tf.Tensor4D> = []
  let x: tf.Tensor4D = xIn
  let aux: tf.Tensor4D = xIn
  for (const [name, m] of l.enc) {
    if (name.includes("aux_down")) {
      aux = applyConv(params, name, m as ConvModule, aux)
    } else if (name.includes("aux_skip")) {
      x = tf.add(x, applyConv(params, name, m as ConvModule, aux))
      skips[skips.length - 1] = x
    } else if (name.includes("aux_residual")) {
      x = tf.div(tf.add(x, applyConv(params, name, m as ConvModule, aux)), Math.SQRT2) as tf.Tensor4D
      skips[skips.length - 1] = x
      aux = x
    } else {
      x = m.kind === "block" ? applyUNetBlock(params, name, m, x, emb, options.dropout) : applyConv(params, name, m as ConvModule, x)
      skips.push(x)
    }
  }
  const logits = want === "decoder" ? undefined : bottleneckLogits(x)
  if (want === "encoder") return { logits: logits! }

  let out: tf.Tensor4D | undefined
  let tmp: tf.Tensor4D | undefined
  for (const [name, m] of l.dec) {
    if (name.includes("aux_up")) {
      out = applyConv(params, name, m as ConvModule, out!)
    } else if (name.includes("aux_norm")) {
      tmp = applyGroupNorm(params, name, m as GroupNormModule, x)
    } else if (name.includes("aux_conv")) {
      tmp = applyConv(params, name, m as ConvModule, silu(tmp!) as tf.Tensor4D)
      out = out === undefined ? tmp : (tf.add(tmp, out) as tf.Tensor4D)
    } else {
      const b = m as UNetBlockModule
      if (x.shape[3] !== b.inChannels) x = tf.concat([x, skips.pop()!], 3)
      x = applyUNetBlock(params, name, b, x, emb, options.dropout)
    }
  }
  return logits === undefined ? { output: out! } : { output: out!, logits }
}

/**
 * F(x_in, c_noise, class labels, augment labels) of a SongUNet (docs/algorithm.md §2.3): x_in [N,R,R,C] (NHWC, already × c_in),
 * c_noise [N] → [N,R,R,C]. Parameters are named by state-dict names without `model.`, in TF.js layouts.
 *
 * @since 0.1.0
 * @category utils
 */
export const applySongUNet = (
  spec: SongUNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels = {},
  options: EdmApplyOptions = {}
): tf.Tensor4D => tf.tidy(() => runSongUNet(spec, params, xIn, cNoise, labels, options, "decoder").output!)

/**
 * SongUNet's forward pass as SiDA's shared discriminator uses it (docs/algorithm.md §13, docs/sida.md §3): `"encoder"` runs only
 * the encoder and returns the logits [N, r, r, 1] (the bottleneck's channel mean, r the lowest resolution); `"both"`
 * returns F exactly as {@link applySongUNet} computes it, and the logits of the same pass.
 *
 * @since 0.2.0
 * @category utils
 */
export const applySongUNetDiscriminator = <W extends "encoder" | "both">(
  spec: SongUNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels,
  options: EdmApplyOptions,
  want: W
): EncoderDecoderOutput<W> =>
  tf.tidy(() => {
    const r = runSongUNet(spec, params, xIn, cNoise, labels, options, want)
    return (want === "encoder" ? r.logits! : { output: r.output!, logits: r.logits! }) as EncoderDecoderOutput<W>
  })

/**
 * A SongUNet as a {@link Network} (NHWC data [R, R, C]; kind "songunet"). `apply` is EDMPrecond's network: one-hot
 * class labels when given, zero labels when labelDim > 0 and none are given; augment labels when given (absent: the
 * zero vector, docs/algorithm.md §15, item 11: the augment map has no bias). The discriminator logits of SiDA come from the
 * encoder's bottleneck (docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category utils
 */
export const songUNetNetwork = (spec: SongUNetSpec): Network => ({
  description: { kind: "songunet", spec },
  dataShape: [spec.imgResolution, spec.imgResolution, spec.imgChannels],
  labelDim: spec.labelDim,
  augmentDim: spec.augmentDim,
  shapes: songUNetShapes(spec),
  dropout: spec.dropout,
  init: (seed) => initSongUNet(spec, seed),
  apply: (params, xIn, cNoise, labels, options = {}) => {
    const e = edmInputs(labels, options)
    return applySongUNet(spec, params, xIn as tf.Tensor4D, cNoise, e.labels, e.options)
  },
  applyWithLogits: (params, xIn, cNoise, labels, options = {}) => {
    const e = edmInputs(labels, options)
    return applySongUNetDiscriminator(spec, params, xIn as tf.Tensor4D, cNoise, e.labels, e.options, "both")
  },
  applyLogits: (params, xIn, cNoise, labels, options = {}) => {
    const e = edmInputs(labels, options)
    return applySongUNetDiscriminator(spec, params, xIn as tf.Tensor4D, cNoise, e.labels, e.options, "encoder")
  }
})
