/**
 * EDM's DhariwalUNet (ADM, NVlabs/edm `training/networks.py` class `DhariwalUNet`) as a pure function of parameters
 * named by its `state_dict()` names, on NHWC tensors (docs/algorithm.md §2.3 backbones: ADM for ImageNet 64).
 *
 * Mapping: positional embedding (no endpoint, [cos, sin], no swap) + map_augment(augment labels); SiLU(map_layer0);
 * map_layer1; + map_label(labels) (no bias, no scaling); SiLU. Encoder: a 3×3 conv at the top level, else a down
 * block, then `numBlocks` blocks; every encoder output is a skip. Decoder from the lowest level: in0 (attention) and in1,
 * else an up block; `numBlocks + 1` blocks fed the concatenation with the next skip; then out_norm → SiLU → out_conv.
 * Blocks: adaptive scale/shift, skip_scale 1, ε 1e-5, resampling filter [1,1] without projection, and attention with
 * C // 64 heads where requested (so none below 64 channels). Dropout (EDM's, before each block's conv1) runs only in
 * train mode, when `apply` is given dropout masks (docs/algorithm.md §9.1).
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
  type GroupNormModule,
  groupNormModule,
  initEntries,
  type InitSpec,
  type LinearModule,
  linearModule,
  moduleEntries,
  positionalEmbedding,
  silu,
  type TensorEntry,
  type UNetBlockModule
} from "./Blocks.js"
import { paramShapeFromEdm } from "./StateDict.js"

/**
 * DhariwalUNet's constructor arguments (EDM names in camelCase); input and output channels are both `imgChannels`.
 *
 * @since 0.1.0
 * @category models
 */
export interface DhariwalUNetSpec {
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
}

/**
 * EDM's DhariwalUNet defaults (ADM at 192 channels, `[1,2,3,4]`, 3 blocks, attention at 32, 16, 8).
 *
 * @since 0.1.0
 * @category constants
 */
export const DHARIWAL_UNET_DEFAULTS: Omit<DhariwalUNetSpec, "imgResolution" | "imgChannels"> = {
  labelDim: 0,
  augmentDim: 0,
  modelChannels: 192,
  channelMult: [1, 2, 3, 4],
  channelMultEmb: 4,
  numBlocks: 3,
  attnResolutions: [32, 16, 8],
  dropout: 0.1
}

/**
 * Channels per attention head of DhariwalUNet.
 *
 * @since 0.1.0
 * @category constants
 */
export const DHARIWAL_CHANNELS_PER_HEAD = 64

/**
 * The modules of a DhariwalUNet by state-dict name (without `model.`), in registration order.
 *
 * @since 0.1.0
 * @category models
 */
export interface DhariwalUNetLayout {
  readonly noiseChannels: number
  readonly mapAugment: LinearModule | undefined
  readonly mapLayer0: LinearModule
  readonly mapLayer1: LinearModule
  readonly mapLabel: LinearModule | undefined
  readonly enc: ReadonlyArray<readonly [string, EdmModule]>
  readonly dec: ReadonlyArray<readonly [string, UNetBlockModule]>
  readonly outNorm: GroupNormModule
  readonly outConv: ConvModule
}

const isPositiveInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 1
const isNonNegativeInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0

/**
 * The module layout of a DhariwalUNet, following EDM's constructor.
 *
 * @since 0.1.0
 * @category utils
 */
export const dhariwalUNetLayout = (spec: DhariwalUNetSpec): DhariwalUNetLayout => {
  const mc = spec.modelChannels
  const embChannels = mc * spec.channelMultEmb
  const init: InitSpec = { mode: "kaiming_uniform", weight: Math.sqrt(1 / 3), bias: Math.sqrt(1 / 3) }
  const initZero: InitSpec = { mode: "kaiming_uniform", weight: 0, bias: 0 }
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
    numHeads: opts.attention === true ? Math.floor(outChannels / DHARIWAL_CHANNELS_PER_HEAD) : 0,
    skipScale: 1,
    eps: 1e-5,
    resampleFilter: [1, 1],
    resampleProj: false,
    adaptiveScale: true,
    init,
    initZero,
    initAttn: init
  })
  const enc: Array<readonly [string, EdmModule]> = []
  let cout = spec.imgChannels
  spec.channelMult.forEach((mult, level) => {
    const res = spec.imgResolution >> level
    const at = `enc.${res}x${res}`
    if (level === 0) {
      const cin = cout
      cout = mc * mult
      enc.push([`${at}_conv`, convModule(cin, cout, 3, init)])
    } else {
      enc.push([`${at}_down`, block(cout, cout, { down: true })])
    }
    for (let idx = 0; idx < spec.numBlocks; idx++) {
      const cin = cout
      cout = mc * mult
      enc.push([`${at}_block${idx}`, block(cin, cout, { attention: spec.attnResolutions.includes(res) })])
    }
  })
  const skips = enc.map(([, m]) => (m as UNetBlockModule | ConvModule).outChannels)
  const dec: Array<readonly [string, UNetBlockModule]> = []
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
      dec.push([`${at}_block${idx}`, block(cin, cout, { attention: spec.attnResolutions.includes(res) })])
    }
  }
  return {
    noiseChannels: mc,
    mapAugment: spec.augmentDim > 0 ? linearModule(spec.augmentDim, mc, false, initZero) : undefined,
    mapLayer0: linearModule(mc, embChannels, true, init),
    mapLayer1: linearModule(embChannels, embChannels, true, init),
    mapLabel: spec.labelDim > 0
      ? linearModule(spec.labelDim, embChannels, false, { mode: "kaiming_normal", weight: Math.sqrt(spec.labelDim), bias: 0 })
      : undefined,
    enc,
    dec,
    outNorm: groupNormModule(cout, 1e-5),
    outConv: convModule(cout, spec.imgChannels, 3, initZero)
  }
}

/**
 * A checked DhariwalUNet spec: the EDM defaults overridden by `overrides`. Throws when a field is out of range, the
 * resolution is not divisible by 2^(levels−1), modelChannels is odd, or a GroupNorm cannot split its channels.
 *
 * @since 0.1.0
 * @category utils
 */
export const dhariwalUNetSpec = (
  imgResolution: number,
  imgChannels: number,
  overrides: Partial<Omit<DhariwalUNetSpec, "imgResolution" | "imgChannels">> = {}
): DhariwalUNetSpec => {
  const spec: DhariwalUNetSpec = { ...DHARIWAL_UNET_DEFAULTS, imgResolution, imgChannels, ...overrides }
  for (const key of ["imgResolution", "imgChannels", "modelChannels", "channelMultEmb"] as const) {
    if (!isPositiveInt(spec[key])) throw new Error(`dhariwalUNetSpec: ${key} must be a positive integer; got ${spec[key]}`)
  }
  for (const key of ["labelDim", "augmentDim", "numBlocks"] as const) {
    if (!isNonNegativeInt(spec[key])) {
      throw new Error(`dhariwalUNetSpec: ${key} must be a non-negative integer; got ${spec[key]}`)
    }
  }
  if (spec.channelMult.length < 1 || !spec.channelMult.every(isPositiveInt)) {
    throw new Error(`dhariwalUNetSpec: channelMult must be a non-empty list of positive integers; got [${spec.channelMult}]`)
  }
  if (!spec.attnResolutions.every(isPositiveInt)) {
    throw new Error(`dhariwalUNetSpec: attnResolutions must be positive integers; got [${spec.attnResolutions}]`)
  }
  if (!(spec.dropout >= 0 && spec.dropout < 1)) {
    throw new Error(`dhariwalUNetSpec: dropout must be in [0, 1); got ${spec.dropout}`)
  }
  if (spec.modelChannels % 2 !== 0) throw new Error(`dhariwalUNetSpec: modelChannels must be even (noise embedding)`)
  const factor = 2 ** (spec.channelMult.length - 1)
  if (spec.imgResolution % factor !== 0) {
    throw new Error(
      `dhariwalUNetSpec: ${spec.channelMult.length} levels need a resolution divisible by ${factor}; got ${spec.imgResolution}`
    )
  }
  const l = dhariwalUNetLayout(spec)
  checkGroupNorms("dhariwalUNetSpec", [...l.enc, ...l.dec, ["out_norm", l.outNorm]])
  return spec
}

/**
 * The state-dict entries of a DhariwalUNet (names without `model.`), in `state_dict()` order, with EDM shapes.
 *
 * @since 0.1.0
 * @category utils
 */
export const dhariwalUNetEntries = (spec: DhariwalUNetSpec): ReadonlyArray<TensorEntry> => {
  const l = dhariwalUNetLayout(spec)
  const modules: Array<readonly [string, EdmModule | undefined]> = [
    ["map_augment", l.mapAugment],
    ["map_layer0", l.mapLayer0],
    ["map_layer1", l.mapLayer1],
    ["map_label", l.mapLabel],
    ...l.enc,
    ...l.dec,
    ["out_norm", l.outNorm],
    ["out_conv", l.outConv]
  ]
  return modules.flatMap(([name, m]) => (m === undefined ? [] : moduleEntries(name, m)))
}

/**
 * Parameter shapes (TF.js layouts) of a DhariwalUNet by state-dict name without `model.`, in `state_dict()` order.
 *
 * @since 0.1.0
 * @category utils
 */
export const dhariwalUNetShapes = (spec: DhariwalUNetSpec): ParameterShapes =>
  Object.fromEntries(dhariwalUNetEntries(spec).map((e) => [e.name, paramShapeFromEdm(e.edmShape)]))

/**
 * Fresh DhariwalUNet parameters with EDM's initialisers, deterministic in `seed`; the caller owns them.
 *
 * @since 0.1.0
 * @category utils
 */
export const initDhariwalUNet = (spec: DhariwalUNetSpec, seed: number): Record<string, tf.Tensor> =>
  initEntries(dhariwalUNetEntries(spec), seed)

const runDhariwalUNet = (
  spec: DhariwalUNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels,
  options: EdmApplyOptions,
  want: "decoder" | "encoder" | "both"
): { readonly output?: tf.Tensor4D; readonly logits?: tf.Tensor4D } => {
  checkEdmInputs("applyDhariwalUNet", spec, xIn, cNoise, labels)
  const n = xIn.shape[0]
  const l = dhariwalUNetLayout(spec)
  let emb: tf.Tensor2D = positionalEmbedding(cNoise, l.noiseChannels, false)
  if (l.mapAugment !== undefined && labels.augmentLabels !== undefined) {
    emb = tf.add(emb, applyLinear(params, "map_augment", l.mapAugment, labels.augmentLabels))
  }
  emb = silu(applyLinear(params, "map_layer0", l.mapLayer0, emb)) as tf.Tensor2D
  emb = applyLinear(params, "map_layer1", l.mapLayer1, emb)
  if (l.mapLabel !== undefined) {
    emb = tf.add(emb, applyLinear(params, "map_label", l.mapLabel, labels.classLabels ?? tf.zeros([n, spec.labelDim])))
  }
  emb = silu(emb) as tf.Tensor2D

  const skips: Array<tf.Tensor4D> = []
  let x: tf.Tensor4D = xIn
  for (const [name, m] of l.enc) {
    x = m.kind === "block" ? applyUNetBlock(params, name, m, x, emb, options.dropout) : applyConv(params, name, m as ConvModule, x)
    skips.push(x)
  }
  const logits = want === "decoder" ? undefined : bottleneckLogits(x)
  if (want === "encoder") return { logits: logits! }
  for (const [name, b] of l.dec) {
    if (x.shape[3] !== b.inChannels) x = tf.concat([x, skips.pop()!], 3)
    x = applyUNetBlock(params, name, b, x, emb, options.dropout)
  }
  const output = applyConv(params, "out_conv", l.outConv, applyGroupNorm(params, "out_norm", l.outNorm, x, "silu"))
  return logits === undefined ? { output } : { output, logits }
}

/**
 * F(x_in, c_noise, class labels, augment labels) of a DhariwalUNet (docs/algorithm.md §2.3): x_in [N,R,R,C] (NHWC, already × c_in),
 * c_noise [N] → [N,R,R,C]. Parameters are named by state-dict names without `model.`, in TF.js layouts.
 *
 * @since 0.1.0
 * @category utils
 */
export const applyDhariwalUNet = (
  spec: DhariwalUNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels = {},
  options: EdmApplyOptions = {}
): tf.Tensor4D => tf.tidy(() => runDhariwalUNet(spec, params, xIn, cNoise, labels, options, "decoder").output!)

/**
 * DhariwalUNet's forward pass as SiDA's shared discriminator uses it (docs/algorithm.md §13, docs/sida.md §3): `"encoder"` runs
 * only the encoder and returns the logits [N, r, r, 1] (the bottleneck's channel mean); `"both"` returns F exactly as
 * {@link applyDhariwalUNet} computes it, and the logits of the same pass.
 *
 * @since 0.2.0
 * @category utils
 */
export const applyDhariwalUNetDiscriminator = <W extends "encoder" | "both">(
  spec: DhariwalUNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: EdmLabels,
  options: EdmApplyOptions,
  want: W
): EncoderDecoderOutput<W> =>
  tf.tidy(() => {
    const r = runDhariwalUNet(spec, params, xIn, cNoise, labels, options, want)
    return (want === "encoder" ? r.logits! : { output: r.output!, logits: r.logits! }) as EncoderDecoderOutput<W>
  })

/**
 * A DhariwalUNet as a {@link Network} (NHWC data [R, R, C]; kind "dhariwalunet"). `apply` is EDMPrecond's network:
 * one-hot class labels when given, zero labels when labelDim > 0 and none are given; augment labels when given (absent:
 * the zero vector, docs/algorithm.md §15, item 11). The discriminator logits of SiDA come from the encoder's bottleneck (docs/algorithm.md §13).
 *
 * @since 0.1.0
 * @category utils
 */
export const dhariwalUNetNetwork = (spec: DhariwalUNetSpec): Network => ({
  description: { kind: "dhariwalunet", spec },
  dataShape: [spec.imgResolution, spec.imgResolution, spec.imgChannels],
  labelDim: spec.labelDim,
  augmentDim: spec.augmentDim,
  shapes: dhariwalUNetShapes(spec),
  dropout: spec.dropout,
  init: (seed) => initDhariwalUNet(spec, seed),
  apply: (params, xIn, cNoise, labels, options = {}) => {
    const e = edmInputs(labels, options)
    return applyDhariwalUNet(spec, params, xIn as tf.Tensor4D, cNoise, e.labels, e.options)
  },
  applyWithLogits: (params, xIn, cNoise, labels, options = {}) => {
    const e = edmInputs(labels, options)
    return applyDhariwalUNetDiscriminator(spec, params, xIn as tf.Tensor4D, cNoise, e.labels, e.options, "both")
  },
  applyLogits: (params, xIn, cNoise, labels, options = {}) => {
    const e = edmInputs(labels, options)
    return applyDhariwalUNetDiscriminator(spec, params, xIn as tf.Tensor4D, cNoise, e.labels, e.options, "encoder")
  }
})
