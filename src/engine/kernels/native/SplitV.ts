/**
 * `SplitV` as row copies.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty, product } from "./Addon.js"

export const makeSplitV = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { numOrSizeSplits?: number | Array<number>; axis?: number }
  if (x === undefined || x.dtype !== "float32" || isEmpty(x.shape) || attrs.numOrSizeSplits === undefined) {
    return stock(args)
  }
  const axis = tf.util.parseAxisParam(attrs.axis ?? 0, x.shape)[0]!
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, attrs.numOrSizeSplits, axis)
  const outer = product(x.shape.slice(0, axis))
  const inner = product(x.shape.slice(axis + 1))
  const be = args.backend as WasmHeapBackend
  const outs = sizes.map((size) => {
    const shape = [...x.shape]
    shape[axis] = size
    return be.makeOutput(shape, "float32")
  })
  let offset = 0
  sizes.forEach((size, i) => {
    if (size > 0) {
      addon.copyRows(view(be, x), x.shape[axis]! * inner, offset * inner, view(be, outs[i]!), size * inner, 0, outer, size * inner)
    }
    offset += size
  })
  return outs
}
