/**
 * `Sum` and `Mean` over any axes.
 *
 * @since 0.2.0
 */
import * as tf from "@tensorflow/tfjs"
import type { RawKernelFunc } from "../Backend.js"
import { type NativeAddon, type WasmHeapBackend, view, isEmpty } from "./Addon.js"

export const makeReduce = (addon: NativeAddon, mean: boolean, stock: RawKernelFunc): RawKernelFunc => (args) => {
  const { x } = args.inputs as Record<string, tf.TensorInfo | undefined>
  const attrs = (args.attrs ?? {}) as { axis?: number | Array<number> | null; keepDims?: boolean }
  if (x === undefined || x.dtype !== "float32" || isEmpty(x.shape)) return stock(args)
  const axes = tf.util.parseAxisParam(attrs.axis ?? x.shape.map((_, i) => i), x.shape)
  const reduced = new Set(axes)
  const outShape = x.shape.flatMap((d, i) => (reduced.has(i) ? (attrs.keepDims === true ? [1] : []) : [d]))
  const count = axes.reduce((p, ax) => p * x.shape[ax]!, 1)
  const be = args.backend as WasmHeapBackend
  const out = be.makeOutput(outShape, "float32")
  addon.sum(view(be, x), x.shape, axes, view(be, out), mean ? 1 / count : 1)
  return out
}
