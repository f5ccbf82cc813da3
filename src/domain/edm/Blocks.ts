/**
 * The building blocks of NVlabs/edm's networks (`training/networks.py`: Linear, Conv2d with up/down-sampling,
 * GroupNorm, UNetBlock with self-attention, PositionalEmbedding, FourierEmbedding) as module descriptions plus pure
 * functions of named parameters on NHWC tensors (docs/algorithm.md §2.3 backbones).
 *
 * A module description is plain data. From it come (1) its state-dict entries, in `state_dict()` order, with EDM
 * (PyTorch) shapes and EDM's initialisers, and (2) its forward pass, which reads the parameters by the same names in
 * TF.js layouts (see `StateDict.ts`: Linear [in, out], conv HWIO). Buffers (resampling filters, Fourier frequencies)
 * are read through a stop-gradient.
 *
 * Facts reproduced from EDM:
 * - Conv2d up: grouped transposed conv (stride 2, padding f_pad) with the filter ×4; down: grouped conv (stride 2,
 *   padding f_pad); then the conv (padding k/2). With `fusedResample`, the conv comes first for down (padding
 *   w_pad + f_pad, then the stride-2 filter without padding), and the upsampling first for up (padding w_pad + f_pad,
 *   then the conv without padding). The filter is the normalised outer product of the 1-D taps.
 * - GroupNorm groups = min(32, C // 4).
 * - UNetBlock: conv0(silu(norm0 x)); emb → affine → (adaptive: silu(shift + norm1(·)·(scale + 1)); else
 *   silu(norm1(· + affine))); dropout (train mode only); conv1; + skip(x) (a 1×1 conv with resampling, a pure resampling, or the identity);
 *   × skip_scale; attention (qkv channels ordered per head as [d, 3]; logits q·k/√d; softmax over keys), proj, + x,
 *   × skip_scale.
 * - PositionalEmbedding: f_i = (1/10000)^(i / (C/2 − endpoint)), output [cos, sin]; FourierEmbedding:
 *   phases c·2π·freqs, output [cos, sin].
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { dropout, type DropoutMasks } from "../nn/Dropout.js"
import { groupNorm, type GroupNormActivation } from "../nn/GroupNorm.js"
import { silu } from "../nn/Silu.js"
import type { ApplyOptions } from "../nn/Network.js"
import type { Parameters } from "../nn/Parameters.js"
import { normalTensor, uniformTensor } from "../data/RandomStream.js"
import { stopGradient } from "../nn/StopGradient.js"
import { paramShapeFromEdm } from "./StateDict.js"

/**
 * EDM's `weight_init` modes.
 *
 * @since 0.1.0
 * @category models
 */
export type InitMode = "xavier_uniform" | "xavier_normal" | "kaiming_uniform" | "kaiming_normal"

/**
 * An EDM initialiser: mode and the gains of the weight and of the bias (`init_weight`, `init_bias`).
 *
 * @since 0.1.0
 * @category models
 */
export interface InitSpec {
  readonly mode: InitMode
  readonly weight: number
  readonly bias: number
}

/**
 * EDM `Linear(in_features, out_features, bias)`.
 *
 * @since 0.1.0
 * @category models
 */
export interface LinearModule {
  readonly kind: "linear"
  readonly inFeatures: number
  readonly outFeatures: number
  readonly bias: boolean
  readonly init: InitSpec
}

/**
 * EDM `Conv2d`: `kernel` 0 means a pure resampling layer (no weight, no bias).
 *
 * @since 0.1.0
 * @category models
 */
export interface ConvModule {
  readonly kind: "conv"
  readonly inChannels: number
  readonly outChannels: number
  readonly kernel: number
  readonly bias: boolean
  readonly up: boolean
  readonly down: boolean
  readonly fusedResample: boolean
  readonly resampleFilter: ReadonlyArray<number>
  readonly init: InitSpec
}

/**
 * EDM `GroupNorm(num_channels, eps)` with groups = min(32, C // 4).
 *
 * @since 0.1.0
 * @category models
 */
export interface GroupNormModule {
  readonly kind: "groupnorm"
  readonly channels: number
  readonly eps: number
}

/**
 * EDM `UNetBlock`: `numHeads` 0 means no attention.
 *
 * @since 0.1.0
 * @category models
 */
export interface UNetBlockModule {
  readonly kind: "block"
  readonly inChannels: number
  readonly outChannels: number
  readonly embChannels: number
  readonly up: boolean
  readonly down: boolean
  readonly numHeads: number
  readonly skipScale: number
  readonly eps: number
  readonly resampleFilter: ReadonlyArray<number>
  readonly resampleProj: boolean
  readonly adaptiveScale: boolean
  readonly init: InitSpec
  readonly initZero: InitSpec
  readonly initAttn: InitSpec
}

/**
 * EDM `PositionalEmbedding(num_channels, endpoint)` (max_positions 10000); no parameters.
 *
 * @since 0.1.0
 * @category models
 */
export interface PositionalModule {
  readonly kind: "positional"
  readonly channels: number
  readonly endpoint: boolean
}

/**
 * EDM `FourierEmbedding(num_channels, scale = 16)`: one buffer `freqs` of C/2 values.
 *
 * @since 0.1.0
 * @category models
 */
export interface FourierModule {
  readonly kind: "fourier"
  readonly channels: number
}

/**
 * Any EDM module description.
 *
 * @since 0.1.0
 * @category models
 */
export type EdmModule = LinearModule | ConvModule | GroupNormModule | UNetBlockModule | PositionalModule | FourierModule

/**
 * How a state-dict entry is initialised.
 *
 * @since 0.1.0
 * @category models
 */
export type EntryInit =
  | { readonly kind: "random"; readonly mode: InitMode; readonly gain: number; readonly fanIn: number; readonly fanOut: number }
  | { readonly kind: "constant"; readonly value: number }
  | { readonly kind: "resampleFilter"; readonly taps: ReadonlyArray<number> }
  | { readonly kind: "fourierFreqs"; readonly scale: number }

/**
 * One state-dict entry of a module: name (without the `model.` prefix), EDM (PyTorch) shape, initialiser.
 *
 * @since 0.1.0
 * @category models
 */
export interface TensorEntry {
  readonly name: string
  readonly edmShape: ReadonlyArray<number>
  readonly init: EntryInit
}

/**
 * Pieces of a UNetBlock, in registration order.
 *
 * @since 0.1.0
 * @category models
 */
export interface UNetBlockParts {
  readonly norm0: GroupNormModule
  readonly conv0: ConvModule
  readonly affine: LinearModule
  readonly norm1: GroupNormModule
  readonly conv1: ConvModule
  readonly skip: ConvModule | undefined
  readonly norm2: GroupNormModule | undefined
  readonly qkv: ConvModule | undefined
  readonly proj: ConvModule | undefined
}

/**
 * A Linear module description.
 *
 * @since 0.1.0
 * @category utils
 */
export const linearModule = (inFeatures: number, outFeatures: number, bias: boolean, init: InitSpec): LinearModule => ({
  kind: "linear",
  inFeatures,
  outFeatures,
  bias,
  init
})

/**
 * A Conv2d module description.
 *
 * @since 0.1.0
 * @category utils
 */
export const convModule = (
  inChannels: number,
  outChannels: number,
  kernel: number,
  init: InitSpec,
  options: {
    readonly bias?: boolean
    readonly up?: boolean
    readonly down?: boolean
    readonly fusedResample?: boolean
    readonly resampleFilter?: ReadonlyArray<number>
  } = {}
): ConvModule => ({
  kind: "conv",
  inChannels,
  outChannels,
  kernel,
  bias: options.bias ?? true,
  up: options.up ?? false,
  down: options.down ?? false,
  fusedResample: options.fusedResample ?? false,
  resampleFilter: options.resampleFilter ?? [1, 1],
  init
})

/**
 * A GroupNorm module description.
 *
 * @since 0.1.0
 * @category utils
 */
export const groupNormModule = (channels: number, eps: number): GroupNormModule => ({ kind: "groupnorm", channels, eps })

/**
 * The decomposition of a UNetBlock into its sub-modules, following EDM's constructor.
 *
 * @since 0.1.0
 * @category utils
 */
export const unetBlockParts = (m: UNetBlockModule): UNetBlockParts => {
  const resample = { up: m.up, down: m.down, resampleFilter: m.resampleFilter }
  const needsSkip = m.outChannels !== m.inChannels || m.up || m.down
  const skipKernel = m.resampleProj || m.outChannels !== m.inChannels ? 1 : 0
  const attn = m.numHeads > 0
  return {
    norm0: groupNormModule(m.inChannels, m.eps),
    conv0: convModule(m.inChannels, m.outChannels, 3, m.init, resample),
    affine: linearModule(m.embChannels, m.outChannels * (m.adaptiveScale ? 2 : 1), true, m.init),
    norm1: groupNormModule(m.outChannels, m.eps),
    conv1: convModule(m.outChannels, m.outChannels, 3, m.initZero),
    skip: needsSkip ? convModule(m.inChannels, m.outChannels, skipKernel, m.init, resample) : undefined,
    norm2: attn ? groupNormModule(m.outChannels, m.eps) : undefined,
    qkv: attn ? convModule(m.outChannels, m.outChannels * 3, 1, m.initAttn) : undefined,
    proj: attn ? convModule(m.outChannels, m.outChannels, 1, m.initZero) : undefined
  }
}

/**
 * GroupNorm group count of EDM: min(32, C // 4).
 *
 * @since 0.1.0
 * @category utils
 */
export const groupCount = (channels: number): number => Math.min(32, Math.floor(channels / 4))

/**
 * State-dict entries of a module under `name`, in `state_dict()` order (own parameters, own buffers, then
 * sub-modules), with EDM shapes and initialisers.
 *
 * @since 0.1.0
 * @category utils
 */
export const moduleEntries = (name: string, m: EdmModule): Array<TensorEntry> => {
  const random = (init: InitSpec, gain: number, fanIn: number, fanOut: number): EntryInit =>
    gain === 0 ? { kind: "constant", value: 0 } : { kind: "random", mode: init.mode, gain, fanIn, fanOut }
  switch (m.kind) {
    case "linear": {
      const out: Array<TensorEntry> = [{
        name: `${name}.weight`,
        edmShape: [m.outFeatures, m.inFeatures],
        init: random(m.init, m.init.weight, m.inFeatures, m.outFeatures)
      }]
      if (m.bias) {
        out.push({
          name: `${name}.bias`,
          edmShape: [m.outFeatures],
          init: random(m.init, m.init.bias, m.inFeatures, m.outFeatures)
        })
      }
      return out
    }
    case "conv": {
      const out: Array<TensorEntry> = []
      const k = m.kernel
      if (k > 0) {
        const fanIn = m.inChannels * k * k
        const fanOut = m.outChannels * k * k
        out.push({
          name: `${name}.weight`,
          edmShape: [m.outChannels, m.inChannels, k, k],
          init: random(m.init, m.init.weight, fanIn, fanOut)
        })
        if (m.bias) {
          out.push({ name: `${name}.bias`, edmShape: [m.outChannels], init: random(m.init, m.init.bias, fanIn, fanOut) })
        }
      }
      if (m.up || m.down) {
        const f = m.resampleFilter.length
        out.push({
          name: `${name}.resample_filter`,
          edmShape: [1, 1, f, f],
          init: { kind: "resampleFilter", taps: m.resampleFilter }
        })
      }
      return out
    }
    case "groupnorm":
      return [
        { name: `${name}.weight`, edmShape: [m.channels], init: { kind: "constant", value: 1 } },
        { name: `${name}.bias`, edmShape: [m.channels], init: { kind: "constant", value: 0 } }
      ]
    case "block": {
      const parts = unetBlockParts(m)
      return (Object.entries(parts) as Array<[string, EdmModule | undefined]>).flatMap(([part, sub]) =>
        sub === undefined ? [] : moduleEntries(`${name}.${part}`, sub)
      )
    }
    case "positional":
      return []
    case "fourier":
      return [{ name: `${name}.freqs`, edmShape: [m.channels / 2], init: { kind: "fourierFreqs", scale: 16 } }]
  }
}

/**
 * The 2-D resampling filter of EDM: outer product of the taps with itself over (Σ taps)², row-major k×k.
 *
 * @since 0.1.0
 * @category utils
 */
export const resampleFilterValues = (taps: ReadonlyArray<number>): Float32Array => {
  const sum = taps.reduce((a, b) => a + b, 0)
  const f = new Float32Array(taps.length * taps.length)
  taps.forEach((a, i) => taps.forEach((b, j) => (f[i * taps.length + j] = (a * b) / (sum * sum))))
  return f
}

/**
 * Fresh tensors for entries (TF.js layouts), deterministic in `seed`, with EDM's initialisers: xavier_uniform
 * √(6/(fan_in+fan_out))·U(−1,1), xavier_normal √(2/(fan_in+fan_out))·N, kaiming_uniform √(3/fan_in)·U(−1,1),
 * kaiming_normal √(1/fan_in)·N, each × its gain; GroupNorm 1 and 0; resampling filters from their taps; Fourier
 * frequencies 16·N. The caller owns the tensors.
 *
 * @since 0.1.0
 * @category utils
 */
export const initEntries = (entries: ReadonlyArray<TensorEntry>, seed: number): Record<string, tf.Tensor> =>
  tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {}
    for (const { edmShape, init, name } of entries) {
      const shape = paramShapeFromEdm(edmShape)
      switch (init.kind) {
        case "constant":
          out[name] = tf.fill([...shape], init.value)
          break
        case "resampleFilter":
          out[name] = tf.tensor(resampleFilterValues(init.taps), [...shape])
          break
        case "fourierFreqs":
          out[name] = normalTensor(shape, seed, `edm.${name}`, init.scale)
          break
        case "random": {
          const { fanIn, fanOut, gain, mode } = init
          if (mode === "xavier_normal" || mode === "kaiming_normal") {
            const std = mode === "xavier_normal" ? Math.sqrt(2 / (fanIn + fanOut)) : Math.sqrt(1 / fanIn)
            out[name] = normalTensor(shape, seed, `edm.${name}`, std * gain)
          } else {
            const bound = mode === "xavier_uniform" ? Math.sqrt(6 / (fanIn + fanOut)) : Math.sqrt(3 / fanIn)
            out[name] = tf.mul(tf.sub(tf.mul(uniformTensor(shape, seed, `edm.${name}`), 2), 1), bound * gain)
          }
          break
        }
      }
    }
    return out
  })

/**
 * The parameter `name`; throws naming it when it is missing.
 *
 * @since 0.1.0
 * @category utils
 */
export const param = (params: Parameters, name: string): tf.Tensor => {
  const t = params[name]
  if (t === undefined) throw new Error(`EDM network parameter "${name}" is missing`)
  return t
}

/** SiLU, x·sigmoid(x). */
export { silu } from "../nn/Silu.js"

/**
 * EDM Linear: x [N, in] → x·W + b with W [in, out].
 *
 * @since 0.1.0
 * @category utils
 */
export const applyLinear = (params: Parameters, name: string, m: LinearModule, x: tf.Tensor2D): tf.Tensor2D =>
  tf.tidy((): tf.Tensor2D => {
    const y = tf.matMul(x, param(params, `${name}.weight`) as tf.Tensor2D) as tf.Tensor2D
    return m.bias ? (tf.add(y, param(params, `${name}.bias`)) as tf.Tensor2D) : y
  })

/**
 * EDM GroupNorm on NHWC: groups min(32, C // 4), the module's ε; optionally followed by SiLU (fused where the engine can).
 *
 * @since 0.1.0
 * @category utils
 */
export const applyGroupNorm = (
  params: Parameters,
  name: string,
  m: GroupNormModule,
  x: tf.Tensor4D,
  activation: GroupNormActivation = "linear"
): tf.Tensor4D =>
  groupNorm(x, groupCount(m.channels), param(params, `${name}.weight`), param(params, `${name}.bias`), m.eps, activation)

const padOrCrop = (x: tf.Tensor4D, before: number, after: number): tf.Tensor4D => {
  let y = x
  if (before > 0 || after > 0) {
    const b = Math.max(before, 0)
    const a = Math.max(after, 0)
    y = tf.pad(y, [[0, 0], [b, a], [b, a], [0, 0]])
  }
  if (before < 0 || after < 0) {
    const [n, h, w, c] = y.shape
    const b = Math.max(-before, 0)
    const a = Math.max(-after, 0)
    y = tf.slice(y, [0, b, b, 0], [n, h - b - a, w - b - a, c])
  }
  return y
}

/**
 * Stride-2 grouped downsampling of EDM (`conv2d(x, f, groups=C, stride=2, padding=pad)`): x [N,H,W,C] zero-padded
 * by `pad`, filtered per channel with f [k,k,1,1] (HWIO), stride 2.
 *
 * @since 0.1.0
 * @category utils
 */
export const downsample2x = (x: tf.Tensor4D, filter: tf.Tensor4D, pad: number): tf.Tensor4D =>
  tf.tidy(() => {
    const c = x.shape[3]
    return tf.depthwiseConv2d(padOrCrop(x, pad, pad), tf.tile(filter, [1, 1, c, 1]) as tf.Tensor4D, 2, "valid")
  })

/**
 * Stride-2 grouped upsampling of EDM (`conv_transpose2d(x, 4·f, groups=C, stride=2, padding=pad)`): zeros are
 * inserted after every pixel, the result is padded by k−1−pad before and k−2−pad after (cropped when negative) and
 * correlated per channel with the flipped 4·f.
 *
 * @since 0.1.0
 * @category utils
 */
export const upsample2x = (x: tf.Tensor4D, filter: tf.Tensor4D, pad: number): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, h, w, c] = x.shape
    const k = filter.shape[0]
    const mask = tf.tensor(new Float32Array([1, 0, 0, 0]), [1, 1, 2, 1, 2, 1])
    const dilated = tf.mul(x.reshape([n, h, 1, w, 1, c]), mask).reshape([n, 2 * h, 2 * w, c]) as tf.Tensor4D
    const f = tf.tile(tf.mul(tf.reverse(filter, [0, 1]), 4), [1, 1, c, 1]) as tf.Tensor4D
    return tf.depthwiseConv2d(padOrCrop(dilated, k - 1 - pad, k - 2 - pad), f, 1, "valid")
  })

const convPadded = (x: tf.Tensor4D, w: tf.Tensor4D, pad: number): tf.Tensor4D => {
  const k = w.shape[0]
  if (2 * pad === k - 1) return tf.conv2d(x, w, 1, "same")
  return tf.conv2d(padOrCrop(x, pad, pad), w, 1, "valid")
}

/**
 * EDM Conv2d on NHWC (weights HWIO), with up/down-sampling and `fused_resample` exactly as EDM orders them.
 *
 * @since 0.1.0
 * @category utils
 */
export const applyConv = (params: Parameters, name: string, m: ConvModule, x: tf.Tensor4D): tf.Tensor4D =>
  tf.tidy(() => {
    const w = m.kernel > 0 ? (param(params, `${name}.weight`) as tf.Tensor4D) : undefined
    const b = m.kernel > 0 && m.bias ? param(params, `${name}.bias`) : undefined
    const f = m.up || m.down ? (stopGradient(param(params, `${name}.resample_filter`)) as tf.Tensor4D) : undefined
    const wPad = Math.floor(m.kernel / 2)
    const fPad = f === undefined ? 0 : Math.floor((f.shape[0] - 1) / 2)
    let y = x
    if (m.fusedResample && m.up && w !== undefined) {
      y = convPadded(upsample2x(y, f!, wPad + fPad), w, 0)
    } else if (m.fusedResample && m.down && w !== undefined) {
      y = downsample2x(convPadded(y, w, wPad + fPad), f!, 0)
    } else {
      if (m.up) y = upsample2x(y, f!, fPad)
      if (m.down) y = downsample2x(y, f!, fPad)
      if (w !== undefined) y = convPadded(y, w, wPad)
    }
    return b === undefined ? y : (tf.add(y, b) as tf.Tensor4D)
  })

/**
 * EDM's multi-head self-attention on NHWC: qkv [N,H,W,3C] holds, per head, d = C/heads channels each with its
 * (q, k, v) triple; weights softmax_k(q·k/√d) over the H·W positions; output [N,H,W,C] with channel = head·d + c.
 *
 * @since 0.1.0
 * @category utils
 */
export const selfAttention = (qkv: tf.Tensor4D, numHeads: number): tf.Tensor4D =>
  tf.tidy(() => {
    const [n, h, w, c3] = qkv.shape
    const c = c3 / 3
    const d = c / numHeads
    const hw = h * w
    const split = qkv.reshape([n, hw, numHeads, d, 3]).transpose([4, 0, 2, 1, 3]).reshape([3, n * numHeads, hw, d])
    const [q, k, v] = tf.unstack(split) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D]
    const logits = tf.matMul(q, tf.div(k, Math.sqrt(d)) as tf.Tensor3D, false, true)
    const a = tf.matMul(tf.softmax(logits), v)
    return a.reshape([n, numHeads, hw, d]).transpose([0, 2, 1, 3]).reshape([n, h, w, c]) as tf.Tensor4D
  })

/**
 * EDM UNetBlock on NHWC: x [N,H,W,in], emb [N, embChannels] → [N,H',W',out] (see the module docs). With `masks`
 * (train mode, docs/algorithm.md §9.1) dropout runs before conv1, as in EDM's `conv1(dropout(x))`, its mask from the stream
 * (seed, `dropout.<name>`); without them the block is in evaluation mode.
 *
 * @since 0.1.0
 * @category utils
 */
export const applyUNetBlock = (
  params: Parameters,
  name: string,
  m: UNetBlockModule,
  x: tf.Tensor4D,
  emb: tf.Tensor2D,
  masks?: DropoutMasks
): tf.Tensor4D =>
  tf.tidy(() => {
    const parts = unetBlockParts(m)
    const n = x.shape[0]
    let y = applyConv(params, `${name}.conv0`, parts.conv0, applyGroupNorm(params, `${name}.norm0`, parts.norm0, x, "silu"))
    const affine = applyLinear(params, `${name}.affine`, parts.affine, emb).reshape([n, 1, 1, -1])
    if (m.adaptiveScale) {
      const [scale, shift] = tf.split(affine, 2, 3)
      const normed = applyGroupNorm(params, `${name}.norm1`, parts.norm1, y)
      y = silu(tf.add(shift!, tf.mul(normed, tf.add(scale!, 1)))) as tf.Tensor4D
    } else {
      y = applyGroupNorm(params, `${name}.norm1`, parts.norm1, tf.add(y, affine) as tf.Tensor4D, "silu")
    }
    if (masks !== undefined && masks.rate > 0) y = dropout(y, masks, `dropout.${name}`) as tf.Tensor4D
    y = applyConv(params, `${name}.conv1`, parts.conv1, y)
    const skip = parts.skip === undefined ? x : applyConv(params, `${name}.skip`, parts.skip, x)
    y = tf.add(y, skip) as tf.Tensor4D
    if (m.skipScale !== 1) y = tf.mul(y, m.skipScale) as tf.Tensor4D
    if (m.numHeads > 0) {
      const qkv = applyConv(params, `${name}.qkv`, parts.qkv!, applyGroupNorm(params, `${name}.norm2`, parts.norm2!, y))
      const a = applyConv(params, `${name}.proj`, parts.proj!, selfAttention(qkv, m.numHeads))
      y = tf.add(a, y) as tf.Tensor4D
      if (m.skipScale !== 1) y = tf.mul(y, m.skipScale) as tf.Tensor4D
    }
    return y
  })

/**
 * EDM PositionalEmbedding: c [N] → [N, C] = [cos(c·f_i), sin(c·f_i)], f_i = (1/10000)^(i/(C/2 − 1)) with
 * `endpoint`, else (1/10000)^(i/(C/2)), i < C/2.
 *
 * @since 0.1.0
 * @category utils
 */
export const positionalEmbedding = (cNoise: tf.Tensor1D, channels: number, endpoint: boolean): tf.Tensor2D =>
  tf.tidy(() => {
    const half = Math.floor(channels / 2)
    const denom = half - (endpoint ? 1 : 0)
    const freqs = tf.tensor1d(Float32Array.from({ length: half }, (_, i) => Math.pow(1 / 10000, i / denom)))
    const phase = tf.mul(cNoise.reshape([-1, 1]), freqs.reshape([1, -1]))
    return tf.concat([tf.cos(phase), tf.sin(phase)], 1) as tf.Tensor2D
  })

/**
 * EDM FourierEmbedding: c [N], freqs [C/2] → [N, C] = [cos(c·2π·freqs), sin(c·2π·freqs)].
 *
 * @since 0.1.0
 * @category utils
 */
export const fourierEmbedding = (cNoise: tf.Tensor1D, freqs: tf.Tensor1D): tf.Tensor2D =>
  tf.tidy(() => {
    const phase = tf.mul(cNoise.reshape([-1, 1]), tf.mul(freqs, 2 * Math.PI).reshape([1, -1]))
    return tf.concat([tf.cos(phase), tf.sin(phase)], 1) as tf.Tensor2D
  })

/**
 * The noise embedding of a positional or Fourier module (the Fourier `freqs` buffer read through a stop-gradient).
 *
 * @since 0.1.0
 * @category utils
 */
export const applyNoiseEmbedding = (
  params: Parameters,
  name: string,
  m: PositionalModule | FourierModule,
  cNoise: tf.Tensor1D
): tf.Tensor2D =>
  m.kind === "positional"
    ? positionalEmbedding(cNoise, m.channels, m.endpoint)
    : tf.tidy(() => fourierEmbedding(cNoise, stopGradient(param(params, `${name}.freqs`)) as tf.Tensor1D))

/**
 * Options of an EDM network's forward pass.
 *
 * @since 0.1.0
 * @category models
 */
export interface EdmApplyOptions {
  /** Train-mode dropout in every UNet block (docs/algorithm.md §9.1); absent: evaluation mode. */
  readonly dropout?: DropoutMasks
}

/**
 * Conditioning inputs of an EDM network.
 *
 * @since 0.1.0
 * @category models
 */
export interface EdmLabels {
  /** One-hot class labels [N, labelDim]; zeros when omitted and labelDim > 0 (EDMPrecond's unconditional case). */
  readonly classLabels?: tf.Tensor2D
  /** Augmentation labels [N, augmentDim]; when omitted the augment mapping is skipped (the same as zeros). */
  readonly augmentLabels?: tf.Tensor2D
}

/**
 * Checks x_in, c_noise and the labels against a spec's sizes; throws naming the mismatch.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkEdmInputs = (
  what: string,
  spec: { readonly imgResolution: number; readonly imgChannels: number; readonly labelDim: number; readonly augmentDim: number },
  xIn: tf.Tensor,
  cNoise: tf.Tensor,
  labels: EdmLabels
): void => {
  const [n, h, w, c] = xIn.shape
  if (xIn.rank !== 4 || h !== spec.imgResolution || w !== spec.imgResolution || c !== spec.imgChannels) {
    throw new Error(
      `${what}: expected x_in of shape [N,${spec.imgResolution},${spec.imgResolution},${spec.imgChannels}] (NHWC); got [${xIn.shape}]`
    )
  }
  if (cNoise.rank !== 1 || cNoise.shape[0] !== n) throw new Error(`${what}: expected c_noise of shape [${n}]; got [${cNoise.shape}]`)
  const check = (label: string, t: tf.Tensor | undefined, dim: number) => {
    if (t === undefined) return
    if (dim === 0) throw new Error(`${what}: ${label} given to a network without them (dim 0)`)
    if (t.rank !== 2 || t.shape[0] !== n || t.shape[1] !== dim) {
      throw new Error(`${what}: expected ${label} of shape [${n},${dim}]; got [${t.shape}]`)
    }
  }
  check("class labels", labels.classLabels, spec.labelDim)
  check("augment labels", labels.augmentLabels, spec.augmentDim)
}

/**
 * Checks that every GroupNorm of a set of modules has ≥ 1 group dividing its channels, as torch requires.
 *
 * @since 0.1.0
 * @category utils
 */
export const checkGroupNorms = (what: string, modules: ReadonlyArray<readonly [string, EdmModule]>): void => {
  const norms: Array<[string, number]> = []
  for (const [name, m] of modules) {
    if (m.kind === "groupnorm") norms.push([name, m.channels])
    if (m.kind === "block") {
      const p = unetBlockParts(m)
      norms.push([`${name}.norm0`, p.norm0.channels], [`${name}.norm1`, p.norm1.channels])
      if (p.norm2 !== undefined) norms.push([`${name}.norm2`, p.norm2.channels])
    }
  }
  for (const [name, c] of norms) {
    const g = groupCount(c)
    if (g < 1 || c % g !== 0) throw new Error(`${what}: GroupNorm ${name} has ${c} channels, not divisible into ${g} groups`)
  }
}

/**
 * What a forward pass of a network with an encoder and a decoder returns: F, the discriminator logits, or both.
 *
 * @since 0.2.0
 * @category models
 */
export type EncoderDecoderOutput<W extends "decoder" | "encoder" | "both"> = W extends "decoder" ? tf.Tensor4D
  : W extends "encoder" ? tf.Tensor4D
  : { readonly output: tf.Tensor4D; readonly logits: tf.Tensor4D }

/**
 * SiDA's discriminator logits from an encoder's bottleneck feature map [N, h, w, C]: its mean over channels,
 * [N, h, w, 1] (docs/sida.md §3; docs/algorithm.md §13).
 *
 * @since 0.2.0
 * @category utils
 */
export const bottleneckLogits = (x: tf.Tensor4D): tf.Tensor4D => tf.mean(x, 3, true) as tf.Tensor4D

/**
 * The EDM labels and options of one evaluation of an EDM network through the `Network` interface.
 *
 * @since 0.2.0
 * @category utils
 */
export const edmInputs = (
  labels: tf.Tensor2D | undefined,
  options: ApplyOptions
): { readonly labels: EdmLabels; readonly options: EdmApplyOptions } => ({
  labels: {
    ...(labels === undefined ? {} : { classLabels: labels }),
    ...(options.augmentLabels === undefined ? {} : { augmentLabels: options.augmentLabels })
  },
  options: options.dropout === undefined ? {} : { dropout: options.dropout }
})

