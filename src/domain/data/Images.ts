/**
 * Image preprocessing for real-data sets: pixel intensities in [0, 1] are mapped to the model range
 * [-1, 1] by x ↦ 2x − 1 (EDM's data convention, docs/algorithm.md §2.1 with σ_data = 0.5), then optionally resized or padded.
 *
 * All functions take NHWC tensors, do their work inside `tf.tidy`, and leave their inputs untouched.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"

/**
 * The image sizes a 28×28 source can be delivered at: native, downsampled to 16, or padded to 32.
 *
 * @since 0.1.0
 * @category models
 */
export type ImageSize = 28 | 16 | 32

/**
 * The value of background pixels after the mapping: 0 ↦ −1.
 *
 * @since 0.1.0
 * @category constants
 */
export const BACKGROUND = -1

/**
 * x ↦ 2x − 1: [0, 1] → [-1, 1].
 *
 * @since 0.1.0
 * @category utils
 */
export const toSigned = <T extends tf.Tensor>(x: T): T => tf.tidy(() => tf.sub(tf.mul(x, 2), 1) as T)

/**
 * Bilinear resize of [N, H, W, C] to [N, size, size, C] (`tf.image.resizeBilinear`, alignCorners false,
 * halfPixelCenters true, so the sampling grid is centred and symmetric). For 28 → 16 this samples, it does not
 * average areas: thin strokes lose some contrast, the mean is roughly preserved, and outputs stay within the input
 * range (each output is a convex combination of four inputs).
 *
 * @since 0.1.0
 * @category utils
 */
export const resize = (images: tf.Tensor4D, size: number): tf.Tensor4D =>
  tf.tidy(() => tf.image.resizeBilinear(images, [size, size], false, true))

/**
 * Pads [N, H, W, C] with `value` (default −1, the mapped background) to [N, size, size, C], centring the image; an odd
 * margin puts the extra row/column at the bottom/right.
 *
 * @since 0.1.0
 * @category utils
 */
export const pad = (images: tf.Tensor4D, size: number, value: number = BACKGROUND): tf.Tensor4D =>
  tf.tidy(() => {
    const [, h, w] = images.shape
    if (size < h || size < w) throw new RangeError(`pad: target ${size} is smaller than the image (${h}×${w})`)
    const top = Math.floor((size - h) / 2)
    const left = Math.floor((size - w) / 2)
    return tf.pad(images, [[0, 0], [top, size - h - top], [left, size - w - left], [0, 0]], value)
  })

/**
 * [0, 1] images [N, 28, 28, C] → [-1, 1] images at `size`: 28 as is, 16 by `resize` (after the mapping), 32 by `pad`
 * with −1.
 *
 * @since 0.1.0
 * @category utils
 */
export const prepare = (images01: tf.Tensor4D, size: ImageSize): tf.Tensor4D =>
  tf.tidy(() => {
    const signed = toSigned(images01)
    switch (size) {
      case 28:
        return signed
      case 16:
        return resize(signed, 16)
      case 32:
        return pad(signed, 32)
    }
  })
