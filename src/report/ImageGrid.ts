/**
 * Image grids as PNG bytes: samples in [−1, 1] laid out in rows and columns, quantised as EDM does
 * (uint8 = clip(x·127.5 + 128, 0, 255), truncated; docs/algorithm.md §3).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs"
import { PNG } from "pngjs"

/** Layout of an {@link imageGrid}. */
export interface ImageGridOptions {
  /** Images per row (default ⌈√N⌉). */
  readonly columns?: number
  /** Pixels between images and around the border, filled with black (default 2). */
  readonly padding?: number
  /** Integer nearest-neighbour upscaling of every image (default 1). */
  readonly scale?: number
}

/** The pixel size of a grid of `count` images of `height`×`width`. */
export const gridSize = (
  count: number,
  height: number,
  width: number,
  options: ImageGridOptions = {}
): { readonly columns: number; readonly rows: number; readonly width: number; readonly height: number } => {
  const columns = Math.max(1, Math.min(count, options.columns ?? Math.ceil(Math.sqrt(count))))
  const rows = Math.max(1, Math.ceil(count / columns))
  const padding = options.padding ?? 2
  const scale = options.scale ?? 1
  return {
    columns,
    rows,
    width: columns * width * scale + (columns + 1) * padding,
    height: rows * height * scale + (rows + 1) * padding
  }
}

const checkInteger = (name: string, value: number, min: number): void => {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer ≥ ${min}, got ${value}`)
}

/** uint8 = clip(⌊x·127.5 + 128⌋, 0, 255) in float32 arithmetic, as the engine's mul, add, floor and clip compute it. */
const quantise = (values: ArrayLike<number>): Float32Array => {
  const f = Math.fround
  const out = new Float32Array(values.length)
  for (let i = 0; i < values.length; i++) out[i] = Math.min(255, Math.max(0, Math.floor(f(f(values[i]! * 127.5) + 128))))
  return out
}

/**
 * Encodes images [N, H, W, C] in [−1, 1] (C = 1 or 3; grayscale is replicated to RGB) as one PNG grid (RGB, 8 bit),
 * quantised with uint8 = clip(x·127.5 + 128, 0, 255) truncated (docs/algorithm.md §3). Throws a RangeError on other shapes or a
 * bad layout. The tensor is not disposed; it is read synchronously (on an engine that reads only asynchronously, read
 * it asynchronously first, e.g. with `cacheOnHost`, so the host copy serves the read).
 */
export const imageGrid = (images: tf.Tensor4D, options: ImageGridOptions = {}): Uint8Array => {
  const [n, h, w, c] = images.shape
  if (images.rank !== 4 || (c !== 1 && c !== 3)) {
    throw new RangeError(`an image grid needs images [N, H, W, C] with C = 1 or 3, got [${images.shape.join(", ")}]`)
  }
  if (n === 0) throw new RangeError("an image grid needs at least one image")
  const padding = options.padding ?? 2
  const scale = options.scale ?? 1
  checkInteger("padding", padding, 0)
  checkInteger("scale", scale, 1)
  if (options.columns !== undefined) checkInteger("columns", options.columns, 1)
  const size = gridSize(n, h, w, options)
  const pixels = quantise(images.dataSync())
  const png = new PNG({ width: size.width, height: size.height, colorType: 2, inputColorType: 2, inputHasAlpha: false })
  const out = Buffer.alloc(size.width * size.height * 3)
  for (let k = 0; k < n; k++) {
    const x0 = padding + (k % size.columns) * (w * scale + padding)
    const y0 = padding + Math.floor(k / size.columns) * (h * scale + padding)
    for (let y = 0; y < h * scale; y++) {
      for (let x = 0; x < w * scale; x++) {
        const src = ((k * h + Math.floor(y / scale)) * w + Math.floor(x / scale)) * c
        const dst = ((y0 + y) * size.width + x0 + x) * 3
        for (let ch = 0; ch < 3; ch++) out[dst + ch] = pixels[src + (c === 1 ? 0 : ch)]!
      }
    }
  }
  png.data = out
  return new Uint8Array(PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false }))
}
