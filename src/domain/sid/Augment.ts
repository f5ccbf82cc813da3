/**
 * EDM's augmentation pipe in the configuration SiD runs it with (docs/algorithm.md §13.4; docs/sida.md §2): per sample an x-flip, a
 * y-flip and one geometric transform made of isotropic scaling, rotation, anisotropic scaling and fractional
 * translation, each switched on with probability p, and the 9-value label vector that EDM networks take as
 * `augment_labels`.
 *
 * The randomness is drawn on the host from one seeded stream ({@link drawAugmentParams}), so a run's augmentations are
 * reproducible and checkpointable; the pixels are moved by tensor ops ({@link applyAugment}). Both halves are pure.
 *
 * The geometric transform is resampled the way EDM does it: reflect-pad the image, upsample ×2 with the sym6 wavelet
 * low-pass filter, sample bilinearly (zeros outside) on the transformed grid, filter and downsample ×2 back. The
 * up/down pair is an orthonormal analysis/synthesis pair, so a sample whose transform is the identity comes back
 * unchanged up to float rounding.
 *
 * Label layout (EDM's order for these transforms): [xflip, yflip, scale w, cos θ − 1, sin θ, w_a·cos r, w_a·sin r,
 * t_x, t_y]; a transform that was not applied contributes zeros. Images are NHWC.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { normals, type StreamState, uniforms } from "../data/RandomStream.js"
import type { DistillConfig } from "../config/DistillConfig.js"

/**
 * Length of the augmentation label vector (docs/algorithm.md §2.3: augment_dim = 9).
 *
 * @since 0.2.0
 * @category constants
 */
export const AUGMENT_LABEL_DIM = 9

/**
 * Probability multipliers and ranges of the pipe (EDM's `AugmentPipe` arguments, in camelCase).
 *
 * @since 0.2.0
 * @category models
 */
export interface AugmentSettings {
  /** Overall probability p (SiD's `--augment`: 0.12 on CIFAR-10, 0.15 on FFHQ/AFHQ, 0 on ImageNet). */
  readonly p: number
  /** x-flip multiplier; SiD sets 1e8 so that xflip·p ≥ 1 and every sample gets a fair-coin x-flip. */
  readonly xflip: number
  /** y-flip multiplier (a fair-coin flip with probability yflip·p). */
  readonly yflip: number
  /** Isotropic-scaling multiplier (probability scale·p). */
  readonly scale: number
  /** Rotation multiplier (probability rotateFrac·p). */
  readonly rotateFrac: number
  /** Anisotropic-scaling multiplier (probability aniso·p). */
  readonly aniso: number
  /** Fractional-translation multiplier (probability translateFrac·p). */
  readonly translateFrac: number
  /** log2 standard deviation of isotropic scaling. */
  readonly scaleStd: number
  /** Range of rotation as a fraction of a half turn either way (1: θ ∈ (−π, π)). */
  readonly rotateFracMax: number
  /** log2 standard deviation of anisotropic scaling. */
  readonly anisoStd: number
  /** Probability that anisotropic scaling acts along a rotated axis. */
  readonly anisoRotateProb: number
  /** Standard deviation of fractional translation, relative to the image size. */
  readonly translateFracStd: number
}

/**
 * SiD's pipe (EDM `train.py --augment p`): xflip 1e8, yflip, scale, rotate_frac, aniso, translate_frac at 1.
 *
 * @since 0.2.0
 * @category utils
 */
export const sidAugmentSettings = (p: number): AugmentSettings => ({
  p,
  xflip: 1e8,
  yflip: 1,
  scale: 1,
  rotateFrac: 1,
  aniso: 1,
  translateFrac: 1,
  scaleStd: 0.2,
  rotateFracMax: 1,
  anisoStd: 0.2,
  anisoRotateProb: 0.5,
  translateFracStd: 0.125
})

/**
 * One batch's transform parameters, one entry per sample (all zero: no transform).
 *
 * @since 0.2.0
 * @category models
 */
export interface AugmentParams {
  readonly batch: number
  /** 1 where the sample is flipped left–right. */
  readonly xflip: Float64Array
  /** 1 where the sample is flipped top–bottom. */
  readonly yflip: Float64Array
  /** w of isotropic scaling by 2^(w·scaleStd). */
  readonly scale: Float64Array
  /** Rotation angle θ in radians. */
  readonly rotate: Float64Array
  /** w of anisotropic scaling by 2^(w·anisoStd) along the axis at angle r. */
  readonly aniso: Float64Array
  /** r, the axis angle of anisotropic scaling. */
  readonly anisoAngle: Float64Array
  /** Horizontal translation in units of translateFracStd·W. */
  readonly translateX: Float64Array
  /** Vertical translation in units of translateFracStd·H. */
  readonly translateY: Float64Array
}

/**
 * Parameters of `batch` samples with no transform.
 *
 * @since 0.2.0
 * @category utils
 */
export const identityParams = (batch: number): AugmentParams => ({
  batch,
  xflip: new Float64Array(batch),
  yflip: new Float64Array(batch),
  scale: new Float64Array(batch),
  rotate: new Float64Array(batch),
  aniso: new Float64Array(batch),
  anisoAngle: new Float64Array(batch),
  translateX: new Float64Array(batch),
  translateY: new Float64Array(batch)
})

const UNIFORMS_PER_SAMPLE = 11
const NORMALS_PER_SAMPLE = 4

/**
 * Draws one batch's parameters from a stream (11 uniforms then 4 normals per sample, whatever is switched on) and
 * returns the stream's next state. Each transform is switched on where a uniform falls below multiplier·p, as in EDM.
 *
 * @since 0.2.0
 * @category utils
 */
export const drawAugmentParams = (
  state: StreamState,
  batch: number,
  settings: AugmentSettings
): { readonly params: AugmentParams; readonly state: StreamState } => {
  const u = uniforms(state, batch * UNIFORMS_PER_SAMPLE)
  const g = normals(u.state, batch * NORMALS_PER_SAMPLE)
  const params = identityParams(batch)
  const on = (value: number, multiplier: number) => value < multiplier * settings.p
  for (let i = 0; i < batch; i++) {
    const ui = (k: number) => u.values[i * UNIFORMS_PER_SAMPLE + k]!
    const gi = (k: number) => g.values[i * NORMALS_PER_SAMPLE + k]!
    if (settings.xflip > 0 && on(ui(1), settings.xflip)) params.xflip[i] = Math.floor(2 * ui(0))
    if (settings.yflip > 0 && on(ui(3), settings.yflip)) params.yflip[i] = Math.floor(2 * ui(2))
    if (settings.scale > 0 && on(ui(4), settings.scale)) params.scale[i] = gi(0)
    if (settings.rotateFrac > 0 && on(ui(6), settings.rotateFrac)) {
      params.rotate[i] = (2 * ui(5) - 1) * Math.PI * settings.rotateFracMax
    }
    if (settings.aniso > 0) {
      if (on(ui(8), settings.aniso)) params.aniso[i] = gi(1)
      if (ui(9) < settings.anisoRotateProb) params.anisoAngle[i] = (2 * ui(7) - 1) * Math.PI
    }
    if (settings.translateFrac > 0 && on(ui(10), settings.translateFrac)) {
      params.translateX[i] = gi(2)
      params.translateY[i] = gi(3)
    }
  }
  return { params, state: g.state }
}

/**
 * The [N, 9] label vectors of a batch's parameters (module docs for the layout).
 *
 * @since 0.2.0
 * @category utils
 */
export const augmentLabels = (params: AugmentParams): tf.Tensor2D => {
  const out = new Float32Array(params.batch * AUGMENT_LABEL_DIM)
  for (let i = 0; i < params.batch; i++) {
    const theta = params.rotate[i]!
    const w = params.aniso[i]!
    const r = params.anisoAngle[i]!
    out.set(
      [
        params.xflip[i]!,
        params.yflip[i]!,
        params.scale[i]!,
        Math.cos(theta) - 1,
        Math.sin(theta),
        w * Math.cos(r),
        w * Math.sin(r),
        params.translateX[i]!,
        params.translateY[i]!
      ],
      i * AUGMENT_LABEL_DIM
    )
  }
  return tf.tensor2d(out, [params.batch, AUGMENT_LABEL_DIM])
}

/**
 * A 3×3 matrix acting on homogeneous pixel coordinates (x, y, 1), row-major.
 *
 * @since 0.2.0
 * @category models
 */
export type Matrix3 = readonly [number, number, number, number, number, number, number, number, number]

const mat = (...m: Matrix3): Matrix3 => m
const mul = (a: Matrix3, b: Matrix3): Matrix3 => {
  const out: Array<number> = []
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) out.push(a[3 * r]! * b[c]! + a[3 * r + 1]! * b[3 + c]! + a[3 * r + 2]! * b[6 + c]!)
  }
  return out as unknown as Matrix3
}
const translation = (tx: number, ty: number): Matrix3 => mat(1, 0, tx, 0, 1, ty, 0, 0, 1)
const scaling = (sx: number, sy: number): Matrix3 => mat(sx, 0, 0, 0, sy, 0, 0, 0, 1)
const rotation = (theta: number): Matrix3 =>
  mat(Math.cos(theta), -Math.sin(theta), 0, Math.sin(theta), Math.cos(theta), 0, 0, 0, 1)
const IDENTITY: Matrix3 = mat(1, 0, 0, 0, 1, 0, 0, 0, 1)

/**
 * Applies a matrix to a point.
 *
 * @since 0.2.0
 * @category utils
 */
export const transformPoint = (m: Matrix3, x: number, y: number): readonly [number, number] => [
  m[0] * x + m[1] * y + m[2],
  m[3] * x + m[4] * y + m[5]
]

/**
 * Whether the settings switch on any geometric transform (EDM then resamples every image, even untransformed ones).
 *
 * @since 0.2.0
 * @category utils
 */
export const hasGeometric = (settings: AugmentSettings): boolean =>
  settings.scale > 0 || settings.rotateFrac > 0 || settings.aniso > 0 || settings.translateFrac > 0

/**
 * The inverse geometric transform of sample `i`, mapping output pixel coordinates to input ones (both centred on the
 * image centre, in pixels, y down). Its inverse is the forward transform: where an input point ends up.
 *
 * @since 0.2.0
 * @category utils
 */
export const inverseTransform = (
  params: AugmentParams,
  i: number,
  settings: AugmentSettings,
  width: number,
  height: number
): Matrix3 => {
  let g = IDENTITY
  if (settings.scale > 0) {
    const s = 2 ** (params.scale[i]! * settings.scaleStd)
    g = mul(g, scaling(1 / s, 1 / s))
  }
  if (settings.rotateFrac > 0) g = mul(g, rotation(params.rotate[i]!))
  if (settings.aniso > 0) {
    const s = 2 ** (params.aniso[i]! * settings.anisoStd)
    const r = params.anisoAngle[i]!
    g = mul(mul(mul(g, rotation(-r)), scaling(1 / s, s)), rotation(r))
  }
  if (settings.translateFrac > 0) {
    g = mul(g, translation(
      -params.translateX[i]! * width * settings.translateFracStd,
      -params.translateY[i]! * height * settings.translateFracStd
    ))
  }
  return g
}

/**
 * The sym6 wavelet low-pass filter (an orthonormal filter: its taps' squares sum to 1, its even shifts are orthogonal).
 *
 * @since 0.2.0
 * @category constants
 */
export const SYM6: ReadonlyArray<number> = [
  0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466,
  0.787641141030194, 0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578,
  0.0017677118642428036, -0.007800708325034148
]
const FILTER_PAD = SYM6.length / 4

const filterAlong = (x: tf.Tensor4D, taps: ReadonlyArray<number>, axis: 1 | 2, stride: 1 | 2, pad: number): tf.Tensor4D => {
  const kernel = tf.tensor4d(taps as Array<number>, axis === 2 ? [1, taps.length, 1, 1] : [taps.length, 1, 1, 1])
  const padding: Array<[number, number]> = [[0, 0], [0, 0], [0, 0], [0, 0]]
  padding[axis] = [pad, pad]
  return tf.conv2d(tf.pad(x, padding), kernel, axis === 2 ? [1, stride] : [stride, 1], "valid")
}

/** Zero-insertion ×2 along an axis of [B, H, W, 1] (length L → 2L − 1), then the synthesis filter. */
const upsampleAlong = (x: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D => {
  const [b, h, w] = x.shape
  const interleaved = tf.stack([x, tf.zerosLike(x)], axis + 1)
  const long = axis === 2 ? interleaved.reshape([b, h, 2 * w, 1]) : interleaved.reshape([b, 2 * h, w, 1])
  const trimmed = axis === 2 ? tf.slice(long, [0, 0, 0, 0], [b, h, 2 * w - 1, 1]) : tf.slice(long, [0, 0, 0, 0], [b, 2 * h - 1, w, 1])
  return filterAlong(trimmed as tf.Tensor4D, [...SYM6].reverse(), axis, 1, (SYM6.length + 1) >> 1)
}

/** Analysis filter, stride 2, then the crop of FILTER_PAD samples at either end, along an axis of [B, H, W, 1]. */
const downsampleAlong = (x: tf.Tensor4D, axis: 1 | 2): tf.Tensor4D => {
  const y = filterAlong(x, SYM6, axis, 2, (SYM6.length - 1) >> 1)
  const [b, h, w] = y.shape
  return (axis === 2
    ? tf.slice(y, [0, 0, FILTER_PAD, 0], [b, h, w - 2 * FILTER_PAD, 1])
    : tf.slice(y, [0, FILTER_PAD, 0, 0], [b, h - 2 * FILTER_PAD, w, 1])) as tf.Tensor4D
}

/** The four bilinear taps (flat row indices into [N·Hin·Win] and weights) of every output pixel. */
const bilinearTaps = (
  inverse: ReadonlyArray<Matrix3>,
  inSize: readonly [number, number],
  outSize: readonly [number, number]
): { readonly index: Int32Array; readonly weight: Float32Array } => {
  const [hIn, wIn] = inSize
  const [hOut, wOut] = outSize
  const count = inverse.length * hOut * wOut * 4
  const index = new Int32Array(count)
  const weight = new Float32Array(count)
  let k = 0
  inverse.forEach((m, n) => {
    for (let i = 0; i < hOut; i++) {
      const v = i - (hOut - 1) / 2
      for (let j = 0; j < wOut; j++) {
        const u = j - (wOut - 1) / 2
        const [xs, ys] = transformPoint(m, u, v)
        const x = xs + (wIn - 1) / 2
        const y = ys + (hIn - 1) / 2
        const x0 = Math.floor(x)
        const y0 = Math.floor(y)
        const fx = x - x0
        const fy = y - y0
        for (const [dy, dx] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) {
          const xi = x0 + dx
          const yi = y0 + dy
          const inside = xi >= 0 && xi < wIn && yi >= 0 && yi < hIn
          index[k] = inside ? (n * hIn + yi) * wIn + xi : 0
          weight[k] = inside ? (dx === 1 ? fx : 1 - fx) * (dy === 1 ? fy : 1 - fy) : 0
          k++
        }
      }
    }
  })
  return { index, weight }
}

/** [N, H, W, C] ↔ [N·C, H, W, 1], the layout the separable filters run in. */
const toPlanes = (x: tf.Tensor4D): tf.Tensor4D => {
  const [n, h, w, c] = x.shape
  return tf.transpose(x, [0, 3, 1, 2]).reshape([n * c, h, w, 1])
}
const fromPlanes = (x: tf.Tensor4D, channels: number): tf.Tensor4D => {
  const [nc, h, w] = x.shape
  return tf.transpose(x.reshape([nc / channels, channels, h, w]), [0, 2, 3, 1]) as tf.Tensor4D
}

/** The geometric part: EDM's pad → upsample → bilinear resample → downsample (module docs). */
const geometric = (images: tf.Tensor4D, params: AugmentParams, settings: AugmentSettings): tf.Tensor4D => {
  const [n, h, w, c] = images.shape
  const cx = (w - 1) / 2
  const cy = (h - 1) / 2
  const inverse = Array.from({ length: n }, (_, i) => inverseTransform(params, i, settings, w, h))
  const reach = [0, 0, 0, 0]
  for (const m of inverse) {
    for (const [x, y] of [[-cx, -cy], [cx, -cy], [cx, cy], [-cx, cy]] as const) {
      const [px, py] = transformPoint(m, x, y)
      reach[0] = Math.max(reach[0]!, -px)
      reach[1] = Math.max(reach[1]!, -py)
      reach[2] = Math.max(reach[2]!, px)
      reach[3] = Math.max(reach[3]!, py)
    }
  }
  const limit = [w - 1, h - 1, w - 1, h - 1]
  const centre = [cx, cy, cx, cy]
  const [mx0, my0, mx1, my1] = reach.map((r, k) =>
    Math.ceil(Math.min(limit[k]!, Math.max(0, r + 2 * FILTER_PAD - centre[k]!)))
  ) as [number, number, number, number]
  const padded = tf.mirrorPad(images, [[0, 0], [my0, my1], [mx0, mx1], [0, 0]], "reflect")
  const hIn = 2 * (h + my0 + my1)
  const wIn = 2 * (w + mx0 + mx1)
  const up = upsampleAlong(upsampleAlong(toPlanes(padded), 2), 1)
  const shift = translation((mx0 - mx1) / 2, (my0 - my1) / 2)
  const toUpsampled = (m: Matrix3): Matrix3 =>
    mul(mul(translation(-0.5, -0.5), mul(mul(scaling(2, 2), mul(shift, m)), scaling(0.5, 0.5))), translation(0.5, 0.5))
  const hOut = 2 * (h + 2 * FILTER_PAD)
  const wOut = 2 * (w + 2 * FILTER_PAD)
  const taps = bilinearTaps(inverse.map(toUpsampled), [hIn, wIn], [hOut, wOut])
  const rows = fromPlanes(up, c).reshape([n * hIn * wIn, c])
  const gathered = tf.gather(rows, tf.tensor1d(taps.index, "int32"))
  const sampled = tf.mul(gathered, tf.tensor2d(taps.weight, [taps.weight.length, 1]))
    .reshape([n, hOut, wOut, 4, c])
    .sum(3) as tf.Tensor4D
  return fromPlanes(downsampleAlong(downsampleAlong(toPlanes(sampled), 2), 1), c)
}

const flipWhere = (images: tf.Tensor4D, flags: Float64Array, axis: 1 | 2): tf.Tensor4D =>
  flags.some((f) => f === 1)
    ? tf.where(
      tf.broadcastTo(tf.tensor4d(Array.from(flags, (f) => f === 1), [flags.length, 1, 1, 1], "bool"), images.shape),
      tf.reverse(images, axis),
      images
    )
    : images

/**
 * The transformed images of a batch: flips, then (when the settings switch any on) the geometric transform, resampled
 * as EDM does (module docs). `images` is NHWC [N, H, W, C] with N = `params.batch`; a new tensor the caller owns.
 * Throws when the images are not [N, H, W, C] of that batch.
 *
 * @since 0.2.0
 * @category utils
 */
export const applyAugment = (images: tf.Tensor, params: AugmentParams, settings: AugmentSettings): tf.Tensor4D =>
  tf.tidy(() => {
    if (images.rank !== 4 || images.shape[0] !== params.batch) {
      throw new Error(`augmentation needs images [${params.batch}, H, W, C]; got [${images.shape}]`)
    }
    const flipped = flipWhere(flipWhere(images as tf.Tensor4D, params.xflip, 2), params.yflip, 1)
    return hasGeometric(settings) ? geometric(flipped, params, settings) : flipped.clone()
  })

/**
 * The augmented images and their [N, 9] labels (docs/algorithm.md §13.4: `(y, a) = augment_pipe(x)`); new tensors the caller owns.
 *
 * @since 0.2.0
 * @category utils
 */
export const augment = (
  images: tf.Tensor,
  params: AugmentParams,
  settings: AugmentSettings
): { readonly images: tf.Tensor4D; readonly labels: tf.Tensor2D } => ({
  images: applyAugment(images, params, settings),
  labels: augmentLabels(params)
})

/**
 * The augmentation of a config: SiD's pipe at p = `config.augment` (docs/algorithm.md §13.4), or none at p = 0.
 *
 * @since 0.2.0
 * @category utils
 */
export const augmentSettingsOf = (config: DistillConfig): AugmentSettings | undefined =>
  config.augment > 0 ? sidAugmentSettings(config.augment) : undefined
