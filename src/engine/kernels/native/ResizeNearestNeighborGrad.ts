/**
 * `ResizeNearestNeighborGrad` on the addon, with the source indices of the fixed cpu kernel.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty } from "./Addon.js"
import type { Shape4 } from "./Conv2D.js"

import { resizeNearestSourceIndices } from "../ResizeNearestNeighborGrad.js"
export const makeResizeNearestGrad = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { dy, images } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { alignCorners?: boolean; halfPixelCenters?: boolean }
  if (
    dy === undefined || images === undefined || dy.dtype !== "float32" || images.shape.length !== 4 ||
    dy.shape.length !== 4 || isEmpty(dy.shape) || isEmpty(images.shape)
  ) return stock(args)
  const { cols, rows } = resizeNearestSourceIndices(
    images.shape,
    dy.shape,
    attrs.alignCorners === true,
    attrs.halfPixelCenters === true
  )
  const [batch, inH, inW, depth] = images.shape as Shape4
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput([batch, inH, inW, depth], "float32")
  addon.resizeNearestGrad(view(be, dy), view(be, out), [batch, inH, inW, dy.shape[1]!, dy.shape[2]!, depth], rows, cols)
  return out
}
