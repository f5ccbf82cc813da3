/**
 * `AvgPoolGrad` for non-overlapping windows that tile the input.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty } from "./Addon.js"
import type { Pair, Padding, Shape4 } from "./Conv2D.js"

export interface PoolAttrs {
  readonly filterSize: Pair
  readonly strides: Pair
  readonly pad: Padding
  readonly dimRoundingMode?: "floor" | "round" | "ceil"
}

/** Average-pool gradient for non-overlapping windows that tile the input: dy spread over each window, / its size. */
export const makeAvgPoolGrad = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { dy, input } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const a = args.attrs as unknown as PoolAttrs
  if (dy === undefined || input === undefined || dy.dtype !== "float32" || input.shape.length !== 4) return stock(args)
  const p = tf.backend_util.computePool2DInfo(input.shape as Shape4, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode)
  const { filterHeight: fh, filterWidth: fw, outHeight: oh, outWidth: ow, padInfo } = p
  if (
    p.dataFormat !== "channelsLast" || fh !== p.strideHeight || fw !== p.strideWidth ||
    padInfo.top + padInfo.bottom + padInfo.left + padInfo.right !== 0 || p.inHeight !== oh * fh ||
    p.inWidth !== ow * fw || isEmpty(input.shape)
  ) return stock(args)
  const [batch, , , depth] = input.shape as Shape4
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([...input.shape], "float32")
  const weight = new Float32Array(fh * fw).fill(1 / (fh * fw))
  addon.binary(2, view(be, dy), [batch, oh, 1, ow, 1, depth], weight, [1, 1, fh, 1, fw, 1], view(be, out), [
    batch,
    oh,
    fh,
    ow,
    fw,
    depth
  ])
  return out
}
