/**
 * The raw network F for images: a small NHWC UNet with a sinusoidal σ embedding, as a pure function of named
 * parameters (docs/algorithm.md §2.3: D(x;σ,c) = c_skip·x + c_out·F(c_in·x, c_noise, c); the backbone is a smaller cousin of
 * EDM's SongUNet, laid out as in docs/engines.md §4).
 *
 * Layout, with L = `channelMult.length` resolutions and ch(l) = `baseChannels`·channelMult[l]:
 * - embedding: [cos(c_noise·f_i), sin(c_noise·f_i)], f_i = (1/10000)^{i/half}, i < half = noiseChannels/2,
 *   plus Linear(one-hot label) when `labelDim` > 0, then Linear → SiLU → Linear → SiLU (the last SiLU is the
 *   per-block "SiLU before the embedding projection" of DDPM/ADM, computed once);
 * - stem conv3×3 C → baseChannels;
 * - encoder level l: `blocksPerResolution` residual blocks (to ch(l)), then a 2×2 average pool except at the
 *   last level; the output of each level but the last is kept as a skip;
 * - decoder level l = L−2 … 0: nearest ×2 upsampling (reshape-broadcast, exact gradients on every backend; never
 *   `resizeNearestNeighbor`, whose cpu gradient is wrong for batch > 1, docs/engines.md §3.3), concatenation
 *   with the level's skip along channels, `blocksPerResolution` residual blocks (to ch(l));
 * - head: GroupNorm → SiLU → conv3×3 to C channels.
 *
 * Residual block: GN → SiLU → conv3×3 → + Linear(emb) → GN → SiLU → dropout → conv3×3, plus a 1×1 conv on the
 * skip path when the channel count changes.
 *
 * The default spec (32 base channels, mult [1,2,2], one block per resolution, 8 groups, embedding 32 → 128) is
 * the network timed in docs/engines.md §4: 364,545 parameters for one channel and 365,699 for three.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { groupNorm, GROUP_NORM_EPS, type GroupNormActivation } from "./GroupNorm.js"
import { conv2dBias } from "./Conv2d.js"
import { silu } from "./Silu.js"
import type { Parameters } from "./Parameters.js"
import { type BatchRows, dropout } from "./Dropout.js"
import { normalTensor } from "../data/RandomStream.js"

/**
 * Architecture of a {@link UNet}-style network F (see the module docs for the layout).
 *
 * @since 0.1.0
 * @category models
 */
export interface UNetSpec {
  /** Image height H (divisible by 2^(L−1)). */
  readonly height: number
  /** Image width W (divisible by 2^(L−1)). */
  readonly width: number
  /** Image channels C (input and output). */
  readonly channels: number
  /** Channels of the stem and the unit of `channelMult`. */
  readonly baseChannels: number
  /** Channel multiplier per resolution, highest resolution first; its length is the number of resolutions L. */
  readonly channelMult: ReadonlyArray<number>
  /** Residual blocks per resolution, in the encoder and again in the decoder. */
  readonly blocksPerResolution: number
  /** GroupNorm groups; must divide every normalised channel count. */
  readonly groups: number
  /** Width of the sinusoidal embedding of c_noise (even). */
  readonly noiseChannels: number
  /** Width of the embedding after the two Linear layers, fed to every residual block. */
  readonly embedChannels: number
  /** Number of classes for one-hot label conditioning; 0 for an unconditional network. */
  readonly labelDim: number
  /**
   * Dropout rate inside the residual blocks, active only when `applyUNet` is given a dropout seed (the default rate of
   * train mode, docs/algorithm.md §9.1).
   */
  readonly dropout: number
  /** Scale of the head conv's initial weights (small but non-zero so that gradients flow from step one). */
  readonly outputScale: number
}

const isPositiveInt = (v: number): boolean => Number.isInteger(v) && v >= 1

const levelChannels = (spec: UNetSpec): ReadonlyArray<number> => spec.channelMult.map((m) => spec.baseChannels * m)

interface BlockLayout {
  readonly name: string
  readonly cin: number
  readonly cout: number
}

const blockLayout = (
  spec: UNetSpec
): { readonly enc: ReadonlyArray<ReadonlyArray<BlockLayout>>; readonly dec: ReadonlyArray<ReadonlyArray<BlockLayout>> } => {
  const ch = levelChannels(spec)
  const levels = ch.length
  const enc = ch.map((c, l) =>
    Array.from({ length: spec.blocksPerResolution }, (_, b) => ({
      name: `enc.${l}.${b}`,
      cin: b > 0 ? c : l > 0 ? ch[l - 1]! : spec.baseChannels,
      cout: c
    }))
  )
  const dec = ch.slice(0, levels - 1).map((c, l) =>
    Array.from({ length: spec.blocksPerResolution }, (_, b) => ({
      name: `dec.${l}.${b}`,
      cin: b > 0 ? c : ch[l + 1]! + c,
      cout: c
    }))
  )
  return { enc, dec }
}

/**
 * A UNet spec for images of shape [H, W, C] with small CPU-friendly defaults: baseChannels 32, channelMult
 * [1, 2, 2], 1 block per resolution, 8 groups, noiseChannels = baseChannels, embedChannels = 4·baseChannels,
 * labelDim 0, dropout 0, outputScale 0.1. Throws when H or W is not divisible by 2^(L−1), when `groups` does
 * not divide a normalised channel count, or when a field is out of range.
 *
 * @since 0.1.0
 * @category utils
 */
export const unetSpec = (
  imageShape: readonly [number, number, number],
  overrides: Partial<Omit<UNetSpec, "height" | "width" | "channels">> = {}
): UNetSpec => {
  const [height, width, channels] = imageShape
  const baseChannels = overrides.baseChannels ?? 32
  const spec: UNetSpec = {
    height,
    width,
    channels,
    baseChannels,
    channelMult: [1, 2, 2],
    blocksPerResolution: 1,
    groups: 8,
    noiseChannels: baseChannels,
    embedChannels: 4 * baseChannels,
    labelDim: 0,
    dropout: 0,
    outputScale: 0.1,
    ...overrides
  }
  for (const key of ["height", "width", "channels", "baseChannels", "blocksPerResolution", "groups"] as const) {
    if (!isPositiveInt(spec[key])) throw new Error(`unetSpec: ${key} must be a positive integer; got ${spec[key]}`)
  }
  if (spec.channelMult.length < 1 || !spec.channelMult.every(isPositiveInt)) {
    throw new Error(`unetSpec: channelMult must be a non-empty list of positive integers; got [${spec.channelMult}]`)
  }
  if (!isPositiveInt(spec.noiseChannels) || spec.noiseChannels % 2 !== 0) {
    throw new Error(`unetSpec: noiseChannels must be a positive even integer; got ${spec.noiseChannels}`)
  }
  if (!isPositiveInt(spec.embedChannels)) {
    throw new Error(`unetSpec: embedChannels must be a positive integer; got ${spec.embedChannels}`)
  }
  if (!Number.isInteger(spec.labelDim) || spec.labelDim < 0) {
    throw new Error(`unetSpec: labelDim must be a non-negative integer; got ${spec.labelDim}`)
  }
  if (!(spec.dropout >= 0 && spec.dropout < 1)) throw new Error(`unetSpec: dropout must be in [0, 1); got ${spec.dropout}`)
  if (!Number.isFinite(spec.outputScale)) throw new Error(`unetSpec: outputScale must be finite; got ${spec.outputScale}`)
  const factor = 2 ** (spec.channelMult.length - 1)
  if (height % factor !== 0 || width % factor !== 0) {
    throw new Error(
      `unetSpec: ${spec.channelMult.length} resolutions need H and W divisible by ${factor}; got ${height}×${width}`
    )
  }
  const { dec, enc } = blockLayout(spec)
  const normalised = new Set([...enc.flat(), ...dec.flat()].flatMap((b) => [b.cin, b.cout]))
  normalised.add(spec.baseChannels)
  for (const c of normalised) {
    if (c % spec.groups !== 0) throw new Error(`unetSpec: ${spec.groups} groups do not divide ${c} channels`)
  }
  return spec
}

/**
 * Names and shapes of the parameters of a UNet. Conv weights are HWIO [kh, kw, cin, cout], Linear weights
 * [in, out], GroupNorm `weight`/`bias` [C]. Per block `{enc|dec}.{level}.{block}`: norm0, conv0, emb, norm1,
 * conv1 and, when cin ≠ cout, skip (1×1 conv); plus `emb.linear0`, `emb.linear1`, `emb.label` (only when
 * labelDim > 0; no bias), `stem`, `out.norm`, `out.conv`.
 *
 * @since 0.1.0
 * @category utils
 */
export const unetShapes = (spec: UNetSpec): Record<string, ReadonlyArray<number>> => {
  const shapes: Record<string, ReadonlyArray<number>> = {}
  const linear = (name: string, cin: number, cout: number): void => {
    shapes[`${name}.weight`] = [cin, cout]
    shapes[`${name}.bias`] = [cout]
  }
  const conv = (name: string, k: number, cin: number, cout: number): void => {
    shapes[`${name}.weight`] = [k, k, cin, cout]
    shapes[`${name}.bias`] = [cout]
  }
  const norm = (name: string, c: number): void => {
    shapes[`${name}.weight`] = [c]
    shapes[`${name}.bias`] = [c]
  }
  if (spec.labelDim > 0) shapes["emb.label.weight"] = [spec.labelDim, spec.noiseChannels]
  linear("emb.linear0", spec.noiseChannels, spec.embedChannels)
  linear("emb.linear1", spec.embedChannels, spec.embedChannels)
  conv("stem", 3, spec.channels, spec.baseChannels)
  const { dec, enc } = blockLayout(spec)
  for (const { cin, cout, name } of [...enc.flat(), ...dec.flat()]) {
    norm(`${name}.norm0`, cin)
    conv(`${name}.conv0`, 3, cin, cout)
    linear(`${name}.emb`, spec.embedChannels, cout)
    norm(`${name}.norm1`, cout)
    conv(`${name}.conv1`, 3, cout, cout)
    if (cin !== cout) conv(`${name}.skip`, 1, cin, cout)
  }
  norm("out.norm", spec.baseChannels * spec.channelMult[0]!)
  conv("out.conv", 3, spec.baseChannels * spec.channelMult[0]!, spec.channels)
  return shapes
}

/**
 * Fresh parameters, deterministic in `seed`. Conv and Linear weights are He-normal, std √(2/fan_in) with
 * fan_in = kh·kw·cin (conv) or in (Linear); biases 0; GroupNorm weight 1 and bias 0; the label map N(0, 1) (a
 * one-hot row then adds unit-variance features to the sinusoids). The head conv `out.conv.weight` is He-normal
 * × `outputScale` (0.1 by default): F starts near 0, so D starts near c_skip·x, yet the weights are not zero, so
 * every parameter gets a gradient from the first step. The caller owns the returned tensors.
 *
 * @since 0.1.0
 * @category utils
 */
export const initUNet = (spec: UNetSpec, seed: number): Record<string, tf.Tensor> =>
  tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {}
    Object.entries(unetShapes(spec)).forEach(([name, shape]) => {
      const dims = shape as Array<number>
      if (name.endsWith(".bias")) {
        out[name] = tf.zeros(dims)
      } else if (name.endsWith("norm0.weight") || name.endsWith("norm1.weight") || name === "out.norm.weight") {
        out[name] = tf.ones(dims)
      } else {
        const fanIn = dims.slice(0, -1).reduce((a, b) => a * b, 1)
        const std = name === "emb.label.weight"
          ? 1
          : Math.sqrt(2 / fanIn) * (name === "out.conv.weight" ? spec.outputScale : 1)
        out[name] = normalTensor(dims, seed, `unet.${name}`, std)
      }
    })
    return out
  })

/**
 * The sinusoidal (positional) embedding of c_noise [N]: [cos(c·f_i) for i < half, sin(c·f_i) for i < half] with
 * f_i = (1/10000)^{i/half}, half = channels/2 (EDM `PositionalEmbedding` without endpoint): [N, channels].
 *
 * @since 0.1.0
 * @category utils
 */
export const sinusoidalEmbedding = (cNoise: tf.Tensor1D, channels: number): tf.Tensor2D =>
  tf.tidy(() => {
    const half = Math.floor(channels / 2)
    const freqs = tf.tensor1d(Array.from({ length: half }, (_, i) => Math.pow(1 / 10000, i / half)))
    const phase = tf.mul(cNoise.reshape([-1, 1]), freqs.reshape([1, -1]))
    return tf.concat([tf.cos(phase), tf.sin(phase)], 1) as tf.Tensor2D
  })

/**
 * Nearest-neighbour ×2 upsampling of [N,H,W,C] through a rank-6 broadcast (exact gradients on cpu and wasm).
 *
 * @since 0.1.0
 * @category utils
 */
export const upsampleNearest2x = (x: tf.Tensor4D): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, h, w, c] = x.shape
    return tf.mul(x.reshape([n, h, 1, w, 1, c]), tf.ones([1, 1, 2, 1, 2, 1])).reshape([n, 2 * h, 2 * w, c]) as tf.Tensor4D
  })

/**
 * Options of {@link applyUNet}.
 *
 * @since 0.1.0
 * @category models
 */
export interface ApplyUNetOptions {
  /**
   * Seed of the dropout masks. Dropout (rate `spec.dropout`) runs only when this is given, so F stays a pure
   * function: the same seed gives the same masks; without it the network is in evaluation mode.
   */
  readonly dropoutSeed?: number
  /** The dropout rate in [0, 1) with `dropoutSeed` (default `spec.dropout`; docs/algorithm.md §9.2 `--dropout`). */
  readonly dropoutRate?: number
  /** The batch is these rows of a larger one: each row keeps its mask from the whole batch (`DropoutMasks.rows`). */
  readonly dropoutRows?: BatchRows
}

/**
 * What a pass of the small UNet computes: F, the discriminator logits of SiDA, or both from one pass.
 *
 * @since 0.2.0
 * @category models
 */
export type UNetPass = "decoder" | "encoder" | "both"

/**
 * F(x_in, c_noise, labels): x_in [N,H,W,C] (already multiplied by c_in), c_noise [N], optional one-hot labels
 * [N, labelDim] → [N,H,W,C] (docs/algorithm.md §2.3). When labelDim > 0 and no labels are given, an all-zero label vector is
 * used (docs/algorithm.md §2.3, unconditional). Throws on a missing parameter or a shape that does not fit the spec.
 *
 * @since 0.1.0
 * @category utils
 */
export const applyUNet = (
  spec: UNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels?: tf.Tensor2D,
  options: ApplyUNetOptions = {}
): tf.Tensor4D => tf.tidy(() => runUNet(spec, params, xIn, cNoise, labels, options, "decoder").output!)

/**
 * The small UNet as SiDA's shared discriminator uses it (docs/algorithm.md §13, docs/sida.md §3): the logits are the channel mean
 * of the encoder's lowest-resolution feature map, [N, H/2^(L−1), W/2^(L−1), 1]. `"encoder"` stops there; `"both"` also
 * returns F exactly as {@link applyUNet} computes it (same dropout masks).
 *
 * @since 0.2.0
 * @category utils
 */
export const applyUNetDiscriminator = (
  spec: UNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: tf.Tensor2D | undefined,
  options: ApplyUNetOptions,
  want: "encoder" | "both"
): { readonly output?: tf.Tensor4D; readonly logits: tf.Tensor4D } =>
  tf.tidy(() => {
    const r = runUNet(spec, params, xIn, cNoise, labels, options, want)
    return r.output === undefined ? { logits: r.logits! } : { output: r.output, logits: r.logits! }
  })

const runUNet = (
  spec: UNetSpec,
  params: Parameters,
  xIn: tf.Tensor4D,
  cNoise: tf.Tensor1D,
  labels: tf.Tensor2D | undefined,
  options: ApplyUNetOptions,
  want: UNetPass
): { readonly output?: tf.Tensor4D; readonly logits?: tf.Tensor4D } => {
  const [n, h, w, c] = xIn.shape
  if (xIn.rank !== 4 || h !== spec.height || w !== spec.width || c !== spec.channels) {
    throw new Error(
      `applyUNet: expected x_in of shape [N,${spec.height},${spec.width},${spec.channels}]; got [${xIn.shape}]`
    )
  }
  if (cNoise.rank !== 1 || cNoise.shape[0] !== n) {
    throw new Error(`applyUNet: expected c_noise of shape [${n}]; got [${cNoise.shape}]`)
  }
  const labelsFit = labels === undefined ||
    (spec.labelDim > 0 && labels.rank === 2 && labels.shape[0] === n && labels.shape[1] === spec.labelDim)
  if (labels !== undefined && !labelsFit) {
    throw new Error(
      spec.labelDim === 0
        ? "applyUNet: labels given to an unconditional network (labelDim = 0)"
        : `applyUNet: expected labels of shape [${n},${spec.labelDim}]; got [${labels.shape}]`
    )
  }
  const p = (name: string): tf.Tensor => {
    const t = params[name]
    if (t === undefined) throw new Error(`UNet parameter ${name} is missing`)
    return t
  }
  const dense = (name: string, x: tf.Tensor): tf.Tensor =>
    tf.add(tf.matMul(x as tf.Tensor2D, p(`${name}.weight`) as tf.Tensor2D), p(`${name}.bias`))
  const conv = (name: string, x: tf.Tensor): tf.Tensor4D =>
    conv2dBias(x as tf.Tensor4D, p(`${name}.weight`) as tf.Tensor4D, p(`${name}.bias`), 1, "same")
  const norm = (name: string, x: tf.Tensor, activation: GroupNormActivation): tf.Tensor4D =>
    groupNorm(x as tf.Tensor4D, spec.groups, p(`${name}.weight`), p(`${name}.bias`), GROUP_NORM_EPS, activation)

  let e: tf.Tensor = sinusoidalEmbedding(cNoise, spec.noiseChannels)
  if (spec.labelDim > 0 && labels !== undefined) e = tf.add(e, tf.matMul(labels, p("emb.label.weight") as tf.Tensor2D))
  const emb = silu(dense("emb.linear1", silu(dense("emb.linear0", e))))

  const rate = options.dropoutRate ?? spec.dropout
  let blockIndex = 0
  const block = ({ cin, cout, name }: BlockLayout, x: tf.Tensor4D): tf.Tensor4D => {
    let y: tf.Tensor = conv(`${name}.conv0`, norm(`${name}.norm0`, x, "silu"))
    y = tf.add(y, dense(`${name}.emb`, emb).reshape([n, 1, 1, cout]))
    y = norm(`${name}.norm1`, y, "silu")
    if (rate > 0 && options.dropoutSeed !== undefined) {
      const rows = options.dropoutRows === undefined ? {} : { rows: options.dropoutRows }
      y = dropout(y, { rate, seed: options.dropoutSeed, ...rows }, `dropout.${blockIndex}`)
    }
    blockIndex++
    const skip = cin !== cout ? conv(`${name}.skip`, x) : x
    return tf.add(skip, conv(`${name}.conv1`, y)) as tf.Tensor4D
  }

  const { dec, enc } = blockLayout(spec)
  let x = conv("stem", xIn)
  const skips: Array<tf.Tensor4D> = []
  enc.forEach((blocks, l) => {
    for (const b of blocks) x = block(b, x)
    if (l + 1 < enc.length) {
      skips.push(x)
      x = tf.avgPool(x, 2, 2, "valid")
    }
  })
  const logits = want === "decoder" ? undefined : (tf.mean(x, 3, true) as tf.Tensor4D)
  if (want === "encoder") return { logits: logits! }
  for (let l = dec.length - 1; l >= 0; l--) {
    x = tf.concat([upsampleNearest2x(x), skips[l]!], 3)
    for (const b of dec[l]!) x = block(b, x)
  }
  const output = conv("out.conv", norm("out.norm", x, "silu"))
  return logits === undefined ? { output } : { output, logits }
}
