/**
 * `Concat` as row copies.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty, product } from "./Addon.js"

export const makeConcat = (addon: NativeAddon, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const inputs = Object.values(args.inputs) as Array<tf.TensorInfo>
  const attrs = (args.attrs ?? {}) as { axis?: number | Array<number> }
  const first = inputs[0]
  if (first === undefined || inputs.some((t) => t.dtype !== "float32" || t.shape.length !== first.shape.length)) {
    return stock(args)
  }
  const axis = tf.util.parseAxisParam(attrs.axis ?? 0, first.shape)[0]!
  const parts = inputs.filter((t) => !isEmpty(t.shape))
  if (parts.length === 0) return stock(args)
  const shape = tf.backend_util.computeOutShape(parts.map((t) => t.shape), axis)
  const outer = product(shape.slice(0, axis))
  const inner = product(shape.slice(axis + 1))
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(shape, "float32")
  let offset = 0
  for (const t of parts) {
    const len = t.shape[axis]! * inner
    addon.copyRows(view(be, t), len, 0, view(be, out), shape[axis]! * inner, offset, outer, len)
    offset += len
  }
  return out
}
